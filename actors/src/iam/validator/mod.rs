//! The cert validator: periodic validation of every module and certificate renewal.
//!
//! At start and every `validation_interval` it asks every module (except `skip_validation` ones) to remove
//! invalid certificates and orphan keys, then schedules a renewal of each type's current certificate at
//! `threshold_percent` of its lifetime, up to `jitter_percent` earlier at random. A tick (every
//! [`ValidatorOptions::tick`]) renews what is due: a new key and CSR in the module, the [`Renewer`] gets it
//! signed, the module applies it. The old certificate and key stay until the new one is stored. Errors are
//! retryable (retry after `retry_interval`) or fatal (renewal of that type stops; the status says why).
//! `iam` renews last, so IAM's own TLS identity changes after every other.
//!
//! Time comes from the injected [`Clock`]; tests move it and send [`ValidateNow`] / [`RenewDue`].

mod renewer;
mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use aos_config::{CertModuleConfig, RenewalConfig};

pub use renewer::{BoxFuture, RenewError, RenewalRequest, Renewer};
pub use schedule::{random_fraction, renew_at, RenewalStatus};

use crate::clock::Clock;
use crate::iam::cert_handler::{
    CertChanged, CertHandler, ForType, GetModuleConfigs, SubscribeCertChanged,
};
use crate::iam::cert_module::{self, CertError, CertInfo, Validation};

/// Knobs of the validator.
#[derive(Debug, Clone)]
pub struct ValidatorOptions {
    /// How often due renewals are checked.
    pub tick: Duration,
    /// Run the periodic timers (off in tests that drive the validator by messages).
    pub timers: bool,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        ValidatorOptions {
            tick: Duration::from_secs(60),
            timers: true,
        }
    }
}

/// The validator actor.
pub struct CertValidator {
    handler: Addr<CertHandler>,
    clock: Arc<dyn Clock>,
    renewer: Arc<dyn Renewer>,
    policy: RenewalConfig,
    options: ValidatorOptions,
    status: HashMap<String, RenewalStatus>,
}

impl CertValidator {
    /// A validator over `handler`'s modules.
    pub fn new(
        handler: Addr<CertHandler>,
        clock: Arc<dyn Clock>,
        renewer: Arc<dyn Renewer>,
        policy: RenewalConfig,
        options: ValidatorOptions,
    ) -> Self {
        CertValidator {
            handler,
            clock,
            renewer,
            policy,
            options,
            status: HashMap::new(),
        }
    }

    fn schedule(&mut self, current: Option<&CertInfo>, cert_type: &str) {
        if matches!(
            self.status.get(cert_type),
            Some(RenewalStatus::Failed(_) | RenewalStatus::Renewing)
        ) {
            return;
        }
        let status = match current {
            Some(cert) => RenewalStatus::Scheduled {
                at: renew_at(cert, &self.policy, random_fraction()),
                serial: cert.serial.clone(),
            },
            None => RenewalStatus::Idle,
        };
        self.status.insert(cert_type.to_owned(), status);
    }
}

impl Actor for CertValidator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Certificates applied by others (provisioning, cloud-driven renewal, an operator) are scheduled as
        // they arrive, not only at the next validation pass.
        let (handler, me) = (
            self.handler.clone(),
            ctx.address().recipient::<CertChanged>(),
        );
        ctx.spawn(
            async move {
                let Ok(modules) = handler.send(GetModuleConfigs).await else {
                    return;
                };
                for m in modules.iter().filter(|m| !m.skip_validation && !m.self_signed) {
                    let subscribe = SubscribeCertChanged {
                        cert_type: m.id.clone(),
                        subscriber: me.clone(),
                    };
                    if !matches!(handler.send(subscribe).await, Ok(Ok(()))) {
                        tracing::warn!(cert_type = %m.id, "validator cannot follow certificate changes");
                    }
                }
            }
            .into_actor(self),
        );
        if !self.options.timers {
            return;
        }
        ctx.notify(ValidateNow);
        ctx.run_interval(self.policy.validation_interval, |_, ctx| {
            ctx.notify(ValidateNow)
        });
        ctx.run_interval(self.options.tick, |_, ctx| ctx.notify(RenewDue));
    }
}

impl Handler<CertChanged> for CertValidator {
    type Result = ();

    /// A new current certificate: renew it when its time comes (a renewal of ours in flight schedules its
    /// own result; an earlier failure is forgotten, the new certificate gets a fresh start).
    fn handle(&mut self, msg: CertChanged, _: &mut Context<Self>) {
        let cert_type = msg.info.cert_type.clone();
        if matches!(self.status.get(&cert_type), Some(RenewalStatus::Renewing)) {
            return;
        }
        self.status.remove(&cert_type);
        self.schedule(Some(&msg.info), &cert_type);
    }
}

/// Validate every module now; returns what each pass found.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<BTreeMap<String, Validation>, CertError>")]
pub struct ValidateNow;

impl Handler<ValidateNow> for CertValidator {
    type Result = ResponseActFuture<Self, Result<BTreeMap<String, Validation>, CertError>>;

    fn handle(&mut self, _: ValidateNow, _: &mut Context<Self>) -> Self::Result {
        let handler = self.handler.clone();
        Box::pin(
            async move {
                let modules = handler
                    .send(GetModuleConfigs)
                    .await
                    .map_err(|_| CertError::Mailbox("validator".into()))?;
                let mut reports = BTreeMap::new();
                for m in modules.iter().filter(|m| !m.skip_validation) {
                    let report = handler
                        .send(ForType::new(&m.id, cert_module::Validate {}))
                        .await
                        .map_err(|_| CertError::Mailbox(m.id.clone()))?;
                    match report {
                        Ok(report) => {
                            crate::audit::validation_removed(&m.id, &report);
                            reports.insert(m.id.clone(), report);
                        }
                        // A module whose token is not there yet (unprovisioned node) has nothing to validate.
                        Err(CertError::Token { cert_type, source }) => {
                            tracing::debug!(%cert_type, error = %source, "validation skipped");
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok((modules, reports))
            }
            .into_actor(self)
            .map(|result, act, _| {
                let (modules, reports): (Vec<CertModuleConfig>, _) = result?;
                for m in modules
                    .iter()
                    .filter(|m| !m.skip_validation && !m.self_signed)
                {
                    let current = reports
                        .get(&m.id)
                        .and_then(|r: &Validation| r.valid.first());
                    act.schedule(current, &m.id);
                }
                Ok(reports)
            }),
        )
    }
}

/// Renew every certificate whose time has come; returns the outcome per type.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "BTreeMap<String, Result<CertInfo, String>>")]
pub struct RenewDue;

impl Handler<RenewDue> for CertValidator {
    type Result = ResponseActFuture<Self, BTreeMap<String, Result<CertInfo, String>>>;

    fn handle(&mut self, _: RenewDue, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let mut due: Vec<String> = self
            .status
            .iter()
            .filter(|(_, s)| matches!(s, RenewalStatus::Scheduled { at, .. } if *at <= now))
            .map(|(t, _)| t.clone())
            .collect();
        due.sort_by_key(|t| (t == "iam", t.clone()));
        for t in &due {
            self.status.insert(t.clone(), RenewalStatus::Renewing);
        }
        let (handler, renewer) = (self.handler.clone(), self.renewer.clone());
        Box::pin(
            async move {
                let mut outcomes = Vec::new();
                for cert_type in due {
                    let outcome = renew_one(&handler, renewer.as_ref(), &cert_type).await;
                    outcomes.push((cert_type, outcome));
                }
                outcomes
            }
            .into_actor(self)
            .map(|outcomes, act, _| {
                let now = act.clock.now();
                let mut report = BTreeMap::new();
                for (cert_type, outcome) in outcomes {
                    let entry = match outcome {
                        Ok(info) => {
                            crate::telemetry::renewal(true);
                            crate::audit::cert_renewed(&info);
                            act.status.remove(&cert_type);
                            act.schedule(Some(&info), &cert_type);
                            Ok(info)
                        }
                        Err(RenewError::Retryable(reason)) => {
                            crate::telemetry::renewal(false);
                            crate::audit::cert_renewal_failed(&cert_type, &reason, false);
                            let serial = String::new();
                            act.status.insert(
                                cert_type.clone(),
                                RenewalStatus::Scheduled {
                                    at: now + act.policy.retry_interval,
                                    serial,
                                },
                            );
                            Err(reason)
                        }
                        Err(RenewError::Fatal(reason)) => {
                            crate::telemetry::renewal(false);
                            crate::audit::cert_renewal_failed(&cert_type, &reason, true);
                            act.status
                                .insert(cert_type.clone(), RenewalStatus::Failed(reason.clone()));
                            Err(reason)
                        }
                    };
                    report.insert(cert_type, entry);
                }
                report
            }),
        )
    }
}

async fn renew_one(
    handler: &Addr<CertHandler>,
    renewer: &dyn Renewer,
    cert_type: &str,
) -> Result<CertInfo, RenewError> {
    let local = |e: CertError| RenewError::Retryable(e.to_string());
    let mailbox = |_| RenewError::Retryable(format!("{cert_type}: cert module is not running"));
    let csr = handler
        .send(ForType::new(
            cert_type,
            cert_module::CreateKey {
                subject: String::new(),
            },
        ))
        .await
        .map_err(mailbox)?
        .map_err(local)?;
    let chain = renewer
        .renew(RenewalRequest {
            cert_type: cert_type.to_owned(),
            csr,
        })
        .await?;
    let applied = handler
        .send(ForType::new(
            cert_type,
            cert_module::ApplyCert {
                pem: chain.into_bytes(),
            },
        ))
        .await
        .map_err(mailbox)?
        .map_err(local)?;
    Ok(applied.info)
}

/// The renewal status of every scheduled type.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "BTreeMap<String, RenewalStatus>")]
pub struct GetRenewalStatus;

impl Handler<GetRenewalStatus> for CertValidator {
    type Result = actix::MessageResult<GetRenewalStatus>;

    fn handle(&mut self, _: GetRenewalStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(
            self.status
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
