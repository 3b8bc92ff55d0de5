//! Check: every current CA-issued certificate chain verifies to the configured CA (signatures, validity,
//! the module's extended key usages).

use aos_actors::iam::cert_module::TrustRoots;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::{Context, Status};

const CHECK: &str = "chain";

/// Verify each chain with the unit's trust anchors from `ca_cert`.
pub fn check(cx: &mut Context) {
    let mut anchors = Vec::new();
    for path in cx.config.ca_cert.clone() {
        let subject = path.display().to_string();
        let certs = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("not PEM certificates: {e}"))
            });
        match certs {
            Ok(certs) if certs.is_empty() => cx.add(
                CHECK,
                subject,
                Status::Fail,
                "no PEM CERTIFICATE in the CA file",
            ),
            Ok(certs) => anchors.extend(certs),
            Err(err) => cx.add(CHECK, subject, Status::Fail, format!("CA file: {err}")),
        }
    }
    if anchors.is_empty() {
        return;
    }
    let roots = match TrustRoots::new(&anchors) {
        Ok(roots) => roots,
        Err(err) => {
            cx.add(CHECK, "ca_cert", Status::Fail, err.to_string());
            return;
        }
    };
    let results: Vec<_> = cx
        .certs
        .iter()
        .filter(|c| !c.self_signed)
        .map(|c| {
            (
                c.cert_type.clone(),
                c.serial.clone(),
                roots.verify(&c.chain, cx.now, &c.ekus),
            )
        })
        .collect();
    for (cert_type, serial, result) in results {
        match result {
            Ok(()) => cx.add(
                CHECK,
                cert_type,
                Status::Pass,
                format!("serial {serial} verifies to the CA"),
            ),
            Err(err) => cx.add(
                CHECK,
                cert_type,
                Status::Fail,
                format!("serial {serial}: {err}"),
            ),
        }
    }
}
