//! CSRs and self-signed certificates, signed inside the token.

use aos_config::{CertModuleConfig, ExtendedKeyUsage};
use aos_pkcs11::TokenKey;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, SanType};

use super::error::CertError;

/// The node a module belongs to: it names certificates (`urn:aos:<unit>:<node>:<role>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Unit id.
    pub unit_id: String,
    /// Node id.
    pub node_id: String,
}

impl NodeIdentity {
    /// The SAN URI of this node's certificate of role `role`.
    pub fn uri(&self, role: &str) -> String {
        format!("urn:aos:{}:{}:{}", self.unit_id, self.node_id, role)
    }
}

fn params(
    config: &CertModuleConfig,
    node: &NodeIdentity,
    subject: &str,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let cn = if subject.is_empty() {
        node.node_id.as_str()
    } else {
        subject
    };
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let mut sans = Vec::new();
    for name in &config.alternative_names {
        let dns = name
            .as_str()
            .try_into()
            .map_err(|e| CertError::build(&config.id, format!("alternative name {name:?}: {e}")))?;
        sans.push(SanType::DnsName(dns));
    }
    let uri = node
        .uri(&config.id)
        .try_into()
        .map_err(|e| CertError::build(&config.id, format!("identity URI: {e}")))?;
    sans.push(SanType::URI(uri));
    params.subject_alt_names = sans;
    params.extended_key_usages = config
        .extended_key_usage
        .iter()
        .map(|eku| match eku {
            ExtendedKeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    Ok(params)
}

/// A PEM CSR for `key`: CN = `subject` (the node id when empty), DNS SANs from `alternative_names`, the identity
/// URI SAN, and the module's EKUs.
pub fn build_csr(
    config: &CertModuleConfig,
    node: &NodeIdentity,
    subject: &str,
    key: &TokenKey,
) -> Result<String, CertError> {
    let csr = params(config, node, subject)?
        .serialize_request(key)
        .map_err(|e| CertError::build(&config.id, format!("CSR: {e}")))?;
    csr.pem()
        .map_err(|e| CertError::build(&config.id, format!("CSR PEM: {e}")))
}

/// A self-signed certificate for `key`, valid for `days` days from now, as PEM.
pub fn build_self_signed(
    config: &CertModuleConfig,
    node: &NodeIdentity,
    key: &TokenKey,
    now: std::time::SystemTime,
    days: u64,
) -> Result<String, CertError> {
    let mut params = params(config, node, "")?;
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(days * 86_400)).into();
    let cert = params
        .self_signed(key)
        .map_err(|e| CertError::build(&config.id, format!("self-signed certificate: {e}")))?;
    Ok(cert.pem())
}
