//! Small DER encodings the token layer needs: SubjectPublicKeyInfo, ECDSA signatures, EC points.

use aos_config::KeyAlgorithm;
use yasna::models::ObjectIdentifier;

use crate::error::{Error, Result};

const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
const OID_P384: &[u64] = &[1, 3, 132, 0, 34];
const OID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];

/// DER of the named-curve OID, as `CKA_EC_PARAMS` wants it. `None` for RSA.
pub fn ec_params(algorithm: KeyAlgorithm) -> Option<Vec<u8>> {
    let oid = match algorithm {
        KeyAlgorithm::EccP256 => OID_P256,
        KeyAlgorithm::EccP384 => OID_P384,
        KeyAlgorithm::Rsa2048 => return None,
    };
    Some(yasna::construct_der(|w| {
        w.write_oid(&ObjectIdentifier::from_slice(oid))
    }))
}

/// Length in bytes of one coordinate (and of r and s) for an EC algorithm.
pub fn ec_field_len(algorithm: KeyAlgorithm) -> Option<usize> {
    match algorithm {
        KeyAlgorithm::EccP256 => Some(32),
        KeyAlgorithm::EccP384 => Some(48),
        KeyAlgorithm::Rsa2048 => None,
    }
}

/// The uncompressed point from a `CKA_EC_POINT` value. The standard says DER OCTET STRING; some modules
/// return the bare point, so both are accepted.
pub fn ec_point_from_attribute(algorithm: KeyAlgorithm, value: &[u8]) -> Result<Vec<u8>> {
    let n =
        ec_field_len(algorithm).ok_or_else(|| Error::BadKey("EC point for an RSA key".into()))?;
    let raw_len = 1 + 2 * n;
    let point = if value.len() == raw_len {
        value.to_vec()
    } else {
        yasna::parse_der(value, |r| r.read_bytes())
            .map_err(|e| Error::BadKey(format!("CKA_EC_POINT is not an OCTET STRING: {e}")))?
    };
    if point.len() != raw_len || point.first() != Some(&0x04) {
        return Err(Error::BadKey(format!(
            "CKA_EC_POINT is not an uncompressed {algorithm} point ({} bytes)",
            point.len()
        )));
    }
    Ok(point)
}

/// The DER `RSAPublicKey` for a modulus and public exponent (big-endian, unsigned).
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(modulus, true);
            w.next().write_bigint_bytes(exponent, true);
        })
    })
}

/// The DER SubjectPublicKeyInfo of a key whose bit-string content (`EC point` or `RSAPublicKey`) is `key`.
pub fn subject_public_key_info(algorithm: KeyAlgorithm, key: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| match algorithm {
                KeyAlgorithm::Rsa2048 => {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_RSA_ENCRYPTION));
                    w.next().write_null();
                }
                KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 => {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(OID_EC_PUBLIC_KEY));
                    let curve = if algorithm == KeyAlgorithm::EccP256 {
                        OID_P256
                    } else {
                        OID_P384
                    };
                    w.next().write_oid(&ObjectIdentifier::from_slice(curve));
                }
            });
            w.next().write_bitvec_bytes(key, key.len() * 8);
        })
    })
}

/// The bit-string content of a DER SubjectPublicKeyInfo: the EC point or the `RSAPublicKey` (what rcgen calls
/// a key's DER bytes, and what a certificate's `subjectPublicKey` holds).
pub fn spki_key_bytes(spki: &[u8]) -> Result<Vec<u8>> {
    yasna::parse_der(spki, |r| {
        r.read_sequence(|r| {
            r.next().read_der()?;
            let bits = r.next().read_bitvec_bytes()?;
            Ok(bits.0)
        })
    })
    .map_err(|e| Error::BadKey(format!("malformed SubjectPublicKeyInfo: {e}")))
}

/// Convert a PKCS#11 ECDSA signature (`r ‖ s`, each `n` bytes) to the DER `Ecdsa-Sig-Value` TLS and X.509
/// use.
pub fn ecdsa_signature_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(Error::BadKey(format!(
            "ECDSA signature of odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(r, true);
            w.next().write_bigint_bytes(s, true);
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_strips_leading_zeros_and_adds_sign_bytes() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s has its top bit set: needs a 0x00 sign byte
        let der = ecdsa_signature_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert!(ecdsa_signature_to_der(&[1, 2, 3]).is_err());
    }

    #[test]
    fn ec_point_accepts_der_and_raw_and_refuses_garbage() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let der = yasna::construct_der(|w| w.write_bytes(&point));
        assert_eq!(
            ec_point_from_attribute(KeyAlgorithm::EccP256, &der).unwrap(),
            point
        );
        assert_eq!(
            ec_point_from_attribute(KeyAlgorithm::EccP256, &point).unwrap(),
            point
        );
        assert!(ec_point_from_attribute(KeyAlgorithm::EccP384, &der).is_err());
        assert!(ec_point_from_attribute(KeyAlgorithm::EccP256, &[0x30, 0x00]).is_err());
    }

    #[test]
    fn p256_params_are_the_named_curve_oid() {
        let params = ec_params(KeyAlgorithm::EccP256).unwrap();
        assert_eq!(
            params,
            [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        );
        assert!(ec_params(KeyAlgorithm::Rsa2048).is_none());
    }
}
