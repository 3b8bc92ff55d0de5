//! How the cloud server is set up: [`CloudServerOptions`].

use std::time::Duration;

use aos_actors::net::LinkConfig;
use aos_transport::tls::TlsOptions;

/// The cloud's DNS name in the simulator and in tests.
pub const DEFAULT_SERVER_NAME: &str = "cloud.local";

/// How the cloud server behaves.
#[derive(Debug, Clone)]
pub struct CloudServerOptions {
    /// DNS names of the cloud's server certificate (CMs check their `cm.cloud_server_name` against them).
    pub server_names: Vec<String>,
    /// Lifetime asked for every certificate the cloud signs; `None` takes the CA's default. Short lifetimes
    /// (seconds) exercise renewal.
    pub cert_lifetime: Option<Duration>,
    /// Framing and handshake timeout of CM links.
    pub link: LinkConfig,
    /// TLS versions and resumption.
    pub tls: TlsOptions,
    /// Time the cloud waits for the CM to carry out one request (creating keys on a token takes a while).
    pub request_timeout: Duration,
}

impl Default for CloudServerOptions {
    fn default() -> Self {
        CloudServerOptions {
            server_names: vec![DEFAULT_SERVER_NAME.to_owned()],
            cert_lifetime: None,
            link: LinkConfig::default(),
            tls: TlsOptions::default(),
            request_timeout: Duration::from_secs(300),
        }
    }
}
