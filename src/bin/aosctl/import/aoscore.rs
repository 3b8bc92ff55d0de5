//! The mapping from AosCore's IAM JSON fields to `aos_config::Config` (see config/README.md, "Compared with
//! AosCore's JSON").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use aos_config::{
    CertModuleConfig, Config, ExtendedKeyUsage, KeyAlgorithm, NodeConfig, NodeRole, Pkcs11Params,
};
use serde_json::Value;

use super::json::Obj;
use super::ImportError;

/// The only cert module plugin this runtime has.
const PKCS11_PLUGIN: &str = "pkcs11module";

/// A converted configuration: the TOML text (already validated) and notes on what was dropped or assumed.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration as TOML, with a header comment.
    pub toml: String,
    /// What was dropped or assumed, one sentence each.
    pub notes: Vec<String>,
}

/// Convert the AosCore IAM JSON `text` (read from `path`). `node_id` overrides `nodeInfo.nodeName` as the
/// node id; `unit_id` is the unit (AosCore's JSON has none).
pub fn convert(
    text: &str,
    path: &Path,
    node_id: Option<&str>,
    unit_id: &str,
) -> Result<Imported, ImportError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ImportError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let top = Obj::new("", &doc)?;
    let mut notes = Vec::new();

    let node_info = top.obj("nodeInfo")?;
    let node = node_config(node_info.as_ref(), &top, node_id, unit_id, &mut notes)?;
    let ca_cert = top.required_str("caCert")?;
    let mut config = Config::new(node, ca_cert);
    if let Some(storage) = top.str("certStorage")? {
        config.cert_storage = storage.to_owned();
    }
    iam_section(&top, &mut config)?;
    if let Some(dir) = top.str("workingDir")? {
        config.node.working_dir = PathBuf::from(dir);
    }
    config.provisioning.start = hook(&top, "startProvisioningCmdArgs")?;
    config.provisioning.disk_encryption = hook(&top, "diskEncryptionCmdArgs")?;
    config.provisioning.finish = hook(&top, "finishProvisioningCmdArgs")?;
    config.provisioning.deprovision = hook(&top, "deprovisionCmdArgs")?;
    if let Some(enabled) = top.bool("enablePermissionsHandler")? {
        config.permissions.enabled = enabled;
    }
    if let Some(identifier) = top.obj("identifier")? {
        let plugin = identifier.str("plugin")?.unwrap_or("(none)");
        notes.push(format!(
            "{}: dropped (plugin `{plugin}`): this runtime takes the system id from node.unit_id",
            top.key_path("identifier")
        ));
    }
    if let Some(info) = &node_info {
        components(info, &mut config)?;
        if let Some(note) = default_cm_addr(&mut config) {
            notes.push(note);
        }
        for dropped in ["maxDmips", "partitions", "os", "architecture", "nodeIdPath"] {
            if info.get(dropped).is_some() {
                notes.push(format!(
                    "{}: dropped (no equivalent)",
                    info.key_path(dropped)
                ));
            }
        }
        notes.extend(info.unread().into_iter().map(unknown));
    }
    for module in top.objs("certModules")? {
        config.cert_modules.push(cert_module(&module)?);
        notes.extend(module.unread().into_iter().map(unknown));
    }
    notes.extend(top.unread().into_iter().map(unknown));

    let body = toml::to_string(&config).map_err(|e| ImportError::Toml(e.to_string()))?;
    let origin = path.display().to_string();
    Config::from_str(&body, &origin).map_err(ImportError::Validation)?;
    let mut toml = format!("# Imported by `aosctl config import` from {origin}.\n");
    for note in &notes {
        toml.push_str(&format!("# note: {note}\n"));
    }
    toml.push('\n');
    toml.push_str(&body);
    Ok(Imported { toml, notes })
}

/// `[node]`: id, unit, role, state file, names.
fn node_config(
    info: Option<&Obj<'_>>,
    top: &Obj<'_>,
    node_id: Option<&str>,
    unit_id: &str,
    notes: &mut Vec<String>,
) -> Result<NodeConfig, ImportError> {
    let name = match info {
        Some(info) => info.str("nodeName")?,
        None => None,
    };
    let id = match (node_id, name) {
        (Some(id), _) => id.to_owned(),
        (None, Some(name)) => {
            notes.push(format!(
                "node.id: set to nodeInfo.nodeName `{name}` (AosCore reads the id from nodeIdPath at run time; \
                 pass --node-id to choose another)"
            ));
            name.to_owned()
        }
        (None, None) => {
            return Err(ImportError::Missing {
                key: "nodeInfo.nodeName (or pass --node-id)".to_owned(),
            })
        }
    };
    let main_node = match info {
        Some(info) => match info.obj("attrs")? {
            Some(attrs) => attrs.get("MainNode").is_some(),
            None => false,
        },
        None => false,
    };
    let has_main_urls = top.get("mainIamPublicServerUrl").is_some()
        || top.get("mainIamProtectedServerUrl").is_some();
    let role =
        match (main_node, has_main_urls) {
            (true, true) => return Err(ImportError::Invalid {
                key: top.key_path("mainIamPublicServerUrl"),
                reason:
                    "set on a node whose nodeInfo.attrs has MainNode; a main node has no main node"
                        .to_owned(),
            }),
            (true, false) | (false, false) => NodeRole::Main,
            (false, true) => NodeRole::Secondary,
        };
    notes.push(format!(
        "node.unit_id: set to `{unit_id}` (AosCore's JSON has no unit id; pass --unit-id)"
    ));
    let mut node = NodeConfig::new(id, unit_id, role);
    if let Some(info) = info {
        node.node_name = name.map(str::to_owned);
        node.node_type = info.str("nodeType")?.map(str::to_owned);
        if let Some(state) = info.str("provisioningStatePath")? {
            node.state_file = PathBuf::from(state);
        }
    }
    Ok(node)
}

/// `[iam]`: the listen addresses, the main node's addresses, the reconnect interval.
fn iam_section(top: &Obj<'_>, config: &mut Config) -> Result<(), ImportError> {
    if let Some(url) = top.str("iamPublicServerUrl")? {
        config.iam.public_listen = listen_addr(&top.key_path("iamPublicServerUrl"), url)?;
    }
    if let Some(url) = top.str("iamProtectedServerUrl")? {
        config.iam.protected_listen = listen_addr(&top.key_path("iamProtectedServerUrl"), url)?;
    }
    config.iam.main_public_addr = top.str("mainIamPublicServerUrl")?.map(str::to_owned);
    config.iam.main_protected_addr = top.str("mainIamProtectedServerUrl")?.map(str::to_owned);
    if let Some(interval) = top.str("nodeReconnectInterval")? {
        config.iam.node_reconnect_interval = aos_config::duration::parse_duration(interval)
            .map_err(|e| ImportError::Invalid {
                key: top.key_path("nodeReconnectInterval"),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// AosCore's `host:port` listen URL as a socket address: an empty host or `localhost` as in AosCore (all
/// interfaces, loopback), an IP as is; a host name cannot be listened on.
fn listen_addr(key: &str, url: &str) -> Result<SocketAddr, ImportError> {
    let invalid = |reason: String| ImportError::Invalid {
        key: key.to_owned(),
        reason,
    };
    let (host, port) = url
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("`{url}` is not host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(format!("`{port}` in `{url}` is not a port number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().map_err(|_| {
            invalid(format!(
                "`{other}` is not an IP address; a listen address must be an IP, `localhost` or empty"
            ))
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A `*CmdArgs` hook; an empty array means none.
fn hook(top: &Obj<'_>, key: &str) -> Result<Option<Vec<String>>, ImportError> {
    Ok(top.strings(key)?.filter(|argv| !argv.is_empty()))
}

/// `nodeInfo.attrs.AosComponents` ("cm,iam,sm") → `[cm]` and `[sm]` enabled.
fn components(info: &Obj<'_>, config: &mut Config) -> Result<(), ImportError> {
    let Some(attrs) = info.obj("attrs")? else {
        return Ok(());
    };
    if let Some(list) = attrs.str("AosComponents")? {
        for component in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match component {
                "cm" => config.cm.enabled = true,
                "sm" => config.sm.enabled = true,
                "iam" | "um" | "mp" => {}
                other => {
                    return Err(ImportError::Unsupported {
                        key: attrs.key_path("AosComponents"),
                        value: other.to_owned(),
                        supported: "components are cm, iam, sm, um and mp".to_owned(),
                    })
                }
            }
        }
    }
    // Other attributes are free-form node info: nothing in the config carries them.
    let _ = attrs.unread();
    Ok(())
}

/// AosCore's IAM configuration does not say where the CM is. An SM that has no CM of its own node (a main
/// node without `cm`, or a secondary, which has no MP bridge in an imported config) gets the usual port on
/// the main node's host; the note asks to check it.
fn default_cm_addr(config: &mut Config) -> Option<String> {
    let own_cm = config.node.is_main() && config.cm.enabled;
    if !config.sm.enabled || own_cm || config.sm.cm_addr.is_some() {
        return None;
    }
    let host = config
        .iam
        .main_public_addr
        .as_deref()
        .and_then(|addr| addr.rsplit_once(':'))
        .map_or("localhost", |(host, _)| host);
    let addr = format!("{host}:8093");
    config.sm.cm_addr = Some(addr.clone());
    Some(format!(
        "sm.cm_addr: set to {addr} (the CM's SM controller; not in AosCore's IAM config, check it)"
    ))
}

/// One `certModules[i]` entry.
fn cert_module(module: &Obj<'_>) -> Result<CertModuleConfig, ImportError> {
    let id = module.required_str("id")?;
    let plugin = module.required_str("plugin")?;
    if !plugin.eq_ignore_ascii_case(PKCS11_PLUGIN) {
        return Err(ImportError::Unsupported {
            key: module.key_path("plugin"),
            value: plugin.to_owned(),
            supported: format!("the only cert module plugin is `{PKCS11_PLUGIN}`"),
        });
    }
    let algorithm = match module.required_str("algorithm")? {
        a if a.eq_ignore_ascii_case("ecc") => KeyAlgorithm::EccP384,
        a if a.eq_ignore_ascii_case("rsa") => KeyAlgorithm::Rsa2048,
        other => {
            return Err(ImportError::Unsupported {
                key: module.key_path("algorithm"),
                value: other.to_owned(),
                supported: "AosCore's algorithms are `ecc` (ECDSA P-384) and `rsa` (RSA-2048)"
                    .to_owned(),
            })
        }
    };
    let params = module.obj("params")?.ok_or_else(|| ImportError::Missing {
        key: module.key_path("params"),
    })?;
    let mut config = CertModuleConfig::new(id, algorithm, pkcs11_params(&params)?);
    if let Some(max) = module.u64("maxItems")? {
        config.max_items = u32::try_from(max).map_err(|_| ImportError::Invalid {
            key: module.key_path("maxItems"),
            reason: format!("{max} is out of range"),
        })?;
    }
    if let Some(ekus) = module.strings("extendedKeyUsage")? {
        config.extended_key_usage = ekus
            .iter()
            .map(|eku| match eku.to_ascii_lowercase().as_str() {
                "clientauth" => Ok(ExtendedKeyUsage::ClientAuth),
                "serverauth" => Ok(ExtendedKeyUsage::ServerAuth),
                _ => Err(ImportError::Unsupported {
                    key: module.key_path("extendedKeyUsage"),
                    value: eku.clone(),
                    supported: "extended key usages are clientAuth and serverAuth".to_owned(),
                }),
            })
            .collect::<Result<_, _>>()?;
    }
    config.alternative_names = module.strings("alternativeNames")?.unwrap_or_default();
    config.disabled = module.bool("disabled")?.unwrap_or(false);
    config.skip_validation = module.bool("skipValidation")?.unwrap_or(false);
    config.self_signed = module.bool("selfSigned")?.unwrap_or(false);
    Ok(config)
}

/// A cert module's `params`.
fn pkcs11_params(params: &Obj<'_>) -> Result<Pkcs11Params, ImportError> {
    let mut out = Pkcs11Params::new(params.required_str("library")?);
    out.slot_id = params.u64("slotID")?;
    out.slot_index = params
        .u64("slotIndex")?
        .map(|i| usize::try_from(i).unwrap_or(usize::MAX));
    out.token_label = params.str("tokenLabel")?.map(str::to_owned);
    out.user_pin_path = params.str("userPinPath")?.map(PathBuf::from);
    out.module_path_in_url = params.bool("modulePathInUrl")?.unwrap_or(false);
    out.uid = id_value(params, "uid")?;
    out.gid = id_value(params, "gid")?;
    if let Some(unread) = params.unread().into_iter().next() {
        return Err(ImportError::Unsupported {
            key: unread,
            value: "(set)".to_owned(),
            supported:
                "pkcs11module params are library, slotID, slotIndex, tokenLabel, userPinPath, \
                        modulePathInUrl, uid and gid"
                    .to_owned(),
        });
    }
    Ok(out)
}

fn id_value(params: &Obj<'_>, key: &str) -> Result<Option<u32>, ImportError> {
    params
        .u64(key)?
        .map(|v| {
            u32::try_from(v).map_err(|_| ImportError::Invalid {
                key: params.key_path(key),
                reason: format!("{v} is not a valid id"),
            })
        })
        .transpose()
}

fn unknown(key: String) -> String {
    format!("{key}: dropped (not an AosCore IAM field this runtime knows)")
}

#[cfg(test)]
#[path = "aoscore_tests.rs"]
mod tests;
