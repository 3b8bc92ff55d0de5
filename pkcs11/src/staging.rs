//! Staging: making token objects by way of session objects.
//!
//! SoftHSM writes a new token object's file once per attribute while `C_CreateObject` or
//! `C_GenerateKeyPair` fills it in (26 rewrites for a certificate, 4.5 ms; 11 ms for a P-256 key pair on
//! ext4), but only once for a `C_CopyObject`. Certificates and key pairs are therefore made as session
//! objects and then copied to the token with [`promote`]; the copy is the same object. A token that refuses
//! either step gets the object made directly, by the caller.

use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;

/// Copy the session object `staged` with `template` (which says `CKA_TOKEN` true, and may set the label and
/// id), then destroy `staged` whatever the copy did; the copy's handle.
pub(crate) fn promote(
    s: &Session,
    staged: ObjectHandle,
    template: &[Attribute],
) -> cryptoki::error::Result<ObjectHandle> {
    let copy = s.copy_object(staged, template);
    discard(s, staged, "staged session object");
    copy
}

/// Destroy `object`, which is no longer wanted; a failure is logged as being about `what`. A session
/// object that survives stays in its session until the session closes.
pub(crate) fn discard(s: &Session, object: ObjectHandle, what: &str) {
    if let Err(err) = s.destroy_object(object) {
        tracing::warn!(error = %err, "could not destroy a {what}");
    }
}
