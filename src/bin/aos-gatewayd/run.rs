//! The daemon's life: start the node, report readiness, serve metrics, drain on SIGTERM / SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use aos_actors::iam::server::LocalStatus;
use aos_actors::node::{Node, NodeOptions};
use aos_config::Config;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};

use crate::metrics::Probe;

/// Time the components get to close their links after a signal (the daemon exits within 5 s).
const DRAIN: Duration = Duration::from_secs(4);

/// Run the node until a signal; the exit code.
pub fn run(config: Config, metrics: Option<SocketAddr>) -> ExitCode {
    let system = actix_rt::System::new();
    let code = system.block_on(serve(&config, metrics));
    keep_tokens_open(&config);
    code
}

async fn serve(config: &Config, metrics: Option<SocketAddr>) -> ExitCode {
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut node = match Node::start(config, NodeOptions::default()).await {
        Ok(node) => node,
        Err(err) => {
            tracing::error!("node {} cannot start: {err}", config.node.id);
            eprintln!("aos-gatewayd: node {} cannot start: {err}", config.node.id);
            return ExitCode::FAILURE;
        }
    };
    let probe = Probe::new(&node);
    let metrics_task = match metrics {
        Some(addr) => match crate::http::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "serving /metrics and /ready");
                Some(actix_rt::spawn(crate::http::serve(listener, probe.clone())))
            }
            Err(err) => {
                tracing::error!("{err}");
                eprintln!("aos-gatewayd: {err}");
                node.stop().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    report(&node, &node.status());
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    let mut status = node.local().subscribe();
    let signal_name = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            changed = status.changed() => {
                if changed.is_err() {
                    break "the node's status channel closing";
                }
                let now = status.borrow_and_update().clone();
                report(&node, &now);
            }
        }
    };
    tracing::info!("{signal_name}: draining connections");
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    if let Some(task) = metrics_task {
        task.abort();
    }
    if tokio::time::timeout(DRAIN, node.stop()).await.is_err() {
        tracing::warn!("components did not stop within {DRAIN:?}; exiting anyway");
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Log the node's readiness and tell systemd (`STATUS=`).
fn report(node: &Node, status: &LocalStatus) {
    let text = if status.has_identity() {
        tracing::info!(
            node = %node.config().node.id,
            public = %node.public_addr(),
            protected = %node.protected_addr(),
            "ready: provisioned, serving the protected endpoint"
        );
        format!("ready ({:?})", status.state)
    } else if status.cert.is_some() {
        tracing::info!(
            node = %node.config().node.id,
            state = ?status.state,
            "not ready: provisioning in progress"
        );
        format!("provisioning ({:?})", status.state)
    } else {
        tracing::info!(
            node = %node.config().node.id,
            public = %node.public_addr(),
            state = ?status.state,
            fingerprint = %node.provisioning_fingerprint(),
            "not ready: no certificate yet, serving the provisioning endpoint only (clients pin the fingerprint)"
        );
        format!(
            "not provisioned ({:?}); pin {}",
            status.state,
            node.provisioning_fingerprint()
        )
    };
    let _ = sd_notify::notify(false, &[NotifyState::Status(&text)]);
}

/// Keep one handle per token open until the process has exited: SoftHSM crashes when a worker thread
/// closes a token's last session while its static destructors run (DESIGN.md, pitfalls).
fn keep_tokens_open(config: &Config) {
    for module in config.enabled_cert_modules() {
        let Some(pin) =
            aos_pkcs11::PinSource::from_params(&module.pkcs11).and_then(|p| p.read().ok())
        else {
            continue;
        };
        let Ok(library) = aos_pkcs11::Module::open(&module.pkcs11.library) else {
            continue;
        };
        aos_pkcs11::Token::keep_open_until_exit(library, module.pkcs11.selector(), pin);
    }
}
