//! `aosctl ca init` and `aosctl ca issue`: the development CA of `aos_sim::cloud` on disk, and client
//! certificates it issues for operators (e.g. role `cm` for the protected API).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aos_sim::cloud::{CaOptions, CloudCa, SignRequest, ROOT_CERT_FILE};
use aos_transport::tls::{Fingerprint, PeerIdentity, Role};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{CaInitArgs, CaIssueArgs};
use crate::error::CtlError;
use crate::output::{self, rfc3339, Table};

/// What `ca init` made.
#[derive(Debug, Serialize)]
struct Created {
    dir: PathBuf,
    unit_id: String,
    root_cert: PathBuf,
    root_fingerprint: String,
    not_after: String,
}

/// What `ca issue` wrote.
#[derive(Debug, Serialize)]
struct Issued {
    identity: String,
    serial: String,
    not_after: String,
    cert: PathBuf,
    key: PathBuf,
}

/// `aosctl ca init`.
pub fn init(args: &CaInitArgs, json: bool) -> Result<(), CtlError> {
    let ca = CloudCa::new(&args.unit, CaOptions::default())?;
    ca.save(&args.dir).map_err(|source| CtlError::CaStore {
        dir: args.dir.clone(),
        source,
    })?;
    let created = Created {
        dir: args.dir.clone(),
        unit_id: ca.unit_id().to_owned(),
        root_cert: args.dir.join(ROOT_CERT_FILE),
        root_fingerprint: Fingerprint::of(ca.root_der()).to_string(),
        not_after: rfc3339(ca.issuer_not_after()),
    };
    let mut table = Table::new(&["UNIT", "ROOT CERTIFICATE", "NOT AFTER"]);
    table.row(vec![
        created.unit_id.clone(),
        created.root_cert.display().to_string(),
        created.not_after.clone(),
    ]);
    output::print(json, &created, &table)
}

/// `aosctl ca issue`.
pub fn issue(args: &CaIssueArgs, json: bool) -> Result<(), CtlError> {
    let role: Role = args.role.parse().map_err(|_| {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        CtlError::Usage(format!(
            "--role `{}` is not a role; use one of {}",
            args.role,
            roles.join(", ")
        ))
    })?;
    let ca = load(&args.dir)?;
    let identity = PeerIdentity::new(ca.unit_id(), &args.node, role)
        .map_err(|e| CtlError::Usage(format!("--node `{}`: {e}", args.node)))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CtlError::Output(format!("key generation failed: {e}")))?;
    let csr = client_csr(&identity, &key)?;
    let mut request = SignRequest::new(&args.node, role.as_str(), csr);
    if let Some(lifetime) = args.lifetime {
        request = request.with_lifetime(lifetime);
    }
    let chain = ca.sign(&request)?;

    let cert_path = with_suffix(&args.out, "pem");
    let key_path = with_suffix(&args.out, "key");
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(CtlError::Usage(format!(
                "{} exists; choose another --out prefix",
                path.display()
            )));
        }
    }
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_new(&key_path, key_pem.as_bytes(), 0o600)?;
    write_new(&cert_path, chain.chain_pem.as_bytes(), 0o644)?;
    let issued = Issued {
        identity: identity.uri(),
        serial: chain.serial_hex(),
        not_after: rfc3339(chain.not_after),
        cert: cert_path,
        key: key_path,
    };
    let mut table = Table::new(&["IDENTITY", "SERIAL", "NOT AFTER", "CERT", "KEY"]);
    table.row(vec![
        issued.identity.clone(),
        issued.serial.clone(),
        issued.not_after.clone(),
        issued.cert.display().to_string(),
        issued.key.display().to_string(),
    ]);
    output::print(json, &issued, &table)
}

/// The CA saved in `dir`.
pub fn load(dir: &Path) -> Result<CloudCa, CtlError> {
    CloudCa::load(dir).map_err(|source| CtlError::CaStore {
        dir: dir.to_owned(),
        source,
    })
}

/// The unit's CA certificates from `path`: a CA directory (its root certificate) or a PEM file. Also the
/// unit id when `path` is a CA directory.
pub fn roots(path: &Path) -> Result<(Vec<CertificateDer<'static>>, Option<String>), CtlError> {
    if path.is_dir() {
        let ca = load(path)?;
        return Ok((vec![ca.root_der().clone()], Some(ca.unit_id().to_owned())));
    }
    let text = std::fs::read(path).map_err(|e| CtlError::read(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CtlError::bad_file(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(CtlError::bad_file(path, "holds no PEM CERTIFICATE"));
    }
    Ok((certs, None))
}

/// A CSR for `identity` with a client's EKUs (client and server auth, as the node certificates have).
fn client_csr(identity: &PeerIdentity, key: &KeyPair) -> Result<String, CtlError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{} {}", identity.node, identity.role),
    );
    let uri = identity
        .uri()
        .try_into()
        .map_err(|e| CtlError::Usage(format!("identity {identity}: {e}")))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| CtlError::Output(format!("cannot build the CSR: {e}")))
}

/// `prefix` with `.suffix` appended to its file name.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Create `path` (it must not exist) with `mode` and write `contents`.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CtlError> {
    let write = |path: &Path| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write(path).map_err(|source| CtlError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use aos_actors::iam::cert_module::TrustRoots;

    use super::*;

    #[test]
    fn an_issued_client_certificate_chains_to_the_saved_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        init(
            &CaInitArgs {
                dir: ca_dir.clone(),
                unit: "unit-7".into(),
            },
            true,
        )
        .unwrap();
        let out = dir.path().join("operator");
        let args = CaIssueArgs {
            dir: ca_dir.clone(),
            node: "ops".into(),
            role: "cm".into(),
            out: out.clone(),
            lifetime: Some(std::time::Duration::from_secs(3600)),
        };
        issue(&args, true).unwrap();

        let key_mode = std::fs::metadata(dir.path().join("operator.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.path().join("operator.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let identity = PeerIdentity::from_certificate(&chain[0]).unwrap();
        assert_eq!(identity.uri(), "urn:aos:unit-7:ops:cm");
        let (roots, unit) = roots(&ca_dir).unwrap();
        assert_eq!(unit.as_deref(), Some("unit-7"));
        TrustRoots::new(&roots)
            .unwrap()
            .verify(&chain, std::time::SystemTime::now(), &[])
            .unwrap();

        // Never over existing files, and a role must be a role.
        assert!(matches!(issue(&args, true), Err(CtlError::Usage(_))));
        let bad_role = CaIssueArgs {
            role: "admin".into(),
            out: dir.path().join("other"),
            ..args
        };
        let err = issue(&bad_role, true).unwrap_err();
        assert!(err.to_string().contains("cm"), "{err}");
    }

    #[test]
    fn init_never_overwrites_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let args = CaInitArgs {
            dir: dir.path().to_owned(),
            unit: "unit-1".into(),
        };
        init(&args, true).unwrap();
        assert!(matches!(init(&args, true), Err(CtlError::CaStore { .. })));
    }
}
