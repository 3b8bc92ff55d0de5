//! Taking ownership of a token: `C_InitToken` with the SO PIN, then `C_InitPIN` with the user PIN.

use std::collections::HashSet;

use aos_config::TokenSelector;
use cryptoki::error::RvError;
use cryptoki::session::UserType;

use crate::error::{Error, Result};
use crate::module::{Module, TokenDescription};
use crate::pin::Pin;

/// Initialise (or re-initialise) the token `selector` names with `so_pin` and `label`, then set `user_pin`.
///
/// When the selector matches an initialised token, that token is re-initialised (which erases all its
/// objects and needs the current SO PIN: a wrong one gives [`Error::WrongSoPin`]). Otherwise the first free
/// slot receives a new token. No session may be open on the token while this runs (PKCS#11 refuses with
/// `CKR_SESSION_EXISTS`): drop every [`crate::Token`] of it first.
///
/// Returns the token as found after initialisation; its slot id may differ from before, since SoftHSM
/// renumbers slots.
pub fn take_ownership(
    module: &Module,
    selector: &TokenSelector,
    label: &str,
    so_pin: &Pin,
    user_pin: &Pin,
) -> Result<TokenDescription> {
    // A new token is told apart from the others after C_InitToken by its serial and its slot: remember the
    // serials of the initialised tokens and the slots present (a full scan, needed only when a token is
    // created; the lookup that found no token made it already).
    let mut known_serials = HashSet::new();
    let mut known_slots = HashSet::new();
    let (slot, previous) = match module.find_slot_or_scan(selector)? {
        Ok((slot, previous)) if previous.initialized => (slot, previous),
        found => {
            let (found, tokens) = match found {
                Ok(found) => (Some(found), module.tokens()?),
                Err(tokens) => (None, tokens),
            };
            for (slot, t) in &tokens {
                known_slots.insert(slot.id());
                if t.initialized {
                    known_serials.insert(t.serial.clone());
                }
            }
            match found {
                Some(found) => found,
                None => tokens
                    .into_iter()
                    .find(|(_, t)| !t.initialized)
                    .ok_or_else(|| Error::NoFreeSlot(module.path().to_owned()))?,
            }
        }
    };
    if !so_pin.expose().is_empty() {
        // An empty SO PIN is how TEE tokens (no SO) are initialised.
        check_pin_length(module, slot, so_pin, "SO PIN")?;
    }
    check_pin_length(module, slot, user_pin, "user PIN")?;

    match module.context().init_token(slot, &so_pin.auth(), label) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
            return Err(Error::WrongSoPin(previous.label))
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinLocked, _)) => {
            return Err(Error::PinLocked(previous.label))
        }
        Err(err) => return Err(err.into()),
    }

    // Find the token again: by its old serial on re-initialisation (first in the slot it was in: a
    // re-initialised token usually stays there, and scanning a module of many tokens is slow), else the
    // new serial carrying our label.
    let is_ours = |t: &TokenDescription| {
        t.initialized
            && t.label == label
            && if previous.initialized {
                t.serial == previous.serial
            } else {
                !known_serials.contains(&t.serial)
            }
    };
    // Where to look first: the token's own slot, and for a new token also the slots that appeared with the
    // initialisation (SoftHSM moves a new token to a slot numbered after its serial).
    let mut candidates = vec![(slot, previous.slot_index)];
    if !previous.initialized {
        for (index, s) in module
            .context()
            .get_slots_with_token()?
            .into_iter()
            .enumerate()
        {
            if !known_slots.contains(&s.id()) {
                candidates.push((s, index));
            }
        }
    }
    let quick = candidates.into_iter().find_map(|(s, index)| {
        module
            .describe(s, index)
            .ok()
            .filter(|t| is_ours(t))
            .map(|t| (s, t))
    });
    let (slot, token) = match quick {
        Some(found) => found,
        None => module
            .tokens()?
            .into_iter()
            .find(|(_, t)| is_ours(t))
            .ok_or_else(|| Error::TokenNotFound {
                selector: format!("token label {label:?} just initialised"),
                library: module.path().to_owned(),
                present: "it vanished after C_InitToken".to_owned(),
            })?,
    };

    let session = module.context().open_rw_session(slot)?;
    match session.login(UserType::So, Some(&so_pin.auth())) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
            return Err(Error::WrongSoPin(token.label))
        }
        Err(err) => return Err(err.into()),
    }
    session.init_pin(&user_pin.auth())?;
    session.logout()?;
    module.remember(slot, &token);
    tracing::info!(token = %token.label, serial = %token.serial, "took ownership of token");
    Ok(token)
}

/// Check `so_pin` against the token `selector` names without changing anything (an SO login and logout).
///
/// Returns `Ok(true)` when the PIN is right, `Ok(false)` when no initialised token matches (nobody owns it
/// yet, so any password may take it), and [`Error::WrongSoPin`] when the PIN is wrong. The application must
/// have no user session open on the token (close every [`crate::Token`] of it first).
pub fn check_so_pin(module: &Module, selector: &TokenSelector, so_pin: &Pin) -> Result<bool> {
    let (slot, token) = match module.find_slot(selector) {
        Ok(found) if found.1.initialized => found,
        Ok(_) | Err(Error::TokenNotFound { .. }) => return Ok(false),
        Err(err) => return Err(err),
    };
    let session = module.context().open_rw_session(slot)?;
    match session.login(UserType::So, Some(&so_pin.auth())) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
            let _ = session.logout();
            Ok(true)
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(Error::WrongSoPin(token.label))
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinLocked, _)) => {
            Err(Error::PinLocked(token.label))
        }
        Err(err) => Err(err.into()),
    }
}

/// Refuse a PIN the token would refuse, with a message that says why (tokens often report a short PIN as
/// "PIN incorrect").
fn check_pin_length(
    module: &Module,
    slot: cryptoki::slot::Slot,
    pin: &Pin,
    what: &'static str,
) -> Result<()> {
    let info = module.context().get_token_info(slot)?;
    let (min, max) = (info.min_pin_length(), info.max_pin_length());
    let len = pin.expose().len();
    if len < min || len > max {
        return Err(Error::PinLength { what, min, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SoftHsm;
    use crate::Token;

    #[test]
    fn token_is_found_by_label_after_reinit_and_keeps_serial() {
        let hsm = SoftHsm::new();
        let module = hsm.module();
        let so = Pin::new("so-secret");
        let user = Pin::new("user-secret");
        let selector = TokenSelector::Label("aoscore".into());
        let first = take_ownership(&module, &selector, "aoscore", &so, &user).unwrap();
        let other = take_ownership(
            &module,
            &TokenSelector::Label("aoscloud".into()),
            "aoscloud",
            &so,
            &user,
        )
        .unwrap();
        assert_ne!(first.serial, other.serial);
        {
            let token = Token::open(module.clone(), selector.clone(), user.clone()).unwrap();
            token
                .generate_key_pair("iam", aos_config::KeyAlgorithm::EccP256)
                .unwrap();
            assert_eq!(token.inventory("iam").unwrap().sets.len(), 1);
        }
        // Re-initialise with a new user PIN: the token is found by label, erased, and the new PIN works.
        let new_user = Pin::new("user-secret-2");
        let again = take_ownership(&module, &selector, "aoscore", &so, &new_user).unwrap();
        assert_eq!(again.serial, first.serial);
        let token = Token::open(module.clone(), selector.clone(), new_user).unwrap();
        assert!(
            token.inventory("iam").unwrap().sets.is_empty(),
            "re-init must erase objects"
        );
        // Also by serial.
        let by_serial = module
            .find_slot(&TokenSelector::Serial(first.serial.clone()))
            .unwrap();
        assert_eq!(by_serial.1.label, "aoscore");
        // The other token is untouched.
        assert!(module
            .find_slot(&TokenSelector::Label("aoscloud".into()))
            .is_ok());
    }

    #[test]
    fn wrong_so_pin_is_refused_and_token_kept() {
        let hsm = SoftHsm::new();
        let module = hsm.module();
        let selector = TokenSelector::Label("aos".into());
        let user = Pin::new("user-secret");
        take_ownership(&module, &selector, "aos", &Pin::new("right"), &user).unwrap();
        {
            let token = Token::open(module.clone(), selector.clone(), user.clone()).unwrap();
            token
                .generate_key_pair("online", aos_config::KeyAlgorithm::EccP256)
                .unwrap();
        }
        match take_ownership(&module, &selector, "aos", &Pin::new("wrong"), &user) {
            Err(Error::WrongSoPin(label)) => assert_eq!(label, "aos"),
            other => panic!("expected WrongSoPin, got {other:?}"),
        }
        let token = Token::open(module, selector, user).unwrap();
        assert_eq!(
            token.inventory("online").unwrap().sets.len(),
            1,
            "objects must survive"
        );
    }

    #[test]
    fn too_short_pins_get_a_length_error() {
        let hsm = SoftHsm::new();
        let selector = TokenSelector::Label("aos".into());
        let err = take_ownership(
            &hsm.module(),
            &selector,
            "aos",
            &Pin::new("so"),
            &Pin::new("user-pin"),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::PinLength {
                    what: "SO PIN",
                    min: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("between 4 and"), "{err}");
    }

    #[test]
    fn so_pin_check_changes_nothing() {
        let hsm = SoftHsm::new();
        let module = hsm.module();
        let selector = TokenSelector::Label("aos".into());
        assert!(
            !check_so_pin(&module, &selector, &Pin::new("anything")).unwrap(),
            "free token"
        );
        take_ownership(
            &module,
            &selector,
            "aos",
            &Pin::new("so-pin-1"),
            &Pin::new("user-pin"),
        )
        .unwrap();
        {
            let token =
                Token::open(module.clone(), selector.clone(), Pin::new("user-pin")).unwrap();
            token
                .generate_key_pair("iam", aos_config::KeyAlgorithm::EccP256)
                .unwrap();
        }
        assert!(check_so_pin(&module, &selector, &Pin::new("so-pin-1")).unwrap());
        assert!(matches!(
            check_so_pin(&module, &selector, &Pin::new("so-pin-2")),
            Err(Error::WrongSoPin(_))
        ));
        let token = Token::open(module, selector, Pin::new("user-pin")).unwrap();
        assert_eq!(token.inventory("iam").unwrap().sets.len(), 1);
    }

    #[test]
    fn wrong_user_pin_is_refused() {
        let hsm = SoftHsm::new();
        let module = hsm.module();
        let selector = TokenSelector::Label("aos".into());
        take_ownership(
            &module,
            &selector,
            "aos",
            &Pin::new("so-pin"),
            &Pin::new("good-pin"),
        )
        .unwrap();
        match Token::open(module.clone(), selector.clone(), Pin::new("bad-pin")) {
            Err(Error::WrongUserPin(label)) => assert_eq!(label, "aos"),
            other => panic!("expected WrongUserPin, got {other:?}"),
        }
        assert!(Token::open(module, selector, Pin::new("good-pin")).is_ok());
    }

    #[test]
    fn missing_token_lists_what_is_present() {
        let hsm = SoftHsm::new();
        hsm.token("present-one");
        let err = hsm
            .module()
            .find_slot(&TokenSelector::Label("absent".into()))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::TokenNotFound { .. }), "{err:?}");
        assert!(
            text.contains("absent")
                && text.contains("present-one")
                && text.contains("uninitialised"),
            "{text}"
        );
        assert!(hsm
            .module()
            .find_slot(&TokenSelector::SlotIndex(99))
            .is_err());
        assert!(hsm.module().find_slot(&TokenSelector::SlotIndex(0)).is_ok());
    }
}
