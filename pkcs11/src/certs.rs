//! Certificate objects: store a PEM chain next to its key, read it back, delete a set.

use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::staging;
use crate::token::Token;

/// Longest chain followed when reading certificates back (guards against issuer loops).
const MAX_CHAIN_LEN: usize = 8;

/// Parse every `CERTIFICATE` block of a PEM text. An empty or malformed text is an error.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::BadCertificate(format!("malformed PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::BadCertificate("no CERTIFICATE block in PEM".into()));
    }
    Ok(chain)
}

/// Encode certificates as a PEM chain.
pub fn to_pem_chain(chain: &[CertificateDer<'_>]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    chain
        .iter()
        .map(|c| pem::encode_config(&pem::Pem::new("CERTIFICATE", c.as_ref()), config))
        .collect()
}

/// The raw DER fields of a certificate that PKCS#11 certificate objects carry.
struct CertFields {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

fn cert_fields(der: &[u8]) -> Result<CertFields> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::BadCertificate(format!("not an X.509 certificate: {e}")))?;
    let serial =
        yasna::construct_der(|w| w.write_bigint_bytes(cert.tbs_certificate.raw_serial(), true));
    Ok(CertFields {
        subject: cert.tbs_certificate.subject.as_raw().to_vec(),
        issuer: cert.tbs_certificate.issuer.as_raw().to_vec(),
        serial,
    })
}

fn cert_template(label: &str, id: &[u8], der: &[u8], fields: &CertFields) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Subject(fields.subject.clone()),
        Attribute::Issuer(fields.issuer.clone()),
        Attribute::SerialNumber(fields.serial.clone()),
        Attribute::Value(der.to_vec()),
    ]
}

/// Create the token object `template` describes (which must say `CKA_TOKEN` true): staged as a session
/// object and copied to the token (see `staging.rs`), or made directly by a token that refuses the route.
fn create_token_object(s: &Session, template: &[Attribute]) -> Result<ObjectHandle> {
    let staged_template: Vec<Attribute> = template
        .iter()
        .map(|a| match a {
            Attribute::Token(_) => Attribute::Token(false),
            other => other.clone(),
        })
        .collect();
    let copied = s
        .create_object(&staged_template)
        .and_then(|staged| staging::promote(s, staged, &[Attribute::Token(true)]));
    match copied {
        Ok(object) => Ok(object),
        Err(err) => {
            tracing::debug!(error = %err, "staging refused; creating the token object directly");
            Ok(s.create_object(template)?)
        }
    }
}

/// Certificate objects of `label`; with `id = Some(..)` only those with that `CKA_ID`.
pub(crate) fn find_certs(s: &Session, label: &str, id: Option<&[u8]>) -> Result<Vec<ObjectHandle>> {
    let mut template = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    Ok(s.find_objects(&template)?)
}

fn get_bytes(s: &Session, object: ObjectHandle, ty: AttributeType) -> Result<Vec<u8>> {
    let attrs = s.get_attributes(object, &[ty])?;
    Ok(match attrs.into_iter().next() {
        Some(Attribute::Value(v))
        | Some(Attribute::Subject(v))
        | Some(Attribute::Issuer(v))
        | Some(Attribute::SerialNumber(v))
        | Some(Attribute::Id(v))
        | Some(Attribute::Label(v)) => v,
        _ => Vec::new(),
    })
}

// === impl Token (certificates) ===

impl Token {
    /// Store a PEM chain for the key pair `label`/`id`: the leaf carries the key's label and id; the rest of
    /// the chain is stored under the same label with an empty `CKA_ID` (authority certificates), skipping
    /// any the label already holds (same issuer and serial). If storing fails half-way, the objects created
    /// so far are destroyed again.
    pub fn store_chain(&self, label: &str, id: &[u8], pem: &[u8]) -> Result<()> {
        let chain = parse_pem_chain(pem)?;
        let fields = chain
            .iter()
            .map(|c| cert_fields(c))
            .collect::<Result<Vec<_>>>()?;
        self.with_session_exclusive(|s| {
            let mut created = Vec::new();
            let result = (|| {
                if !find_certs(s, label, Some(id))?.is_empty() {
                    return Err(Error::BadCertificate(format!(
                        "{label} id {} already has a certificate",
                        hex::encode(id)
                    )));
                }
                created.push(create_token_object(
                    s,
                    &cert_template(label, id, &chain[0], &fields[0]),
                )?);
                for (cert, f) in chain.iter().zip(&fields).skip(1) {
                    let existing = s.find_objects(&[
                        Attribute::Class(ObjectClass::CERTIFICATE),
                        Attribute::Label(label.as_bytes().to_vec()),
                        Attribute::Id(Vec::new()),
                        Attribute::Issuer(f.issuer.clone()),
                        Attribute::SerialNumber(f.serial.clone()),
                    ])?;
                    if existing.is_empty() {
                        created.push(create_token_object(s, &cert_template(label, &[], cert, f))?);
                    }
                }
                Ok(())
            })();
            if result.is_err() {
                for object in created.drain(..) {
                    let _ = s.destroy_object(object);
                }
            }
            result
        })
    }

    /// Read back the chain of the certificate `label`/`id`: the leaf, then authority certificates of the
    /// same label found by issuer name, until a self-signed one or the end of what the token holds.
    pub fn read_chain(&self, label: &str, id: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
        self.with_session(|s| {
            let leaf = *find_certs(s, label, Some(id))?.first().ok_or_else(|| {
                Error::ObjectNotFound(format!(
                    "certificate {label} id {} on {}",
                    hex::encode(id),
                    self.label()
                ))
            })?;
            let mut chain = vec![CertificateDer::from(get_bytes(
                s,
                leaf,
                AttributeType::Value,
            )?)];
            let mut current = leaf;
            while chain.len() < MAX_CHAIN_LEN {
                let issuer = get_bytes(s, current, AttributeType::Issuer)?;
                let subject = get_bytes(s, current, AttributeType::Subject)?;
                if issuer == subject {
                    break;
                }
                let next = s.find_objects(&[
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(Vec::new()),
                    Attribute::Subject(issuer),
                ])?;
                let Some(next) = next.first().copied() else {
                    break;
                };
                chain.push(CertificateDer::from(get_bytes(
                    s,
                    next,
                    AttributeType::Value,
                )?));
                current = next;
            }
            Ok(chain)
        })
    }

    /// Destroy the certificate and both keys of `label`/`id`, then authority certificates of `label` that no
    /// remaining certificate of `label` needs. Objects of other labels are never touched.
    pub fn delete_set(&self, label: &str, id: &[u8]) -> Result<usize> {
        self.forget_copies(label, Some(id));
        let mut destroyed = self.with_session_exclusive(|s| {
            let objects = s.find_objects(&[
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ])?;
            for object in &objects {
                s.destroy_object(*object)?;
            }
            Ok(objects.len())
        })?;
        destroyed += self.collect_authority_certs(label)?;
        Ok(destroyed)
    }

    /// Destroy every object labelled `label` (keys, certificates, anything). Other labels stay.
    pub fn delete_label(&self, label: &str) -> Result<usize> {
        self.forget_copies(label, None);
        self.with_session_exclusive(|s| {
            let objects = s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?;
            for object in &objects {
                s.destroy_object(*object)?;
            }
            Ok(objects.len())
        })
    }

    /// Destroy authority certificates of `label` that no leaf certificate of `label` chains to.
    fn collect_authority_certs(&self, label: &str) -> Result<usize> {
        let mut keep = std::collections::HashSet::new();
        let ids = self.with_session(|s| {
            let mut ids = Vec::new();
            for cert in find_certs(s, label, None)? {
                let id = get_bytes(s, cert, AttributeType::Id)?;
                if !id.is_empty() {
                    ids.push(id);
                }
            }
            Ok(ids)
        })?;
        for id in ids {
            for cert in self.read_chain(label, &id)?.iter().skip(1) {
                keep.insert(cert.as_ref().to_vec());
            }
        }
        self.with_session_exclusive(|s| {
            let mut destroyed = 0;
            for cert in find_certs(s, label, Some(&[]))? {
                if !keep.contains(&get_bytes(s, cert, AttributeType::Value)?) {
                    s.destroy_object(cert)?;
                    destroyed += 1;
                }
            }
            Ok(destroyed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{SoftHsm, TestCa};
    use crate::{KeyAlgorithm, TokenKey};

    #[test]
    fn chain_round_trips_and_authority_certs_are_shared_within_a_label() {
        let hsm = SoftHsm::new();
        let token = hsm.token("chain");
        let ca = TestCa::new("unit");
        let a = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("iam", KeyAlgorithm::EccP384)
                .unwrap(),
        )
        .unwrap();
        let b = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("iam", KeyAlgorithm::EccP384)
                .unwrap(),
        )
        .unwrap();
        let pem_a = ca.issue(&a, "a");
        let pem_b = ca.issue(&b, "b");
        token
            .store_chain("iam", &a.key_pair().id, pem_a.as_bytes())
            .unwrap();
        token
            .store_chain("iam", &b.key_pair().id, pem_b.as_bytes())
            .unwrap();

        let read = token.read_chain("iam", &a.key_pair().id).unwrap();
        assert_eq!(
            read,
            parse_pem_chain(pem_a.as_bytes()).unwrap(),
            "chain a round-trips"
        );
        assert_eq!(to_pem_chain(&read), pem_a, "PEM round-trips byte for byte");
        let read_b = token.read_chain("iam", &b.key_pair().id).unwrap();
        assert_eq!(read_b.len(), 3);
        let inv = token.inventory("iam").unwrap();
        assert_eq!(inv.authority_certs, 2, "intermediate and root stored once");
        assert_eq!(inv.complete().count(), 2);

        // A second chain for the same id is refused.
        assert!(token
            .store_chain("iam", &a.key_pair().id, pem_a.as_bytes())
            .is_err());

        // Deleting a keeps the CA certs b needs; deleting b then removes them.
        assert_eq!(token.delete_set("iam", &a.key_pair().id).unwrap(), 3);
        assert_eq!(token.read_chain("iam", &b.key_pair().id).unwrap().len(), 3);
        assert_eq!(token.delete_set("iam", &b.key_pair().id).unwrap(), 5);
        let inv = token.inventory("iam").unwrap();
        assert!(inv.sets.is_empty() && inv.authority_certs == 0, "{inv:?}");
    }

    #[test]
    fn stored_certificates_are_token_objects_and_no_staged_copy_stays() {
        let hsm = SoftHsm::new();
        let token = hsm.token("staged");
        let ca = TestCa::new("unit");
        let key = crate::signer::tests::p256_key(&token, "sm");
        let pem = ca.issue(&key, "n1");
        token
            .store_chain("sm", &key.key_pair().id, pem.as_bytes())
            .unwrap();
        let session_objects = token
            .with_session(|s| Ok(s.find_objects(&[Attribute::Token(false)])?))
            .unwrap();
        assert!(session_objects.is_empty(), "{session_objects:?}");
        // An outside process (which cannot see our session objects) finds all three certificates.
        let out = hsm
            .pkcs11_tool()
            .args([
                "--token-label",
                "staged",
                "--list-objects",
                "--type",
                "cert",
            ])
            .output()
            .expect("pkcs11-tool (opensc) is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches("Certificate Object").count(), 3, "{text}");
        assert_eq!(text.matches("label:      sm").count(), 3, "{text}");
        let leaf = parse_pem_chain(pem.as_bytes()).unwrap().remove(0);
        assert_eq!(token.read_chain("sm", &key.key_pair().id).unwrap()[0], leaf);
    }

    #[test]
    fn garbage_pem_is_refused_and_nothing_is_stored() {
        let hsm = SoftHsm::new();
        let token = hsm.token("bad");
        let pair = token
            .generate_key_pair("sm", KeyAlgorithm::EccP256)
            .unwrap();
        for bad in [
            &b""[..],
            b"hello",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = token.store_chain("sm", &pair.id, bad).unwrap_err();
            assert!(matches!(err, Error::BadCertificate(_)), "{err:?}");
        }
        let inv = token.inventory("sm").unwrap();
        assert_eq!(inv.sets.len(), 1);
        assert!(!inv.sets.values().any(|s| s.certificate));
    }
}
