//! The renewal driver: what the CM does on the cloud's `RenewCerts` (a new key and CSR per cert type) and
//! `InstallCerts` (apply the signed chains, `iam` last), through [`IamAccess`]. Provisioning uses the same
//! two steps.

use std::collections::BTreeSet;

use crate::api::cloud::{CmFailure, CmStep, CsrRequest, IssuedCert};
use crate::api::{ApiError, ErrorCode, ProtectedRequest, ProtectedResponse, WirePassword};
use crate::iam::cert_module::CertInfo;

use super::iam_access::IamAccess;
use super::provisioning::unexpected;

/// The cert type applied last: applying it changes the TLS identity of the node's IAM.
pub const IAM_CERT_TYPE: &str = "iam";

/// Create a key and CSR for each of `cert_types` of `node_id` (each type once, in the given order).
pub async fn create_csrs(
    iam: &dyn IamAccess,
    node_id: &str,
    cert_types: &[String],
    password: &WirePassword,
) -> Result<Vec<CsrRequest>, CmFailure> {
    let mut seen = BTreeSet::new();
    let mut csrs = Vec::with_capacity(cert_types.len());
    for cert_type in cert_types {
        if !seen.insert(cert_type.as_str()) {
            continue;
        }
        let failure = |error| CmFailure {
            node_id: node_id.to_owned(),
            step: CmStep::CreateKey(cert_type.clone()),
            error,
        };
        let request = ProtectedRequest::CreateKey {
            node_id: node_id.to_owned(),
            cert_type: cert_type.clone(),
            subject: String::new(),
            password: password.clone(),
        };
        match iam.protected(request).await {
            Ok(ProtectedResponse::Csr(csr_pem)) => csrs.push(CsrRequest {
                node_id: node_id.to_owned(),
                cert_type: cert_type.clone(),
                csr_pem,
            }),
            Ok(other) => return Err(failure(unexpected("CreateKey", &other))),
            Err(e) => return Err(failure(e)),
        }
    }
    Ok(csrs)
}

/// The order chains are applied in: as given, except `iam`, which goes last.
pub fn install_order(certs: &mut [IssuedCert]) {
    certs.sort_by_key(|c| c.cert_type == IAM_CERT_TYPE);
}

/// Apply the signed chains of `node_id` in [`install_order`]; returns the applied certificates in that
/// order. A cert type given twice is refused before anything is applied. The first failure stops: chains
/// applied before it stay applied (each is a complete certificate for its type), the rest are not tried.
pub async fn install(
    iam: &dyn IamAccess,
    node_id: &str,
    mut certs: Vec<IssuedCert>,
) -> Result<Vec<CertInfo>, CmFailure> {
    let mut seen = BTreeSet::new();
    for cert in &certs {
        if !seen.insert(cert.cert_type.as_str()) {
            return Err(CmFailure {
                node_id: node_id.to_owned(),
                step: CmStep::ApplyCert(cert.cert_type.clone()),
                error: ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "the cloud sent two chains for cert type {:?}",
                        cert.cert_type
                    ),
                ),
            });
        }
    }
    install_order(&mut certs);
    let mut applied = Vec::with_capacity(certs.len());
    for IssuedCert {
        cert_type,
        chain_pem,
    } in certs
    {
        let request = ProtectedRequest::ApplyCert {
            node_id: node_id.to_owned(),
            cert_type: cert_type.clone(),
            pem: chain_pem,
        };
        let failure = |error| CmFailure {
            node_id: node_id.to_owned(),
            step: CmStep::ApplyCert(cert_type.clone()),
            error,
        };
        match iam.protected(request).await {
            Ok(ProtectedResponse::Cert(info)) => {
                tracing::info!(node = node_id, cert_type = %info.cert_type, serial = %info.serial, "certificate applied");
                applied.push(info);
            }
            Ok(other) => return Err(failure(unexpected("ApplyCert", &other))),
            Err(e) => return Err(failure(e)),
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_goes_last_and_the_rest_keep_their_order() {
        let cert = |t: &str| IssuedCert {
            cert_type: t.into(),
            chain_pem: String::new(),
        };
        let mut certs = vec![cert("iam"), cert("sm"), cert("online"), cert("cm")];
        install_order(&mut certs);
        let order: Vec<_> = certs.iter().map(|c| c.cert_type.as_str()).collect();
        assert_eq!(order, ["sm", "online", "cm", "iam"]);
    }
}
