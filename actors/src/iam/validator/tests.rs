//! Validator tests: an in-process CA as renewer, a moved clock, real tokens.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::{Actor, Addr};
use aos_config::KeyAlgorithm;
use aos_pkcs11::testkit::TestCa;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::iam::cert_handler::CertHandler;
use crate::iam::test_support::Fixture;

/// Signs CSRs with the test CA for `lifetime`; can be told to fail or to hold until released.
struct CaRenewer {
    ca: Arc<TestCa>,
    clock: ManualClock,
    lifetime: Duration,
    fail: Mutex<Option<RenewError>>,
    gate: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    calls: Mutex<Vec<String>>,
}

impl Renewer for CaRenewer {
    fn renew(&self, request: RenewalRequest) -> BoxFuture<Result<String, RenewError>> {
        self.calls.lock().unwrap().push(request.cert_type.clone());
        let fail = self.fail.lock().unwrap().clone();
        let gate = self.gate.lock().unwrap().take();
        let now = self.clock.now();
        let chain = self.ca.sign_csr(
            &request.csr,
            now - Duration::from_secs(60),
            now + self.lifetime,
        );
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            match fail {
                Some(err) => Err(err),
                None => Ok(chain),
            }
        })
    }
}

struct Setup {
    fx: Fixture,
    handler: Addr<CertHandler>,
    validator: Addr<CertValidator>,
    renewer: Arc<CaRenewer>,
    first: CertInfo,
}

const DAY: Duration = Duration::from_secs(86_400);

/// One `iam` module (P-256) provisioned with a 100-day certificate.
async fn setup(types: &[&str]) -> Setup {
    let fx = Fixture::new();
    fx.own("aoscore");
    let mut modules = Vec::new();
    for t in types {
        let mut m = fx.module_config(t, KeyAlgorithm::EccP256, "aoscore");
        m.max_items = 2;
        modules.push(m);
    }
    let clock: Arc<dyn Clock> = Arc::new(fx.clock.clone());
    let handler =
        CertHandler::new(&modules, fx.node.clone(), fx.roots.clone(), clock.clone()).start();
    let mut first = None;
    for t in types {
        let csr = handler
            .send(ForType::new(
                *t,
                cert_module::CreateKey {
                    subject: String::new(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        let now = fx.clock.now();
        let chain = fx.ca.sign_csr(&csr, now, now + 100 * DAY);
        let applied = handler
            .send(ForType::new(
                *t,
                cert_module::ApplyCert {
                    pem: chain.into_bytes(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        first.get_or_insert(applied.info);
    }
    let renewer = Arc::new(CaRenewer {
        ca: fx.ca.clone(),
        clock: fx.clock.clone(),
        lifetime: 100 * DAY,
        fail: Mutex::new(None),
        gate: Mutex::new(None),
        calls: Mutex::new(Vec::new()),
    });
    let validator = CertValidator::new(
        handler.clone(),
        clock,
        renewer.clone(),
        RenewalConfig::default(),
        ValidatorOptions {
            timers: false,
            ..ValidatorOptions::default()
        },
    )
    .start();
    Setup {
        fx,
        handler,
        validator,
        renewer,
        first: first.unwrap(),
    }
}

async fn list(s: &Setup, t: &str) -> Vec<CertInfo> {
    s.handler
        .send(ForType::new(t, cert_module::ListCerts {}))
        .await
        .unwrap()
        .unwrap()
}

fn at_share(cert: &CertInfo, percent: u64) -> SystemTime {
    let lifetime = cert.not_after.duration_since(cert.not_before).unwrap();
    cert.not_before + lifetime / 100 * u32::try_from(percent).unwrap()
}

#[actix_rt::test]
async fn renewal_fires_at_the_threshold_and_keeps_the_old_cert_until_applied() {
    let s = setup(&["iam"]).await;
    let (validator, renewer) = (s.validator.clone(), s.renewer.clone());
    validator.send(ValidateNow).await.unwrap().unwrap();
    let status = validator.send(GetRenewalStatus).await.unwrap();
    let Some(RenewalStatus::Scheduled { at, serial }) = status.get("iam").cloned() else {
        panic!("{status:?}")
    };
    assert_eq!(serial, s.first.serial);
    assert!(
        at >= at_share(&s.first, 70) && at <= at_share(&s.first, 80),
        "jittered threshold"
    );

    // Just before the earliest possible moment (70%): nothing happens.
    s.fx.clock.set(at_share(&s.first, 69));
    assert!(validator.send(RenewDue).await.unwrap().is_empty());
    assert!(renewer.calls.lock().unwrap().is_empty());

    // At the threshold: renewal runs. Hold it in the renewer to look at the token meanwhile.
    s.fx.clock.set(at_share(&s.first, 80));
    let (release, gate) = tokio::sync::oneshot::channel();
    *renewer.gate.lock().unwrap() = Some(gate);
    let pending = validator.send(RenewDue);
    let pending = tokio::spawn(pending);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = list(&s, "iam").await;
    assert_eq!(
        during.len(),
        1,
        "old cert alone while the new one is being signed"
    );
    assert_eq!(during[0].serial, s.first.serial);
    let _ = release.send(());
    let outcome = pending.await.unwrap().unwrap();
    let renewed = outcome.get("iam").unwrap().clone().unwrap();
    assert_ne!(renewed.serial, s.first.serial);
    let after = list(&s, "iam").await;
    assert_eq!(after.len(), 2, "old and new both kept (max_items = 2)");
    assert_eq!(after[0].serial, renewed.serial, "the new cert is current");
    // The next renewal is scheduled from the new certificate.
    let status = validator.send(GetRenewalStatus).await.unwrap();
    assert!(
        matches!(status.get("iam"), Some(RenewalStatus::Scheduled { serial, .. }) if *serial == renewed.serial)
    );
}

#[actix_rt::test]
async fn retryable_errors_retry_and_fatal_errors_stop() {
    let s = setup(&["sm", "iam"]).await;
    s.validator.send(ValidateNow).await.unwrap().unwrap();
    s.fx.clock.set(at_share(&s.first, 81));
    *s.renewer.fail.lock().unwrap() = Some(RenewError::Retryable("CA unreachable".into()));
    let out = s.validator.send(RenewDue).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        *s.renewer.calls.lock().unwrap(),
        vec!["sm", "iam"],
        "iam renews last"
    );
    // Not again before the retry interval.
    assert!(s.validator.send(RenewDue).await.unwrap().is_empty());
    s.fx.clock.advance(RenewalConfig::default().retry_interval);
    *s.renewer.fail.lock().unwrap() = Some(RenewError::Fatal("CSR refused".into()));
    let out = s.validator.send(RenewDue).await.unwrap();
    assert!(out
        .values()
        .all(|r| r.as_ref().unwrap_err().contains("refused")));
    let status = s.validator.send(GetRenewalStatus).await.unwrap();
    assert!(matches!(status.get("sm"), Some(RenewalStatus::Failed(r)) if r.contains("refused")));
    // Fatal: never retried, not even after a validation pass.
    s.fx.clock.advance(10 * DAY);
    s.validator.send(ValidateNow).await.unwrap().unwrap();
    assert!(s.validator.send(RenewDue).await.unwrap().is_empty());
    assert_eq!(s.renewer.calls.lock().unwrap().len(), 4);
    // Failed renewals left no pending junk behind after validation? Pending keys stay pending (the module
    // keeps at most five), and the current certificate is untouched.
    assert_eq!(list(&s, "sm").await.len(), 1);
}

#[actix_rt::test]
async fn validation_pass_removes_planted_orphans_through_the_actor() {
    let s = setup(&["cm"]).await;
    // Plant an orphan key pair by creating a key in a module that then "restarts" (a fresh handler).
    s.handler
        .send(ForType::new(
            "cm",
            cert_module::CreateKey {
                subject: String::new(),
            },
        ))
        .await
        .unwrap()
        .unwrap();
    let modules = vec![{
        let mut m = s.fx.module_config("cm", KeyAlgorithm::EccP256, "aoscore");
        m.max_items = 2;
        m
    }];
    let clock: Arc<dyn Clock> = Arc::new(s.fx.clock.clone());
    let fresh = CertHandler::new(
        &modules,
        s.fx.node.clone(),
        s.fx.roots.clone(),
        clock.clone(),
    )
    .start();
    let validator = CertValidator::new(
        fresh.clone(),
        clock,
        s.renewer.clone(),
        RenewalConfig::default(),
        ValidatorOptions {
            timers: false,
            ..ValidatorOptions::default()
        },
    )
    .start();
    let reports = validator.send(ValidateNow).await.unwrap().unwrap();
    let cm = &reports["cm"];
    assert_eq!(cm.removed_orphans.len(), 1);
    assert_eq!(cm.valid.len(), 1);
    assert_eq!(cm.valid[0].serial, s.first.serial);
}

#[actix_rt::test]
async fn a_certificate_applied_by_someone_else_is_scheduled_at_once() {
    // Provisioning and cloud-driven renewal apply certificates without the validator; it must not wait
    // for its next validation pass (a day by default) to schedule their renewal.
    let s = setup(&["iam"]).await;
    let validator = s.validator.clone();
    // The subscription is made at start; let it settle, then apply a new certificate behind its back.
    let csr = s
        .handler
        .send(ForType::new(
            "iam",
            cert_module::CreateKey {
                subject: String::new(),
            },
        ))
        .await
        .unwrap()
        .unwrap();
    let now = s.fx.clock.now();
    let chain = s.fx.ca.sign_csr(&csr, now, now + 200 * DAY);
    let applied = s
        .handler
        .send(ForType::new(
            "iam",
            cert_module::ApplyCert {
                pem: chain.into_bytes(),
            },
        ))
        .await
        .unwrap()
        .unwrap();
    let scheduled = crate::iam::server::testing::within("the validator to schedule it", async {
        loop {
            let status = validator.send(GetRenewalStatus).await.unwrap();
            if let Some(RenewalStatus::Scheduled { serial, .. }) = status.get("iam") {
                if *serial == applied.info.serial {
                    return serial.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_ne!(scheduled, s.first.serial);
    assert!(s.renewer.calls.lock().unwrap().is_empty());
}
