//! Instance secrets and their SHA-256 digests.
//!
//! A secret is 256 bits from the OS CSPRNG, handed out as 64 lowercase hex characters. The store keeps only
//! `SHA-256(raw 32 bytes)`; a presented secret is decoded, hashed and looked up by that digest, so no
//! comparison ever touches a stored plaintext.

use std::fmt;
use std::hash::{Hash, Hasher};

use aws_lc_rs::{constant_time, digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::PermissionError;

/// Entropy of a secret, in bytes (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Length of a secret's text form: two lowercase hex characters per byte.
pub const SECRET_TEXT_LEN: usize = 2 * SECRET_BYTES;

/// A permission secret in its text form. Zeroized on drop; `Debug` prints `Secret(<redacted>)`; equality
/// is constant-time.
///
/// Issued secrets are [`SECRET_TEXT_LEN`] lowercase hex characters. A secret presented by a caller may be
/// any text; one that is not in the issued form simply matches nothing.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

/// SHA-256 of a secret's 32 raw bytes: what the store keeps and looks up by. Not secret itself (a digest
/// of 256 random bits reveals nothing usable), but compared in constant time all the same.
#[derive(Clone, Copy)]
pub(crate) struct SecretDigest([u8; 32]);

// === impl Secret ===

impl Secret {
    /// A fresh secret: 256 bits from the OS CSPRNG (`getrandom`).
    pub fn generate() -> Result<Secret, PermissionError> {
        let mut raw = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(raw.as_mut()).map_err(|e| PermissionError::Random(e.to_string()))?;
        let mut text = Zeroizing::new([0u8; SECRET_TEXT_LEN]);
        hex::encode_to_slice(raw.as_ref(), text.as_mut())
            .map_err(|e| PermissionError::Random(e.to_string()))?;
        let mut out = Zeroizing::new(String::with_capacity(SECRET_TEXT_LEN));
        // Hex output is ASCII; push char by char so no unzeroized copy is made.
        out.extend(text.iter().map(|&b| char::from(b)));
        Ok(Secret(out))
    }

    /// Wrap a secret presented by a caller (e.g. the `AOS_SECRET` a service sent to a functional server).
    pub fn from_text(text: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(text.into()))
    }

    /// The text to hand to the instance. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the store knows this secret by; `None` when the text is not in the issued form.
    pub(crate) fn digest(&self) -> Option<SecretDigest> {
        SecretDigest::of_text(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes()).is_ok()
    }
}

impl Eq for Secret {}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::from_text)
    }
}

// === impl SecretDigest ===

impl SecretDigest {
    /// Decode a secret's text and hash its raw bytes. Allocation-free; `None` unless the text is
    /// [`SECRET_TEXT_LEN`] hex characters.
    pub(crate) fn of_text(text: &str) -> Option<SecretDigest> {
        if text.len() != SECRET_TEXT_LEN {
            return None;
        }
        let mut raw = Zeroizing::new([0u8; SECRET_BYTES]);
        hex::decode_to_slice(text, raw.as_mut()).ok()?;
        let hashed = digest::digest(&digest::SHA256, raw.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(hashed.as_ref());
        Some(SecretDigest(out))
    }

    /// Parse the lowercase-hex form used in the store file.
    pub(crate) fn from_hex(text: &str) -> Option<SecretDigest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(SecretDigest(out))
    }

    /// The lowercase-hex form used in the store file.
    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for SecretDigest {
    fn eq(&self, other: &Self) -> bool {
        constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl Eq for SecretDigest {}

impl Hash for SecretDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell digests apart in a test failure; never the secret itself.
        write!(f, "SecretDigest({}…)", hex::encode(&self.0[..4]))
    }
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SecretDigest::from_hex(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "a secret digest must be 64 hex characters, found {:?}",
                text
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_64_lowercase_hex_and_unique() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.expose().len(), SECRET_TEXT_LEN);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::generate().unwrap();
        let shown = format!("{s:?} {:?}", Some(s.clone()));
        assert!(!shown.contains(s.expose()), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        let d = s.digest().unwrap();
        assert!(!format!("{d:?}").contains(s.expose()));
    }

    #[test]
    fn digest_is_sha256_of_raw_bytes() {
        let text = "00".repeat(SECRET_BYTES);
        let expected = digest::digest(&digest::SHA256, &[0u8; SECRET_BYTES]);
        assert_eq!(
            SecretDigest::of_text(&text).unwrap().0,
            expected.as_ref()[..]
        );
    }

    #[test]
    fn malformed_text_has_no_digest() {
        for bad in [
            String::new(),
            "a".repeat(SECRET_TEXT_LEN - 1),
            "a".repeat(SECRET_TEXT_LEN + 1),
            "g".repeat(SECRET_TEXT_LEN),
            "é".repeat(SECRET_TEXT_LEN / 2),
        ] {
            assert!(SecretDigest::of_text(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn digest_hex_round_trips_and_rejects_garbage() {
        let d = Secret::generate().unwrap().digest().unwrap();
        assert_eq!(SecretDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(SecretDigest::from_hex("zz"), None);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<SecretDigest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<SecretDigest>(r#""abc""#).is_err());
    }

    #[test]
    fn secret_serializes_as_its_text() {
        let s = Secret::generate().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.expose()));
        assert_eq!(serde_json::from_str::<Secret>(&json).unwrap(), s);
    }
}
