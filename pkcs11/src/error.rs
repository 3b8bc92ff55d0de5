//! The error type of aos-pkcs11.

use std::path::PathBuf;

use cryptoki::error::RvError;

/// What went wrong in the PKCS#11 layer. Messages never contain a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The module file does not exist.
    #[error("PKCS#11 library {0} does not exist")]
    LibraryMissing(PathBuf),
    /// The file exists but could not be loaded as a PKCS#11 module.
    #[error("{path} is not a loadable PKCS#11 module: {reason}")]
    NotAModule {
        /// Library path.
        path: PathBuf,
        /// Loader's explanation.
        reason: String,
    },
    /// No token matches the selector; `present` lists what the module reports.
    #[error("no token matches {selector} in {library}; tokens present: {present}")]
    TokenNotFound {
        /// The selector that did not match.
        selector: String,
        /// Library path.
        library: PathBuf,
        /// Human list of the tokens present.
        present: String,
    },
    /// The module has no slot with an uninitialised token to take ownership of.
    #[error("no free (uninitialised) token slot in {0}")]
    NoFreeSlot(PathBuf),
    /// The SO PIN (provisioning password) was refused.
    #[error("wrong SO PIN (provisioning password) for token {0:?}")]
    WrongSoPin(String),
    /// The user PIN was refused.
    #[error("wrong user PIN for token {0:?}")]
    WrongUserPin(String),
    /// The token locked the PIN after too many failures.
    #[error("the PIN of token {0:?} is locked")]
    PinLocked(String),
    /// A PIN is shorter or longer than the token accepts.
    #[error("the {what} must be between {min} and {max} characters long")]
    PinLength {
        /// Which PIN.
        what: &'static str,
        /// Shortest accepted.
        min: usize,
        /// Longest accepted.
        max: usize,
    },
    /// A PIN file could not be read or written.
    #[error("PIN file {path}: {source}")]
    PinFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PIN file is readable or writable by group or others.
    #[error("PIN file {path} has mode {mode:04o}; refusing it because group/others can access it (chmod 600)")]
    PinFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A PIN file is empty.
    #[error("PIN file {0} is empty")]
    PinFileEmpty(PathBuf),
    /// A TEE login type needs a uid or gid that was not configured.
    #[error("TEE login type {0} needs {1} to be configured")]
    TeeLoginIncomplete(&'static str, &'static str),
    /// A key or certificate object that should exist does not.
    #[error("object not found: {0}")]
    ObjectNotFound(String),
    /// A certificate or chain could not be parsed.
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// A public key attribute read from the token is malformed.
    #[error("bad key attribute: {0}")]
    BadKey(String),
    /// A URL is malformed.
    #[error(transparent)]
    Url(#[from] crate::url::UrlError),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// Any other PKCS#11 error, with the function that returned it.
    #[error("PKCS#11 error: {0}")]
    Cryptoki(#[from] cryptoki::error::Error),
}

impl Error {
    /// The PKCS#11 return value, when the error came from the module.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Error::Cryptoki(cryptoki::error::Error::Pkcs11(rv, _)) => Some(*rv),
            _ => None,
        }
    }

    /// True when the session or token went away and the operation may succeed on a fresh session.
    pub fn is_session_lost(&self) -> bool {
        matches!(
            self.rv(),
            Some(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::TokenNotPresent
                    | RvError::DeviceRemoved
                    | RvError::UserNotLoggedIn
                    | RvError::CryptokiNotInitialized
            )
        )
    }
}

/// Result alias of aos-pkcs11.
pub type Result<T, E = Error> = std::result::Result<T, E>;
