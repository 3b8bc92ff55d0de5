//! `aosctl provision`: the flow of AosCore's provisioning tool for one node or every node of the unit —
//! StartProvisioning → GetCertTypes → per type CreateKey, sign with the CA, ApplyCert (`iam` last) →
//! FinishProvisioning — with one progress bar per node.
//!
//! With `--all`, the other nodes are provisioned first, side by side (their requests are forwarded by the
//! node serving `--server`, the main node), and the serving node last: anonymous provisioning through the
//! main node ends once the main node itself is provisioned.

use std::io::IsTerminal;
use std::time::Duration;

use aos_actors::api::{
    ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse, WirePassword,
};
use aos_actors::iam::provisioner::{NodeState, Password};
use aos_sim::cloud::CloudCa;
use futures_util::future::join_all;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::certs::{self, CertRow};
use crate::cli::{ConnectArgs, ProvisionArgs};
use crate::error::CtlError;
use crate::output::{self, Table};
use crate::password::provisioning_password;
use crate::session::Session;

/// The cert type applied last: applying it switches the node's own TLS certificate.
const IAM: &str = "iam";

/// What provisioning did to one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// The node.
    pub node: String,
    /// Its state afterwards.
    pub state: String,
    /// The certificates applied, in order.
    pub certs: Vec<CertRow>,
}

/// The CA of `--ca`, which must be a CA directory to sign.
pub fn signing_ca(connect: &ConnectArgs) -> Result<CloudCa, CtlError> {
    match &connect.ca {
        Some(dir) if dir.is_dir() => crate::ca::load(dir),
        Some(path) => Err(CtlError::Usage(format!(
            "--ca {} is not a CA directory; signing needs the directory `aosctl ca init` made",
            path.display()
        ))),
        None => Err(CtlError::Usage(
            "--ca DIR is required: the CA in DIR signs the node's certificates".to_owned(),
        )),
    }
}

/// `aosctl provision`.
pub async fn run(args: &ProvisionArgs, json: bool) -> Result<(), CtlError> {
    let ca = signing_ca(&args.connect)?;
    let password = provisioning_password(args.password.password_file.as_deref())?;
    let session = Session::open(&args.connect).await?;
    let nodes = if args.all {
        all_nodes(&session).await?
    } else {
        vec![session.target(args.node.as_deref())]
    };
    let (own, others): (Vec<String>, Vec<String>) =
        nodes.into_iter().partition(|n| *n == session.node_id);

    let draw = if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let multi = MultiProgress::with_draw_target(draw);
    let bar = |node: &str| {
        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(node.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };

    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let jobs = others
        .iter()
        .map(|node| provision_node(&session, &ca, node, &password, bar(node)));
    for (node, result) in others.iter().zip(join_all(jobs).await) {
        match result {
            Ok(report) => reports.push(report),
            Err(err) => failures.push((node.clone(), err)),
        }
    }
    if failures.is_empty() {
        for node in &own {
            match provision_node(&session, &ca, node, &password, bar(node)).await {
                Ok(report) => reports.push(report),
                Err(err) => failures.push((node.clone(), err)),
            }
        }
    }
    session.close().await;
    let mut failures = failures.into_iter();
    if let Some((_, first)) = failures.next() {
        for (node, err) in failures {
            eprintln!("aosctl: node `{node}`: {err}");
        }
        return Err(first);
    }
    let mut table = Table::new(&["NODE", "STATE", "TYPE", "SERIAL", "NOT AFTER"]);
    for report in &reports {
        for cert in &report.certs {
            table.row(vec![
                report.node.clone(),
                report.state.clone(),
                cert.cert_type.clone(),
                cert.serial.clone().unwrap_or_default(),
                cert.not_after.clone().unwrap_or_default(),
            ]);
        }
    }
    output::print(json, &reports, &table)
}

/// Every node of the unit, as the serving (main) node knows them.
async fn all_nodes(session: &Session) -> Result<Vec<String>, CtlError> {
    match session
        .public("GetAllNodeIDs", PublicRequest::GetAllNodeIds)
        .await?
    {
        PublicResponse::NodeIds(ids) => Ok(ids),
        other => Err(session.unexpected("GetAllNodeIDs", &session.node_id, &other)),
    }
}

/// Provision `node`, moving `bar` along.
async fn provision_node(
    session: &Session,
    ca: &CloudCa,
    node: &str,
    password: &Password,
    bar: ProgressBar,
) -> Result<NodeReport, CtlError> {
    let result = steps(session, ca, node, password, &bar).await;
    match &result {
        Ok(_) => bar.finish_with_message("provisioned"),
        Err(_) => bar.abandon_with_message("failed"),
    }
    result
}

async fn steps(
    session: &Session,
    ca: &CloudCa,
    node: &str,
    password: &Password,
    bar: &ProgressBar,
) -> Result<NodeReport, CtlError> {
    bar.set_message("StartProvisioning");
    state_change(
        session,
        "StartProvisioning",
        node,
        ProtectedRequest::StartProvisioning {
            node_id: node.to_owned(),
            password: WirePassword(password.clone()),
        },
    )
    .await?;
    bar.set_message("GetCertTypes");
    let types = apply_order(certs::cert_types(session, node).await?);
    bar.set_length(types.len() as u64 + 2);
    bar.inc(1);
    let mut applied = Vec::new();
    for cert_type in &types {
        bar.set_message(format!("certificate `{cert_type}`"));
        let info = certs::issue(session, ca, node, cert_type, password).await?;
        applied.push(CertRow::of(node, &info));
        bar.inc(1);
    }
    bar.set_message("FinishProvisioning");
    let state = state_change(
        session,
        "FinishProvisioning",
        node,
        ProtectedRequest::FinishProvisioning {
            node_id: node.to_owned(),
            password: WirePassword(password.clone()),
        },
    )
    .await?;
    bar.inc(1);
    Ok(NodeReport {
        node: node.to_owned(),
        state: state.to_string(),
        certs: applied,
    })
}

/// A request answered with the node's new state.
pub async fn state_change(
    session: &Session,
    op: &str,
    node: &str,
    request: ProtectedRequest,
) -> Result<NodeState, CtlError> {
    match session.protected(op, node, request).await? {
        ProtectedResponse::State(state) => Ok(state),
        ProtectedResponse::Done => Ok(NodeState::default()),
        other => Err(session.unexpected(op, node, &other)),
    }
}

/// `types` in the order they are applied: `iam` last, the others as the node listed them.
fn apply_order(mut types: Vec<String>) -> Vec<String> {
    types.sort_by_key(|t| t == IAM);
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_is_applied_last() {
        let order = apply_order(vec![
            "iam".into(),
            "online".into(),
            "sm".into(),
            "cm".into(),
        ]);
        assert_eq!(order, ["online", "sm", "cm", "iam"]);
    }

    #[test]
    fn signing_needs_a_ca_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.pem");
        std::fs::write(&file, "x").unwrap();
        let mut connect = ConnectArgs {
            server: "127.0.0.1:1".into(),
            pin: None,
            ca: None,
            cert: None,
            key: None,
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(signing_ca(&connect), Err(CtlError::Usage(_))));
        connect.ca = Some(file);
        assert!(matches!(signing_ca(&connect), Err(CtlError::Usage(_))));
    }
}
