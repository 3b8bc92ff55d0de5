//! PKCS#11 parameters of a cert module: which library, which token, which PIN.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Token label used when a module names no slot selector (AosCore's default).
pub const DEFAULT_TOKEN_LABEL: &str = "aos";

/// How a PKCS#11 token is found. Exactly one selector is allowed in a config; none means
/// `Label(DEFAULT_TOKEN_LABEL)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenSelector {
    /// A slot id as the library reports it. SoftHSM renumbers slots after `C_InitToken`, so prefer a label.
    SlotId(u64),
    /// The n-th slot (0-based) in the library's slot list.
    SlotIndex(usize),
    /// The token label (CKA_LABEL of the token, up to 32 bytes).
    Label(String),
    /// The token serial number.
    Serial(String),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSelector::SlotId(id) => write!(f, "slot id {id}"),
            TokenSelector::SlotIndex(i) => write!(f, "slot index {i}"),
            TokenSelector::Label(l) => write!(f, "token label {l:?}"),
            TokenSelector::Serial(s) => write!(f, "token serial {s:?}"),
        }
    }
}

/// OP-TEE (`libckteec`) login type. With a TEE login type there is no SO PIN and no PIN file: the user PIN is
/// derived from the type (and the configured uid/gid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeeLoginType {
    /// PIN `"public"`.
    Public,
    /// PIN `"user:" + UUIDv5(ns, "uid=<uid>")`.
    User,
    /// PIN `"group:" + UUIDv5(ns, "gid=<gid>")`.
    Group,
}

/// PKCS#11 parameters of one cert module (`[cert_modules.pkcs11]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Params {
    /// Path of the PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub library: PathBuf,
    /// Select the token by slot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_id: Option<u64>,
    /// Select the token by slot index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_index: Option<usize>,
    /// Select the token by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// Select the token by serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_serial: Option<String>,
    /// File holding the user PIN. Generated (mode 0600) at provisioning when absent. Not used with a TEE login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pin_path: Option<PathBuf>,
    /// Put `module-path=<library>` into the cert and key URLs this module reports.
    #[serde(default)]
    pub module_path_in_url: bool,
    /// Owner uid of the generated PIN file; also the uid of a TEE `user` login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Owner gid of the generated PIN file; also the gid of a TEE `group` login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// OP-TEE login type; unset for ordinary tokens (SoftHSM, HSMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_login_type: Option<TeeLoginType>,
}

impl Pkcs11Params {
    /// Parameters for `library` with no selector, no PIN path and defaults elsewhere.
    pub fn new(library: impl Into<PathBuf>) -> Self {
        Self {
            library: library.into(),
            slot_id: None,
            slot_index: None,
            token_label: None,
            token_serial: None,
            user_pin_path: None,
            module_path_in_url: false,
            uid: None,
            gid: None,
            tee_login_type: None,
        }
    }

    /// Names of the selectors that are set (validation refuses more than one).
    pub fn selectors_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.slot_id.is_some() {
            set.push("slot_id");
        }
        if self.slot_index.is_some() {
            set.push("slot_index");
        }
        if self.token_label.is_some() {
            set.push("token_label");
        }
        if self.token_serial.is_some() {
            set.push("token_serial");
        }
        set
    }

    /// The token selector, in AosCore's order of precedence (slot id, slot index, label, serial), falling back
    /// to the label [`DEFAULT_TOKEN_LABEL`].
    pub fn selector(&self) -> TokenSelector {
        if let Some(id) = self.slot_id {
            TokenSelector::SlotId(id)
        } else if let Some(i) = self.slot_index {
            TokenSelector::SlotIndex(i)
        } else if let Some(l) = &self.token_label {
            TokenSelector::Label(l.clone())
        } else if let Some(s) = &self.token_serial {
            TokenSelector::Serial(s.clone())
        } else {
            TokenSelector::Label(DEFAULT_TOKEN_LABEL.to_owned())
        }
    }
}
