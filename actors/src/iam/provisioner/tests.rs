//! Provisioner tests: actor level, real SoftHSM tokens, rcgen test CA, a moved clock.

use std::sync::Arc;

use actix::{Actor, Addr};
use aos_config::{CertModuleConfig, KeyAlgorithm, ProvisioningConfig};
use cryptoki::object::Attribute;

use super::*;
use crate::iam::cert_handler::{CertHandler, ForType};
use crate::iam::cert_module;
use crate::iam::test_support::{Fixture, PASSWORD};

struct Node {
    handler: Addr<CertHandler>,
    provisioner: Addr<Provisioner>,
}

fn start_node(
    fx: &Fixture,
    modules: &[CertModuleConfig],
    hooks: ProvisioningConfig,
    options: ProvisionerOptions,
) -> Node {
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(fx.clock.clone());
    let handler =
        CertHandler::new(modules, fx.node.clone(), fx.roots.clone(), clock.clone()).start();
    let provisioner = Provisioner::new(
        StateFile::new(fx.hsm.dir().join("state/provisionstate")),
        hooks,
        handler.clone(),
        clock,
        options,
    )
    .unwrap()
    .start();
    Node {
        handler,
        provisioner,
    }
}

fn pw(p: &str) -> Password {
    Password::new(p)
}

/// Small, fast module set (P-256) on two tokens, one self-signed module.
fn small_modules(fx: &Fixture) -> Vec<CertModuleConfig> {
    let mut online = CertModuleConfig::new("online", KeyAlgorithm::EccP256, fx.params("aoscloud"));
    online.max_items = 2;
    let mut disk = fx.module_config("diskencryption", KeyAlgorithm::EccP256, "aoscore");
    disk.self_signed = true;
    disk.max_items = 1;
    vec![
        online,
        fx.module_config("iam", KeyAlgorithm::EccP256, "aoscore"),
        fx.module_config("sm", KeyAlgorithm::EccP256, "aoscore"),
        disk,
    ]
}

/// CreateKey → CA signs → ApplyCert for every CA-signed module.
async fn issue_all(fx: &Fixture, node: &Node, modules: &[CertModuleConfig]) {
    for m in modules.iter().filter(|m| !m.self_signed) {
        let csr = node
            .handler
            .send(ForType::new(
                &m.id,
                cert_module::CreateKey {
                    subject: String::new(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        let chain = fx.sign(&csr, 365);
        node.handler
            .send(ForType::new(
                &m.id,
                cert_module::ApplyCert {
                    pem: chain.into_bytes(),
                },
            ))
            .await
            .unwrap()
            .unwrap();
    }
}

/// Every object on the token `label`, counted (outside view through the fixture's module).
fn object_count(fx: &Fixture, token: &str) -> usize {
    let pin = aos_pkcs11::pin::read_pin_file(&fx.pin_path(token)).unwrap();
    let t = aos_pkcs11::Token::open(
        fx.hsm.module(),
        aos_config::TokenSelector::Label(token.into()),
        pin,
    )
    .unwrap();
    t.with_session(|s| Ok(s.find_objects(&[Attribute::Token(true)])?.len()))
        .unwrap()
}

#[actix_rt::test]
async fn full_provisioning_of_the_shipped_module_set() {
    let fx = Fixture::new();
    let modules = fx.shipped_modules();
    let node = start_node(
        &fx,
        &modules,
        ProvisioningConfig::default(),
        ProvisionerOptions::default(),
    );
    assert_eq!(
        node.provisioner.send(GetNodeState).await.unwrap(),
        NodeState::Unprovisioned
    );
    node.provisioner
        .send(StartProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node.provisioner.send(GetNodeState).await.unwrap(),
        NodeState::Provisioning
    );
    issue_all(&fx, &node, &modules).await;
    node.provisioner
        .send(FinishProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node.provisioner.send(GetNodeState).await.unwrap(),
        NodeState::Provisioned
    );

    for m in &modules {
        let report = node
            .handler
            .send(ForType::new(&m.id, cert_module::Validate {}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.valid.len(), 1, "{}: {report:?}", m.id);
        assert!(
            report.removed_certs.is_empty() && report.removed_orphans.is_empty(),
            "{}",
            m.id
        );
    }
    // Exactly: per CA-signed label key pair + cert + intermediate + root; self-signed: key pair + cert.
    assert_eq!(object_count(&fx, "aoscloud"), 2 * 5);
    assert_eq!(object_count(&fx, "aoscore"), 3 * 5 + 3);
    // The state file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fx.hsm.dir().join("state/provisionstate"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(fx.hsm.dir().join("state/provisionstate")).unwrap();
    assert!(
        !text.contains(PASSWORD),
        "the password itself is never stored"
    );
}

#[actix_rt::test]
async fn state_rules_duplicates_pause_resume_and_missing_certs() {
    let fx = Fixture::new();
    let modules = small_modules(&fx);
    let node = start_node(
        &fx,
        &modules,
        ProvisioningConfig::default(),
        ProvisionerOptions::default(),
    );
    let p = &node.provisioner;
    assert!(matches!(
        p.send(PauseNode).await.unwrap(),
        Err(ProvisionError::WrongState { .. })
    ));
    assert!(matches!(
        p.send(FinishProvisioning {
            password: pw(PASSWORD)
        })
        .await
        .unwrap(),
        Err(ProvisionError::WrongState { .. })
    ));
    // Two StartProvisioning at once: one runs, the other is refused as busy.
    let (a, b) = tokio::join!(
        p.send(StartProvisioning {
            password: pw(PASSWORD)
        }),
        p.send(StartProvisioning {
            password: pw(PASSWORD)
        })
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(ProvisionError::Busy)));
    // A second StartProvisioning while unfinished is refused with a hint.
    let err = p
        .send(StartProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("already started"), "{err}");
    // Finish without certificates names the modules.
    match p
        .send(FinishProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
    {
        Err(ProvisionError::MissingCertificates(missing)) => {
            assert_eq!(missing, vec!["iam", "online", "sm"])
        }
        other => panic!("{other:?}"),
    }
    issue_all(&fx, &node, &modules).await;
    p.send(FinishProvisioning {
        password: pw(PASSWORD),
    })
    .await
    .unwrap()
    .unwrap();
    // Finishing again (a retry whose first answer was lost) answers provisioned, with the right password
    // only.
    p.send(FinishProvisioning {
        password: pw(PASSWORD),
    })
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(
        p.send(FinishProvisioning {
            password: pw("not-the-password"),
        })
        .await
        .unwrap(),
        Err(ProvisionError::WrongPassword | ProvisionError::TooManyAttempts { .. })
    ));
    assert_eq!(p.send(GetNodeState).await.unwrap(), NodeState::Provisioned);
    p.send(PauseNode).await.unwrap().unwrap();
    assert!(p.send(PauseNode).await.unwrap().is_err());
    assert_eq!(p.send(GetNodeState).await.unwrap(), NodeState::Paused);
    p.send(ResumeNode).await.unwrap().unwrap();
    assert_eq!(p.send(GetNodeState).await.unwrap(), NodeState::Provisioned);

    // Deprovision clears every module's objects.
    p.send(Deprovision {
        password: pw(PASSWORD),
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        p.send(GetNodeState).await.unwrap(),
        NodeState::Unprovisioned
    );
    assert_eq!(object_count(&fx, "aoscore"), 0);
    assert_eq!(object_count(&fx, "aoscloud"), 0);
    assert!(!fx.hsm.dir().join("state/provisionstate").exists());
    // The tokens still belong to the old password: a new one is refused, the token untouched.
    let err = p
        .send(StartProvisioning {
            password: pw("another-password"),
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ProvisionError::WrongPassword), "{err:?}");
}

#[actix_rt::test]
async fn wrong_passwords_back_off_and_the_counter_survives_a_restart() {
    let fx = Fixture::new();
    let modules = small_modules(&fx);
    let node = start_node(
        &fx,
        &modules,
        ProvisioningConfig::default(),
        ProvisionerOptions::default(),
    );
    node.provisioner
        .send(StartProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    for _ in 0..FREE_ATTEMPTS {
        let err = node
            .provisioner
            .send(Deprovision {
                password: pw("wrong-pass"),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, ProvisionError::WrongPassword), "{err:?}");
    }
    // The next attempt, even with the right password, must wait.
    match node
        .provisioner
        .send(Deprovision {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
    {
        Err(ProvisionError::TooManyAttempts { retry_after }) => {
            assert_eq!(retry_after, BACKOFF_BASE)
        }
        other => panic!("{other:?}"),
    }
    fx.clock.advance(BACKOFF_BASE);
    let err = node
        .provisioner
        .send(Deprovision {
            password: pw("wrong-pass"),
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ProvisionError::WrongPassword));
    // Restart: the counter is still there, and the wait has doubled.
    drop(node);
    let node = start_node(
        &fx,
        &modules,
        ProvisioningConfig::default(),
        ProvisionerOptions::default(),
    );
    match node
        .provisioner
        .send(Deprovision {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
    {
        Err(ProvisionError::TooManyAttempts { retry_after }) => {
            assert_eq!(retry_after, 2 * BACKOFF_BASE)
        }
        other => panic!("{other:?}"),
    }
    fx.clock.advance(2 * BACKOFF_BASE);
    node.provisioner
        .send(Deprovision {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    // Success reset the counter: three fresh wrong tries are allowed again without waiting.
    node.provisioner
        .send(StartProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    for _ in 0..FREE_ATTEMPTS {
        let err = node
            .provisioner
            .send(Deprovision {
                password: pw("wrong-pass"),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, ProvisionError::WrongPassword), "{err:?}");
    }
}

#[actix_rt::test]
async fn a_crash_after_any_step_recovers_by_start_or_deprovision_without_orphans() {
    for step in Step::ALL {
        for recover_by_start in [true, false] {
            let fx = Fixture::new();
            let modules = small_modules(&fx);
            {
                let node = start_node(
                    &fx,
                    &modules,
                    ProvisioningConfig::default(),
                    ProvisionerOptions {
                        crash_after: Some(step),
                    },
                );
                let err = node
                    .provisioner
                    .send(StartProvisioning {
                        password: pw(PASSWORD),
                    })
                    .await
                    .unwrap();
                assert!(
                    matches!(err, Err(ProvisionError::SimulatedCrash(s)) if s == step),
                    "{err:?}"
                );
            }
            // "Restart": new actors on the same tokens and state file.
            let node = start_node(
                &fx,
                &modules,
                ProvisioningConfig::default(),
                ProvisionerOptions::default(),
            );
            assert_eq!(
                node.provisioner.send(GetNodeState).await.unwrap(),
                NodeState::Starting,
                "{step:?}"
            );
            if recover_by_start {
                node.provisioner
                    .send(StartProvisioning {
                        password: pw(PASSWORD),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                issue_all(&fx, &node, &modules).await;
                node.provisioner
                    .send(FinishProvisioning {
                        password: pw(PASSWORD),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                for m in &modules {
                    let report = node
                        .handler
                        .send(ForType::new(&m.id, cert_module::Validate {}))
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(report.valid.len(), 1, "{step:?} {}", m.id);
                    assert!(
                        report.removed_orphans.is_empty(),
                        "{step:?}: orphans left: {report:?}"
                    );
                }
                assert_eq!(object_count(&fx, "aoscore"), 2 * 5 + 3, "{step:?}");
                assert_eq!(object_count(&fx, "aoscloud"), 5, "{step:?}");
            } else {
                node.provisioner
                    .send(Deprovision {
                        password: pw(PASSWORD),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    node.provisioner.send(GetNodeState).await.unwrap(),
                    NodeState::Unprovisioned
                );
                if step >= Step::Ownership {
                    assert_eq!(object_count(&fx, "aoscore"), 0, "{step:?}");
                    assert_eq!(object_count(&fx, "aoscloud"), 0, "{step:?}");
                }
            }
        }
    }
}

#[actix_rt::test]
async fn hooks_run_in_order_and_a_failing_hook_fails_the_step() {
    let fx = Fixture::new();
    let modules = small_modules(&fx);
    let log = fx.hsm.dir().join("hooks.log");
    let hook = |name: &str| {
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo {name} >> {}", log.display()),
        ])
    };
    let hooks = ProvisioningConfig {
        start: hook("start"),
        disk_encryption: hook("disk"),
        finish: hook("finish"),
        deprovision: Some(vec!["/bin/sh".into(), "-c".into(), "exit 7".into()]),
        ..ProvisioningConfig::default()
    };
    let node = start_node(&fx, &modules, hooks, ProvisionerOptions::default());
    node.provisioner
        .send(StartProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    issue_all(&fx, &node, &modules).await;
    node.provisioner
        .send(FinishProvisioning {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\ndisk\nfinish\n"
    );
    let err = node
        .provisioner
        .send(Deprovision {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Hook {
                hook: "deprovision",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        node.provisioner.send(GetNodeState).await.unwrap(),
        NodeState::Deprovisioning
    );
}

#[test]
fn unreadable_state_file_is_an_error_and_aoscore_files_are_understood() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    std::fs::write(&path, "provisioned\n").unwrap();
    assert_eq!(
        StateFile::new(&path).load().unwrap().state,
        NodeState::Provisioned
    );
    std::fs::write(&path, "state = \"bogus\"").unwrap();
    let err = StateFile::new(&path).load().unwrap_err();
    assert!(matches!(err, ProvisionError::StateFile { .. }), "{err:?}");
    assert!(
        StateFile::new(dir.path().join("absent"))
            .load()
            .unwrap()
            .state
            == NodeState::Unprovisioned
    );
}

#[actix_rt::test]
async fn password_derivations_leave_the_arbiter_free() {
    let fx = Fixture::new();
    let modules = small_modules(&fx);
    // A provisioned node whose verifier takes 1M PBKDF2 iterations (100 ms and more), with no failed
    // attempts: checking the right password derives that long and writes nothing.
    let salt = [7u8; 16];
    let iterations = 1_000_000;
    let mut hash = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap(),
        &salt,
        PASSWORD.as_bytes(),
        &mut hash,
    );
    let state_file = StateFile::new(fx.hsm.dir().join("state/provisionstate"));
    state_file
        .store(&StateRecord {
            state: NodeState::Provisioned,
            password: Some(Verifier {
                salt: hex::encode(salt),
                iterations,
                hash: hex::encode(hash),
            }),
            ..StateRecord::default()
        })
        .unwrap();
    let node = start_node(
        &fx,
        &modules,
        ProvisioningConfig::default(),
        ProvisionerOptions::default(),
    );
    // A task on the provisioner's arbiter that counts how often it gets to run.
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat = {
        let (ticks, stop) = (ticks.clone(), stop.clone());
        actix_rt::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
    node.provisioner
        .send(CheckPassword {
            password: pw(PASSWORD),
        })
        .await
        .unwrap()
        .unwrap();
    let during = ticks.load(std::sync::atomic::Ordering::Relaxed) - before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    heartbeat.await.unwrap();
    // The derivation is the only slow step of this check (no state write: nothing failed before). Run
    // inline, it would hold the thread and the heartbeat would get a turn or two.
    assert!(
        during >= 1000,
        "the arbiter ran other tasks only {during} times during a derivation"
    );
}
