//! A CA on disk: one directory holding the unit id, the root and the optional intermediate, certificates and
//! keys as PEM. Key files are mode 0600; they are plain software keys (a development CA).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::ca::{check_unit_id, CaCert, CloudCa};
use super::error::StoreError;

/// File holding the unit id (one line).
pub const UNIT_ID_FILE: &str = "unit-id";
/// File holding the root certificate (PEM).
pub const ROOT_CERT_FILE: &str = "root.pem";
/// File holding the root key (PKCS#8 PEM, mode 0600).
pub const ROOT_KEY_FILE: &str = "root.key";
/// File holding the intermediate certificate (PEM), when the CA has one.
pub const INTERMEDIATE_CERT_FILE: &str = "intermediate.pem";
/// File holding the intermediate key (PKCS#8 PEM, mode 0600), when the CA has one.
pub const INTERMEDIATE_KEY_FILE: &str = "intermediate.key";

/// Mode of key files.
const KEY_MODE: u32 = 0o600;
/// Mode of certificates and the unit id.
const PUBLIC_MODE: u32 = 0o644;

// === impl CloudCa (store) ===

impl CloudCa {
    /// Write the CA to `dir` (created with mode 0700 if missing): [`UNIT_ID_FILE`], [`ROOT_CERT_FILE`],
    /// [`ROOT_KEY_FILE`] and, with an intermediate, [`INTERMEDIATE_CERT_FILE`] and
    /// [`INTERMEDIATE_KEY_FILE`]. Keys are written with mode 0600. Never overwrites: if any of these files
    /// exists, nothing is written. The policy and clock are not saved.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), StoreError> {
        let dir = dir.as_ref();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::io(dir, e))?;
        let unit_line = format!("{}\n", self.unit_id);
        let mut files: Vec<(&str, &[u8], u32)> = vec![
            (ROOT_KEY_FILE, self.root.key_pem.as_bytes(), KEY_MODE),
            (ROOT_CERT_FILE, self.root.pem.as_bytes(), PUBLIC_MODE),
        ];
        if let Some(intermediate) = &self.intermediate {
            files.push((
                INTERMEDIATE_KEY_FILE,
                intermediate.key_pem.as_bytes(),
                KEY_MODE,
            ));
            files.push((
                INTERMEDIATE_CERT_FILE,
                intermediate.pem.as_bytes(),
                PUBLIC_MODE,
            ));
        }
        files.push((UNIT_ID_FILE, unit_line.as_bytes(), PUBLIC_MODE));
        let names = [
            UNIT_ID_FILE,
            ROOT_CERT_FILE,
            ROOT_KEY_FILE,
            INTERMEDIATE_CERT_FILE,
            INTERMEDIATE_KEY_FILE,
        ];
        if let Some(existing) = names
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.exists())
        {
            return Err(StoreError::AlreadyExists { path: existing });
        }
        for (name, contents, mode) in files {
            write_new(&dir.join(name), contents, mode)?;
        }
        Ok(())
    }

    /// Read a CA written by [`CloudCa::save`]. Checks that each key belongs to its certificate, that the
    /// certificates are CA certificates, that the root is self-signed and that the intermediate (if present)
    /// is signed by the root. Refuses key files readable by group or others. The CA starts with the default
    /// policy and the system clock: see [`CloudCa::with_policy`] and [`CloudCa::with_clock`].
    pub fn load(dir: impl AsRef<Path>) -> Result<CloudCa, StoreError> {
        let dir = dir.as_ref();
        let unit_path = dir.join(UNIT_ID_FILE);
        let unit_id = std::fs::read_to_string(&unit_path)
            .map_err(|e| StoreError::io(&unit_path, e))?
            .trim()
            .to_owned();
        check_unit_id(&unit_id).map_err(|e| StoreError::malformed(&unit_path, e))?;

        let (root, root_key) = read_ca_cert(dir, ROOT_CERT_FILE, ROOT_KEY_FILE)?;
        let root_path = dir.join(ROOT_CERT_FILE);
        let root_x509 = parse(&root_path, &root.der)?;
        root_x509
            .verify_signature(None)
            .map_err(|e| mismatch(&root_path, format!("root is not self-signed: {e}")))?;

        let int_path = dir.join(INTERMEDIATE_CERT_FILE);
        let (intermediate, issuing_key) = if int_path.exists() {
            let (intermediate, int_key) =
                read_ca_cert(dir, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE)?;
            parse(&int_path, &intermediate.der)?
                .verify_signature(Some(root_x509.public_key()))
                .map_err(|e| {
                    mismatch(
                        &int_path,
                        format!("intermediate is not signed by the root: {e}"),
                    )
                })?;
            (Some(intermediate), int_key)
        } else {
            (None, root_key)
        };
        CloudCa::from_parts(&unit_id, root, intermediate, issuing_key)
            .map_err(|e| mismatch(dir, e.to_string()))
    }
}

/// Read a CA certificate and its key, and check that they belong together.
fn read_ca_cert(
    dir: &Path,
    cert_name: &str,
    key_name: &str,
) -> Result<(CaCert, KeyPair), StoreError> {
    let cert_path = dir.join(cert_name);
    let cert_text =
        std::fs::read_to_string(&cert_path).map_err(|e| StoreError::io(&cert_path, e))?;
    let der = CertificateDer::from_pem_slice(cert_text.as_bytes())
        .map_err(|e| StoreError::malformed(&cert_path, format!("no PEM CERTIFICATE: {e}")))?;
    let x509 = parse(&cert_path, &der)?;
    if !x509.is_ca() {
        return Err(StoreError::malformed(
            &cert_path,
            "not a CA certificate (basic constraints CA:FALSE or absent)",
        ));
    }

    let key_path = dir.join(key_name);
    let mode = std::fs::metadata(&key_path)
        .map_err(|e| StoreError::io(&key_path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyPermissions {
            path: key_path,
            mode: mode & 0o777,
        });
    }
    let key_pem = Zeroizing::new(
        std::fs::read_to_string(&key_path).map_err(|e| StoreError::io(&key_path, e))?,
    );
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        StoreError::malformed(&key_path, format!("no PEM private key rcgen can use: {e}"))
    })?;
    if key.subject_public_key_info() != x509.public_key().raw {
        return Err(mismatch(
            &key_path,
            format!("this key does not belong to {cert_name}"),
        ));
    }
    let pem = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let not_after = u64::try_from(x509.validity().not_after.timestamp())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .map_err(|_| StoreError::malformed(&cert_path, "certificate expires before 1970"))?;
    Ok((CaCert::new(der.into_owned(), pem, key_pem, not_after), key))
}

fn parse<'a>(path: &Path, der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, StoreError> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, cert)| cert)
        .map_err(|e| StoreError::malformed(path, format!("certificate does not parse: {e}")))
}

fn mismatch(path: impl Into<PathBuf>, reason: impl Into<String>) -> StoreError {
    StoreError::Mismatch {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Create `path` (never replacing a file) with `mode`, write `contents` and flush them to disk.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StoreError::AlreadyExists {
                path: path.to_owned(),
            },
            _ => StoreError::io(path, e),
        })?;
    // The umask may have taken bits away from `mode`; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| StoreError::io(path, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(path, e))
}
