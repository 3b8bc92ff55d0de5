//! Reading a CSR: PEM → PKCS#10, its own signature verified, its key classified.

use rcgen::{CertificateSigningRequestParams, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::error::Refusal;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The kind of key a CSR carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
}

impl KeyKind {
    /// The key usages a certificate for this key gets: digitalSignature, plus keyEncipherment for RSA (TLS 1.2
    /// RSA key transport).
    pub fn key_usages(self) -> Vec<rcgen::KeyUsagePurpose> {
        match self {
            KeyKind::Rsa(_) => vec![
                rcgen::KeyUsagePurpose::DigitalSignature,
                rcgen::KeyUsagePurpose::KeyEncipherment,
            ],
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                vec![rcgen::KeyUsagePurpose::DigitalSignature]
            }
        }
    }
}

/// A CSR whose signature verified with its own key.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// What rcgen read: subject, SANs, EKUs, basic constraints, and the public key.
    pub request: CertificateSigningRequestParams,
    /// The kind of key.
    pub key: KeyKind,
}

impl ParsedCsr {
    /// Parse a PEM CSR and verify its signature (rcgen verifies it while parsing, through x509-parser's
    /// `verify-aws` feature).
    pub fn from_pem(pem: &str) -> Result<ParsedCsr, Refusal> {
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Refusal::Malformed(format!("no PEM CERTIFICATE REQUEST: {e}")))?;
        ParsedCsr::from_der(&der)
    }

    /// Parse a DER CSR and verify its signature.
    pub fn from_der(der: &CertificateSigningRequestDer<'_>) -> Result<ParsedCsr, Refusal> {
        let request = CertificateSigningRequestParams::from_der(der).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => Refusal::BadSignature,
            rcgen::Error::UnsupportedExtension => Refusal::UnsupportedExtension,
            other => Refusal::Malformed(other.to_string()),
        })?;
        let (_, parsed) = X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let spki = &parsed.certification_request_info.subject_pki;
        let key = classify(spki)?;
        // rcgen derives the key's algorithm from the CSR's *signature* algorithm and re-encodes the key with
        // it; a P-384 key signed with ecdsa-with-SHA256 would come out as a P-256 key. Refuse anything that
        // does not re-encode to the bytes the CSR carries.
        if request.public_key.subject_public_key_info() != spki.raw {
            return Err(Refusal::UnsupportedKey(format!(
                "the CSR's signature algorithm {:?} does not match its {key:?} key",
                request.public_key.algorithm()
            )));
        }
        Ok(ParsedCsr { request, key })
    }
}

fn classify(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyKind, Refusal> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(Refusal::UnsupportedKey(
                "RSA public key does not parse".into(),
            ));
        };
        let bits = modulus_bits(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return Err(Refusal::UnsupportedKey(format!("RSA-{bits} is too short")));
        }
        return Ok(KeyKind::Rsa(bits));
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyKind::EcdsaP384),
            Some(c) if c == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
            Some(c) => Err(Refusal::UnsupportedKey(format!("EC curve {c}"))),
            None => Err(Refusal::UnsupportedKey(
                "EC key without a named curve".into(),
            )),
        };
    }
    Err(Refusal::UnsupportedKey(format!(
        "key algorithm {algorithm}"
    )))
}

/// Bits of a big-endian unsigned modulus, ignoring leading zero bytes and bits.
fn modulus_bits(modulus: &[u8]) -> usize {
    let Some(first) = modulus.iter().position(|b| *b != 0) else {
        return 0;
    };
    let significant = &modulus[first..];
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(alg: &'static rcgen::SignatureAlgorithm) -> String {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        rcgen::CertificateParams::new(vec!["n.local".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn keys_are_classified() {
        let p384 = ParsedCsr::from_pem(&csr_for(&rcgen::PKCS_ECDSA_P384_SHA384)).unwrap();
        assert_eq!(p384.key, KeyKind::EcdsaP384);
        let p256 = ParsedCsr::from_pem(&csr_for(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
        assert_eq!(p256.key, KeyKind::EcdsaP256);
        let rsa = ParsedCsr::from_pem(&csr_for(&rcgen::PKCS_RSA_SHA256)).unwrap();
        assert_eq!(rsa.key, KeyKind::Rsa(2048));
        assert_eq!(rsa.key.key_usages().len(), 2);
    }

    #[test]
    fn ed25519_keys_are_refused() {
        let err = ParsedCsr::from_pem(&csr_for(&rcgen::PKCS_ED25519)).unwrap_err();
        assert!(matches!(err, Refusal::UnsupportedKey(_)), "{err}");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            ParsedCsr::from_pem("hello"),
            Err(Refusal::Malformed(_))
        ));
        let junk =
            "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n-----END CERTIFICATE REQUEST-----\n";
        assert!(matches!(
            ParsedCsr::from_pem(junk),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }
}
