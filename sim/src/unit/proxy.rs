//! [`LinkProxy`]: the simulator's cut point on a secondary's MP link. The bridge dials the proxy, the
//! proxy dials the main node's MP server and copies bytes both ways. [`LinkProxy::cut`] drops every live
//! connection and refuses new ones until [`LinkProxy::restore`]: to both ends it looks like a cable pulled.
//! It works on every link kind (TCP, Unix sockets, the vchan ring), since it only moves bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aos_transport::link::{connect, LinkAddr, LinkError, Listener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A cuttable byte relay in front of the main node's MP server. Stops relaying when dropped.
#[derive(Debug)]
pub struct LinkProxy {
    addr: LinkAddr,
    cut: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

// === impl LinkProxy ===

impl LinkProxy {
    /// Listen on `listen` and relay each connection to `target`. Must run inside a tokio runtime.
    pub async fn start(listen: &LinkAddr, target: LinkAddr) -> Result<LinkProxy, LinkError> {
        let mut listener = Listener::bind(listen).await?;
        let addr = listener.local_addr().clone();
        let (cut, _) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let (cut_tx, refused_count) = (cut.clone(), refused.clone());
        let task = tokio::spawn(async move {
            while let Ok(accepted) = listener.accept().await {
                if *cut_tx.borrow() {
                    refused_count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut cut_rx = cut_tx.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let mut inbound = accepted.link;
                    let Ok(mut outbound) = connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(LinkProxy {
            addr,
            cut,
            refused,
            task,
        })
    }

    /// Where the bridge dials.
    pub fn local_addr(&self) -> &LinkAddr {
        &self.addr
    }

    /// Drop every live connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relay again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.task.abort();
    }
}
