//! The data the permission handler deals in: instance identities, permission maps and the answer to a lookup.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Permissions of one instance: functional server id (e.g. `"vis"`) → function → permission string (e.g. `"rw"`).
pub type Permissions = BTreeMap<String, ServerPermissions>;

/// Permissions of one instance on one functional server: function → permission string.
pub type ServerPermissions = BTreeMap<String, String>;

/// Whether an instance is a service instance or a component instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    /// An instance of a service deployed to the unit.
    Service,
    /// An instance of a component (a system part, not a deployed service).
    Component,
}

/// Which instance a secret belongs to: item id, subject id, instance number and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceIdent {
    /// The service or component id.
    pub item_id: String,
    /// The subject (user or group of the deployment) id.
    pub subject_id: String,
    /// The instance number of this item for this subject.
    pub instance: u64,
    /// Service or component.
    pub kind: InstanceKind,
}

/// What `GetPermissions` answers: whose secret it is and what it may do on the asked functional server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionGrant {
    /// The instance the secret was issued to.
    pub ident: InstanceIdent,
    /// Its permissions on the asked functional server.
    pub permissions: ServerPermissions,
}

// === impl InstanceKind ===

impl fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceKind::Service => "service",
            InstanceKind::Component => "component",
        })
    }
}

// === impl InstanceIdent ===

impl fmt::Display for InstanceIdent {
    /// `service:<item>/<subject>#<instance>`, the form used in logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}#{}",
            self.kind, self.item_id, self.subject_id, self.instance
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ident_displays_kind_item_subject_instance() {
        let ident = InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subj".into(),
            instance: 3,
            kind: InstanceKind::Component,
        };
        assert_eq!(ident.to_string(), "component:svc/subj#3");
    }

    #[test]
    fn ident_serializes_kind_in_lowercase_and_round_trips() {
        let ident = InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subj".into(),
            instance: 1,
            kind: InstanceKind::Service,
        };
        let json = serde_json::to_string(&ident).unwrap();
        assert!(json.contains(r#""kind":"service""#), "{json}");
        assert_eq!(serde_json::from_str::<InstanceIdent>(&json).unwrap(), ident);
    }
}
