//! What the CA agrees to sign ([`CaPolicy`]), and the check of one request against it.

use std::collections::BTreeSet;
use std::time::Duration;

use aos_config::ExtendedKeyUsage;
use aos_transport::tls::{PeerIdentity, Role, URN_PREFIX};
use rcgen::{ExtendedKeyUsagePurpose, IsCa, SanType};

use super::csr::ParsedCsr;
use super::error::{CloudError, Refusal};
use super::request::SignRequest;

/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// What the CA signs: cert types, extended key usages, lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPolicy {
    /// Cert types (roles) the CA signs. Default: every shipped role (online, offline, iam, sm, cm, mp).
    pub allowed_roles: BTreeSet<Role>,
    /// Extended key usages a CSR may ask for. Default: serverAuth and clientAuth. Any other EKU (anyEKU,
    /// codeSigning, …) is always refused.
    pub allowed_ekus: Vec<ExtendedKeyUsage>,
    /// Lifetime of a certificate when the request names none. Default: 365 days.
    pub default_lifetime: Duration,
    /// Longest lifetime a request may ask for. Default: 730 days.
    pub max_lifetime: Duration,
    /// How far `not_before` lies before the signing time, for nodes whose clock is a little behind.
    /// Default: 60 seconds.
    pub backdate: Duration,
}

impl Default for CaPolicy {
    fn default() -> Self {
        CaPolicy {
            allowed_roles: Role::ALL.into_iter().collect(),
            allowed_ekus: vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth],
            default_lifetime: 365 * DAY,
            max_lifetime: 730 * DAY,
            backdate: Duration::from_secs(60),
        }
    }
}

impl CaPolicy {
    /// Check that the policy is consistent: a non-zero default lifetime not above the maximum.
    pub fn validate(&self) -> Result<(), CloudError> {
        if self.default_lifetime.is_zero() {
            return Err(CloudError::InvalidPolicy(
                "default_lifetime is zero; give at least one second".into(),
            ));
        }
        if self.default_lifetime > self.max_lifetime {
            return Err(CloudError::InvalidPolicy(format!(
                "default_lifetime {:?} exceeds max_lifetime {:?}",
                self.default_lifetime, self.max_lifetime
            )));
        }
        Ok(())
    }

    /// The allowed roles as a comma separated list, for messages.
    pub(crate) fn allowed_roles_list(&self) -> String {
        let names: Vec<&str> = self.allowed_roles.iter().map(|r| r.as_str()).collect();
        names.join(", ")
    }
}

/// What a request was admitted with: the names and usages that go into the certificate.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The identity the certificate vouches for.
    pub identity: PeerIdentity,
    /// Subject alternative names, as the CSR listed them: DNS names and the identity URI.
    pub sans: Vec<SanType>,
    /// Extended key usages, as the CSR listed them.
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    /// Lifetime of the certificate.
    pub lifetime: Duration,
}

impl CaPolicy {
    /// Check `csr` against `request` and the policy for a CA of unit `unit`.
    ///
    /// Order: cert type, identity (count, form, unit, node, role), other SANs, basic constraints, EKUs,
    /// lifetime. The first failing check names the refusal.
    pub fn admit(
        &self,
        unit: &str,
        request: &SignRequest,
        csr: &ParsedCsr,
    ) -> Result<Admitted, Refusal> {
        let role = request
            .cert_type
            .parse::<Role>()
            .ok()
            .filter(|role| self.allowed_roles.contains(role))
            .ok_or_else(|| Refusal::CertTypeNotAllowed {
                cert_type: request.cert_type.clone(),
                allowed: self.allowed_roles_list(),
            })?;
        let params = &csr.request.params;
        let identity = identity(unit, request, role, &params.subject_alt_names)?;
        if let Some(other) = params
            .subject_alt_names
            .iter()
            .find(|san| !matches!(san, SanType::DnsName(_)) && identity_uri(san).is_none())
        {
            return Err(Refusal::UnexpectedSan(describe(other)));
        }
        if matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(Refusal::CaRequested);
        }
        for eku in &params.extended_key_usages {
            let allowed = match eku {
                ExtendedKeyUsagePurpose::ServerAuth => {
                    self.allowed_ekus.contains(&ExtendedKeyUsage::ServerAuth)
                }
                ExtendedKeyUsagePurpose::ClientAuth => {
                    self.allowed_ekus.contains(&ExtendedKeyUsage::ClientAuth)
                }
                _ => false,
            };
            if !allowed {
                return Err(Refusal::EkuNotAllowed(eku_name(eku)));
            }
        }
        let lifetime = request.lifetime.unwrap_or(self.default_lifetime);
        if lifetime.is_zero() {
            return Err(Refusal::ZeroLifetime);
        }
        if lifetime > self.max_lifetime {
            return Err(Refusal::LifetimeTooLong {
                requested: lifetime,
                max: self.max_lifetime,
            });
        }
        Ok(Admitted {
            identity,
            sans: params.subject_alt_names.clone(),
            ekus: params.extended_key_usages.clone(),
            lifetime,
        })
    }
}

/// The one identity URI among `sans`, checked against this unit, the request's node and role.
fn identity(
    unit: &str,
    request: &SignRequest,
    role: Role,
    sans: &[SanType],
) -> Result<PeerIdentity, Refusal> {
    let uris: Vec<&str> = sans.iter().filter_map(identity_uri).collect();
    let uri = match uris[..] {
        [] => return Err(Refusal::NoIdentity),
        [uri] => uri,
        _ => return Err(Refusal::AmbiguousIdentity(uris.len())),
    };
    // Compare the parts first so that a CSR for another node or role is named as such, even when that
    // role is not one `PeerIdentity` knows; then let `PeerIdentity` check the form.
    let rest = uri.get(URN_PREFIX.len()..).unwrap_or_default();
    if let [found_unit, found_node, found_role] = rest.split(':').collect::<Vec<_>>()[..] {
        if found_unit != unit {
            return Err(Refusal::WrongUnit {
                expected: unit.to_owned(),
                found: found_unit.to_owned(),
            });
        }
        if found_node != request.node_id {
            return Err(Refusal::WrongNode {
                expected: request.node_id.clone(),
                found: found_node.to_owned(),
            });
        }
        if found_role != role.as_str() {
            return Err(Refusal::WrongRole {
                expected: role.as_str().to_owned(),
                found: found_role.to_owned(),
            });
        }
    }
    PeerIdentity::from_uri(uri).map_err(|reason| Refusal::MalformedIdentity {
        uri: uri.to_owned(),
        reason,
    })
}

/// The URI of a SAN that is a `urn:aos:` URI (prefix matched without regard to case, as the transport does).
fn identity_uri(san: &SanType) -> Option<&str> {
    let SanType::URI(uri) = san else {
        return None;
    };
    let uri = uri.as_str();
    uri.get(..URN_PREFIX.len())
        .filter(|head| head.eq_ignore_ascii_case(URN_PREFIX))
        .map(|_| uri)
}

fn describe(san: &SanType) -> String {
    match san {
        SanType::Rfc822Name(mail) => format!("e-mail `{}`", mail.as_str()),
        SanType::DnsName(dns) => format!("DNS name `{}`", dns.as_str()),
        SanType::URI(uri) => format!("URI `{}`", uri.as_str()),
        SanType::IpAddress(ip) => format!("IP address {ip}"),
        SanType::OtherName((oid, _)) => format!("otherName {oid:?}"),
        _ => "of an unknown kind".to_owned(),
    }
}

fn eku_name(eku: &ExtendedKeyUsagePurpose) -> String {
    match eku {
        ExtendedKeyUsagePurpose::Any => "anyExtendedKeyUsage".into(),
        ExtendedKeyUsagePurpose::ServerAuth => "serverAuth".into(),
        ExtendedKeyUsagePurpose::ClientAuth => "clientAuth".into(),
        ExtendedKeyUsagePurpose::CodeSigning => "codeSigning".into(),
        ExtendedKeyUsagePurpose::EmailProtection => "emailProtection".into(),
        ExtendedKeyUsagePurpose::TimeStamping => "timeStamping".into(),
        ExtendedKeyUsagePurpose::OcspSigning => "OCSPSigning".into(),
        ExtendedKeyUsagePurpose::Other(oid) => format!("{oid:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_allows_the_shipped_roles_and_is_valid() {
        let policy = CaPolicy::default();
        assert_eq!(policy.allowed_roles.len(), 6);
        assert_eq!(
            policy.allowed_roles_list(),
            "iam, sm, cm, mp, online, offline"
        );
        policy.validate().unwrap();
    }

    #[test]
    fn inconsistent_lifetimes_are_refused() {
        let zero = CaPolicy {
            default_lifetime: Duration::ZERO,
            ..CaPolicy::default()
        };
        assert!(matches!(zero.validate(), Err(CloudError::InvalidPolicy(_))));
        let above = CaPolicy {
            default_lifetime: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(5),
            ..CaPolicy::default()
        };
        assert!(
            matches!(above.validate(), Err(CloudError::InvalidPolicy(m)) if m.contains("max_lifetime"))
        );
    }

    #[test]
    fn identity_uris_are_found_case_insensitively() {
        let uri = |s: &str| SanType::URI(s.try_into().unwrap());
        assert_eq!(
            identity_uri(&uri("URN:AOS:u:n:iam")),
            Some("URN:AOS:u:n:iam")
        );
        assert_eq!(
            identity_uri(&uri("urn:aos:u:n:iam")),
            Some("urn:aos:u:n:iam")
        );
        assert_eq!(identity_uri(&uri("spiffe://u/n")), None);
        assert_eq!(identity_uri(&uri("urn:ao")), None);
        assert_eq!(
            identity_uri(&SanType::DnsName("urn.aos".try_into().unwrap())),
            None
        );
    }
}
