//! Peer identity: who a certificate says its holder is, read from its `urn:aos:<unit>:<node>:<role>` SAN URI.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Scheme and namespace of identity URIs. Matched case-insensitively (URN namespace ids are).
pub const URN_PREFIX: &str = "urn:aos:";
/// Longest unit or node id accepted in an identity URI.
pub const MAX_COMPONENT_LEN: usize = 128;

/// The component role a certificate was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Identity and access management server of a node.
    Iam,
    /// Service manager.
    Sm,
    /// Communication manager (the cloud link).
    Cm,
    /// Message proxy: the inter-node link of a secondary node.
    Mp,
    /// Online certificate (signing for the cloud).
    Online,
    /// Offline certificate.
    Offline,
}

/// An identity read from (or written into) a certificate's `urn:aos:<unit>:<node>:<role>` SAN URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// Unit id.
    pub unit: String,
    /// Node id within the unit.
    pub node: String,
    /// Component role.
    pub role: Role,
}

/// Why a certificate carries no usable identity.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate does not parse as X.509.
    #[error("certificate does not parse as X.509 DER: {0}")]
    BadCertificate(String),
    /// No `urn:aos:` URI SAN.
    #[error("certificate has no `urn:aos:<unit>:<node>:<role>` URI SAN; reissue it with the node identity")]
    Missing,
    /// More than one `urn:aos:` URI SAN.
    #[error("certificate has {0} `urn:aos:` URI SANs; exactly one is allowed")]
    Ambiguous(usize),
    /// A `urn:aos:` URI without exactly unit, node and role.
    #[error("`{0}` is not of the form `urn:aos:<unit>:<node>:<role>`")]
    Malformed(String),
    /// A role outside iam, sm, cm, mp, online, offline.
    #[error("unknown role `{0}` (expected one of iam, sm, cm, mp, online, offline)")]
    UnknownRole(String),
    /// A unit or node id that is empty, too long or holds characters outside `A-Z a-z 0-9 . _ ~ -`.
    #[error("{field} id `{value}` must be 1..=128 characters of A-Z a-z 0-9 . _ ~ -")]
    BadComponent {
        /// `unit` or `node`.
        field: &'static str,
        /// The offending value.
        value: String,
    },
}

// === impl Role ===

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Iam,
        Role::Sm,
        Role::Cm,
        Role::Mp,
        Role::Online,
        Role::Offline,
    ];

    /// The role as written in identity URIs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Iam => "iam",
            Role::Sm => "sm",
            Role::Cm => "cm",
            Role::Mp => "mp",
            Role::Online => "online",
            Role::Offline => "offline",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Role, IdentityError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

// === impl PeerIdentity ===

impl PeerIdentity {
    /// An identity, with unit and node ids checked.
    pub fn new(
        unit: impl Into<String>,
        node: impl Into<String>,
        role: Role,
    ) -> Result<PeerIdentity, IdentityError> {
        let (unit, node) = (unit.into(), node.into());
        check_component("unit", &unit)?;
        check_component("node", &node)?;
        Ok(PeerIdentity { unit, node, role })
    }

    /// The SAN URI naming this identity: `urn:aos:<unit>:<node>:<role>`.
    pub fn uri(&self) -> String {
        format!("{URN_PREFIX}{}:{}:{}", self.unit, self.node, self.role)
    }

    /// Parse an identity URI. The `urn:aos:` prefix is case-insensitive; ids and role are not.
    pub fn from_uri(uri: &str) -> Result<PeerIdentity, IdentityError> {
        let rest = strip_prefix(uri).ok_or_else(|| IdentityError::Malformed(uri.to_owned()))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [unit, node, role] = parts[..] else {
            return Err(IdentityError::Malformed(uri.to_owned()));
        };
        PeerIdentity::new(unit, node, role.parse()?)
    }

    /// The identity of a DER certificate: its one `urn:aos:` URI SAN. Other SANs (DNS names, other URIs) are
    /// ignored; two `urn:aos:` URIs are refused as ambiguous.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref())
            .map_err(|err| IdentityError::BadCertificate(err.to_string()))?;
        let san = parsed
            .subject_alternative_name()
            .map_err(|err| IdentityError::BadCertificate(err.to_string()))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) if strip_prefix(uri).is_some() => Some(*uri),
                _ => None,
            })
            .collect();
        match uris[..] {
            [] => Err(IdentityError::Missing),
            [uri] => PeerIdentity::from_uri(uri),
            _ => Err(IdentityError::Ambiguous(uris.len())),
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for PeerIdentity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<PeerIdentity, IdentityError> {
        PeerIdentity::from_uri(s)
    }
}

/// The SAN URI for `unit`, `node` and `role`, with unit and node ids checked.
pub fn identity_uri(unit: &str, node: &str, role: Role) -> Result<String, IdentityError> {
    Ok(PeerIdentity::new(unit, node, role)?.uri())
}

fn strip_prefix(uri: &str) -> Option<&str> {
    let head = uri.get(..URN_PREFIX.len())?;
    head.eq_ignore_ascii_case(URN_PREFIX)
        .then(|| &uri[URN_PREFIX.len()..])
}

fn check_component(field: &'static str, value: &str) -> Result<(), IdentityError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    if value.is_empty() || value.len() > MAX_COMPONENT_LEN || !value.chars().all(allowed) {
        return Err(IdentityError::BadComponent {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_uris(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec!["node0.local".to_owned()]).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn uri_round_trips_and_roles_parse() {
        for role in Role::ALL {
            let id = PeerIdentity::new("unit-1", "node.0", role).unwrap();
            assert_eq!(id.uri(), format!("urn:aos:unit-1:node.0:{role}"));
            assert_eq!(id.uri().parse::<PeerIdentity>().unwrap(), id);
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert_eq!(
            PeerIdentity::from_uri("URN:AOS:u:n:sm").unwrap(),
            PeerIdentity::new("u", "n", Role::Sm).unwrap()
        );
        assert_eq!(
            identity_uri("u", "n", Role::Mp).unwrap(),
            "urn:aos:u:n:mp".to_owned()
        );
    }

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        assert_eq!(
            "urn:aos:u:n".parse::<PeerIdentity>(),
            Err(IdentityError::Malformed("urn:aos:u:n".into()))
        );
        assert_eq!(
            "urn:aos:u:n:sm:extra".parse::<PeerIdentity>(),
            Err(IdentityError::Malformed("urn:aos:u:n:sm:extra".into()))
        );
        assert_eq!(
            "urn:other:u:n:sm".parse::<PeerIdentity>(),
            Err(IdentityError::Malformed("urn:other:u:n:sm".into()))
        );
        assert_eq!(
            "urn:aos:u:n:IAM".parse::<PeerIdentity>(),
            Err(IdentityError::UnknownRole("IAM".into()))
        );
        assert!(matches!(
            "urn:aos::n:sm".parse::<PeerIdentity>(),
            Err(IdentityError::BadComponent { field: "unit", .. })
        ));
        assert!(matches!(
            "urn:aos:u:n ode:sm".parse::<PeerIdentity>(),
            Err(IdentityError::BadComponent { field: "node", .. })
        ));
        let long = "x".repeat(MAX_COMPONENT_LEN + 1);
        assert!(PeerIdentity::new(long, "n", Role::Sm).is_err());
    }

    #[test]
    fn role_deserializes_from_its_lowercase_name() {
        use serde::de::value::{Error, StrDeserializer};
        for role in Role::ALL {
            let parsed = Role::deserialize(StrDeserializer::<Error>::new(role.as_str())).unwrap();
            assert_eq!(parsed, role);
        }
        assert!(Role::deserialize(StrDeserializer::<Error>::new("Iam")).is_err());
    }

    #[test]
    fn identity_is_read_from_the_one_urn_aos_san() {
        let cert = cert_with_uris(&["spiffe://x/y", "urn:aos:unit1:main:iam"]);
        assert_eq!(
            PeerIdentity::from_certificate(&cert).unwrap(),
            PeerIdentity::new("unit1", "main", Role::Iam).unwrap()
        );
        assert_eq!(
            PeerIdentity::from_certificate(&cert_with_uris(&[])),
            Err(IdentityError::Missing)
        );
        assert_eq!(
            PeerIdentity::from_certificate(&cert_with_uris(&[
                "urn:aos:u:a:iam",
                "urn:aos:u:b:iam"
            ])),
            Err(IdentityError::Ambiguous(2))
        );
        assert_eq!(
            PeerIdentity::from_certificate(&cert_with_uris(&["urn:aos:u:a:root"])),
            Err(IdentityError::UnknownRole("root".into()))
        );
        assert!(matches!(
            PeerIdentity::from_certificate(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            Err(IdentityError::BadCertificate(_))
        ));
    }
}
