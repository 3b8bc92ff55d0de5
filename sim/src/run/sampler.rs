//! The sampler: every 250 ms it looks at each node's state and `iam` certificate (renewals, expiry), and
//! the simulated cloud renews secondaries' certificates at half their lifetime when the scenario says so.

use std::time::{Duration, SystemTime};

use aos_actors::iam::provisioner::NodeState;
use aos_actors::mp::{MpServer, ServerEvent};
use tokio::sync::mpsc::error::TryRecvError;

use super::context::Ctx;
use super::record::EventKind;

const PERIOD: Duration = Duration::from_millis(250);

/// Sample until the run is done.
pub(super) async fn run(ctx: &Ctx<'_>) {
    while !ctx.done.get() {
        sample(ctx);
        ctx.show_progress();
        tokio::time::sleep(PERIOD).await;
    }
}

/// One look at every node.
pub(super) fn sample(ctx: &Ctx<'_>) {
    let t = ctx.now();
    let now = SystemTime::now();
    for (i, node) in ctx.unit.nodes.iter().enumerate() {
        let status = node.status();
        let state = match &status {
            Some((state, _)) => state.to_string(),
            None => "down".to_owned(),
        };
        let mut rec = ctx.rec();
        let changed = rec.nodes[i].states.last().is_none_or(|(_, s)| *s != state);
        if changed {
            rec.nodes[i].states.push((t, state.clone()));
            rec.event(
                t,
                Some(i),
                EventKind::State,
                format!("{} is {state}", node.name),
            );
        }
        let Some((state, Some(cert))) = status else {
            continue;
        };
        let n = &mut rec.nodes[i];
        if !n.serials.contains(&cert.serial) {
            let renewed = !n.serials.is_empty();
            n.serials.push(cert.serial.clone());
            if renewed {
                n.renewals += 1;
                let short: String = cert.serial.chars().take(8).collect();
                rec.event(
                    t,
                    Some(i),
                    EventKind::Renewal,
                    format!("{} has a new certificate ({short}…)", node.name),
                );
            }
        }
        if matches!(state, NodeState::Provisioned | NodeState::Paused) && cert.not_after < now {
            rec.nodes[i].expired_at.push(t);
        }
    }
    refused_peers(ctx);
}

/// Count the connections and tunnels the main node's MP server refused since the last look.
fn refused_peers(ctx: &Ctx<'_>) {
    let mut events = ctx.mp_events.borrow_mut();
    if events.is_none() {
        *events = ctx.unit.nodes[0]
            .with_node(|n| n.mp_server().map(MpServer::subscribe))
            .flatten();
    }
    let Some(rx) = events.as_mut() else {
        return;
    };
    let mut refused = 0;
    let closed = loop {
        match rx.try_recv() {
            Ok(ServerEvent::HandshakeFailed { .. } | ServerEvent::TunnelRefused { .. }) => {
                refused += 1
            }
            Ok(_) => {}
            Err(TryRecvError::Empty) => break false,
            Err(TryRecvError::Disconnected) => break true,
        }
    };
    if closed {
        *events = None;
    }
    ctx.rec().nodes[0].refused_peers += refused;
}

/// The cloud's renewal of secondaries: each secondary's certificates when half their lifetime is gone.
pub(super) async fn cloud_renewals(ctx: &Ctx<'_>, lifetime: Duration) {
    while !ctx.done.get() {
        for i in 1..ctx.unit.nodes.len() {
            if ctx.done.get() {
                return;
            }
            let Some((NodeState::Provisioned, Some(cert))) = ctx.unit.nodes[i].status() else {
                continue;
            };
            let due = cert
                .not_after
                .checked_sub(lifetime / 2)
                .unwrap_or(cert.not_after);
            if SystemTime::now() < due || ctx.busy.borrow()[i] || ctx.busy.borrow()[0] {
                continue;
            }
            if let Err(e) = ctx.unit.renew(i).await {
                ctx.event(
                    Some(i),
                    EventKind::Error,
                    format!("cloud renewal of {}: {e}", ctx.name(i)),
                );
            }
        }
        tokio::time::sleep(PERIOD).await;
    }
}
