//! Traffic: a functional server checking the deployed services' secrets (granted and ungranted functions
//! alternate), and the main node forwarding messages to its secondaries, each at its rate.

use std::time::{Duration, Instant};

use aos_actors::api::ErrorCode;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::time::MissedTickBehavior;

use super::context::{Ctx, Service};
use super::record::{EventKind, Failure};
use crate::scenario::Traffic;

/// A function no service is ever granted.
pub const UNGRANTED_FUNCTION: &str = "not-granted";
/// Requests in flight at most; ticks beyond are skipped (the rate is then what the unit sustains).
const MAX_IN_FLIGHT: usize = 512;
/// How long a forwarded message may take.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn run(ctx: &Ctx<'_>, traffic: Traffic) {
    let end = tokio::time::Instant::now() + traffic.duration;
    // A functional server starts serving once it reaches IAM.
    if let Some(checker) = ctx.checker() {
        let wait = traffic.duration.min(crate::unit::PATIENCE);
        if let Err(e) = checker.client().connected(wait).await {
            ctx.event(
                Some(0),
                EventKind::Error,
                format!("functional server: IAM unreachable: {e}"),
            );
        }
    }
    let mut checks = ticker(traffic.checks_per_sec);
    let mut messages = ticker(traffic.messages_per_sec);
    let (send_checks, send_messages) = (traffic.checks_per_sec > 0, traffic.messages_per_sec > 0);
    let mut in_flight = FuturesUnordered::new();
    let (mut n_check, mut n_message) = (0usize, 0usize);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = checks.tick(), if send_checks => {
                if in_flight.len() < MAX_IN_FLIGHT {
                    n_check += 1;
                    if let Some(job) = check(ctx, n_check) {
                        in_flight.push(futures_util::future::Either::Left(job));
                    }
                }
            }
            _ = messages.tick(), if send_messages => {
                if in_flight.len() < MAX_IN_FLIGHT {
                    n_message += 1;
                    if let Some(job) = message(ctx, n_message) {
                        in_flight.push(futures_util::future::Either::Right(job));
                    }
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
}

fn ticker(per_sec: u32) -> tokio::time::Interval {
    let period = if per_sec == 0 {
        Duration::from_secs(3600 * 24)
    } else {
        Duration::from_secs_f64(1.0 / f64::from(per_sec))
    };
    let mut t = tokio::time::interval(period);
    t.set_missed_tick_behavior(MissedTickBehavior::Burst);
    t
}

/// The `n`-th check: service `n/2` round robin, granted function on odd `n`, ungranted on even.
fn check<'c>(ctx: &'c Ctx<'_>, n: usize) -> Option<impl std::future::Future<Output = ()> + 'c> {
    let service: Service = {
        let services = ctx.services.borrow();
        if services.is_empty() {
            return None;
        }
        services[(n / 2) % services.len()].clone()
    };
    let granted = n % 2 == 1;
    let function = if granted {
        service.functions[(n / 2) % service.functions.len()].clone()
    } else {
        UNGRANTED_FUNCTION.to_owned()
    };
    let runner = ctx.unit.nodes[service.node].runner.clone();
    let Some(secret) = runner.secret_of(&service.ident) else {
        let t = ctx.now();
        ctx.rec().second(t).no_instance += 1;
        return None;
    };
    let checker = ctx.checker()?;
    Some(async move {
        let t = ctx.now();
        let started = Instant::now();
        let answer = checker.authorize(&secret, &service.server, &function).await;
        let latency = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let still_running = runner.secret_of(&service.ident).as_ref() == Some(&secret);
        let mut rec = ctx.rec();
        match (granted, answer) {
            (true, Ok(_)) => {
                let s = rec.second(t);
                s.granted_ok += 1;
                s.latencies_us.push(latency);
            }
            (true, Err(_)) if !still_running => rec.second(t).unavailable += 1,
            (true, Err(e)) => {
                let s = rec.second(t);
                s.granted_failed += 1;
                rec.granted_failures.push(Failure {
                    t,
                    node: service.node,
                    detail: format!(
                        "{} {function:?} on {}: {e}",
                        service.ident.item_id, service.server
                    ),
                });
            }
            (false, Ok(a)) => {
                rec.second(t).ungranted_accepted += 1;
                rec.ungranted_accepted.push(Failure {
                    t,
                    node: service.node,
                    detail: format!(
                        "{} was granted {function:?} ({}) on {}",
                        service.ident.item_id, a.permission, service.server
                    ),
                });
            }
            (false, Err(e)) if e.code == ErrorCode::Unauthorized => {
                let s = rec.second(t);
                s.ungranted_refused += 1;
                s.latencies_us.push(latency);
            }
            (false, Err(_)) => rec.second(t).unavailable += 1,
        }
    })
}

/// The `n`-th message: to the secondaries still provisioned, round robin.
fn message<'c>(ctx: &'c Ctx<'_>, n: usize) -> Option<impl std::future::Future<Output = ()> + 'c> {
    let targets: Vec<usize> = {
        let rec = ctx.rec();
        (1..ctx.unit.nodes.len())
            .filter(|i| !rec.deprovisioned.contains(i) && !rec.nodes[*i].serials.is_empty())
            .collect()
    };
    if targets.is_empty() {
        return None;
    }
    let node = targets[n % targets.len()];
    Some(async move {
        let t = ctx.now();
        let answer = ctx.unit.message(node, MESSAGE_TIMEOUT).await;
        let mut rec = ctx.rec();
        match answer {
            Ok(()) => {
                rec.second(t).messages_ok += 1;
                rec.nodes[node].messages_ok += 1;
            }
            Err(e) => {
                rec.second(t).messages_failed += 1;
                rec.nodes[node].messages_failed += 1;
                rec.message_failures.push(Failure {
                    t,
                    node,
                    detail: e.to_string(),
                });
            }
        }
    })
}
