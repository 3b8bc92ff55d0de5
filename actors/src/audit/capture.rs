//! A tracing subscriber for tests that keeps every event and every span field it sees, with all their
//! fields as text, so a test can look for audit records and for leaked secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

use crate::net::ArbiterPool;

/// One event, or the fields of one span (as created or later recorded).
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub target: String,
    pub level: Level,
    /// Field name → value (`Display` for `%` fields, `Debug` otherwise, strings as they are).
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Every text this record carries: target and each field's name and value.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.target.as_str()).chain(
            self.fields
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        )
    }
}

/// Collects what it sees; clones share the collection.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    records: Arc<Mutex<Vec<Captured>>>,
    next_span: Arc<AtomicU64>,
}

impl Capture {
    pub fn new() -> Capture {
        Capture::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Captured>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Capture on this thread while the guard lives.
    pub fn set_default(&self) -> tracing::dispatcher::DefaultGuard {
        tracing::dispatcher::set_default(&Dispatch::new(self.clone()))
    }

    /// Capture on every arbiter of `pool` (a fresh pool, of which nothing else picks arbiters meanwhile) for
    /// the rest of their life.
    pub async fn install_on(&self, pool: &ArbiterPool) {
        for _ in 0..pool.size() {
            let dispatch = Dispatch::new(self.clone());
            let (done, installed) = tokio::sync::oneshot::channel();
            pool.next().spawn(async move {
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                let _ = done.send(());
            });
            let _ = installed.await;
        }
    }

    /// The process-wide capture: the global default subscriber of this test binary, which sees every thread
    /// without a default of its own (`SyncArbiter` workers, `spawn_blocking` threads), from every test.
    pub fn global() -> &'static Capture {
        static GLOBAL: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            let capture = Capture::new();
            tracing::dispatcher::set_global_default(Dispatch::new(capture.clone()))
                .expect("nothing else in the test binary sets a global subscriber");
            capture
        })
    }

    pub fn records(&self) -> Vec<Captured> {
        self.lock().clone()
    }

    /// Audit records of `event`.
    pub fn audit(&self, event: &str) -> Vec<Captured> {
        self.lock()
            .iter()
            .filter(|r| r.target == super::TARGET && r.field("event") == Some(event))
            .cloned()
            .collect()
    }

    fn push(&self, metadata: &Metadata<'_>, fields: BTreeMap<String, String>) {
        self.lock().push(Captured {
            target: metadata.target().to_owned(),
            level: *metadata.level(),
            fields,
        });
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.push(span.metadata(), fields.0);
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.lock().push(Captured {
            target: "span".to_owned(),
            level: Level::TRACE,
            fields: fields.0,
        });
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.push(event.metadata(), fields.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
