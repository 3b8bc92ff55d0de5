//! `[mp]`: the MP link between a secondary node and the main node, a tunnel multiplexer (`docs/mp.md`).
//!
//! On the main node `listen` starts the MP server, and `[mp.channels]` names the endpoint each channel's
//! tunnels are connected to (the main node's IAM and CM endpoints). On a secondary node `main_addr` starts the
//! bridge, and `[mp.channels]` names the local address where the bridge accepts each channel's connections.
//! Addresses are link addresses: `tcp://<ip>:<port>`, `unix:///<path>`, `vchan:///<path>`,
//! `vchan-mem://<name>` or `xen://<domain>:<port>`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::key_path::KeyPath;
use crate::validate::Issues;
use crate::Config;

/// Default of `mp.stream_window`: 256 KiB.
pub const DEFAULT_STREAM_WINDOW: u32 = 256 * 1024;
/// Smallest allowed `mp.stream_window`.
pub const MIN_STREAM_WINDOW: u32 = 4 * 1024;
/// Largest allowed `mp.stream_window`.
pub const MAX_STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Default of `mp.max_streams`.
pub const DEFAULT_MAX_STREAMS: u32 = 64;
/// Largest allowed `mp.max_streams`.
pub const MAX_STREAMS_CEILING: u32 = 65_536;

/// The `[mp]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MpConfig {
    /// Main node: link address the MP server listens on for secondary nodes' bridges. Unset: no MP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Secondary node: link address of the main node's MP server. Unset: no bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_addr: Option<String>,
    /// Bytes one side of one tunnel may have in flight before the other side's consumer has taken them
    /// (per-stream flow-control window).
    pub stream_window: u32,
    /// Most tunnels open at once on one MP link.
    pub max_streams: u32,
    /// `[mp.channels]`.
    pub channels: MpChannels,
}

/// The `[mp.channels]` table: per channel, the main node's target endpoint (main node) or the bridge's local
/// listener (secondary node). A channel left unset is not tunnelled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MpChannels {
    /// IAM public API (TLS, server-authenticated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam_open: Option<String>,
    /// IAM protected API (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam_secure: Option<String>,
    /// CM open endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cm_open: Option<String>,
    /// CM SM-controller endpoint (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cm_secure: Option<String>,
}

impl Default for MpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            main_addr: None,
            stream_window: DEFAULT_STREAM_WINDOW,
            max_streams: DEFAULT_MAX_STREAMS,
            channels: MpChannels::default(),
        }
    }
}

// === impl MpChannels ===

impl MpChannels {
    /// Every channel key with its address, in channel id order (`iam_open`, `iam_secure`, `cm_open`,
    /// `cm_secure`).
    pub fn entries(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("iam_open", self.iam_open.as_deref()),
            ("iam_secure", self.iam_secure.as_deref()),
            ("cm_open", self.cm_open.as_deref()),
            ("cm_secure", self.cm_secure.as_deref()),
        ]
    }
}

/// Checks a link address's syntax (the same rules as `aos_transport::link::LinkAddr`).
pub(crate) fn check_link_addr(addr: &str) -> Result<(), String> {
    let bad = |hint: &str| Err(format!("{addr:?} is not a link address: {hint}"));
    let Some((scheme, rest)) = addr.split_once("://") else {
        return bad("expected <scheme>://…, with scheme tcp, unix, vchan, vchan-mem or xen");
    };
    match scheme {
        "tcp" if rest.parse::<SocketAddr>().is_ok() => Ok(()),
        "tcp" => bad("expected tcp://<ip>:<port>, e.g. tcp://127.0.0.1:30001 (no host names)"),
        "unix" | "vchan" if rest.starts_with('/') => Ok(()),
        "unix" | "vchan" => {
            bad("expected an absolute path after the scheme, e.g. unix:///run/aos/mp.sock")
        }
        "vchan-mem" if !rest.is_empty() && !rest.contains('/') => Ok(()),
        "vchan-mem" => bad("expected vchan-mem://<name> with a non-empty name without '/'"),
        "xen" => match rest.split_once(':') {
            Some((domain, port))
                if domain.parse::<u32>().is_ok() && port.parse::<u32>().is_ok() =>
            {
                Ok(())
            }
            _ => bad("expected xen://<domain id>:<port>, e.g. xen://0:1"),
        },
        _ => bad("unknown scheme; use tcp, unix, vchan, vchan-mem or xen"),
    }
}

/// The cert type whose certificate a secondary node's MP bridge presents (role `mp`).
pub const BRIDGE_CERT_TYPE: &str = "mp";

/// Checks `[mp]`: which node role may set which address, address syntax, ranges, duplicate listeners.
pub(crate) fn check(config: &Config, issues: &mut Issues) {
    let mp = &config.mp;
    let path = KeyPath::root().key("mp");
    let role = KeyPath::root().key("node").key("role");
    let main = config.node.is_main();
    if let Some(listen) = &mp.listen {
        if main {
            issues.check(path.key("listen"), check_link_addr(listen));
        } else {
            issues.push(
                path.key("listen"),
                "only the main node serves MP links; on a secondary node set mp.main_addr",
            );
        }
    }
    if let Some(main_addr) = &mp.main_addr {
        if main {
            issues.near(
                path.key("main_addr"),
                [role.clone()],
                "the main node does not bridge to itself; on the main node set mp.listen",
            );
        } else {
            issues.check(path.key("main_addr"), check_link_addr(main_addr));
            let has_mp = config
                .enabled_cert_modules()
                .any(|m| m.id == BRIDGE_CERT_TYPE);
            if !has_mp {
                issues.near(
                    path.key("main_addr"),
                    [KeyPath::root().key("cert_modules")],
                    "the MP bridge authenticates with the node's `mp` certificate: add an enabled \
                     [[cert_modules]] entry with id = \"mp\"",
                );
            }
        }
    }
    if !(MIN_STREAM_WINDOW..=MAX_STREAM_WINDOW).contains(&mp.stream_window) {
        issues.push(
            path.key("stream_window"),
            format!(
                "{} is out of range {MIN_STREAM_WINDOW}..={MAX_STREAM_WINDOW} (4 KiB to 16 MiB)",
                mp.stream_window
            ),
        );
    }
    if !(1..=MAX_STREAMS_CEILING).contains(&mp.max_streams) {
        issues.push(
            path.key("max_streams"),
            format!(
                "{} is out of range 1..={MAX_STREAMS_CEILING}",
                mp.max_streams
            ),
        );
    }
    let channels = path.key("channels");
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (key, addr) in mp.channels.entries() {
        let Some(addr) = addr else { continue };
        if let Err(err) = check_link_addr(addr) {
            issues.push(channels.key(key), err);
            continue;
        }
        if mp.listen.is_none() && mp.main_addr.is_none() {
            issues.near(
                channels.key(key),
                [channels.clone()],
                "unused: the MP link is off; set mp.listen (main node) or mp.main_addr (secondary node)",
            );
        }
        if !main {
            if let Some((other, _)) = seen.iter().find(|(_, a)| *a == addr) {
                issues.push(
                    channels.key(key),
                    format!(
                        "same local address as mp.channels.{other}; each channel needs its own"
                    ),
                );
            }
        }
        seen.push((key, addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_error_at, ok, MAIN, MP_MODULE};

    fn secondary(mp: &str) -> String {
        format!(
            "{}{MP_MODULE}\n[iam]\nmain_public_addr = \"main:8090\"\nmain_protected_addr = \"main:8089\"\n{mp}",
            MAIN.replace("role = \"main\"", "role = \"secondary\"")
        )
    }

    #[test]
    fn a_bridged_secondary_needs_an_mp_module_and_no_main_addresses() {
        let bare = MAIN.replace("role = \"main\"", "role = \"secondary\"");
        let text = format!("{bare}\n[mp]\nmain_addr = \"tcp://10.0.0.1:30001\"\n");
        assert_error_at(&text, "main_addr", "mp.main_addr", "id = \"mp\"");
        let config = ok(&format!(
            "{bare}{MP_MODULE}\n[mp]\nmain_addr = \"tcp://10.0.0.1:30001\"\n[sm]\nenabled = true\n"
        ));
        assert!(config.iam.main_public_addr.is_none() && config.sm.cm_addr.is_none());
    }

    #[test]
    fn off_by_default_with_documented_defaults() {
        let config = ok(MAIN);
        assert_eq!(config.mp, MpConfig::default());
        assert_eq!(config.mp.stream_window, 256 * 1024);
        assert_eq!(config.mp.max_streams, 64);
        assert!(config.mp.listen.is_none() && config.mp.main_addr.is_none());
    }

    #[test]
    fn main_and_secondary_configurations_parse() {
        let main = ok(&format!(
            "{MAIN}\n[mp]\nlisten = \"tcp://0.0.0.0:30001\"\n[mp.channels]\niam_open = \"tcp://127.0.0.1:8090\"\n\
             iam_secure = \"tcp://127.0.0.1:8089\"\ncm_secure = \"unix:///run/aos/cm.sock\"\n"
        ));
        assert_eq!(main.mp.listen.as_deref(), Some("tcp://0.0.0.0:30001"));
        assert_eq!(
            main.mp.channels.entries().map(|(_, a)| a.is_some()),
            [true, true, false, true]
        );
        let secondary = ok(&secondary(
            "[mp]\nmain_addr = \"vchan:///dev/shm/aos-mp1\"\nstream_window = 65536\nmax_streams = 8\n\
             [mp.channels]\niam_open = \"tcp://127.0.0.1:18090\"\ncm_secure = \"tcp://127.0.0.1:18091\"\n",
        ));
        assert_eq!(secondary.mp.stream_window, 65_536);
        assert_eq!(secondary.mp.max_streams, 8);
        assert_eq!(
            secondary.mp.main_addr.as_deref(),
            Some("vchan:///dev/shm/aos-mp1")
        );
    }

    #[test]
    fn each_role_sets_only_its_own_address() {
        let text = format!("{MAIN}\n[mp]\nmain_addr = \"tcp://10.0.0.1:30001\"\n");
        assert_error_at(
            &text,
            "main_addr",
            "mp.main_addr",
            "does not bridge to itself",
        );
        let text = secondary("[mp]\nlisten = \"tcp://0.0.0.0:30001\"\n");
        assert_error_at(&text, "listen =", "mp.listen", "only the main node");
    }

    #[test]
    fn bad_addresses_ranges_and_duplicates_are_refused_where_they_are() {
        let text = format!("{MAIN}\n[mp]\nlisten = \"tcp://localhost:1\"\n");
        assert_error_at(&text, "listen =", "mp.listen", "no host names");
        let text = format!("{MAIN}\n[mp]\nlisten = \"tcp://0.0.0.0:1\"\nstream_window = 100\n");
        assert_error_at(&text, "stream_window", "mp.stream_window", "out of range");
        let text = format!("{MAIN}\n[mp]\nlisten = \"tcp://0.0.0.0:1\"\nmax_streams = 0\n");
        assert_error_at(&text, "max_streams", "mp.max_streams", "out of range");
        let text = format!(
            "{MAIN}\n[mp]\nlisten = \"tcp://0.0.0.0:1\"\n[mp.channels]\ncm_open = \"unix://rel.sock\"\n"
        );
        assert_error_at(&text, "cm_open", "mp.channels.cm_open", "absolute path");
        let text = secondary(
            "[mp]\nmain_addr = \"tcp://10.0.0.1:1\"\n[mp.channels]\niam_open = \"tcp://127.0.0.1:9\"\n\
             cm_open = \"tcp://127.0.0.1:9\"\n",
        );
        assert_error_at(
            &text,
            "cm_open",
            "mp.channels.cm_open",
            "same local address as mp.channels.iam_open",
        );
        let text = format!("{MAIN}\n[mp.channels]\niam_open = \"tcp://127.0.0.1:8090\"\n");
        assert_error_at(
            &text,
            "iam_open",
            "mp.channels.iam_open",
            "the MP link is off",
        );
    }

    #[test]
    fn link_address_syntax_matches_the_transport() {
        for good in [
            "tcp://127.0.0.1:30001",
            "tcp://[::1]:8089",
            "unix:///run/aos/mp.sock",
            "vchan:///dev/shm/aos-mp0",
            "vchan-mem://node-2",
            "xen://3:1",
        ] {
            assert_eq!(check_link_addr(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1:1",
            "tcp://localhost:1",
            "unix://relative",
            "vchan-mem://",
            "vchan-mem://a/b",
            "xen://a:1",
            "http://x",
        ] {
            assert!(check_link_addr(bad).is_err(), "{bad}");
        }
    }
}
