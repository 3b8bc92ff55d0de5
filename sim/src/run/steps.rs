//! Playing the timeline: each step in order (waiting for its `at`), background jobs (traffic, faults, the
//! sampler, the cloud's renewals) polled alongside, then everything drained.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

use super::context::{Ctx, Service};
use super::record::{EventKind, FaultSpan};
use super::{sampler, traffic};
use crate::scenario::{FaultEvent, FaultKind, Plan, PlannedAction};
use crate::unit::{service_ident, service_spec};

type Job<'c> = Pin<Box<dyn Future<Output = ()> + 'c>>;

pub(super) async fn play(ctx: &Ctx<'_>, plan: &Plan) {
    let mut background: FuturesUnordered<Job<'_>> = FuturesUnordered::new();
    background.push(Box::pin(sampler::run(ctx)));
    if let (Some(lifetime), true) = (
        ctx.scenario.unit.cert_lifetime,
        ctx.scenario.unit.cloud_renews,
    ) {
        background.push(Box::pin(sampler::cloud_renewals(ctx, lifetime)));
    }
    for fault in &plan.random_faults {
        let fault = fault.clone();
        background.push(Box::pin(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(ctx.t0) + fault.at).await;
            apply_fault(ctx, fault, true).await;
        }));
    }
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        if let Some(at) = step.at {
            let due = tokio::time::Instant::from_std(ctx.t0) + at;
            drive(tokio::time::sleep_until(due), &mut background).await;
        }
        let what = describe(ctx, &step.action);
        *ctx.progress.borrow_mut() = super::Progress {
            step: (i + 1, total),
            what: what.clone(),
        };
        ctx.event(None, EventKind::Step, format!("step {}: {what}", i + 1));
        match &step.action {
            PlannedAction::Traffic(t) => background.push(Box::pin(traffic::run(ctx, t.clone()))),
            PlannedAction::Fault(f) => {
                let fault = FaultEvent {
                    at: Duration::from_secs_f64(ctx.now()),
                    ..f.clone()
                };
                background.push(Box::pin(apply_fault(ctx, fault, false)));
            }
            action => {
                drive(blocking(ctx, action), &mut background).await;
                ctx.event(None, EventKind::Done, format!("step {} done", i + 1));
            }
        }
    }
    *ctx.progress.borrow_mut() = super::Progress {
        step: (total, total),
        what: "draining".into(),
    };
    // Everything but the sampler and the cloud's renewals ends by itself.
    let loops = 1 + usize::from(
        ctx.scenario.unit.cert_lifetime.is_some() && ctx.scenario.unit.cloud_renews,
    );
    while background.len() > loops {
        if background.next().await.is_none() {
            break;
        }
    }
    ctx.done.set(true);
    while background.next().await.is_some() {}
}

/// Await `fut` while polling the background jobs.
async fn drive<T>(fut: impl Future<Output = T>, background: &mut FuturesUnordered<Job<'_>>) -> T {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            Some(()) = background.next(), if !background.is_empty() => {}
        }
    }
}

fn describe(ctx: &Ctx<'_>, action: &PlannedAction) -> String {
    let names = |list: &[usize]| {
        if list.len() == ctx.unit.nodes.len() && list.len() > 3 {
            format!("all {} nodes", list.len())
        } else {
            list.iter()
                .map(|i| ctx.name(*i))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match action {
        PlannedAction::Provision(list) => format!("provision {}", names(list)),
        PlannedAction::Deploy { node, service, .. } => {
            format!("deploy {service} on {}", ctx.name(*node))
        }
        PlannedAction::Traffic(t) => format!(
            "traffic {}/s checks, {}/s messages for {:.1}s",
            t.checks_per_sec,
            t.messages_per_sec,
            t.duration.as_secs_f64()
        ),
        PlannedAction::Renew(list) => format!("renew {}", names(list)),
        PlannedAction::Deprovision(n) => format!("deprovision {}", ctx.name(*n)),
        PlannedAction::Pause(n) => format!("pause {}", ctx.name(*n)),
        PlannedAction::Resume(n) => format!("resume {}", ctx.name(*n)),
        PlannedAction::Wait(d) => format!("wait {:.1}s", d.as_secs_f64()),
        PlannedAction::Fault(f) => format!(
            "{} on {} for {:.1}s",
            f.kind.name(),
            ctx.name(f.node),
            f.duration.as_secs_f64()
        ),
    }
}

/// A step that completes before the next starts.
async fn blocking(ctx: &Ctx<'_>, action: &PlannedAction) {
    let unit = ctx.unit;
    match action {
        PlannedAction::Provision(list) => {
            for (i, result) in unit.provision(list, ctx.options.parallel).await {
                match result {
                    Ok(()) => ctx.rec().deprovisioned.retain(|d| *d != i),
                    Err(e) => ctx.event(
                        Some(i),
                        EventKind::Error,
                        format!("provisioning failed: {e}"),
                    ),
                }
            }
        }
        PlannedAction::Deploy {
            node,
            service,
            server,
            grant,
        } => {
            let spec = service_spec(service, server, grant);
            let specs = {
                let mut desired = ctx.desired.borrow_mut();
                desired[*node].retain(|s| s.ident != spec.ident);
                desired[*node].push(spec);
                desired[*node].clone()
            };
            match unit.deploy(*node, specs).await {
                Ok(_) => {
                    let mut services = ctx.services.borrow_mut();
                    let ident = service_ident(service);
                    services.retain(|s| !(s.node == *node && s.ident == ident));
                    services.push(Service {
                        node: *node,
                        ident,
                        server: server.clone(),
                        functions: grant.iter().map(|(f, _)| f.clone()).collect(),
                    });
                }
                Err(e) => ctx.event(
                    Some(*node),
                    EventKind::Error,
                    format!("deploy of {service} failed: {e}"),
                ),
            }
        }
        PlannedAction::Renew(list) => {
            for i in list {
                if let Err(e) = unit.renew(*i).await {
                    ctx.event(Some(*i), EventKind::Error, format!("renewal failed: {e}"));
                }
            }
        }
        PlannedAction::Deprovision(n) => {
            ctx.rec().deprovisioned.push(*n);
            ctx.services.borrow_mut().retain(|s| s.node != *n);
            if let Err(e) = unit.deprovision(*n).await {
                ctx.event(
                    Some(*n),
                    EventKind::Error,
                    format!("deprovisioning failed: {e}"),
                );
            }
        }
        PlannedAction::Pause(n) => {
            if let Err(e) = unit.pause(*n).await {
                ctx.event(Some(*n), EventKind::Error, format!("pause failed: {e}"));
            }
        }
        PlannedAction::Resume(n) => {
            if let Err(e) = unit.resume(*n).await {
                ctx.event(Some(*n), EventKind::Error, format!("resume failed: {e}"));
            }
        }
        PlannedAction::Wait(d) => tokio::time::sleep(*d).await,
        PlannedAction::Traffic(_) | PlannedAction::Fault(_) => {}
    }
}

/// Apply a fault, hold it, heal it. A node already under a fault is left alone (recorded as skipped).
async fn apply_fault(ctx: &Ctx<'_>, fault: FaultEvent, random: bool) {
    let node = fault.node;
    let name = ctx.name(node).to_owned();
    let kind = fault.kind.name();
    if ctx.busy.borrow()[node] {
        ctx.event(
            Some(node),
            EventKind::Fault,
            format!("{kind} on {name} skipped: already under a fault"),
        );
        return;
    }
    ctx.busy.borrow_mut()[node] = true;
    let start = ctx.now();
    let span = {
        let mut rec = ctx.rec();
        rec.faults.push(FaultSpan {
            node,
            kind: kind.to_owned(),
            start,
            end: None,
            random,
        });
        rec.faults.len() - 1
    };
    let origin = if random { " (seeded)" } else { "" };
    ctx.event(
        Some(node),
        EventKind::Fault,
        format!(
            "{kind} on {name} for {:.1}s{origin}",
            fault.duration.as_secs_f64()
        ),
    );
    let unit = ctx.unit;
    match fault.kind {
        FaultKind::CutLink => {
            unit.cut(node);
            tokio::time::sleep(fault.duration).await;
            unit.restore(node);
        }
        FaultKind::Crash => {
            unit.crash(node).await;
            tokio::time::sleep(fault.duration).await;
            if node == 0 {
                // The functional server's client reconnects by itself; the MP events need a new subscription.
                *ctx.mp_events.borrow_mut() = None;
            }
            if let Err(e) = unit.restart(node).await {
                ctx.event(Some(node), EventKind::Error, format!("restart failed: {e}"));
            } else if node == 0 {
                redeploy(ctx).await;
            }
        }
        FaultKind::TokenFail => match unit.fail_token(node) {
            Ok(token_fault) => {
                tokio::time::sleep(fault.duration).await;
                if let Err(e) = unit.heal_token(token_fault) {
                    ctx.event(
                        Some(node),
                        EventKind::Error,
                        format!("token did not come back: {e}"),
                    );
                }
            }
            Err(e) => ctx.event(
                Some(node),
                EventKind::Error,
                format!("token_fail not applied: {e}"),
            ),
        },
    }
    ctx.rec().faults[span].end = Some(ctx.now());
    ctx.busy.borrow_mut()[node] = false;
    ctx.event(
        Some(node),
        EventKind::Heal,
        format!("{kind} on {name} healed"),
    );
}

/// After the main node restarts, its CM knows no desired instances (they live in memory): the cloud sends
/// them again, node by node, as it would to a CM that reconnects.
async fn redeploy(ctx: &Ctx<'_>) {
    let desired: Vec<(usize, Vec<aos_actors::api::sm::InstanceSpec>)> = ctx
        .desired
        .borrow()
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, specs)| !specs.is_empty() && !ctx.rec().deprovisioned.contains(i))
        .collect();
    if !ctx.unit.nodes[0].wait_ready().await {
        return;
    }
    for (node, specs) in desired {
        if let Err(e) = ctx.unit.deploy(node, specs).await {
            ctx.event(
                Some(node),
                EventKind::Error,
                format!("redeploy after the main node's restart: {e}"),
            );
        }
    }
}
