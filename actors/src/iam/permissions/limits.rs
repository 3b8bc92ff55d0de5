//! Checks of a registration against `[permissions.limits]`.

use aos_config::PermissionLimits;

use super::{InstanceIdent, PermissionError, Permissions};

/// Check string lengths and the server count of one registration. The instance count is the store's
/// business (re-registering a live instance does not add one).
///
/// Strings are checked first, so the identifiers quoted in later errors are bounded.
pub(crate) fn check(
    limits: &PermissionLimits,
    ident: &InstanceIdent,
    permissions: &Permissions,
) -> Result<(), PermissionError> {
    let max = limits.max_string_len;
    let check_len = |what: &dyn Fn() -> String, s: &str| {
        if s.len() > max {
            Err(PermissionError::StringTooLong {
                what: what(),
                len: s.len(),
                max,
            })
        } else {
            Ok(())
        }
    };
    check_len(&|| "item id".into(), &ident.item_id)?;
    check_len(&|| "subject id".into(), &ident.subject_id)?;
    for (server, functions) in permissions {
        check_len(&|| "functional server id".into(), server)?;
        for (function, perms) in functions {
            check_len(&|| format!("function name on server {server:?}"), function)?;
            check_len(
                &|| format!("permission string of function {function:?} on server {server:?}"),
                perms,
            )?;
        }
    }
    if permissions.len() > limits.max_servers_per_instance {
        return Err(PermissionError::TooManyServers {
            ident: ident.to_string(),
            count: permissions.len(),
            max: limits.max_servers_per_instance,
        });
    }
    Ok(())
}
