//! `aosctl deprovision`, `aosctl pause` and `aosctl resume`: a node's provisioning state changes.

use aos_actors::api::{ProtectedRequest, WirePassword};
use serde::Serialize;

use crate::cli::{DeprovisionArgs, NodeArgs};
use crate::error::CtlError;
use crate::output::{self, Table};
use crate::password::provisioning_password;
use crate::provision::state_change;
use crate::session::Session;

/// A node and its state after the change.
#[derive(Debug, Clone, Serialize)]
struct StateRow {
    node: String,
    state: String,
}

/// Which change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// PauseNode.
    Pause,
    /// ResumeNode.
    Resume,
}

/// `aosctl deprovision`.
pub async fn deprovision(args: &DeprovisionArgs, json: bool) -> Result<(), CtlError> {
    let password = provisioning_password(args.password.password_file.as_deref())?;
    let session = Session::open(&args.connect).await?;
    let node = session.target(args.node.as_deref());
    let request = ProtectedRequest::Deprovision {
        node_id: node.clone(),
        password: WirePassword(password),
    };
    let state = state_change(&session, "Deprovision", &node, request).await?;
    session.close().await;
    print(json, node, state.to_string())
}

/// `aosctl pause` / `aosctl resume`.
pub async fn pause_or_resume(args: &NodeArgs, change: Change, json: bool) -> Result<(), CtlError> {
    let session = Session::open(&args.connect).await?;
    let node = session.target(args.node.as_deref());
    let (op, request) = match change {
        Change::Pause => (
            "PauseNode",
            ProtectedRequest::PauseNode {
                node_id: node.clone(),
            },
        ),
        Change::Resume => (
            "ResumeNode",
            ProtectedRequest::ResumeNode {
                node_id: node.clone(),
            },
        ),
    };
    let state = state_change(&session, op, &node, request).await?;
    session.close().await;
    print(json, node, state.to_string())
}

fn print(json: bool, node: String, state: String) -> Result<(), CtlError> {
    let row = StateRow { node, state };
    let mut table = Table::new(&["NODE", "STATE"]);
    table.row(vec![row.node.clone(), row.state.clone()]);
    output::print(json, &row, &table)
}
