//! [`NodeOptions`]: what a node's configuration does not say (time source, worker threads, test knobs).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::iam::nodes::ForwardOptions;
use crate::iam::provisioner::ProvisionerOptions;
use crate::iam::server::DEFAULT_REFRESH_INTERVAL;
use crate::iam::validator::ValidatorOptions;
use crate::sm::InstanceRunner;

/// How a [`Node`](super::Node) runs, beyond its configuration. `Default` is what the daemon uses.
#[derive(Clone)]
pub struct NodeOptions {
    /// Time source of certificate checks and renewal (the system clock in production).
    pub clock: Arc<dyn Clock>,
    /// Worker arbiters (threads) for links and tunnels.
    pub workers: usize,
    /// How the SM runs instances; `None`: child processes ([`ProcessRunner`](crate::sm::ProcessRunner)).
    pub runner: Option<Arc<dyn InstanceRunner>>,
    /// Validator tick (how often due renewals are checked).
    pub validator: ValidatorOptions,
    /// Provisioner fault injection (tests).
    pub provisioner: ProvisionerOptions,
    /// Timeouts and retries of requests the main node forwards to secondary nodes.
    pub forward: ForwardOptions,
    /// Safety-net period of the node's own TLS identity refresh.
    pub refresh_interval: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            clock: Arc::new(SystemClock),
            workers: 2,
            runner: None,
            validator: ValidatorOptions::default(),
            provisioner: ProvisionerOptions::default(),
            forward: ForwardOptions::default(),
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("workers", &self.workers)
            .field("validator", &self.validator)
            .field("forward", &self.forward)
            .field("refresh_interval", &self.refresh_interval)
            .finish_non_exhaustive()
    }
}
