//! The cert module proper: one cert type on one token. Synchronous (PKCS#11 blocks); the actor in
//! `actor.rs` runs it on a worker thread.

use std::collections::VecDeque;
use std::sync::Arc;

use aos_config::{CertModuleConfig, Pkcs11Params};
use aos_pkcs11::{KeyPair, Module, ObjectUrl, PinSource, Pkcs11Url, Token, TokenKey};
use rustls_pki_types::CertificateDer;

use super::csr::{build_csr, build_self_signed, NodeIdentity};
use super::error::{CertError, ChainError};
use super::info::{leaf_fields, CertInfo, LeafFields};
use super::verify::TrustRoots;
use crate::clock::Clock;

/// Most keys created by `CreateKey` and not yet applied; a sixth evicts (and destroys) the oldest.
pub const MAX_PENDING_KEYS: usize = 5;
/// Lifetime of self-signed certificates (e.g. `diskencryption`).
pub const SELF_SIGNED_DAYS: u64 = 365 * 10;

/// Outcome of applying a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The stored certificate.
    pub info: CertInfo,
    /// The module's current certificate (latest `not_after`) changed.
    pub current_changed: bool,
    /// Certificates evicted to respect `max_items`.
    pub evicted: Vec<String>,
}

/// What a validation pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Valid certificates, current (latest `not_after`) first.
    pub valid: Vec<CertInfo>,
    /// Ids (hex) of invalid certificates removed (with their keys).
    pub removed_certs: Vec<String>,
    /// Ids (hex) of orphan keys or certificate-less objects removed.
    pub removed_orphans: Vec<String>,
}

/// One cert type: its config, its token (opened on demand), its pending keys.
pub struct CertModule {
    config: CertModuleConfig,
    node: NodeIdentity,
    roots: Arc<TrustRoots>,
    clock: Arc<dyn Clock>,
    token: Option<Arc<Token>>,
    pending: VecDeque<KeyPair>,
    /// The label's certificates as last read from the token and kept up to date by this module's own writes
    /// (the module is the only writer of its label). Dropped on release, clear and validation.
    cache: Option<Vec<Stored>>,
}

#[derive(Clone)]
struct Stored {
    id: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    fields: LeafFields,
}

// === impl CertModule ===

impl CertModule {
    /// A module for `config`; no token is touched until first use.
    pub fn new(
        config: CertModuleConfig,
        node: NodeIdentity,
        roots: Arc<TrustRoots>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CertModule {
            config,
            node,
            roots,
            clock,
            token: None,
            pending: VecDeque::new(),
            cache: None,
        }
    }

    /// The cert type.
    pub fn cert_type(&self) -> &str {
        &self.config.id
    }

    /// The module's configuration.
    pub fn config(&self) -> &CertModuleConfig {
        &self.config
    }

    /// Ids of pending keys (hex).
    pub fn pending_ids(&self) -> Vec<String> {
        self.pending.iter().map(|k| hex::encode(&k.id)).collect()
    }

    /// Close the token (its sessions), e.g. before the provisioner re-initialises it. Pending keys are
    /// forgotten (re-initialising destroys them anyway).
    pub fn release(&mut self) {
        self.token = None;
        self.cache = None;
        self.pending.clear();
    }

    pub(crate) fn token(&mut self) -> Result<Arc<Token>, CertError> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let params = &self.config.pkcs11;
        let id = &self.config.id;
        let module = Module::open(&params.library).map_err(|e| CertError::token(id, e))?;
        let source = PinSource::from_params(params)
            .ok_or_else(|| CertError::build(id, "no user_pin_path or tee_login_type configured"))?;
        let pin = source.read().map_err(|e| CertError::token(id, e))?;
        let token = Token::open_shared(module, params.selector(), pin)
            .map_err(|e| CertError::token(id, e))?;
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Run a token operation; on a lost session or token, forget the token so the next call re-opens it.
    fn with_token<T>(
        &mut self,
        op: impl FnOnce(&Arc<Token>) -> aos_pkcs11::Result<T>,
    ) -> Result<T, CertError> {
        let token = self.token()?;
        op(&token).map_err(|e| {
            if e.is_session_lost() {
                tracing::warn!(cert_type = %self.config.id, error = %e, "token lost; it will be re-opened");
                self.token = None;
            }
            CertError::token(&self.config.id, e)
        })
    }

    /// Generate a key pair and return a PEM CSR for it. The key stays pending until a certificate for it is
    /// applied.
    pub fn create_key(&mut self, subject: &str) -> Result<String, CertError> {
        let label = self.config.id.clone();
        let algorithm = self.config.algorithm;
        let pair = self.with_token(|t| t.generate_key_pair(&label, algorithm))?;
        let token = self.token()?;
        let key = TokenKey::new(token, pair.clone()).map_err(|e| CertError::token(&label, e))?;
        let csr = match build_csr(&self.config, &self.node, subject, &key) {
            Ok(csr) => csr,
            Err(err) => {
                let id = pair.id.clone();
                let _ = self.with_token(|t| t.delete_set(&label, &id));
                return Err(err);
            }
        };
        self.pending.push_back(pair);
        while self.pending.len() > MAX_PENDING_KEYS {
            if let Some(old) = self.pending.pop_front() {
                tracing::info!(cert_type = %label, id = %hex::encode(&old.id), "dropping oldest pending key");
                self.with_token(|t| t.delete_set(&label, &old.id))?;
            }
        }
        Ok(csr)
    }

    /// Verify `pem` and store it next to its pending key. See the crate docs for the checks; nothing is
    /// written unless all pass. Then trim to `max_items`, evicting the earliest expiry (never the new one).
    pub fn apply_cert(&mut self, pem: &[u8]) -> Result<Applied, CertError> {
        let id_name = self.config.id.clone();
        let chain = aos_pkcs11::certs::parse_pem_chain(pem)
            .map_err(|e| CertError::chain(&id_name, ChainError::Malformed(e.to_string())))?;
        let leaf = leaf_fields(&chain[0]).map_err(|r| CertError::chain(&id_name, r))?;
        let now = self.clock.now();
        if !self.config.self_signed {
            self.roots
                .verify(&chain, now, &self.config.extended_key_usage)
                .map_err(|r| CertError::chain(&id_name, r))?;
        }
        let position = self.pending.iter().position(|k| {
            aos_pkcs11::der::spki_key_bytes(&k.spki).ok().as_deref()
                == Some(leaf.public_key.as_slice())
        });
        let Some(position) = position else {
            // The same certificate applied again (a forwarded request retried after its answer was lost
            // with a dropped link): report it as applied, change nothing.
            let stored = self.stored()?;
            if let Some(same) = stored.iter().find(|s| s.chain.first() == chain.first()) {
                tracing::info!(cert_type = %id_name, serial = %same.fields.serial, "certificate already applied");
                let info = self.info(&same.id, &same.fields)?;
                return Ok(Applied {
                    current_changed: false,
                    info,
                    evicted: Vec::new(),
                });
            }
            return Err(CertError::chain(&id_name, ChainError::WrongKey));
        };
        let before = self.current()?.map(|c| c.serial);
        let pair = self.pending[position].clone();
        self.with_token(|t| t.store_chain(&id_name, &pair.id, pem))?;
        self.pending.remove(position);
        if let Some(cache) = &mut self.cache {
            cache.push(Stored {
                id: pair.id.clone(),
                chain: chain.clone(),
                fields: leaf.clone(),
            });
        }
        let evicted = self.trim(&pair.id)?;
        let info = self.info(&pair.id, &leaf)?;
        let after = self.current()?.map(|c| c.serial);
        tracing::info!(cert_type = %id_name, serial = %info.serial, "certificate applied");
        Ok(Applied {
            current_changed: before != after,
            info,
            evicted,
        })
    }

    /// Create the self-signed certificate of a `self_signed` module (replacing nothing: call after `clear`).
    pub fn create_self_signed(&mut self) -> Result<CertInfo, CertError> {
        let id_name = self.config.id.clone();
        let algorithm = self.config.algorithm;
        let pair = self.with_token(|t| t.generate_key_pair(&id_name, algorithm))?;
        let token = self.token()?;
        let key = TokenKey::new(token, pair.clone()).map_err(|e| CertError::token(&id_name, e))?;
        let pem = build_self_signed(
            &self.config,
            &self.node,
            &key,
            self.clock.now(),
            SELF_SIGNED_DAYS,
        )?;
        self.pending.push_back(pair);
        Ok(self.apply_cert(pem.as_bytes())?.info)
    }

    /// Every stored certificate set of this label with parsed fields (sets whose certificate cannot be read are
    /// skipped here; validation removes them).
    fn stored(&mut self) -> Result<Vec<Stored>, CertError> {
        if let Some(cache) = &self.cache {
            return Ok(cache.clone());
        }
        let label = self.config.id.clone();
        let inventory = self.with_token(|t| t.inventory(&label))?;
        let mut out = Vec::new();
        for set in inventory.sets.values().filter(|s| s.certificate) {
            let chain = self.with_token(|t| t.read_chain(&label, &set.id))?;
            if let Ok(fields) = leaf_fields(&chain[0]) {
                out.push(Stored {
                    id: set.id.clone(),
                    chain,
                    fields,
                });
            }
        }
        self.cache = Some(out.clone());
        Ok(out)
    }

    fn trim(&mut self, keep: &[u8]) -> Result<Vec<String>, CertError> {
        let label = self.config.id.clone();
        let mut stored = self.stored()?;
        let mut evicted = Vec::new();
        let max = usize::try_from(self.config.max_items)
            .unwrap_or(usize::MAX)
            .max(1);
        stored.sort_by_key(|s| s.fields.not_after);
        let mut count = stored.len();
        for s in stored {
            if count <= max {
                break;
            }
            if s.id == keep {
                continue;
            }
            self.with_token(|t| t.delete_set(&label, &s.id))?;
            if let Some(cache) = &mut self.cache {
                cache.retain(|c| c.id != s.id);
            }
            tracing::info!(cert_type = %label, serial = %s.fields.serial, "evicted certificate (max_items)");
            evicted.push(s.fields.serial);
            count -= 1;
        }
        Ok(evicted)
    }

    fn info(&mut self, id: &[u8], fields: &LeafFields) -> Result<CertInfo, CertError> {
        let token = self.token()?;
        let url = object_url(&self.config.pkcs11, token.label(), &self.config.id, id);
        Ok(CertInfo {
            cert_type: self.config.id.clone(),
            cert_url: url.clone(),
            key_url: url,
            serial: fields.serial.clone(),
            issuer: fields.issuer.clone(),
            not_before: fields.not_before,
            not_after: fields.not_after,
        })
    }

    /// Every stored certificate, current (latest `not_after`) first.
    pub fn list(&mut self) -> Result<Vec<CertInfo>, CertError> {
        let mut stored = self.stored()?;
        stored.sort_by_key(|s| std::cmp::Reverse(s.fields.not_after));
        stored.iter().map(|s| self.info(&s.id, &s.fields)).collect()
    }

    /// The current certificate: the one with the latest `not_after`.
    pub fn current(&mut self) -> Result<Option<CertInfo>, CertError> {
        Ok(self.list()?.into_iter().next())
    }

    /// The certificate with this issuer (DER) and serial (hex), or the current one when both are empty.
    pub fn get(&mut self, issuer: &[u8], serial: &str) -> Result<CertInfo, CertError> {
        let all = self.list()?;
        let found = if issuer.is_empty() && serial.is_empty() {
            all.into_iter().next()
        } else {
            all.into_iter().find(|c| {
                (serial.is_empty() || c.serial.eq_ignore_ascii_case(serial))
                    && (issuer.is_empty() || c.issuer == issuer)
            })
        };
        found.ok_or_else(|| CertError::NotFound(self.config.id.clone()))
    }

    /// The chain (PEM) of the certificate with this serial, for servers presenting it.
    pub fn chain_pem(&mut self, serial: &str) -> Result<(KeyPair, String), CertError> {
        let label = self.config.id.clone();
        let stored = self.stored()?;
        let s = stored
            .into_iter()
            .find(|s| s.fields.serial == serial)
            .ok_or_else(|| CertError::NotFound(label.clone()))?;
        let pair = self.with_token(|t| t.key_pair(&label, &s.id))?;
        Ok((pair, aos_pkcs11::certs::to_pem_chain(&s.chain)))
    }

    /// A signing key for the certificate with this serial (TLS servers and clients sign with it).
    pub fn token_key(
        &mut self,
        serial: &str,
    ) -> Result<(TokenKey, Vec<CertificateDer<'static>>), CertError> {
        let (pair, pem) = self.chain_pem(serial)?;
        let token = self.token()?;
        let key = TokenKey::new(token, pair).map_err(|e| CertError::token(&self.config.id, e))?;
        let chain = aos_pkcs11::certs::parse_pem_chain(pem.as_bytes())
            .map_err(|e| CertError::token(&self.config.id, e))?;
        Ok((key, chain))
    }

    /// Destroy every object of this module's label (never other labels) and forget pending keys.
    pub fn clear(&mut self) -> Result<usize, CertError> {
        let label = self.config.id.clone();
        self.pending.clear();
        self.cache = None;
        let n = self.with_token(|t| t.delete_label(&label))?;
        tracing::info!(cert_type = %label, objects = n, "cleared");
        Ok(n)
    }

    /// Remove every invalid certificate (keys missing, chain not verifying, expired) and every orphan object
    /// of this label except pending keys; report the valid certificates.
    pub fn validate(&mut self) -> Result<Validation, CertError> {
        self.cache = None;
        let label = self.config.id.clone();
        let now = self.clock.now();
        let pending: Vec<Vec<u8>> = self.pending.iter().map(|k| k.id.clone()).collect();
        let inventory = self.with_token(|t| t.inventory(&label))?;
        let mut report = Validation::default();
        let mut valid = Vec::new();
        for set in inventory.sets.values() {
            if pending.contains(&set.id) {
                continue;
            }
            if !set.is_complete() {
                self.with_token(|t| t.delete_set(&label, &set.id))?;
                tracing::warn!(cert_type = %label, id = %hex::encode(&set.id), "removed orphan objects");
                report.removed_orphans.push(hex::encode(&set.id));
                continue;
            }
            let chain = self.with_token(|t| t.read_chain(&label, &set.id))?;
            let verdict = leaf_fields(&chain[0]).and_then(|fields| {
                if fields.not_after <= now {
                    return Err(ChainError::Expired);
                }
                if !self.config.self_signed {
                    self.roots
                        .verify(&chain, now, &self.config.extended_key_usage)?;
                }
                Ok(fields)
            });
            match verdict {
                Ok(fields) => valid.push((set.id.clone(), fields)),
                Err(reason) => {
                    self.with_token(|t| t.delete_set(&label, &set.id))?;
                    tracing::warn!(cert_type = %label, id = %hex::encode(&set.id), %reason, "removed invalid certificate");
                    report.removed_certs.push(hex::encode(&set.id));
                }
            }
        }
        valid.sort_by_key(|(_, f)| std::cmp::Reverse(f.not_after));
        for (id, fields) in valid {
            report.valid.push(self.info(&id, &fields)?);
        }
        Ok(report)
    }
}

/// The `pkcs11:` URL of an object of this module (the key and the certificate share it).
pub fn object_url(params: &Pkcs11Params, token_label: &str, cert_type: &str, id: &[u8]) -> String {
    let mut url = Pkcs11Url::new()
        .with_token(token_label)
        .with_object(cert_type)
        .with_id(id.to_vec());
    if params.module_path_in_url {
        url = url.with_module_path(params.library.clone());
    }
    if let Some(pin) = &params.user_pin_path {
        url = url.with_pin_source(pin.display().to_string());
    }
    ObjectUrl::Pkcs11(url).to_string()
}
