//! Chain verification before a certificate is stored: signatures up to the unit CA (rustls-webpki),
//! validity window, extended key usage as the module requires.

use std::time::{SystemTime, UNIX_EPOCH};

use aos_config::ExtendedKeyUsage;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyPurposeId, KeyPurposeIdIter};

use super::error::ChainError;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

static SIG_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Requires every configured EKU to be present in a certificate that has an EKU extension. webpki applies
/// this to every certificate of the path, and CA certificates usually carry no EKU extension, so an absent
/// extension passes here; `verify` checks separately that the leaf has one.
struct ModuleEku<'a>(&'a [ExtendedKeyUsage]);

impl webpki::ExtendedKeyUsageValidator for ModuleEku<'_> {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let present = iter.collect::<Result<Vec<KeyPurposeId<'_>>, _>>()?;
        if present.is_empty() {
            return Ok(());
        }
        for eku in self.0 {
            let oid = match eku {
                ExtendedKeyUsage::ServerAuth => EKU_SERVER_AUTH,
                ExtendedKeyUsage::ClientAuth => EKU_CLIENT_AUTH,
            };
            if !present.contains(&KeyPurposeId::new(oid)) {
                #[allow(deprecated)] // the context variant cannot be built outside webpki
                return Err(webpki::Error::RequiredEkuNotFound);
            }
        }
        Ok(())
    }
}

/// The unit's trust anchors, parsed once from the configured CA certificates.
#[derive(Debug, Clone)]
pub struct TrustRoots {
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustRoots {
    /// Trust anchors from CA certificates (DER).
    pub fn new(ca_certs: &[CertificateDer<'_>]) -> Result<Self, ChainError> {
        let anchors = ca_certs
            .iter()
            .map(|c| {
                webpki::anchor_from_trusted_cert(c)
                    .map(|a| a.to_owned())
                    .map_err(|e| ChainError::Malformed(format!("CA certificate: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustRoots { anchors })
    }

    /// Verify `chain` (leaf first) at time `now` for the module's EKUs.
    #[allow(deprecated)] // matches webpki's old RequiredEkuNotFound, which our EKU validator returns
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
        ekus: &[ExtendedKeyUsage],
    ) -> Result<(), ChainError> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(ChainError::Malformed("empty chain".into()));
        };
        if !ekus.is_empty() && !super::info::has_eku_extension(leaf)? {
            return Err(ChainError::WrongEku(eku_names(ekus)));
        }
        let leaf =
            EndEntityCert::try_from(leaf).map_err(|e| ChainError::Malformed(e.to_string()))?;
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        leaf.verify_for_usage(
            SIG_ALGS,
            &self.anchors,
            intermediates,
            time,
            ModuleEku(ekus),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => ChainError::Expired,
            webpki::Error::CertNotValidYet { .. } => ChainError::NotYetValid,
            webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
                ChainError::WrongEku(eku_names(ekus))
            }
            other => ChainError::Untrusted(format!("{other:?}")),
        })
    }
}

fn eku_names(ekus: &[ExtendedKeyUsage]) -> &'static str {
    let server = ekus.contains(&ExtendedKeyUsage::ServerAuth);
    let client = ekus.contains(&ExtendedKeyUsage::ClientAuth);
    match (server, client) {
        (true, true) => "serverAuth+clientAuth",
        (true, false) => "serverAuth",
        (false, true) => "clientAuth",
        (false, false) => "(none)",
    }
}
