//! An opened token: a logged-in keeper session for its whole life and a small pool of sessions for work.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use aos_config::TokenSelector;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;

use crate::error::{Error, Result};
use crate::module::{Module, TokenDescription};
use crate::pin::Pin;

/// Default number of idle sessions kept for reuse.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The label of session copies (made by `TokenKey` for keys that sign often): never a certificate label, so
/// that no lookup by label finds a copy.
pub const SESSION_COPY_LABEL: &str = "aos-edge.session-copy";

/// A token opened for use, logged in as the user.
///
/// PKCS#11 login state belongs to the application and the token: it ends when the application's last
/// session on the token closes. The token therefore keeps one *keeper* session open (and logged in) for as
/// long as it lives; work sessions come from a pool and are already logged in. A session is `Send` but not
/// `Sync`, so each one is used by one thread at a time.
pub struct Token {
    module: Arc<Module>,
    selector: TokenSelector,
    description: TokenDescription,
    slot: Slot,
    pin: Pin,
    keeper: Mutex<Session>,
    /// The token's object lock ([`Module::object_lock`]).
    objects: Arc<RwLock<()>>,
    /// Bumped at every re-login: a logout or a replaced keeper session ends the session copies, and their
    /// handles may name other objects afterwards.
    keeper_generation: AtomicU64,
    /// The live session copies, with the (label, id) of the token object each copies; emptied at every
    /// re-login.
    copies: Mutex<Vec<(String, Vec<u8>, SessionCopy)>>,
    idle: Mutex<Vec<Session>>,
    pool_size: usize,
}

/// A session object copied from a token object by [`Token::session_copy`]. It lives in the token (its
/// value never leaves it) until [`Token::destroy_session_copy`] or until the keeper session closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionCopy {
    /// The copy's handle.
    pub(crate) handle: ObjectHandle,
    /// The re-login it was made after: handles are reused, so a handle alone does not name a copy.
    generation: u64,
}

/// A session borrowed from a [`Token`]'s pool; returned to it on drop.
pub struct PooledSession<'a> {
    token: &'a Token,
    session: Option<Session>,
}

// === impl Token ===

impl Token {
    /// Find the token `selector` names and log in with the user PIN.
    pub fn open(module: Arc<Module>, selector: TokenSelector, pin: Pin) -> Result<Arc<Token>> {
        Self::open_with_pool(module, selector, pin, DEFAULT_POOL_SIZE)
    }

    /// Open the token (shared, see [`Token::open_shared`]) and keep that handle until the process exits.
    ///
    /// SoftHSM crashes at process exit when a worker thread closes a token's last session while its static
    /// destructors run. A daemon, test or simulator that may exit with worker threads still winding down calls
    /// this once per token after stopping its actors: the last session is then never closed by a racing
    /// thread. A token that cannot be opened (not initialised, wrong PIN) had no session to close anyway.
    pub fn keep_open_until_exit(module: Arc<Module>, selector: TokenSelector, pin: Pin) {
        if let Ok(token) = Token::open_shared(module, selector, pin) {
            std::mem::forget(token);
        }
    }

    /// The token `selector` names, shared: while any caller holds an `Arc` of it, every other caller asking
    /// for the same module and selector gets that same instance (one login, one session pool) instead of
    /// opening another. Once every `Arc` is dropped the sessions close, as they must before the token is
    /// re-initialised.
    pub fn open_shared(
        module: Arc<Module>,
        selector: TokenSelector,
        pin: Pin,
    ) -> Result<Arc<Token>> {
        let key = (module.path().to_owned(), selector.clone());
        let mut open = shared_tokens().lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, weak| weak.strong_count() > 0);
        if let Some(token) = open.get(&key).and_then(Weak::upgrade) {
            if token.pin == pin {
                return Ok(token);
            }
        }
        let token = Self::open(module, selector, pin)?;
        open.insert(key, Arc::downgrade(&token));
        Ok(token)
    }

    /// [`Token::open`] with an explicit number of idle sessions to keep.
    pub fn open_with_pool(
        module: Arc<Module>,
        selector: TokenSelector,
        pin: Pin,
        pool_size: usize,
    ) -> Result<Arc<Token>> {
        let (slot, description) = module.find_slot(&selector)?;
        let keeper = module.context().open_rw_session(slot)?;
        login(&keeper, &pin, &description.label)?;
        tracing::debug!(token = %description.label, slot = slot.id(), "token opened");
        let objects = module.object_lock(slot);
        Ok(Arc::new(Token {
            module,
            selector,
            description,
            slot,
            pin,
            keeper: Mutex::new(keeper),
            objects,
            keeper_generation: AtomicU64::new(0),
            copies: Mutex::new(Vec::new()),
            idle: Mutex::new(Vec::new()),
            pool_size: pool_size.max(1),
        }))
    }

    /// The module the token lives in.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The selector the token was opened with.
    pub fn selector(&self) -> &TokenSelector {
        &self.selector
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.description.label
    }

    /// The slot the token was found in when opened.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// What the token reported when opened.
    pub fn description(&self) -> &TokenDescription {
        &self.description
    }

    /// A logged-in session from the pool (or a new one when the pool is empty).
    pub fn session(&self) -> Result<PooledSession<'_>> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let session = match pooled {
            Some(session) => session,
            None => self.module.context().open_rw_session(self.slot)?,
        };
        Ok(PooledSession {
            token: self,
            session: Some(session),
        })
    }

    /// Run `op` on a pooled session, with shared access to the token's objects (reads, signatures). When
    /// the session turns out lost (closed, logged out, token removed) the session is discarded, the login is
    /// renewed and `op` runs once more on a fresh session. `op` must not call back into the token.
    pub fn with_session<T>(&self, op: impl FnMut(&Session) -> Result<T>) -> Result<T> {
        let _shared = self.objects_shared();
        self.run(op)
    }

    /// [`Token::with_session`] with exclusive access to the token's objects, for operations that create or
    /// destroy objects (see [`Module`]'s object lock).
    pub fn with_session_exclusive<T>(&self, op: impl FnMut(&Session) -> Result<T>) -> Result<T> {
        let _exclusive = self.objects.write().unwrap_or_else(|p| p.into_inner());
        self.run(op)
    }

    fn run<T>(&self, mut op: impl FnMut(&Session) -> Result<T>) -> Result<T> {
        let session = self.session()?;
        match op(&session) {
            Err(err) if err.is_session_lost() || !is_user_session(&session) => {
                tracing::warn!(token = %self.label(), error = %err, "PKCS#11 session lost; re-opening");
                session.discard();
                self.relogin()?;
                let session = self.session()?;
                op(&session)
            }
            other => other,
        }
    }

    /// Re-open the keeper session and log in again (after the token went away and came back).
    pub fn relogin(&self) -> Result<()> {
        let mut keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // Whatever happened (a logout destroys the application's private session objects; a closed keeper
        // session destroys its own), the session copies made so far are gone or no longer trusted.
        self.keeper_generation.fetch_add(1, Ordering::Relaxed);
        self.copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        match login(&keeper, &self.pin, self.label()) {
            Ok(()) => Ok(()),
            Err(_) => {
                let fresh = self.module.context().open_rw_session(self.slot)?;
                login(&fresh, &self.pin, self.label())?;
                *keeper = fresh;
                Ok(())
            }
        }
    }

    /// Copy the token object `object` (of `label` and `id`) into a session object owned by the keeper session
    /// (`C_CopyObject` with `CKA_TOKEN` false and the label [`SESSION_COPY_LABEL`]). The copy keeps every
    /// protection of the original (sensitive, never extractable); it exists so that a key that signs often
    /// is used from the token's memory instead of its object store (SoftHSM re-reads and locks the object's
    /// file on every `C_SignInit`). Fails with the token's error when it refuses copies (`CKA_COPYABLE`
    /// false, no room).
    ///
    /// The copy lasts until [`Token::destroy_session_copy`], until its original is deleted with
    /// [`Token::delete_set`] or [`Token::delete_label`], or until the next re-login.
    ///
    /// Copies are session objects in the token's memory, not token objects: they are made and destroyed
    /// under the shared object lock (SoftHSMv2 issue 573 is about token objects' files).
    pub(crate) fn session_copy(
        &self,
        object: ObjectHandle,
        label: &str,
        id: &[u8],
    ) -> Result<SessionCopy> {
        let _shared = self.objects_shared();
        let keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        let handle = keeper.copy_object(
            object,
            &[
                Attribute::Token(false),
                Attribute::Label(SESSION_COPY_LABEL.as_bytes().to_vec()),
            ],
        )?;
        let copy = SessionCopy {
            handle,
            generation: self.keeper_generation.load(Ordering::Relaxed),
        };
        self.copies.lock().unwrap_or_else(|p| p.into_inner()).push((
            label.to_owned(),
            id.to_vec(),
            copy,
        ));
        Ok(copy)
    }

    /// Destroy a copy made by [`Token::session_copy`]. A copy made before the last re-login is already gone
    /// (its handle may even name another object by now) and is left alone.
    pub(crate) fn destroy_session_copy(&self, copy: SessionCopy) {
        let _shared = self.objects_shared();
        let keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        // The registry holds exactly the live copies (a re-login empties it).
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = copies.iter().position(|(_, _, c)| *c == copy) else {
            return;
        };
        copies.swap_remove(at);
        if let Err(err) = keeper.destroy_object(copy.handle) {
            tracing::debug!(token = %self.label(), error = %err, "session copy already gone");
        }
    }

    /// Destroy the session copies of the objects of `label` (with `id`, or any id): their originals are
    /// being deleted, and a deleted key must stop signing. A key that signed with one then finds its handle
    /// invalid, looks for its key again and fails with [`crate::Error::ObjectNotFound`].
    pub(crate) fn forget_copies(&self, label: &str, id: Option<&[u8]>) {
        let _shared = self.objects_shared();
        let keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner());
        self.copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(l, i, copy)| {
                if l != label || id.is_some_and(|id| id != i.as_slice()) {
                    return true;
                }
                if let Err(err) = keeper.destroy_object(copy.handle) {
                    tracing::debug!(error = %err, "session copy already gone");
                }
                false
            });
    }

    /// Fill `buf` from the token's random generator.
    pub fn random(&self, buf: &mut [u8]) -> Result<()> {
        self.with_session(|s| Ok(s.generate_random_slice(buf)?))
    }

    fn objects_shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn give_back(&self, session: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.pool_size {
            idle.push(session);
        }
    }
}

/// Whether the session still carries the user login (someone may have logged the application out, which
/// makes private objects invisible: their handles then fail as invalid).
fn is_user_session(session: &Session) -> bool {
    matches!(
        session.get_session_info().map(|i| i.session_state()),
        Ok(SessionState::RwUser | SessionState::RoUser)
    )
}

type SharedTokens = Mutex<HashMap<(PathBuf, TokenSelector), Weak<Token>>>;

fn shared_tokens() -> &'static SharedTokens {
    static SHARED: OnceLock<SharedTokens> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(HashMap::new()))
}

fn login(session: &Session, pin: &Pin, label: &str) -> Result<()> {
    match session.login(UserType::User, Some(&pin.auth())) {
        Ok(()) => Ok(()),
        Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(Error::WrongUserPin(label.to_owned()))
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinLocked, _)) => {
            Err(Error::PinLocked(label.to_owned()))
        }
        Err(err) => Err(err.into()),
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("library", &self.module.path())
            .field("token", &self.description)
            .finish_non_exhaustive()
    }
}

// === impl PooledSession ===

impl PooledSession<'_> {
    /// Close this session instead of returning it to the pool.
    pub fn discard(mut self) {
        self.session = None;
    }
}

impl Deref for PooledSession<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        // The session is only taken out by `discard` (which consumes the guard) and by `drop`.
        match &self.session {
            Some(session) => session,
            None => unreachable!("PooledSession is consumed by discard"),
        }
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.token.give_back(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{SoftHsm, USER_PIN};

    #[test]
    fn shared_tokens_are_one_instance_until_dropped() {
        let hsm = SoftHsm::new();
        drop(hsm.token("shared"));
        let selector = TokenSelector::Label("shared".into());
        let a = Token::open_shared(hsm.module(), selector.clone(), Pin::new(USER_PIN)).unwrap();
        let b = Token::open_shared(hsm.module(), selector.clone(), Pin::new(USER_PIN)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        // Dropped: the next caller gets a fresh instance, and re-initialising in between is possible.
        crate::take_ownership(
            &hsm.module(),
            &selector,
            "shared",
            &Pin::new(crate::testkit::SO_PIN),
            &Pin::new(USER_PIN),
        )
        .unwrap();
        let c = Token::open_shared(hsm.module(), selector, Pin::new(USER_PIN)).unwrap();
        assert_eq!(c.label(), "shared");
    }
}
