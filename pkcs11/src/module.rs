//! One initialised PKCS#11 module per library path per process, and token lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use aos_config::TokenSelector;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::slot::Slot;

use crate::error::{Error, Result};

/// A loaded and initialised PKCS#11 module. Obtain it with [`Module::open`]; every caller asking for the same
/// library path shares one instance, so `C_Initialize` runs once per library per process.
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    /// One object lock per token (by slot id), see [`Module::object_lock`].
    object_locks: Mutex<HashMap<u64, Arc<RwLock<()>>>>,
    /// Where [`Module::find_slot`] last found a token by label or serial.
    found: Mutex<HashMap<TokenSelector, u64>>,
    /// Full scans of every slot made so far (diagnostics and tests).
    scans: std::sync::atomic::AtomicU64,
}

/// A slot and what its token reports.
pub type FoundToken = (Slot, TokenDescription);

/// What a slot's token reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDescription {
    /// The slot id (may change when SoftHSM renumbers slots).
    pub slot_id: u64,
    /// Position in the module's slot list.
    pub slot_index: usize,
    /// Token label, trailing blanks removed.
    pub label: String,
    /// Token serial number, trailing blanks removed.
    pub serial: String,
    /// Whether `C_InitToken` was run on it.
    pub initialized: bool,
    /// Whether the user PIN was set.
    pub user_pin_initialized: bool,
}

impl std::fmt::Display for TokenDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.initialized {
            write!(
                f,
                "[slot {} #{}: label {:?}, serial {:?}]",
                self.slot_id, self.slot_index, self.label, self.serial
            )
        } else {
            write!(
                f,
                "[slot {} #{}: uninitialised]",
                self.slot_id, self.slot_index
            )
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

// === impl Module ===

impl Module {
    /// Load and initialise the module at `path`, or return the instance already loaded from that path.
    ///
    /// `C_Initialize` is called with `CKF_OS_LOCKING_OK`, so the module locks internally and may be used from
    /// several threads. A module some other code already initialised (`CKR_CRYPTOKI_ALREADY_INITIALIZED`) is
    /// accepted.
    pub fn open(path: &Path) -> Result<Arc<Module>> {
        let key =
            std::fs::canonicalize(path).map_err(|_| Error::LibraryMissing(path.to_owned()))?;
        let mut modules = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(module) = modules.get(&key) {
            return Ok(module.clone());
        }
        let ctx = Pkcs11::new(&key).map_err(|err| Error::NotAModule {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(err) => return Err(err.into()),
        }
        tracing::debug!(library = %key.display(), "PKCS#11 module initialised");
        let module = Arc::new(Module {
            path: key.clone(),
            ctx,
            object_locks: Mutex::new(HashMap::new()),
            found: Mutex::new(HashMap::new()),
            scans: std::sync::atomic::AtomicU64::new(0),
        });
        modules.insert(key, module.clone());
        Ok(module)
    }

    /// The object lock of the token in `slot`, shared by every [`crate::Token`] opened on it in this process.
    ///
    /// Creating and destroying token objects excludes every other object access of this process on the same
    /// token (session objects, such as a `TokenKey`'s session copy, only need the shared lock):
    /// SoftHSM can fail `C_GenerateKeyPair` with `CKR_GENERAL_ERROR` while another session reads the same
    /// token (SoftHSMv2 issue 573: a writer and a reader of one token's object files). Reads and signatures
    /// share the lock. Different tokens keep separate object files and lock each on their own, so a unit
    /// whose nodes each own a token of one module generates their keys in parallel.
    pub(crate) fn object_lock(&self, slot: Slot) -> Arc<RwLock<()>> {
        self.object_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(slot.id())
            .or_default()
            .clone()
    }

    /// The canonical path of the library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cryptoki context, for code that needs a call this crate does not wrap.
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// Every slot with a token, in the module's order.
    pub fn tokens(&self) -> Result<Vec<(Slot, TokenDescription)>> {
        self.scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slots = self.ctx.get_slots_with_token()?;
        let mut out = Vec::with_capacity(slots.len());
        for (slot_index, slot) in slots.into_iter().enumerate() {
            out.push((slot, self.describe(slot, slot_index)?));
        }
        Ok(out)
    }

    /// What the token in `slot` reports now (`slot_index` is copied into the description as given).
    pub(crate) fn describe(&self, slot: Slot, slot_index: usize) -> Result<TokenDescription> {
        let info = self.ctx.get_token_info(slot)?;
        Ok(TokenDescription {
            slot_id: slot.id(),
            slot_index,
            label: info.label().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
            initialized: info.token_initialized(),
            user_pin_initialized: info.user_pin_initialized(),
        })
    }

    /// Find the slot whose token matches `selector`. Labels and serials match initialised tokens only.
    /// The error lists every token present, so a wrong label is easy to spot.
    ///
    /// Reading a token's description costs a file read on SoftHSM (33 µs), so scanning every slot costs
    /// 33 ms on a module holding 1000 tokens (a simulated unit). The slot where a label or serial was last
    /// found is therefore tried first, and the full scan runs only when that slot no longer holds a
    /// matching token (SoftHSM renumbers a token's slot when it is initialised). Labels should be unique
    /// within a module: with two tokens of one label, the one found before keeps being found, which is not
    /// necessarily the first in slot order.
    pub fn find_slot(&self, selector: &TokenSelector) -> Result<(Slot, TokenDescription)> {
        match self.find_slot_or_scan(selector)? {
            Ok(found) => Ok(found),
            Err(tokens) => Err(self.not_found(selector, &tokens)),
        }
    }

    /// [`Module::find_slot`], answering a token that is not there with the scan that showed it (every token
    /// present), for callers that need the list next.
    pub(crate) fn find_slot_or_scan(
        &self,
        selector: &TokenSelector,
    ) -> Result<std::result::Result<FoundToken, Vec<FoundToken>>> {
        let matches = |t: &TokenDescription| match selector {
            TokenSelector::SlotId(id) => t.slot_id == *id,
            TokenSelector::SlotIndex(i) => t.slot_index == *i,
            TokenSelector::Label(l) => t.initialized && t.label == *l,
            TokenSelector::Serial(s) => t.initialized && t.serial == *s,
        };
        let last = self
            .found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(selector)
            .copied();
        if let Some(last) = last {
            let slots = self.ctx.get_slots_with_token()?;
            if let Some((index, slot)) = slots.into_iter().enumerate().find(|(_, s)| s.id() == last)
            {
                // A slot that went away between the two calls is simply scanned for below.
                if let Ok(description) = self.describe(slot, index) {
                    if matches(&description) {
                        return Ok(Ok((slot, description)));
                    }
                }
            }
        }
        let tokens = self.tokens()?;
        match tokens.iter().find(|(_, t)| matches(t)) {
            Some(found) => {
                self.remember(found.0, &found.1);
                Ok(Ok(found.clone()))
            }
            None => Ok(Err(tokens)),
        }
    }

    /// Remember that `token` is in `slot`, under its label and its serial, so that the next
    /// [`Module::find_slot`] for either tries that slot first: after a scan found it, and after
    /// [`crate::take_ownership`] made or re-initialised it.
    pub(crate) fn remember(&self, slot: Slot, token: &TokenDescription) {
        if !token.initialized {
            return;
        }
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        found.insert(TokenSelector::Label(token.label.clone()), slot.id());
        found.insert(TokenSelector::Serial(token.serial.clone()), slot.id());
    }

    /// How many full scans of the slots this module has made (each reads every token's description).
    pub fn scans(&self) -> u64 {
        self.scans.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn not_found(&self, selector: &TokenSelector, tokens: &[(Slot, TokenDescription)]) -> Error {
        let present = if tokens.is_empty() {
            "none".to_owned()
        } else {
            tokens
                .iter()
                .map(|(_, t)| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Error::TokenNotFound {
            selector: selector.to_string(),
            library: self.path.clone(),
            present,
        }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SoftHsm;

    #[test]
    fn same_path_shares_one_module() {
        let hsm = SoftHsm::new();
        let again = Module::open(&hsm.library()).unwrap();
        assert!(Arc::ptr_eq(&hsm.module(), &again));
    }

    #[test]
    fn a_label_found_before_is_found_again_after_its_slot_changes_hands() {
        use crate::testkit::{SO_PIN, USER_PIN};
        use crate::{take_ownership, Pin};
        let hsm = SoftHsm::new();
        let module = hsm.module();
        drop(hsm.token("a"));
        let label = |l: &str| TokenSelector::Label(l.to_owned());
        let (_, first) = module.find_slot(&label("a")).unwrap();
        // Found again from the remembered slot.
        assert_eq!(module.find_slot(&label("a")).unwrap().1, first);
        // The token is re-initialised under another label (SoftHSM may renumber its slot): "a" is gone.
        take_ownership(
            &module,
            &label("a"),
            "b",
            &Pin::new(SO_PIN),
            &Pin::new(USER_PIN),
        )
        .unwrap();
        assert!(matches!(
            module.find_slot(&label("a")),
            Err(Error::TokenNotFound { .. })
        ));
        let (_, b) = module.find_slot(&label("b")).unwrap();
        assert_eq!(b.serial, first.serial, "the same token, relabelled");
        // A new token takes the label: it is the one found, not the remembered slot.
        drop(hsm.token("a"));
        let (_, second) = module.find_slot(&label("a")).unwrap();
        assert_eq!(second.label, "a");
        assert_ne!(second.serial, first.serial);
        assert_eq!(module.find_slot(&label("b")).unwrap().1.serial, b.serial);
    }

    #[test]
    fn a_token_made_by_take_ownership_is_found_without_a_scan() {
        use crate::testkit::{SO_PIN, USER_PIN};
        use crate::{take_ownership, Pin};
        let hsm = SoftHsm::new();
        let module = hsm.module();
        let label = |l: &str| TokenSelector::Label(l.to_owned());
        for name in ["one", "two", "three"] {
            let made = take_ownership(
                &module,
                &label(name),
                name,
                &Pin::new(SO_PIN),
                &Pin::new(USER_PIN),
            )
            .unwrap();
            let scans = module.scans();
            let (_, by_label) = module.find_slot(&label(name)).unwrap();
            let (_, by_serial) = module
                .find_slot(&TokenSelector::Serial(made.serial.clone()))
                .unwrap();
            assert_eq!(by_label.serial, made.serial);
            assert_eq!(by_serial.label, name);
            assert_eq!(module.scans(), scans, "{name} was looked up by scanning");
        }
    }

    #[test]
    fn missing_library_is_a_clear_error() {
        let err = Module::open(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        assert!(matches!(err, Error::LibraryMissing(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/libnothing.so"));
    }

    #[test]
    fn a_file_that_is_not_a_module_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = Module::open(&fake).unwrap_err();
        assert!(matches!(err, Error::NotAModule { .. }), "{err:?}");
        assert!(err.to_string().contains("libfake.so"));
    }
}
