//! aos-pkcs11: the PKCS#11 layer of aos-edge.
//!
//! Every node identity lives in a PKCS#11 token (SoftHSM2 in development, HSMs and OP-TEE on devices). This
//! crate wraps [cryptoki] with what the runtime needs and nothing more:
//!
//! - [`Module`]: one initialised module per library path per process (`C_Initialize` once, OS locking);
//!   token lookup by slot id, slot index, label or serial.
//! - [`take_ownership`]: `C_InitToken` with the SO PIN (the provisioning password) and `C_InitPIN`.
//! - [`pin`]: zeroizing PINs, 0600 PIN files, OP-TEE PIN derivation.
//! - [`Token`]: a logged-in token with a keeper session (login lasts while it lives) and a session pool.
//! - key pairs ([`Token::generate_key_pair`]), certificate chains ([`Token::store_chain`]), inventories
//!   ([`Token::inventory`]) and deletion confined to one label.
//! - [`TokenKey`]: signs inside the token for rustls handshakes and rcgen CSRs.
//! - [`url`]: RFC 7512 `pkcs11:` URLs and `file:` URLs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certs;
pub mod der;
mod error;
pub mod inventory;
pub mod keys;
pub mod module;
pub mod ownership;
pub mod pin;
pub mod signer;
mod staging;
pub mod token;
pub mod url;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use aos_config::{KeyAlgorithm, TeeLoginType, TokenSelector};
pub use error::{Error, Result};
pub use inventory::{Inventory, ObjectSet};
pub use keys::{KeyPair, KEY_ID_LEN};
pub use module::{Module, TokenDescription};
pub use ownership::{check_so_pin, take_ownership};
pub use pin::{Pin, PinSource};
pub use signer::TokenKey;
pub use token::{PooledSession, Token};
pub use url::{ObjectUrl, Pkcs11Url, UrlError};
