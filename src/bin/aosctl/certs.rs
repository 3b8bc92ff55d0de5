//! `aosctl certs list` and `aosctl certs renew`, and the key → CSR → sign → apply step provisioning shares.

use aos_actors::api::{
    ErrorCode, ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse, WirePassword,
};
use aos_actors::iam::cert_module::CertInfo;
use aos_actors::iam::provisioner::Password;
use aos_sim::cloud::{CloudCa, SignRequest};
use serde::Serialize;

use crate::cli::{CertsListArgs, CertsRenewArgs};
use crate::error::CtlError;
use crate::output::{self, rfc3339, unix_seconds, Table};
use crate::password::provisioning_password;
use crate::session::Session;

/// One certificate of a node, as listed (every field but `node` and `cert_type` absent when the node has
/// no certificate of that type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRow {
    /// The node.
    pub node: String,
    /// The cert type.
    pub cert_type: String,
    /// Serial, lowercase hex.
    pub serial: Option<String>,
    /// End of validity, RFC 3339 UTC.
    pub not_after: Option<String>,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: Option<u64>,
    /// `pkcs11:` URL of the certificate.
    pub cert_url: Option<String>,
    /// `pkcs11:` URL of its private key.
    pub key_url: Option<String>,
}

// === impl CertRow ===

impl CertRow {
    /// The row of `info` on `node`.
    pub fn of(node: &str, info: &CertInfo) -> CertRow {
        CertRow {
            node: node.to_owned(),
            cert_type: info.cert_type.clone(),
            serial: Some(info.serial.clone()),
            not_after: Some(rfc3339(info.not_after)),
            not_after_unix: Some(unix_seconds(info.not_after)),
            cert_url: Some(info.cert_url.clone()),
            key_url: Some(info.key_url.clone()),
        }
    }

    fn none(node: &str, cert_type: &str) -> CertRow {
        CertRow {
            node: node.to_owned(),
            cert_type: cert_type.to_owned(),
            serial: None,
            not_after: None,
            not_after_unix: None,
            cert_url: None,
            key_url: None,
        }
    }
}

/// The table of `rows`.
pub fn table(rows: &[CertRow]) -> Table {
    let mut table = Table::new(&["NODE", "TYPE", "SERIAL", "NOT AFTER", "URL"]);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for row in rows {
        table.row(vec![
            row.node.clone(),
            row.cert_type.clone(),
            dash(&row.serial),
            dash(&row.not_after),
            dash(&row.cert_url),
        ]);
    }
    table
}

/// A new key and CSR of `cert_type` on `node`, signed by `ca`, applied: the certificate's info.
pub async fn issue(
    session: &Session,
    ca: &CloudCa,
    node: &str,
    cert_type: &str,
    password: &Password,
) -> Result<CertInfo, CtlError> {
    let csr = match session
        .protected(
            "CreateKey",
            node,
            ProtectedRequest::CreateKey {
                node_id: node.to_owned(),
                cert_type: cert_type.to_owned(),
                subject: String::new(),
                password: WirePassword(password.clone()),
            },
        )
        .await?
    {
        ProtectedResponse::Csr(csr) => csr,
        other => return Err(session.unexpected("CreateKey", node, &other)),
    };
    let chain = ca.sign(&SignRequest::new(node, cert_type, csr))?;
    match session
        .protected(
            "ApplyCert",
            node,
            ProtectedRequest::ApplyCert {
                node_id: node.to_owned(),
                cert_type: cert_type.to_owned(),
                pem: chain.chain_pem,
            },
        )
        .await?
    {
        ProtectedResponse::Cert(info) => Ok(info),
        other => Err(session.unexpected("ApplyCert", node, &other)),
    }
}

/// The cert types of `node` (all but self-signed ones).
pub async fn cert_types(session: &Session, node: &str) -> Result<Vec<String>, CtlError> {
    match session
        .protected(
            "GetCertTypes",
            node,
            ProtectedRequest::GetCertTypes {
                node_id: node.to_owned(),
            },
        )
        .await?
    {
        ProtectedResponse::CertTypes(types) => Ok(types),
        other => Err(session.unexpected("GetCertTypes", node, &other)),
    }
}

/// `aosctl certs list`.
pub async fn list(args: &CertsListArgs, json: bool) -> Result<(), CtlError> {
    let session = Session::open(&args.connect).await?;
    let node = session.target(args.node.as_deref());
    let types = if args.types.is_empty() {
        cert_types(&session, &node).await?
    } else {
        args.types.clone()
    };
    let mut rows = Vec::new();
    for cert_type in &types {
        let request = PublicRequest::GetCert {
            node_id: node.clone(),
            cert_type: cert_type.clone(),
            issuer: Vec::new(),
            serial: String::new(),
        };
        match session.public("GetCert", request).await {
            Ok(PublicResponse::Cert(info)) => rows.push(CertRow::of(&node, &info)),
            Ok(other) => return Err(session.unexpected("GetCert", &node, &other)),
            Err(CtlError::Api { source, .. }) if source.code == ErrorCode::NotFound => {
                rows.push(CertRow::none(&node, cert_type));
            }
            Err(err) => return Err(err),
        }
    }
    session.close().await;
    output::print(json, &rows, &table(&rows))
}

/// `aosctl certs renew`.
pub async fn renew(args: &CertsRenewArgs, json: bool) -> Result<(), CtlError> {
    let ca = crate::provision::signing_ca(&args.connect)?;
    let password = provisioning_password(args.password.password_file.as_deref())?;
    let session = Session::open(&args.connect).await?;
    let node = session.target(args.node.as_deref());
    let info = issue(&session, &ca, &node, &args.cert_type, &password).await?;
    session.close().await;
    let rows = [CertRow::of(&node, &info)];
    output::print(json, &rows, &table(&rows))
}
