//! Permission lookups per second, with 1000 registered instances:
//! - `store/get_hit`, `store/get_miss`: `PermissionStore::get` alone (the hot path);
//! - `actor/*`: `GetPermissions` round trips through the `PermissionHandler` from a `System`, one at a time
//!   on the same arbiter, 16 in flight (the mailbox capacity), and one at a time from another arbiter.
//!
//! Run: `cargo bench -p aos-actors --bench permissions`. Criterion's "thrpt" is lookups per second.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use aos_actors::iam::permissions::{
    GetPermissions, InstanceIdent, InstanceKind, PermissionHandler, PermissionStore, Permissions,
    Secret,
};
use aos_config::PermissionLimits;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const INSTANCES: u64 = 1000;
const IN_FLIGHT: u64 = 16;

/// A store with `INSTANCES` instances, each with a few permissions on three servers.
fn populated(dir: &std::path::Path) -> (PermissionStore, Vec<Secret>) {
    let mut store =
        PermissionStore::open(dir.join("permissions.db"), PermissionLimits::default()).unwrap();
    let secrets = (0..INSTANCES)
        .map(|i| {
            let ident = InstanceIdent {
                item_id: format!("service-{i:04}"),
                subject_id: "subject".into(),
                instance: i % 4,
                kind: InstanceKind::Service,
            };
            let mut perms = Permissions::new();
            for server in ["vis", "dm", "sm"] {
                perms.insert(
                    server.into(),
                    BTreeMap::from([
                        ("*".into(), "r".into()),
                        ("Vehicle.Speed".into(), "rw".into()),
                    ]),
                );
            }
            store.register(ident, perms).unwrap()
        })
        .collect();
    (store, secrets)
}

fn store_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (store, secrets) = populated(dir.path());
    let misses: Vec<Secret> = (0..INSTANCES)
        .map(|_| Secret::generate().unwrap())
        .collect();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 1) % secrets.len();
            black_box(store.get(black_box(secrets[i].expose()), "vis")).unwrap()
        })
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 1) % misses.len();
            black_box(store.get(black_box(misses[i].expose()), "vis")).unwrap_err()
        })
    });
    group.finish();
}

async fn round_trips(addr: &Addr<PermissionHandler>, secrets: &[Secret], iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        let msg = GetPermissions {
            secret: secrets[i as usize % secrets.len()].clone(),
            server_id: "vis".into(),
        };
        black_box(addr.send(msg).await.unwrap().unwrap());
    }
    start.elapsed()
}

fn actor_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (store, secrets) = populated(dir.path());
    let sys = actix::System::new();
    let addr = sys.block_on(async { PermissionHandler::new(store).start() });

    let mut group = c.benchmark_group("actor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip_same_arbiter", |b| {
        b.iter_custom(|iters| sys.block_on(round_trips(&addr, &secrets, iters)))
    });
    group.bench_function("pipelined_16_same_arbiter", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                let mut pending = Vec::with_capacity(IN_FLIGHT as usize);
                let mut sent = 0;
                while sent < iters {
                    let batch = IN_FLIGHT.min(iters - sent);
                    for k in 0..batch {
                        pending.push(addr.send(GetPermissions {
                            secret: secrets[(sent + k) as usize % secrets.len()].clone(),
                            server_id: "vis".into(),
                        }));
                    }
                    for request in pending.drain(..) {
                        black_box(request.await.unwrap().unwrap());
                    }
                    sent += batch;
                }
                start.elapsed()
            })
        })
    });

    let dir2 = tempfile::tempdir().unwrap();
    let (store2, secrets2) = populated(dir2.path());
    let arbiter = actix::Arbiter::new();
    let remote = sys.block_on(async {
        PermissionHandler::start_in_arbiter(&arbiter.handle(), move |_| {
            PermissionHandler::new(store2)
        })
    });
    group.bench_function("round_trip_other_arbiter", |b| {
        b.iter_custom(|iters| sys.block_on(round_trips(&remote, &secrets2, iters)))
    });
    group.finish();
    arbiter.stop();
}

criterion_group!(benches, store_get, actor_get);
criterion_main!(benches);
