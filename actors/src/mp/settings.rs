//! Settings of the MP server and bridge, from the node's `[mp]` and `[transport]` tables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aos_config::Config;
use aos_transport::frame::{Channel, FrameCodec};
use aos_transport::link::{LinkAddr, LinkOptions};

use super::protocol::{channel_key, TUNNEL_CHANNELS};
use super::MpError;

/// Extra room, beyond every stream's window, for frames waiting to be written (credits, pongs, refusals).
const QUEUE_SLACK: usize = 1 << 20;

/// How one MP link frames and limits its tunnels (both sides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxSettings {
    /// Receive window of each stream in bytes (`mp.stream_window`); also the most this side sends on a
    /// stream before the peer acknowledges, whatever larger window the peer offers.
    pub stream_window: u32,
    /// Most streams open at once on the link (`mp.max_streams`).
    pub max_streams: usize,
    /// Largest frame (`transport.max_frame_size`); tunnel bytes travel in frames of at most this size.
    pub max_frame_size: usize,
    /// Time limit of the TLS handshake (`transport.handshake_timeout`), of the main side's connection to a
    /// target endpoint, and of a tunnel open waiting for its answer.
    pub handshake_timeout: Duration,
}

/// Where the main node's MP server listens and where each channel's tunnels go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The listen address (`mp.listen`).
    pub listen: LinkAddr,
    /// Target endpoint per channel (`mp.channels`); a channel without one is refused with `NoTarget`.
    pub targets: BTreeMap<Channel, LinkAddr>,
    /// Tunnel limits.
    pub mux: MuxSettings,
    /// Link options for listening and for connecting to targets (vchan ring settings).
    pub link_options: LinkOptions,
}

/// Where a secondary node's bridge dials and which local listeners it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    /// The main node's MP server (`mp.main_addr`).
    pub main: LinkAddr,
    /// Local listener per channel (`mp.channels`).
    pub local: BTreeMap<Channel, LinkAddr>,
    /// Tunnel limits.
    pub mux: MuxSettings,
    /// First reconnect pause (`transport.reconnect_backoff_initial`).
    pub reconnect_backoff_initial: Duration,
    /// Largest reconnect pause (`transport.reconnect_backoff_max`).
    pub reconnect_backoff_max: Duration,
    /// Link options for dialling and for the local listeners.
    pub link_options: LinkOptions,
}

// === impl MuxSettings ===

impl MuxSettings {
    /// The settings of `config`'s `[mp]` and `[transport]` tables.
    pub fn from_config(config: &Config) -> MuxSettings {
        MuxSettings {
            stream_window: config.mp.stream_window,
            max_streams: config.mp.max_streams as usize,
            max_frame_size: config.transport.max_frame_size as usize,
            handshake_timeout: config.transport.handshake_timeout,
        }
    }

    /// The frame codec; fails when `max_frame_size` is out of range.
    pub(crate) fn codec(&self) -> Result<FrameCodec, MpError> {
        FrameCodec::new(self.max_frame_size).map_err(|e| MpError::InvalidSettings(Arc::new(e)))
    }

    /// Most bytes allowed to wait for the writer before a peer that keeps sending pings or opens without
    /// reading is cut off: every stream's window, plus room for control frames.
    pub(crate) fn max_queued(&self) -> usize {
        (self.stream_window as usize)
            .saturating_mul(self.max_streams)
            .saturating_add(QUEUE_SLACK)
    }
}

impl Default for MuxSettings {
    fn default() -> Self {
        let config = aos_config::MpConfig::default();
        let transport = aos_config::TransportConfig::default();
        MuxSettings {
            stream_window: config.stream_window,
            max_streams: config.max_streams as usize,
            max_frame_size: transport.max_frame_size as usize,
            handshake_timeout: transport.handshake_timeout,
        }
    }
}

// === impl ServerSettings ===

impl ServerSettings {
    /// The MP server of a main node's configuration; `None` when `mp.listen` is unset.
    pub fn from_config(config: &Config) -> Result<Option<ServerSettings>, MpError> {
        let Some(listen) = &config.mp.listen else {
            return Ok(None);
        };
        Ok(Some(ServerSettings {
            listen: parse("listen", listen)?,
            targets: channels(config)?,
            mux: MuxSettings::from_config(config),
            link_options: LinkOptions::default(),
        }))
    }
}

// === impl BridgeSettings ===

impl BridgeSettings {
    /// The bridge of a secondary node's configuration; `None` when `mp.main_addr` is unset.
    pub fn from_config(config: &Config) -> Result<Option<BridgeSettings>, MpError> {
        let Some(main) = &config.mp.main_addr else {
            return Ok(None);
        };
        Ok(Some(BridgeSettings {
            main: parse("main_addr", main)?,
            local: channels(config)?,
            mux: MuxSettings::from_config(config),
            reconnect_backoff_initial: config.transport.reconnect_backoff_initial,
            reconnect_backoff_max: config.transport.reconnect_backoff_max,
            link_options: LinkOptions::default(),
        }))
    }
}

fn parse(key: &str, addr: &str) -> Result<LinkAddr, MpError> {
    addr.parse().map_err(|source| MpError::InvalidAddr {
        key: key.to_owned(),
        source: Arc::new(source),
    })
}

fn channels(config: &Config) -> Result<BTreeMap<Channel, LinkAddr>, MpError> {
    let mut map = BTreeMap::new();
    for (channel, (key, addr)) in TUNNEL_CHANNELS
        .into_iter()
        .zip(config.mp.channels.entries())
    {
        debug_assert_eq!(channel_key(channel), Some(key));
        if let Some(addr) = addr {
            map.insert(channel, parse(&format!("channels.{key}"), addr)?);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = r#"ca_cert = "/ca.pem"
[node]
id = "main"
unit_id = "unit1"
role = "main"
[transport]
max_frame_size = 32768
[mp]
listen = "vchan:///dev/shm/aos-mp"
stream_window = 65536
[mp.channels]
iam_open = "tcp://127.0.0.1:8090"
cm_secure = "unix:///run/aos/cm.sock"
[[cert_modules]]
id = "iam"
algorithm = "ecc"
[cert_modules.pkcs11]
library = "/lib.so"
user_pin_path = "/pin"
"#;

    #[test]
    fn server_settings_come_from_the_mp_and_transport_tables() {
        let config = Config::from_str(MAIN, "main.toml").unwrap();
        let settings = ServerSettings::from_config(&config).unwrap().unwrap();
        assert_eq!(
            settings.listen,
            LinkAddr::VchanShm("/dev/shm/aos-mp".into())
        );
        assert_eq!(
            settings.targets.keys().copied().collect::<Vec<_>>(),
            [Channel::IamOpen, Channel::CmSecure]
        );
        assert_eq!(
            settings.targets[&Channel::CmSecure],
            LinkAddr::Unix("/run/aos/cm.sock".into())
        );
        assert_eq!(settings.mux.stream_window, 65_536);
        assert_eq!(settings.mux.max_frame_size, 32_768);
        assert_eq!(settings.mux.max_streams, 64);
        assert!(BridgeSettings::from_config(&config).unwrap().is_none());
    }

    #[test]
    fn a_secondary_gets_bridge_settings_with_the_transport_backoff() {
        let text = MAIN
            .replace("role = \"main\"", "role = \"secondary\"")
            .replace("listen = ", "main_addr = ")
            .replace(
                "[transport]\n",
                "[transport]\nreconnect_backoff_initial = \"2s\"\n",
            )
            + "[[cert_modules]]\nid = \"mp\"\nalgorithm = \"ecc\"\n[cert_modules.pkcs11]\nlibrary = \"/lib.so\"\nuser_pin_path = \"/pin\"\n"
            + "[iam]\nmain_public_addr = \"main:8090\"\nmain_protected_addr = \"main:8089\"\n";
        let config = Config::from_str(&text, "secondary.toml").unwrap();
        let settings = BridgeSettings::from_config(&config).unwrap().unwrap();
        assert_eq!(settings.main, LinkAddr::VchanShm("/dev/shm/aos-mp".into()));
        assert_eq!(settings.local.len(), 2);
        assert_eq!(settings.reconnect_backoff_initial, Duration::from_secs(2));
        assert!(ServerSettings::from_config(&config).unwrap().is_none());
    }

    #[test]
    fn queue_limit_covers_every_window() {
        let mux = MuxSettings::default();
        assert!(mux.max_queued() > mux.stream_window as usize * mux.max_streams);
        assert!(mux.codec().is_ok());
        let bad = MuxSettings {
            max_frame_size: 0,
            ..mux
        };
        assert!(matches!(bad.codec(), Err(MpError::InvalidSettings(_))));
    }
}
