//! [`CertCredentials`]: keeps TLS [`Credentials`] equal to the current certificate of one cert type of this
//! node (its token key and chain), following every change the cert handler announces.
//!
//! The CM presents its `cm` certificate this way (to the cloud and to SMs), and an SM its `sm` certificate.
//! A cert type without a certificate (an unprovisioned node) leaves the credentials empty: handshakes that
//! need them fail until provisioning applies one.

use std::sync::Arc;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, WrapFuture};
use aos_transport::tls::Credentials;

use crate::iam::cert_handler::{CertChanged, CertHandler, ForType, SubscribeCertChanged};
use crate::iam::cert_module::{self, CertError};

/// Feeds [`Credentials`] from the current certificate of a cert type.
pub struct CertCredentials {
    handler: Addr<CertHandler>,
    cert_type: String,
    credentials: Credentials,
    /// Loads started; only the latest one's result is used (an older one may finish later).
    loads: u64,
}

// === impl CertCredentials ===

impl CertCredentials {
    /// Follow the current certificate of `cert_type` in `handler` into `credentials`. Start it with
    /// `Actor::start`; it loads the current certificate (if any) at once.
    pub fn new(handler: Addr<CertHandler>, cert_type: &str, credentials: Credentials) -> Self {
        CertCredentials {
            handler,
            cert_type: cert_type.to_owned(),
            credentials,
            loads: 0,
        }
    }

    fn load(&mut self, serial: Option<String>, ctx: &mut Context<Self>) {
        self.loads += 1;
        let load = self.loads;
        // At start a node that is not provisioned has no certificate, and its token may not even be
        // initialised yet: not worth a warning.
        let initial = serial.is_none();
        let (handler, cert_type) = (self.handler.clone(), self.cert_type.clone());
        let fut = async move {
            let serial = match serial {
                Some(serial) => serial,
                None => {
                    let current = handler
                        .send(ForType::new(
                            cert_type.clone(),
                            cert_module::GetCert {
                                issuer: Vec::new(),
                                serial: String::new(),
                            },
                        ))
                        .await
                        .map_err(|_| CertError::Mailbox(cert_type.clone()))?;
                    current?.serial
                }
            };
            handler
                .send(ForType::new(
                    cert_type.clone(),
                    cert_module::GetTokenKey { serial },
                ))
                .await
                .map_err(|_| CertError::Mailbox(cert_type))?
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| match result {
            _ if load != act.loads => {}
            Ok((key, chain)) => {
                if let Err(err) = act.credentials.set(chain, Arc::new(key)) {
                    tracing::error!(cert_type = %act.cert_type, "cannot use the certificate for TLS: {err}");
                }
            }
            Err(CertError::NotFound(_)) => {
                tracing::info!(cert_type = %act.cert_type, "no certificate yet; TLS credentials stay empty")
            }
            Err(err) if initial => {
                tracing::info!(cert_type = %act.cert_type, "no usable certificate yet ({err}); TLS credentials stay empty")
            }
            Err(err) => {
                tracing::warn!(cert_type = %act.cert_type, "cannot load the certificate for TLS: {err}")
            }
        }));
    }
}

impl Actor for CertCredentials {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.handler.do_send(SubscribeCertChanged {
            cert_type: self.cert_type.clone(),
            subscriber: ctx.address().recipient(),
        });
        self.load(None, ctx);
    }
}

impl Handler<CertChanged> for CertCredentials {
    type Result = ();

    fn handle(&mut self, msg: CertChanged, ctx: &mut Context<Self>) {
        self.load(Some(msg.info.serial), ctx);
    }
}

impl std::fmt::Debug for CertCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCredentials")
            .field("cert_type", &self.cert_type)
            .field("ready", &self.credentials.is_ready())
            .finish()
    }
}
