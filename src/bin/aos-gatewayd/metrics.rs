//! `/metrics`: a snapshot of the node taken at each scrape, encoded in the Prometheus text format with
//! prometheus-client.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `aos_node_ready` | gauge | — (1 once the node holds its certificate) |
//! | `aos_cert_not_after_seconds` | gauge | `type` (current certificate's expiry, Unix time) |
//! | `aos_renewals_total` | counter | `result` = `ok` / `error` |
//! | `aos_handshakes_total` | counter | — (completed TLS handshakes, both sides) |
//! | `aos_handshakes_refused_total` | counter | `reason` (e.g. `unknown_issuer`, `role_not_accepted`) |
//! | `aos_permission_checks_total` | counter | `result` = `allowed` / `denied` |
//! | `aos_connected_nodes` | gauge | — (secondaries registered with this main node) |
//! | `aos_frame_errors_total` | counter | — (connections closed for an invalid frame) |

use std::time::UNIX_EPOCH;

use actix::Addr;
use aos_actors::iam::cert_handler::{CertHandler, ForType, GetModuleConfigs};
use aos_actors::iam::cert_module::GetCert;
use aos_actors::iam::nodes::NodeControllerHandle;
use aos_actors::iam::server::LocalNode;
use aos_actors::node::Node;
use aos_actors::telemetry::{self, Counters};
use aos_transport::tls::{handshake_stats, HandshakeStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// What a scrape reads from the running node. Cheap to clone.
#[derive(Clone)]
pub struct Probe {
    local: LocalNode,
    certs: Addr<CertHandler>,
    controller: Option<NodeControllerHandle>,
}

impl Probe {
    /// The parts of `node` scrapes look at.
    pub fn new(node: &Node) -> Probe {
        Probe {
            local: node.local().clone(),
            certs: node.iam().certs.clone(),
            controller: node.controller().cloned(),
        }
    }

    /// Whether the node holds its own certificate.
    pub fn ready(&self) -> bool {
        self.local.status().has_identity()
    }

    /// Everything `/metrics` shows, now.
    pub async fn snapshot(&self) -> Snapshot {
        let mut certs = Vec::new();
        let modules = self.certs.send(GetModuleConfigs).await.unwrap_or_default();
        for module in modules {
            let current = GetCert {
                issuer: Vec::new(),
                serial: String::new(),
            };
            if let Ok(Ok(info)) = self.certs.send(ForType::new(&module.id, current)).await {
                let not_after = info
                    .not_after
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                certs.push((module.id, i64::try_from(not_after).unwrap_or(i64::MAX)));
            }
        }
        let connected = match &self.controller {
            Some(controller) => controller.registrations().await.len(),
            None => 0,
        };
        Snapshot {
            ready: self.ready(),
            certs,
            connected: i64::try_from(connected).unwrap_or(i64::MAX),
            counters: telemetry::counters(),
            handshakes: handshake_stats(),
        }
    }
}

/// One scrape's values.
#[derive(Debug)]
pub struct Snapshot {
    ready: bool,
    certs: Vec<(String, i64)>,
    connected: i64,
    counters: Counters,
    handshakes: HandshakeStats,
}

impl Snapshot {
    /// The Prometheus text exposition of this snapshot.
    pub fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("aos");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn labelled_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "node_ready",
            "1 once the node holds its own certificate",
            i64::from(self.ready),
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "cert_not_after_seconds",
                "Expiry (Unix time) of the current certificate of each type",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (cert_type, not_after) in &self.certs {
                let labels = [("type", cert_type.as_str())];
                ConstGauge::new(*not_after).encode(family.encode_family(&labels)?)?;
            }
        }
        let c = &self.counters;
        labelled_counter(
            &mut encoder,
            "renewals",
            "Certificate renewals",
            "result",
            &[("ok", c.renewals_ok), ("error", c.renewals_failed)],
        )?;
        counter(
            &mut encoder,
            "handshakes",
            "Completed TLS handshakes",
            self.handshakes.completed,
        )?;
        let refused: Vec<(&str, u64)> = self
            .handshakes
            .refused
            .iter()
            .map(|(reason, count)| (reason.as_str(), *count))
            .collect();
        labelled_counter(
            &mut encoder,
            "handshakes_refused",
            "TLS peers refused, by reason",
            "reason",
            &refused,
        )?;
        labelled_counter(
            &mut encoder,
            "permission_checks",
            "GetPermissions answers",
            "result",
            &[
                ("allowed", c.permission_allowed),
                ("denied", c.permission_denied),
            ],
        )?;
        gauge(
            &mut encoder,
            "connected_nodes",
            "Secondary nodes registered with this main node",
            self.connected,
        )?;
        counter(
            &mut encoder,
            "frame_errors",
            "Connections closed for an invalid frame",
            c.frame_errors,
        )?;
        Ok(())
    }
}
