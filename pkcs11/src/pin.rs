//! PINs: the zeroizing PIN type, PIN files and OP-TEE PIN derivation.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aos_config::TeeLoginType;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Namespace of the UUIDv5 that OP-TEE's `libckteec` uses to derive user and group PINs.
pub const TEE_PIN_NAMESPACE: uuid::Uuid = uuid::uuid!("58ac9ca0-2086-4683-a1b8-ec4bc08e01b6");

/// Length in bytes of the randomness behind a generated user PIN (hex-encoded: 64 characters).
const GENERATED_PIN_BYTES: usize = 32;

/// A PIN or password. Zeroized on drop; its `Debug` prints nothing of the value; compared in constant time.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

impl Eq for Pin {}

impl Pin {
    /// Wrap a PIN value.
    pub fn new(value: impl Into<String>) -> Self {
        Pin(Zeroizing::new(value.into()))
    }

    /// The PIN text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The PIN as cryptoki wants it.
    pub(crate) fn auth(&self) -> AuthPin {
        AuthPin::new(self.0.as_str().into())
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Where a token's user PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (mode 0600), created at ownership when missing.
    File {
        /// The PIN file.
        path: PathBuf,
        /// Owner to give a generated file.
        uid: Option<u32>,
        /// Group to give a generated file.
        gid: Option<u32>,
    },
    /// An OP-TEE login: the PIN is derived, there is no file and no SO PIN.
    Tee {
        /// The login type.
        login: TeeLoginType,
        /// uid for a `user` login.
        uid: Option<u32>,
        /// gid for a `group` login.
        gid: Option<u32>,
    },
}

impl PinSource {
    /// The PIN source a module's config describes: a TEE login when `tee_login_type` is set, otherwise the
    /// PIN file. `None` when neither is configured.
    pub fn from_params(params: &aos_config::Pkcs11Params) -> Option<PinSource> {
        if let Some(login) = params.tee_login_type {
            return Some(PinSource::Tee {
                login,
                uid: params.uid,
                gid: params.gid,
            });
        }
        params.user_pin_path.as_ref().map(|path| PinSource::File {
            path: path.clone(),
            uid: params.uid,
            gid: params.gid,
        })
    }

    /// True for TEE logins, which have no SO PIN.
    pub fn is_tee(&self) -> bool {
        matches!(self, PinSource::Tee { .. })
    }

    /// Read (or derive) the user PIN. A missing PIN file is an error here; see [`PinSource::read_or_create`].
    pub fn read(&self) -> Result<Pin> {
        match self {
            PinSource::File { path, .. } => read_pin_file(path),
            PinSource::Tee { login, uid, gid } => tee_pin(*login, *uid, *gid),
        }
    }

    /// Read the user PIN, generating and writing a new one when the PIN file does not exist yet.
    pub fn read_or_create(&self) -> Result<Pin> {
        match self {
            PinSource::File { path, uid, gid } if !path.exists() => {
                create_pin_file(path, *uid, *gid)
            }
            _ => self.read(),
        }
    }
}

/// Read a PIN file. Refuses a file that group or others may access, and an empty one. A trailing newline is
/// not part of the PIN.
pub fn read_pin_file(path: &Path) -> Result<Pin> {
    let io_err = |source| Error::PinFile {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::PinFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(Error::PinFileEmpty(path.to_owned()));
    }
    Ok(Pin::new(pin))
}

/// Generate a PIN from the OS random generator and write it to `path` (mode 0600, owned by `uid`/`gid` when
/// given). The file is written to a temporary name, synced and renamed, so a crash never leaves a partial PIN.
pub fn create_pin_file(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<Pin> {
    let io_err = |source| Error::PinFile {
        path: path.to_owned(),
        source,
    };
    let mut raw = Zeroizing::new([0u8; GENERATED_PIN_BYTES]);
    getrandom::fill(raw.as_mut()).map_err(|e| Error::Random(e.to_string()))?;
    let pin = Pin::new(hex::encode(raw.as_ref()));

    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io_err)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let _ = fs::remove_file(&tmp);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        file.write_all(pin.expose().as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
    }
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&tmp, uid, gid).map_err(io_err)?;
    }
    fs::rename(&tmp, path).map_err(io_err)?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    Ok(pin)
}

/// The user PIN of an OP-TEE login: `"public"`, or `"user:"`/`"group:"` followed by the UUIDv5 (namespace
/// [`TEE_PIN_NAMESPACE`]) of `"uid=<uid>"` / `"gid=<gid>"`.
pub fn tee_pin(login: TeeLoginType, uid: Option<u32>, gid: Option<u32>) -> Result<Pin> {
    match login {
        TeeLoginType::Public => Ok(Pin::new("public")),
        TeeLoginType::User => {
            let uid = uid.ok_or(Error::TeeLoginIncomplete("user", "uid"))?;
            let id = uuid::Uuid::new_v5(&TEE_PIN_NAMESPACE, format!("uid={uid}").as_bytes());
            Ok(Pin::new(format!("user:{id}")))
        }
        TeeLoginType::Group => {
            let gid = gid.ok_or(Error::TeeLoginIncomplete("group", "gid"))?;
            let id = uuid::Uuid::new_v5(&TEE_PIN_NAMESPACE, format!("gid={gid}").as_bytes());
            Ok(Pin::new(format!("group:{id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pin_file_is_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("user.pin");
        let pin = create_pin_file(&path, None, None).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(pin.expose().len(), 2 * GENERATED_PIN_BYTES);
        assert_eq!(read_pin_file(&path).unwrap(), pin);
        // A second generation gives a different PIN (from the OS CSPRNG, not the clock).
        let other = create_pin_file(&dir.path().join("b.pin"), None, None).unwrap();
        assert_ne!(other, pin);
        assert!(!path.with_extension("pin.tmp").exists());
    }

    #[test]
    fn generated_pin_file_gets_the_configured_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned.pin");
        let uid = nix_like_current_uid();
        create_pin_file(&path, Some(uid), Some(uid)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&path).unwrap().uid(), uid);
    }

    fn nix_like_current_uid() -> u32 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata("/proc/self").map(|m| m.uid()).unwrap()
    }

    #[test]
    fn loose_or_empty_or_missing_pin_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loose.pin");
        fs::write(&path, "1234\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_pin_file(&path).unwrap_err();
        assert!(
            matches!(err, Error::PinFilePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("0644") && !err.to_string().contains("1234"));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_pin_file(&path).unwrap().expose(),
            "1234",
            "trailing newline is not part of the PIN"
        );

        fs::write(&path, "\n").unwrap();
        assert!(matches!(read_pin_file(&path), Err(Error::PinFileEmpty(_))));
        assert!(matches!(
            read_pin_file(&dir.path().join("none")),
            Err(Error::PinFile { .. })
        ));
    }

    #[test]
    fn read_or_create_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let source = PinSource::File {
            path: dir.path().join("u.pin"),
            uid: None,
            gid: None,
        };
        assert!(source.read().is_err());
        let first = source.read_or_create().unwrap();
        assert_eq!(source.read_or_create().unwrap(), first);
    }

    #[test]
    fn tee_pins_match_uuid_v5_vectors() {
        // Vectors computed independently with Python's uuid.uuid5 and the OP-TEE namespace.
        assert_eq!(
            tee_pin(TeeLoginType::Public, None, None).unwrap().expose(),
            "public"
        );
        assert_eq!(
            tee_pin(TeeLoginType::User, Some(1000), None)
                .unwrap()
                .expose(),
            "user:205eb75a-5e4b-5739-bc88-86260cabfb81"
        );
        assert_eq!(
            tee_pin(TeeLoginType::Group, None, Some(0))
                .unwrap()
                .expose(),
            "group:d93bc168-f863-58d3-a1fe-bb2039421b99"
        );
        assert!(matches!(
            tee_pin(TeeLoginType::User, None, Some(1)),
            Err(Error::TeeLoginIncomplete("user", "uid"))
        ));
        assert!(PinSource::Tee {
            login: TeeLoginType::Public,
            uid: None,
            gid: None
        }
        .is_tee());
    }

    #[test]
    fn pin_debug_is_redacted() {
        let pin = Pin::new("hunter2");
        assert!(!format!("{pin:?}").contains("hunter2"));
    }
}
