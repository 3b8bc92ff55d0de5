//! The cert handler: routes requests by cert type to the cert module actors and keeps the cert-changed
//! subscriptions.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{
    Actor, Addr, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture, SyncArbiter,
};
use aos_config::CertModuleConfig;

use super::cert_module::{
    self, Applied, CertError, CertInfo, CertModule, CertModuleActor, NodeIdentity, TrustRoots,
    Validation,
};
use crate::clock::Clock;

/// Sent to subscribers when the current certificate of a type changes (exactly once per change).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct CertChanged {
    /// The new current certificate.
    pub info: CertInfo,
}

struct ModuleEntry {
    config: CertModuleConfig,
    addr: Addr<CertModuleActor>,
}

/// Routes by cert type; one [`CertModuleActor`] (own worker thread) per enabled module.
pub struct CertHandler {
    modules: HashMap<String, ModuleEntry>,
    subscribers: HashMap<String, Vec<Recipient<CertChanged>>>,
}

// === impl CertHandler ===

impl CertHandler {
    /// Start a module actor for every enabled module in `configs`. Must run inside an actix System.
    pub fn new(
        configs: &[CertModuleConfig],
        node: NodeIdentity,
        roots: Arc<TrustRoots>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut modules = HashMap::new();
        for config in configs.iter().filter(|c| !c.disabled) {
            let (c, n, r, k) = (config.clone(), node.clone(), roots.clone(), clock.clone());
            let addr = SyncArbiter::start(1, move || {
                CertModuleActor::new(CertModule::new(c.clone(), n.clone(), r.clone(), k.clone()))
            });
            modules.insert(
                config.id.clone(),
                ModuleEntry {
                    config: config.clone(),
                    addr,
                },
            );
        }
        CertHandler {
            modules,
            subscribers: HashMap::new(),
        }
    }

    fn module(&self, cert_type: &str) -> Result<Addr<CertModuleActor>, CertError> {
        self.modules
            .get(cert_type)
            .map(|m| m.addr.clone())
            .ok_or_else(|| CertError::UnknownCertType(cert_type.to_owned()))
    }
}

impl Actor for CertHandler {
    type Context = Context<Self>;
}

/// Send `msg` to the module of `cert_type` and flatten mailbox errors.
fn forward<M>(
    handler: &CertHandler,
    cert_type: String,
    msg: M,
) -> ResponseFuture<Result<M::Item, CertError>>
where
    M: ModuleRequest,
    M::Result: Send,
    CertModuleActor: Handler<M>,
{
    let addr = handler.module(&cert_type);
    Box::pin(async move {
        let addr = addr?;
        match addr.send(msg).await {
            Ok(result) => M::flatten(result),
            Err(_) => Err(CertError::Mailbox(cert_type)),
        }
    })
}

/// A module message whose result is `Result<Item, CertError>` (or `()` for `Release`).
pub trait ModuleRequest: Message + Sized + Send + 'static {
    /// What the request yields on success.
    type Item: Send + 'static;
    /// Turn the module's answer into a `Result`.
    fn flatten(result: Self::Result) -> Result<Self::Item, CertError>;
}

macro_rules! module_request {
    ($msg:ty, $item:ty) => {
        impl ModuleRequest for $msg {
            type Item = $item;
            fn flatten(result: Result<$item, CertError>) -> Result<$item, CertError> {
                result
            }
        }
    };
}

module_request!(cert_module::CreateKey, String);
module_request!(cert_module::ApplyCert, Applied);
module_request!(cert_module::GetCert, CertInfo);
module_request!(cert_module::ListCerts, Vec<CertInfo>);
module_request!(cert_module::Clear, usize);
module_request!(cert_module::CreateSelfSigned, CertInfo);
module_request!(cert_module::Validate, Validation);
module_request!(
    cert_module::GetTokenKey,
    (
        aos_pkcs11::TokenKey,
        Vec<rustls_pki_types::CertificateDer<'static>>
    )
);

impl ModuleRequest for cert_module::Release {
    type Item = ();
    fn flatten(_: ()) -> Result<(), CertError> {
        Ok(())
    }
}

impl ModuleRequest for cert_module::PendingKeys {
    type Item = Vec<String>;
    fn flatten(ids: Vec<String>) -> Result<Vec<String>, CertError> {
        Ok(ids)
    }
}

/// A request for the module of one cert type.
#[derive(Debug, Clone)]
pub struct ForType<M> {
    /// Cert type.
    pub cert_type: String,
    /// The module message.
    pub msg: M,
}

impl<M> ForType<M> {
    /// Address `msg` to the module of `cert_type`.
    pub fn new(cert_type: impl Into<String>, msg: M) -> Self {
        ForType {
            cert_type: cert_type.into(),
            msg,
        }
    }
}

impl<M: ModuleRequest> Message for ForType<M> {
    type Result = Result<M::Item, CertError>;
}

macro_rules! plain_forward {
    ($($msg:ty),*) => {$(
        impl Handler<ForType<$msg>> for CertHandler {
            type Result = ResponseFuture<Result<<$msg as ModuleRequest>::Item, CertError>>;

            fn handle(&mut self, req: ForType<$msg>, _: &mut Context<Self>) -> Self::Result {
                forward(self, req.cert_type, req.msg)
            }
        }
    )*};
}

plain_forward!(
    cert_module::CreateKey,
    cert_module::GetCert,
    cert_module::ListCerts,
    cert_module::Clear,
    cert_module::Validate,
    cert_module::Release,
    cert_module::GetTokenKey,
    cert_module::PendingKeys
);

/// Internal: tell subscribers of a type about a new current certificate.
#[derive(Message)]
#[rtype(result = "()")]
struct Notify(CertInfo);

impl Handler<Notify> for CertHandler {
    type Result = ();

    fn handle(&mut self, Notify(info): Notify, _: &mut Context<Self>) {
        if let Some(subs) = self.subscribers.get_mut(&info.cert_type) {
            subs.retain(|s| s.try_send(CertChanged { info: info.clone() }).is_ok());
        }
    }
}

impl Handler<ForType<cert_module::ApplyCert>> for CertHandler {
    type Result = ResponseFuture<Result<Applied, CertError>>;

    fn handle(
        &mut self,
        req: ForType<cert_module::ApplyCert>,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let me = ctx.address();
        let cert_type = req.cert_type.clone();
        let fut = forward(self, req.cert_type, req.msg);
        Box::pin(async move {
            let applied = fut
                .await
                .inspect_err(|err| crate::audit::cert_apply_refused(&cert_type, err))?;
            crate::audit::cert_applied(&applied.info, applied.current_changed, &applied.evicted);
            if applied.current_changed {
                me.do_send(Notify(applied.info.clone()));
            }
            Ok(applied)
        })
    }
}

impl Handler<ForType<cert_module::CreateSelfSigned>> for CertHandler {
    type Result = ResponseFuture<Result<CertInfo, CertError>>;

    fn handle(
        &mut self,
        req: ForType<cert_module::CreateSelfSigned>,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let me = ctx.address();
        let fut = forward(self, req.cert_type, req.msg);
        Box::pin(async move {
            let info = fut.await?;
            crate::audit::cert_applied(&info, true, &[]);
            me.do_send(Notify(info.clone()));
            Ok(info)
        })
    }
}

/// Subscribe to changes of the current certificate of `cert_type`.
#[derive(Message)]
#[rtype(result = "Result<(), CertError>")]
pub struct SubscribeCertChanged {
    /// Cert type.
    pub cert_type: String,
    /// Who hears about changes.
    pub subscriber: Recipient<CertChanged>,
}

impl Handler<SubscribeCertChanged> for CertHandler {
    type Result = Result<(), CertError>;

    fn handle(&mut self, msg: SubscribeCertChanged, _: &mut Context<Self>) -> Self::Result {
        self.module(&msg.cert_type)?;
        self.subscribers
            .entry(msg.cert_type)
            .or_default()
            .push(msg.subscriber);
        Ok(())
    }
}

/// Cert types a client may request certificates for: every enabled module except self-signed ones.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<String>")]
pub struct GetCertTypes;

impl Handler<GetCertTypes> for CertHandler {
    type Result = Vec<String>;

    fn handle(&mut self, _: GetCertTypes, _: &mut Context<Self>) -> Vec<String> {
        let mut types: Vec<String> = self
            .modules
            .values()
            .filter(|m| !m.config.self_signed)
            .map(|m| m.config.id.clone())
            .collect();
        types.sort();
        types
    }
}

/// The configurations of every enabled module (for the provisioner and the validator).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<CertModuleConfig>")]
pub struct GetModuleConfigs;

impl Handler<GetModuleConfigs> for CertHandler {
    type Result = Vec<CertModuleConfig>;

    fn handle(&mut self, _: GetModuleConfigs, _: &mut Context<Self>) -> Vec<CertModuleConfig> {
        let mut configs: Vec<CertModuleConfig> =
            self.modules.values().map(|m| m.config.clone()).collect();
        configs.sort_by(|a, b| a.id.cmp(&b.id));
        configs
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use actix::{Actor, Context, Handler};
    use aos_config::KeyAlgorithm;

    use super::*;
    use crate::clock::Clock;
    use crate::iam::test_support::Fixture;

    struct Collector(Arc<Mutex<Vec<CertInfo>>>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<CertChanged> for Collector {
        type Result = ();
        fn handle(&mut self, msg: CertChanged, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.info);
        }
    }

    #[actix_rt::test]
    async fn subscribers_hear_exactly_one_event_per_change() {
        let fx = Fixture::new();
        fx.own("aoscore");
        let mut iam = fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore");
        iam.max_items = 5;
        let sm = fx.module_config("sm", KeyAlgorithm::EccP256, "aoscore");
        let clock: Arc<dyn Clock> = Arc::new(fx.clock.clone());
        let handler =
            CertHandler::new(&[iam, sm], fx.node.clone(), fx.roots.clone(), clock).start();
        let events = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector(events.clone()).start();
        handler
            .send(SubscribeCertChanged {
                cert_type: "iam".into(),
                subscriber: collector.recipient(),
            })
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            handler
                .send(SubscribeCertChanged {
                    cert_type: "nope".into(),
                    subscriber: Collector(Arc::default()).start().recipient()
                })
                .await
                .unwrap(),
            Err(CertError::UnknownCertType(_))
        ));
        assert_eq!(handler.send(GetCertTypes).await.unwrap(), vec!["iam", "sm"]);

        let apply = |t: &'static str, days: u64| {
            let handler = handler.clone();
            let fx = &fx;
            async move {
                let csr = handler
                    .send(ForType::new(
                        t,
                        cert_module::CreateKey {
                            subject: String::new(),
                        },
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                handler
                    .send(ForType::new(
                        t,
                        cert_module::ApplyCert {
                            pem: fx.sign(&csr, days).into_bytes(),
                        },
                    ))
                    .await
                    .unwrap()
            }
        };
        let a = apply("iam", 30).await.unwrap(); // first cert: change
        let b = apply("iam", 60).await.unwrap(); // later expiry: change
        let c = apply("iam", 10).await.unwrap(); // earlier expiry: current unchanged
        assert!(a.current_changed && b.current_changed && !c.current_changed);
        apply("sm", 30).await.unwrap(); // another type: not our subscription
        let bad = handler
            .send(ForType::new(
                "iam",
                cert_module::ApplyCert {
                    pem: b"garbage".to_vec(),
                },
            ))
            .await
            .unwrap();
        assert!(bad.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let serials: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .map(|i| i.serial.clone())
            .collect();
        assert_eq!(serials, vec![a.info.serial, b.info.serial]);
        assert!(matches!(
            handler
                .send(ForType::new("nope", cert_module::ListCerts {}))
                .await
                .unwrap(),
            Err(CertError::UnknownCertType(_))
        ));
    }
}
