//! [`SimNode`]: one node of a simulated unit — its configuration, its token (by label in the unit's
//! module), its simulated instances, and the running [`Node`] while it is up.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use aos_actors::iam::provisioner::NodeState;
use aos_actors::node::{Node, NodeError, NodeOptions};
use aos_actors::sm::SimulatedRunner;
use aos_config::Config;
use aos_pkcs11::Pin;

use super::proxy::LinkProxy;

/// One node of the unit.
pub struct SimNode {
    /// Index in the unit (0: main).
    pub index: usize,
    /// Its name (`main`, `sec-1`, …), also its token's label.
    pub name: String,
    /// The configuration it starts from.
    pub config: Config,
    /// Its simulated instances (what a service would hold: their secrets).
    pub runner: SimulatedRunner,
    /// The cut point of its MP link (secondaries).
    pub proxy: Option<LinkProxy>,
    /// The cert types the cloud's CA issues it (`iam` last: the order renewals apply them); its
    /// configuration's `cert_modules` has every type, self-signed ones too.
    pub cert_types: Vec<String>,
    pub(super) node: RefCell<Option<Node>>,
    pub(super) options: NodeOptions,
    pub(super) pin_path: PathBuf,
}

/// A node's certificate as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertView {
    /// Serial, hex.
    pub serial: String,
    /// End of validity.
    pub not_after: SystemTime,
}

// === impl SimNode ===

impl SimNode {
    /// Run `f` on the running node; `None` while it is down.
    pub fn with_node<T>(&self, f: impl FnOnce(&Node) -> T) -> Option<T> {
        self.node.borrow().as_ref().map(f)
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        self.node.borrow().is_some()
    }

    /// Start (or restart) it from its configuration, token and files.
    pub async fn start(&self) -> Result<(), NodeError> {
        if !self.is_up() {
            let node = Node::start(&self.config, self.options.clone()).await?;
            *self.node.borrow_mut() = Some(node);
        }
        Ok(())
    }

    /// Stop all its actors (token, state and permission files stay).
    pub async fn stop(&self) {
        let node = self.node.borrow_mut().take();
        if let Some(mut node) = node {
            node.stop().await;
        }
    }

    /// Provisioning state and current `iam` certificate; `None` while down.
    pub fn status(&self) -> Option<(NodeState, Option<CertView>)> {
        let status = self.with_node(Node::status)?;
        let cert = status.cert.map(|c| CertView {
            serial: c.serial,
            not_after: c.not_after,
        });
        Some((status.state, cert))
    }

    /// Whether it is provisioned and serves its own certificate.
    pub fn is_ready(&self) -> bool {
        self.with_node(Node::is_ready).unwrap_or(false)
    }

    /// Its token's user PIN (the file provisioning wrote), if provisioned.
    pub fn user_pin(&self) -> Option<Pin> {
        let text = std::fs::read_to_string(&self.pin_path).ok()?;
        Some(Pin::new(text.trim()))
    }

    /// Wait until it is provisioned and serves its certificate (or it goes down).
    pub async fn wait_ready(&self) -> bool {
        let Some(mut status) = self.with_node(|n| n.local().subscribe()) else {
            return false;
        };
        loop {
            if status.borrow_and_update().has_identity() {
                return true;
            }
            if status.changed().await.is_err() {
                return false;
            }
        }
    }
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("name", &self.name)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// Options every simulated node runs with.
pub(super) fn node_options(runner: &SimulatedRunner, workers: usize) -> NodeOptions {
    NodeOptions {
        runner: Some(Arc::new(runner.clone())),
        workers,
        refresh_interval: std::time::Duration::from_millis(500),
        ..NodeOptions::default()
    }
}
