//! The cert module actor: a [`CertModule`] on its own worker thread (`SyncArbiter`), since PKCS#11 calls
//! block.

use actix::{Actor, Handler, Message, SyncContext};
use aos_pkcs11::TokenKey;
use rustls_pki_types::CertificateDer;

use super::error::CertError;
use super::info::CertInfo;
use super::module::{Applied, CertModule, Validation};

/// Runs one [`CertModule`].
pub struct CertModuleActor {
    module: CertModule,
}

impl CertModuleActor {
    /// Wrap a module.
    pub fn new(module: CertModule) -> Self {
        CertModuleActor { module }
    }
}

impl Actor for CertModuleActor {
    type Context = SyncContext<Self>;
}

macro_rules! module_message {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* } -> $ret:ty, |$m:ident, $msg:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: $ty,
            )*
        }

        impl Message for $name {
            type Result = $ret;
        }

        impl Handler<$name> for CertModuleActor {
            type Result = $ret;

            fn handle(&mut self, $msg: $name, _: &mut SyncContext<Self>) -> $ret {
                let $m = &mut self.module;
                $body
            }
        }
    };
}

module_message!(
    /// Generate a key pair and return a PEM CSR (`subject`: CN; the node id when empty).
    CreateKey { subject: String } -> Result<String, CertError>,
    |m, msg| m.create_key(&msg.subject)
);
module_message!(
    /// Verify and store a PEM chain for a pending key.
    ApplyCert { pem: Vec<u8> } -> Result<Applied, CertError>,
    |m, msg| m.apply_cert(&msg.pem)
);
module_message!(
    /// The certificate with this issuer (DER) and serial (hex), or the current one when both are empty.
    GetCert { issuer: Vec<u8>, serial: String } -> Result<CertInfo, CertError>,
    |m, msg| m.get(&msg.issuer, &msg.serial)
);
module_message!(
    /// Every stored certificate, current first.
    ListCerts {} -> Result<Vec<CertInfo>, CertError>,
    |m, _msg| m.list()
);
module_message!(
    /// Destroy every object of the module's label.
    Clear {} -> Result<usize, CertError>,
    |m, _msg| m.clear()
);
module_message!(
    /// Create the self-signed certificate of a `self_signed` module.
    CreateSelfSigned {} -> Result<CertInfo, CertError>,
    |m, _msg| m.create_self_signed()
);
module_message!(
    /// Remove invalid certificates and orphans; report the valid ones.
    Validate {} -> Result<Validation, CertError>,
    |m, _msg| m.validate()
);
module_message!(
    /// Close the token's sessions (before the provisioner re-initialises it).
    Release {} -> (),
    |m, _msg| m.release()
);
module_message!(
    /// The signing key and chain of the certificate with this serial.
    GetTokenKey { serial: String } -> Result<(TokenKey, Vec<CertificateDer<'static>>), CertError>,
    |m, msg| m.token_key(&msg.serial)
);
module_message!(
    /// Ids (hex) of the pending keys.
    PendingKeys {} -> Vec<String>,
    |m, _msg| m.pending_ids()
);
