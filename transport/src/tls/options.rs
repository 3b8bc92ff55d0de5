//! TLS options of an endpoint: protocol versions, session resumption, handshake timeout.

use std::time::Duration;

use aos_config::TransportConfig;
use rustls::SupportedProtocolVersion;

/// Options shared by server and client configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsOptions {
    /// Also offer and accept TLS 1.2 (default: TLS 1.3 only).
    pub allow_tls12: bool,
    /// Allow session resumption. When off, a server keeps no session cache and issues no tickets, and a
    /// client stores no sessions: every connection does a full handshake (and signs with the token).
    pub session_resumption: bool,
    /// Time limit of a handshake, including the acceptance confirmation (default 10 s).
    pub handshake_timeout: Duration,
}

// === impl TlsOptions ===

impl TlsOptions {
    /// The protocol versions to enable.
    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static TLS13_AND_12: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        if self.allow_tls12 {
            TLS13_AND_12
        } else {
            TLS13_ONLY
        }
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            allow_tls12: false,
            session_resumption: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl From<&TransportConfig> for TlsOptions {
    fn from(config: &TransportConfig) -> Self {
        TlsOptions {
            allow_tls12: config.allow_tls12,
            session_resumption: config.session_resumption,
            handshake_timeout: config.handshake_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_transport_config_defaults() {
        let options = TlsOptions::from(&TransportConfig::default());
        assert_eq!(options, TlsOptions::default());
        assert_eq!(options.versions(), &[&rustls::version::TLS13]);
        let with_12 = TlsOptions {
            allow_tls12: true,
            ..options
        };
        assert_eq!(with_12.versions().len(), 2);
    }
}
