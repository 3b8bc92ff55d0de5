//! Authorization policy of an endpoint: which roles, and optionally which unit and nodes, it accepts.

use std::collections::BTreeSet;

use crate::tls::identity::{PeerIdentity, Role};
use crate::tls::refusal::{Refusal, RefusalReason};

/// Which peers an endpoint accepts, checked after the certificate chain verified.
///
/// A peer is accepted when its identity's role is in [`Policy::accepted_roles`], its unit equals the
/// required unit (if one is set) and its node is among the accepted nodes (if any are set). A policy with
/// no roles accepts nobody: authorization fails closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    roles: BTreeSet<Role>,
    unit: Option<String>,
    nodes: BTreeSet<String>,
}

// === impl Policy ===

impl Policy {
    /// Accept peers of these roles, from any unit and node.
    pub fn roles(roles: impl IntoIterator<Item = Role>) -> Policy {
        Policy {
            roles: roles.into_iter().collect(),
            unit: None,
            nodes: BTreeSet::new(),
        }
    }

    /// Accept any role, as long as the certificate carries a valid identity.
    pub fn any_role() -> Policy {
        Policy::roles(Role::ALL)
    }

    /// Also require the peer's unit to be `unit`.
    pub fn with_unit(mut self, unit: impl Into<String>) -> Policy {
        self.unit = Some(unit.into());
        self
    }

    /// Also require the peer's node to be `node` (or one of the nodes added before).
    pub fn with_node(mut self, node: impl Into<String>) -> Policy {
        self.nodes.insert(node.into());
        self
    }

    /// The roles accepted.
    pub fn accepted_roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles.iter().copied()
    }

    /// The unit required, if any.
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// The nodes accepted; empty means any node.
    pub fn nodes(&self) -> impl Iterator<Item = &str> + '_ {
        self.nodes.iter().map(String::as_str)
    }

    /// Accept `peer`, or say why not.
    pub fn check(&self, peer: &PeerIdentity) -> Result<(), Refusal> {
        if !self.roles.contains(&peer.role) {
            let accepted: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            return Err(Refusal::new(
                RefusalReason::RoleNotAccepted,
                format!(
                    "{peer}: role `{}` is not accepted here (accepted: {})",
                    peer.role,
                    if accepted.is_empty() {
                        "none".to_owned()
                    } else {
                        accepted.join(", ")
                    }
                ),
            ));
        }
        if let Some(unit) = &self.unit {
            if &peer.unit != unit {
                return Err(Refusal::new(
                    RefusalReason::UnitNotAccepted,
                    format!("{peer}: unit `{}` is not this unit `{unit}`", peer.unit),
                ));
            }
        }
        if !self.nodes.is_empty() && !self.nodes.contains(&peer.node) {
            let nodes: Vec<&str> = self.nodes().collect();
            return Err(Refusal::new(
                RefusalReason::NodeNotAccepted,
                format!(
                    "{peer}: node `{}` is not accepted here (accepted: {})",
                    peer.node,
                    nodes.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(unit: &str, node: &str, role: Role) -> PeerIdentity {
        PeerIdentity::new(unit, node, role).unwrap()
    }

    fn reason(policy: &Policy, peer: &PeerIdentity) -> Option<RefusalReason> {
        policy.check(peer).err().map(|r| r.reason)
    }

    #[test]
    fn roles_unit_and_nodes_are_each_enforced() {
        let policy = Policy::roles([Role::Mp, Role::Iam])
            .with_unit("u1")
            .with_node("n1")
            .with_node("n2");
        assert_eq!(reason(&policy, &id("u1", "n1", Role::Mp)), None);
        assert_eq!(reason(&policy, &id("u1", "n2", Role::Iam)), None);
        assert_eq!(
            reason(&policy, &id("u1", "n1", Role::Sm)),
            Some(RefusalReason::RoleNotAccepted)
        );
        assert_eq!(
            reason(&policy, &id("u2", "n1", Role::Mp)),
            Some(RefusalReason::UnitNotAccepted)
        );
        assert_eq!(
            reason(&policy, &id("u1", "n3", Role::Mp)),
            Some(RefusalReason::NodeNotAccepted)
        );
    }

    #[test]
    fn any_role_accepts_every_role_and_no_role_accepts_nobody() {
        for role in Role::ALL {
            assert_eq!(reason(&Policy::any_role(), &id("u", "n", role)), None);
            let refusal = Policy::roles([]).check(&id("u", "n", role)).unwrap_err();
            assert_eq!(refusal.reason, RefusalReason::RoleNotAccepted);
            assert!(refusal.detail.contains("accepted: none"), "{refusal}");
        }
    }
}
