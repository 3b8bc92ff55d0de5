//! `aosctl nodes list`: every node of the unit as the main node knows it.

use aos_actors::api::{NodeInfo, PublicRequest, PublicResponse};

use crate::cli::NodesListArgs;
use crate::error::CtlError;
use crate::output::{self, Table};
use crate::session::Session;

/// `aosctl nodes list`.
pub async fn list(args: &NodesListArgs, json: bool) -> Result<(), CtlError> {
    let session = Session::open(&args.connect).await?;
    let ids = match session
        .public("GetAllNodeIDs", PublicRequest::GetAllNodeIds)
        .await?
    {
        PublicResponse::NodeIds(ids) => ids,
        other => return Err(session.unexpected("GetAllNodeIDs", &session.node_id, &other)),
    };
    let mut nodes: Vec<NodeInfo> = Vec::new();
    for id in ids {
        let request = PublicRequest::GetNodeInfo {
            node_id: id.clone(),
        };
        match session.public("GetNodeInfo", request).await? {
            PublicResponse::NodeInfo(info) => nodes.push(info),
            other => return Err(session.unexpected("GetNodeInfo", &id, &other)),
        }
    }
    session.close().await;
    let mut table = Table::new(&["NODE", "NAME", "TYPE", "ROLE", "STATE"]);
    for node in &nodes {
        table.row(vec![
            node.node_id.clone(),
            node.name.clone(),
            node.node_type.clone(),
            if node.is_main { "main" } else { "secondary" }.to_owned(),
            node.state.to_string(),
        ]);
    }
    output::print(json, &nodes, &table)
}
