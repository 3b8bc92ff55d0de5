//! Named in-process vchan rings (`vchan-mem://<name>`), for the simulator.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::mpsc;

use super::{pair, VchanConfig, VchanError, VchanStream};

struct Entry {
    config: VchanConfig,
    incoming: mpsc::UnboundedSender<VchanStream>,
}

fn registry() -> std::sync::MutexGuard<'static, HashMap<String, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A named in-process vchan listener. Names are process-wide; dropping the listener frees the name.
#[derive(Debug)]
pub struct MemListener {
    name: String,
    incoming: mpsc::UnboundedReceiver<VchanStream>,
}

impl MemListener {
    /// Registers `name`; clients get rings of `config.ring_size`.
    pub fn bind(name: &str, config: &VchanConfig) -> Result<MemListener, VchanError> {
        config.ring_log2()?;
        let mut reg = registry();
        if reg.contains_key(name) {
            return Err(VchanError::NameInUse { name: name.into() });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        reg.insert(
            name.to_owned(),
            Entry {
                config: config.clone(),
                incoming: tx,
            },
        );
        Ok(MemListener {
            name: name.to_owned(),
            incoming: rx,
        })
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next client.
    pub async fn accept(&mut self) -> Result<VchanStream, VchanError> {
        // The sender lives in the registry until our Drop, so `recv` cannot return None before.
        self.incoming
            .recv()
            .await
            .ok_or_else(|| VchanError::NoListener {
                name: self.name.clone(),
            })
    }
}

impl Drop for MemListener {
    fn drop(&mut self) {
        registry().remove(&self.name);
    }
}

/// Connects to the in-process listener named `name`.
pub fn connect_mem(name: &str) -> Result<VchanStream, VchanError> {
    let reg = registry();
    let entry = reg
        .get(name)
        .ok_or_else(|| VchanError::NoListener { name: name.into() })?;
    let (server, client) = pair(&entry.config)?;
    entry
        .incoming
        .send(server)
        .map_err(|_| VchanError::NoListener { name: name.into() })?;
    Ok(client)
}
