//! [`TokenStore`]: the unit's SoftHSM2 — one module (a private copy of `libsofthsm2.so` with its own
//! `softhsm2.conf` and token directory) holding one token per node, labelled with the node's name.
//!
//! Tokens are created before the nodes start, with the provisioning password as SO PIN, like a device
//! whose token the factory initialised: provisioning then finds each node's token by label and takes it
//! over. (Creating them during provisioning would let parallel nodes race for SoftHSM's one free slot.)
//!
//! The store also injects token faults ([`TokenStore::fail`]): the token's user PIN changes under the node
//! and every session is logged out, so each operation of the node fails as on a token that went away,
//! until [`TokenStore::heal`] puts the PIN back. And it reads inventories for the orphan check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aos_pkcs11::{Module, Pin, Token, TokenSelector};
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// Where Debian, Ubuntu and source builds put the SoftHSM2 module; `AOS_SOFTHSM_LIB` overrides.
const CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// Serialises `SOFTHSM2_CONF` changes with the `C_Initialize` that reads it.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Why the token store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    /// SoftHSM2 is not installed.
    #[error("SoftHSM2 is not installed (looked in /usr/lib/softhsm and friends); run scripts/sim, apt-get install softhsm2, or set AOS_SOFTHSM_LIB")]
    NoSoftHsm,
    /// A file of the store could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PKCS#11 operation failed.
    #[error("token {token}: {source}")]
    Pkcs11 {
        /// The token's label.
        token: String,
        /// Why.
        source: aos_pkcs11::Error,
    },
}

/// The unit's SoftHSM2 module and its tokens.
pub struct TokenStore {
    dir: PathBuf,
    module: Arc<Module>,
}

/// A token fault in force: what [`TokenStore::heal`] needs to undo it.
pub struct TokenFault {
    label: String,
    pin: Pin,
    replaced: Pin,
}

impl std::fmt::Debug for TokenFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFault")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// What the orphan check found on one token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenContents {
    /// Complete sets (key pair and certificate) per object label.
    pub complete: Vec<(String, usize)>,
    /// Incomplete sets (a key without its certificate or the reverse) per object label.
    pub leftovers: Vec<(String, usize)>,
}

impl TokenContents {
    /// Every set, complete or not.
    pub fn total(&self) -> usize {
        self.complete
            .iter()
            .chain(&self.leftovers)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The system's SoftHSM2 module.
pub fn system_softhsm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AOS_SOFTHSM_LIB") {
        return Some(PathBuf::from(path));
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists())
}

// === impl TokenStore ===

impl TokenStore {
    /// A store in `dir` (created): `softhsm2.conf`, `tokens/` and a copy of the module, loaded. A copy at a
    /// new path is a library instance of its own, so two units in one process never share tokens.
    pub fn create(dir: &Path) -> Result<TokenStore, TokenStoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TokenStoreError::Io { path, source }
        };
        let system = system_softhsm().ok_or(TokenStoreError::NoSoftHsm)?;
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(io(&tokens))?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .map_err(io(&conf))?;
        let library = dir.join("libsofthsm2.so");
        std::fs::copy(&system, &library).map_err(io(&library))?;
        let module = {
            let _guard = ENV_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            std::env::set_var("SOFTHSM2_CONF", &conf);
            Module::open(&library).map_err(|source| TokenStoreError::Pkcs11 {
                token: "(module)".into(),
                source,
            })?
        };
        Ok(TokenStore {
            dir: dir.to_owned(),
            module,
        })
    }

    /// The module every node's configuration names.
    pub fn library(&self) -> PathBuf {
        self.dir.join("libsofthsm2.so")
    }

    /// The loaded module.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The `softhsm2.conf` (for outside tools: `SOFTHSM2_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// Create the token `label` with `so_pin` (the provisioning password), as a factory would.
    pub fn prepare(&self, label: &str, so_pin: &Pin) -> Result<(), TokenStoreError> {
        let mut placeholder = [0u8; 12];
        getrandom::fill(&mut placeholder).map_err(|e| TokenStoreError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let user = Pin::new(hex::encode(placeholder));
        aos_pkcs11::take_ownership(
            &self.module,
            &TokenSelector::Label(label.to_owned()),
            label,
            so_pin,
            &user,
        )
        .map(|_| ())
        .map_err(|source| TokenStoreError::Pkcs11 {
            token: label.to_owned(),
            source,
        })
    }

    fn session(&self, label: &str) -> Result<cryptoki::session::Session, TokenStoreError> {
        let err = |source| TokenStoreError::Pkcs11 {
            token: label.to_owned(),
            source,
        };
        let (slot, _) = self
            .module
            .find_slot(&TokenSelector::Label(label.to_owned()))
            .map_err(err)?;
        self.module
            .context()
            .open_rw_session(slot)
            .map_err(|e| err(e.into()))
    }

    /// Make token `label` fail: change its user PIN from `pin` to a random one and log every session out.
    /// The node's next operations fail (its re-login is refused) until [`TokenStore::heal`].
    pub fn fail(&self, label: &str, pin: Pin) -> Result<TokenFault, TokenStoreError> {
        let err = |e: cryptoki::error::Error| TokenStoreError::Pkcs11 {
            token: label.to_owned(),
            source: e.into(),
        };
        let session = self.session(label)?;
        login(&session, &pin).map_err(err)?;
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).map_err(|e| TokenStoreError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let replaced = Pin::new(hex::encode(random));
        session
            .set_pin(&auth(&pin), &auth(&replaced))
            .map_err(err)?;
        session.logout().map_err(err)?;
        Ok(TokenFault {
            label: label.to_owned(),
            pin,
            replaced,
        })
    }

    /// Undo [`TokenStore::fail`]: the old PIN again, logged in, so the node's next re-login succeeds.
    pub fn heal(&self, fault: TokenFault) -> Result<(), TokenStoreError> {
        let err = |e: cryptoki::error::Error| TokenStoreError::Pkcs11 {
            token: fault.label.clone(),
            source: e.into(),
        };
        let session = self.session(&fault.label)?;
        login(&session, &fault.replaced).map_err(err)?;
        session
            .set_pin(&auth(&fault.replaced), &auth(&fault.pin))
            .map_err(err)?;
        Ok(())
    }

    /// What token `label` holds under each of `object_labels`; `None` when the token cannot be opened with
    /// `pin` (not provisioned: nothing of the node is on it).
    pub fn contents(
        &self,
        label: &str,
        pin: Option<Pin>,
        object_labels: &[String],
    ) -> Result<TokenContents, TokenStoreError> {
        let err = |source| TokenStoreError::Pkcs11 {
            token: label.to_owned(),
            source,
        };
        let mut out = TokenContents::default();
        let Some(pin) = pin else {
            return Ok(out);
        };
        let token = Token::open_shared(
            self.module.clone(),
            TokenSelector::Label(label.to_owned()),
            pin,
        )
        .map_err(err)?;
        for object in object_labels {
            let inventory = token.inventory(object).map_err(err)?;
            let complete = inventory.complete().count();
            let leftovers = inventory.leftovers().count();
            if complete > 0 {
                out.complete.push((object.clone(), complete));
            }
            if leftovers > 0 {
                out.leftovers.push((object.clone(), leftovers));
            }
        }
        Ok(out)
    }

    /// Generate a stray key pair under `object_label` on token `label` (tests of the orphan check).
    pub fn plant_orphan(
        &self,
        label: &str,
        pin: Pin,
        object_label: &str,
    ) -> Result<(), TokenStoreError> {
        let err = |source| TokenStoreError::Pkcs11 {
            token: label.to_owned(),
            source,
        };
        let token = Token::open_shared(
            self.module.clone(),
            TokenSelector::Label(label.to_owned()),
            pin,
        )
        .map_err(err)?;
        token
            .generate_key_pair(object_label, aos_pkcs11::KeyAlgorithm::EccP256)
            .map(|_| ())
            .map_err(err)
    }
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn auth(pin: &Pin) -> AuthPin {
    AuthPin::new(pin.expose().to_owned().into())
}

fn login(session: &cryptoki::session::Session, pin: &Pin) -> cryptoki::error::Result<()> {
    match session.login(UserType::User, Some(&auth(pin))) {
        Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        other => other,
    }
}
