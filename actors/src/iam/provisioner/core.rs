//! The provisioning state machine. Operations are serialised by the actor (one at a time).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use actix::Addr;
use aos_config::{CertModuleConfig, ProvisioningConfig, TokenSelector, DEFAULT_TOKEN_LABEL};
use aos_pkcs11::{Module, PinSource};

use super::hooks::run_hook;
use super::password::{backoff, Password, PasswordMemo, Verifier};
use super::state::{NodeState, StateFile, StateRecord};
use super::ProvisionError;
use crate::clock::Clock;
use crate::iam::cert_handler::{CertHandler, ForType, GetModuleConfigs};
use crate::iam::cert_module::{self, CertError};

/// Steps of `StartProvisioning`, in order (fault injection names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// The state file says `starting`.
    MarkedStarting,
    /// The `start` hook ran.
    StartHook,
    /// Every module's token was (re-)initialised with the password as SO PIN.
    Ownership,
    /// Self-signed certificates were created.
    SelfSigned,
    /// The `disk_encryption` hook ran.
    DiskEncryptionHook,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] = [
        Step::MarkedStarting,
        Step::StartHook,
        Step::Ownership,
        Step::SelfSigned,
        Step::DiskEncryptionHook,
    ];
}

/// Knobs of the provisioner.
#[derive(Debug, Clone, Default)]
pub struct ProvisionerOptions {
    /// Stop `StartProvisioning` right after this step, as if the process died (tests and the simulator).
    pub crash_after: Option<Step>,
}

/// A token as the provisioner sees it: one per (library, selector), however many modules share it.
#[derive(Debug, Clone)]
struct TokenRef {
    library: PathBuf,
    selector: TokenSelector,
    label: String,
    pin: PinSource,
}

pub(super) struct ProvisionerCore {
    state_file: StateFile,
    record: StateRecord,
    hooks: ProvisioningConfig,
    handler: Addr<CertHandler>,
    clock: Arc<dyn Clock>,
    options: ProvisionerOptions,
    memo: PasswordMemo,
}

impl ProvisionerCore {
    pub fn new(
        state_file: StateFile,
        hooks: ProvisioningConfig,
        handler: Addr<CertHandler>,
        clock: Arc<dyn Clock>,
        options: ProvisionerOptions,
    ) -> Result<Self, ProvisionError> {
        let record = state_file.load()?;
        let memo = PasswordMemo::new().map_err(|message| ProvisionError::StateFile {
            path: state_file.path().to_owned(),
            message,
        })?;
        Ok(ProvisionerCore {
            memo,
            state_file,
            record,
            hooks,
            handler,
            clock,
            options,
        })
    }

    pub fn state(&self) -> NodeState {
        self.record.state
    }

    async fn set_state(&mut self, state: NodeState) -> Result<(), ProvisionError> {
        let mut next = self.record.clone();
        next.state = state;
        self.state_file.save(&next).await?;
        crate::audit::node_state_changed(self.record.state, state);
        self.record = next;
        Ok(())
    }

    fn crash_point(&self, step: Step) -> Result<(), ProvisionError> {
        if self.options.crash_after == Some(step) {
            return Err(ProvisionError::SimulatedCrash(step));
        }
        Ok(())
    }

    fn now_unix(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Refuse early while the backoff after wrong passwords runs.
    fn check_backoff(&self) -> Result<(), ProvisionError> {
        let wait = backoff(self.record.failed_attempts);
        if let Some(last) = self.record.last_failure_unix {
            let allowed_at = last.saturating_add(wait.as_secs());
            let now = self.now_unix();
            if now < allowed_at {
                return Err(ProvisionError::TooManyAttempts {
                    retry_after: Duration::from_secs(allowed_at - now),
                });
            }
        }
        Ok(())
    }

    async fn record_failure(&mut self) -> ProvisionError {
        self.record.failed_attempts = self.record.failed_attempts.saturating_add(1);
        self.record.last_failure_unix = Some(self.now_unix());
        crate::audit::wrong_password(
            self.record.failed_attempts,
            backoff(self.record.failed_attempts),
        );
        if let Err(e) = self.state_file.save(&self.record).await {
            tracing::error!(error = %e, "cannot persist the failed-attempt counter");
        }
        ProvisionError::WrongPassword
    }

    async fn record_success(&mut self) -> Result<(), ProvisionError> {
        if self.record.failed_attempts != 0 {
            self.record.failed_attempts = 0;
            self.record.last_failure_unix = None;
            self.state_file.save(&self.record).await?;
        }
        Ok(())
    }

    /// Check `password` against the stored verifier (after the backoff check).
    async fn verify(&mut self, password: &Password) -> Result<(), ProvisionError> {
        self.check_backoff()?;
        if self.record.password.is_some() && self.memo.matches(password) {
            return self.record_success().await;
        }
        let matched = match &self.record.password {
            Some(v) => v
                .check(password)
                .await
                .map_err(ProvisionError::PasswordCheck)?,
            None => return Ok(()),
        };
        if matched {
            self.memo.remember(password);
            self.record_success().await
        } else {
            Err(self.record_failure().await)
        }
    }

    async fn modules(&self) -> Result<Vec<CertModuleConfig>, ProvisionError> {
        self.handler
            .send(GetModuleConfigs)
            .await
            .map_err(|_| ProvisionError::Mailbox)
    }

    async fn release_all(&self, modules: &[CertModuleConfig]) -> Result<(), ProvisionError> {
        for m in modules {
            self.handler
                .send(ForType::new(&m.id, cert_module::Release {}))
                .await
                .map_err(|_| ProvisionError::Mailbox)??;
        }
        Ok(())
    }

    fn tokens(modules: &[CertModuleConfig]) -> Result<Vec<TokenRef>, ProvisionError> {
        let mut tokens: BTreeMap<(PathBuf, String), TokenRef> = BTreeMap::new();
        for m in modules {
            let p = &m.pkcs11;
            let selector = p.selector();
            let label = match &selector {
                TokenSelector::Label(l) => l.clone(),
                _ => p
                    .token_label
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TOKEN_LABEL.to_owned()),
            };
            let pin = PinSource::from_params(p).ok_or_else(|| {
                ProvisionError::Cert(CertError::Build {
                    cert_type: m.id.clone(),
                    message: "no user_pin_path or tee_login_type configured".into(),
                })
            })?;
            tokens
                .entry((p.library.clone(), format!("{selector:?}")))
                .or_insert(TokenRef {
                    library: p.library.clone(),
                    selector,
                    label,
                    pin,
                });
        }
        Ok(tokens.into_values().collect())
    }

    /// Verify the password as SO PIN on every token that already has an owner; touches nothing.
    async fn check_tokens(
        &mut self,
        tokens: &[TokenRef],
        password: &Password,
    ) -> Result<(), ProvisionError> {
        for t in tokens.iter().filter(|t| !t.pin.is_tee()) {
            let (t, pw) = (t.clone(), password.clone());
            let result = tokio::task::spawn_blocking(move || {
                let module = Module::open(&t.library).map_err(|e| (t.label.clone(), e))?;
                aos_pkcs11::check_so_pin(&module, &t.selector, &pw)
                    .map_err(|e| (t.label.clone(), e))
            })
            .await
            .map_err(|_| ProvisionError::Mailbox)?;
            match result {
                Ok(_) => {}
                Err((_, aos_pkcs11::Error::WrongSoPin(_))) => {
                    return Err(self.record_failure().await)
                }
                Err((token, source)) => return Err(ProvisionError::Token { token, source }),
            }
        }
        Ok(())
    }

    async fn take_ownership(
        tokens: &[TokenRef],
        password: &Password,
    ) -> Result<(), ProvisionError> {
        for t in tokens {
            let (t, pw) = (t.clone(), password.clone());
            tokio::task::spawn_blocking(move || {
                let err = |source| ProvisionError::Token {
                    token: t.label.clone(),
                    source,
                };
                let module = Module::open(&t.library).map_err(err)?;
                let user = t.pin.read_or_create().map_err(err)?;
                let so = if t.pin.is_tee() {
                    Password::new("")
                } else {
                    pw
                };
                aos_pkcs11::take_ownership(&module, &t.selector, &t.label, &so, &user)
                    .map_err(err)?;
                Ok::<_, ProvisionError>(())
            })
            .await
            .map_err(|_| ProvisionError::Mailbox)??;
        }
        Ok(())
    }

    async fn hook(
        &self,
        name: &'static str,
        argv: &Option<Vec<String>>,
    ) -> Result<(), ProvisionError> {
        match argv {
            Some(argv) => run_hook(name, argv, self.hooks.hook_timeout).await,
            None => Ok(()),
        }
    }

    pub async fn start(&mut self, password: Password) -> Result<(), ProvisionError> {
        match self.record.state {
            NodeState::Unprovisioned | NodeState::Starting => {}
            NodeState::Provisioning => {
                return Err(ProvisionError::WrongState {
                    operation: "StartProvisioning",
                    state: NodeState::Provisioning,
                    hint: "; provisioning already started: finish it, or deprovision to start over",
                })
            }
            state => {
                return Err(ProvisionError::WrongState {
                    operation: "StartProvisioning",
                    state,
                    hint: "; deprovision first",
                })
            }
        }
        self.verify(&password).await?;
        let modules = self.modules().await?;
        let tokens = Self::tokens(&modules)?;
        self.release_all(&modules).await?;
        self.check_tokens(&tokens, &password).await?;

        self.record.password = Some(Verifier::derive(&password).await.map_err(|message| {
            ProvisionError::StateFile {
                path: self.state_file.path().to_owned(),
                message,
            }
        })?);
        self.memo.remember(&password);
        self.set_state(NodeState::Starting).await?;
        self.crash_point(Step::MarkedStarting)?;

        self.hook("start", &self.hooks.start.clone()).await?;
        self.crash_point(Step::StartHook)?;

        // Re-initialising a token erases every object on it, which also clears every module using it.
        Self::take_ownership(&tokens, &password).await?;
        self.crash_point(Step::Ownership)?;

        for m in modules.iter().filter(|m| m.self_signed) {
            self.handler
                .send(ForType::new(&m.id, cert_module::CreateSelfSigned {}))
                .await
                .map_err(|_| ProvisionError::Mailbox)??;
        }
        self.crash_point(Step::SelfSigned)?;

        self.hook("disk_encryption", &self.hooks.disk_encryption.clone())
            .await?;
        self.crash_point(Step::DiskEncryptionHook)?;

        self.set_state(NodeState::Provisioning).await?;
        crate::audit::provisioning_started();
        Ok(())
    }

    pub async fn finish(&mut self, password: Password) -> Result<(), ProvisionError> {
        if self.record.state == NodeState::Provisioned {
            // A FinishProvisioning retried after its answer was lost (a forwarded request whose link
            // dropped): the node is provisioned; with the right password, say so instead of refusing.
            self.verify(&password).await?;
            tracing::info!("FinishProvisioning: already provisioned");
            return Ok(());
        }
        if self.record.state != NodeState::Provisioning {
            return Err(ProvisionError::WrongState {
                operation: "FinishProvisioning",
                state: self.record.state,
                hint: "; call StartProvisioning first",
            });
        }
        self.verify(&password).await?;
        let mut missing = Vec::new();
        for m in self.modules().await?.iter().filter(|m| !m.self_signed) {
            let current = self
                .handler
                .send(ForType::new(
                    &m.id,
                    cert_module::GetCert {
                        issuer: Vec::new(),
                        serial: String::new(),
                    },
                ))
                .await
                .map_err(|_| ProvisionError::Mailbox)?;
            if current.is_err() {
                missing.push(m.id.clone());
            }
        }
        if !missing.is_empty() {
            return Err(ProvisionError::MissingCertificates(missing));
        }
        self.hook("finish", &self.hooks.finish.clone()).await?;
        self.set_state(NodeState::Provisioned).await?;
        crate::audit::provisioning_finished();
        Ok(())
    }

    pub async fn deprovision(&mut self, password: Password) -> Result<(), ProvisionError> {
        if self.record.state == NodeState::Unprovisioned {
            return Err(ProvisionError::WrongState {
                operation: "Deprovision",
                state: NodeState::Unprovisioned,
                hint: "",
            });
        }
        self.verify(&password).await?;
        self.set_state(NodeState::Deprovisioning).await?;
        self.hook("deprovision", &self.hooks.deprovision.clone())
            .await?;
        let modules = self.modules().await?;
        for m in &modules {
            let cleared = self
                .handler
                .send(ForType::new(&m.id, cert_module::Clear {}))
                .await
                .map_err(|_| ProvisionError::Mailbox)?;
            match cleared {
                Ok(objects) => crate::audit::certs_cleared(&m.id, objects),
                // A token that was never owned (crash before ownership) holds nothing of ours.
                Err(CertError::Token {
                    source:
                        aos_pkcs11::Error::TokenNotFound { .. } | aos_pkcs11::Error::PinFile { .. },
                    ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.release_all(&modules).await?;
        self.record.password = None;
        self.memo.forget();
        self.set_state(NodeState::Unprovisioned).await?;
        crate::audit::deprovisioned();
        Ok(())
    }

    pub async fn pause(&mut self) -> Result<(), ProvisionError> {
        match self.record.state {
            NodeState::Provisioned => self.set_state(NodeState::Paused).await,
            state => Err(ProvisionError::WrongState {
                operation: "Pause",
                state,
                hint: "; only a provisioned node can pause",
            }),
        }
    }

    pub async fn resume(&mut self) -> Result<(), ProvisionError> {
        match self.record.state {
            NodeState::Paused => self.set_state(NodeState::Provisioned).await,
            state => Err(ProvisionError::WrongState {
                operation: "Resume",
                state,
                hint: "; only a paused node can resume",
            }),
        }
    }

    /// Check a password for an operation outside the provisioner (e.g. `CreateKey` during provisioning).
    pub async fn check_password(&mut self, password: &Password) -> Result<(), ProvisionError> {
        self.verify(password).await
    }
}
