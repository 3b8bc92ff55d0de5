//! Inventory of one label on a token: complete key/cert sets and leftovers to clean.

use std::collections::BTreeMap;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};

use crate::error::Result;
use crate::token::Token;

/// The objects that share one `CKA_ID` under a label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSet {
    /// The shared id.
    pub id: Vec<u8>,
    /// A private key exists.
    pub private_key: bool,
    /// A public key exists.
    pub public_key: bool,
    /// A (leaf) certificate exists.
    pub certificate: bool,
}

impl ObjectSet {
    /// Private key, public key and certificate are all present.
    pub fn is_complete(&self) -> bool {
        self.private_key && self.public_key && self.certificate
    }

    /// A certificate whose private key is missing.
    pub fn is_cert_without_key(&self) -> bool {
        self.certificate && !self.private_key
    }

    /// Keys without a certificate (a pending key, or an orphan left by an interrupted operation).
    pub fn is_key_without_cert(&self) -> bool {
        !self.certificate && (self.private_key || self.public_key)
    }
}

/// Everything labelled with one cert type on a token, grouped by `CKA_ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The label inspected.
    pub label: String,
    /// Sets by id (authority certificates, which have an empty id, are not listed here).
    pub sets: BTreeMap<Vec<u8>, ObjectSet>,
    /// Number of authority (chain) certificates stored under the label.
    pub authority_certs: usize,
}

impl Inventory {
    /// Ids of complete sets.
    pub fn complete(&self) -> impl Iterator<Item = &ObjectSet> {
        self.sets.values().filter(|s| s.is_complete())
    }

    /// Sets that are not complete: certificates without keys and keys without certificates.
    pub fn leftovers(&self) -> impl Iterator<Item = &ObjectSet> {
        self.sets.values().filter(|s| !s.is_complete())
    }
}

// === impl Token (inventory) ===

impl Token {
    /// List every private key, public key and certificate labelled `label`, grouped by id.
    pub fn inventory(&self, label: &str) -> Result<Inventory> {
        self.with_session(|s| {
            let mut inventory = Inventory {
                label: label.to_owned(),
                ..Inventory::default()
            };
            let objects = s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?;
            for object in objects {
                let attrs = s.get_attributes(object, &[AttributeType::Class, AttributeType::Id])?;
                let (mut class, mut id) = (None, Vec::new());
                for attr in attrs {
                    match attr {
                        Attribute::Class(c) => class = Some(c),
                        Attribute::Id(i) => id = i,
                        _ => {}
                    }
                }
                if class == Some(ObjectClass::CERTIFICATE) && id.is_empty() {
                    inventory.authority_certs += 1;
                    continue;
                }
                let set = inventory
                    .sets
                    .entry(id.clone())
                    .or_insert_with(|| ObjectSet {
                        id,
                        ..ObjectSet::default()
                    });
                match class {
                    Some(ObjectClass::PRIVATE_KEY) => set.private_key = true,
                    Some(ObjectClass::PUBLIC_KEY) => set.public_key = true,
                    Some(ObjectClass::CERTIFICATE) => set.certificate = true,
                    _ => {}
                }
            }
            Ok(inventory)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{SoftHsm, TestCa};
    use crate::{KeyAlgorithm, TokenKey};
    use cryptoki::object::{Attribute, ObjectClass};

    #[test]
    fn inventory_reports_orphans_and_label_deletion_is_confined() {
        let hsm = SoftHsm::new();
        let token = hsm.token("inv");
        let ca = TestCa::new("inv");
        // A complete set.
        let good = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("sm", KeyAlgorithm::EccP256)
                .unwrap(),
        )
        .unwrap();
        token
            .store_chain(
                "sm",
                &good.key_pair().id,
                ca.issue(&good, "good").as_bytes(),
            )
            .unwrap();
        // A key pair without a certificate.
        let pending = token
            .generate_key_pair("sm", KeyAlgorithm::EccP256)
            .unwrap();
        // A certificate whose keys were destroyed.
        let lost = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("sm", KeyAlgorithm::EccP256)
                .unwrap(),
        )
        .unwrap();
        token
            .store_chain(
                "sm",
                &lost.key_pair().id,
                ca.issue(&lost, "lost").as_bytes(),
            )
            .unwrap();
        token
            .with_session(|s| {
                for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                    for o in s.find_objects(&[
                        Attribute::Class(class),
                        Attribute::Label(b"sm".to_vec()),
                        Attribute::Id(lost.key_pair().id.clone()),
                    ])? {
                        s.destroy_object(o)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        // Another label's objects.
        let other = TokenKey::new(
            token.clone(),
            token
                .generate_key_pair("cm", KeyAlgorithm::EccP256)
                .unwrap(),
        )
        .unwrap();
        token
            .store_chain(
                "cm",
                &other.key_pair().id,
                ca.issue(&other, "cm").as_bytes(),
            )
            .unwrap();

        let inv = token.inventory("sm").unwrap();
        assert_eq!(inv.sets.len(), 3);
        let complete: Vec<_> = inv.complete().map(|s| s.id.clone()).collect();
        assert_eq!(complete, vec![good.key_pair().id.clone()]);
        let mut leftovers: Vec<_> = inv.leftovers().collect();
        leftovers.sort_by_key(|s| s.certificate);
        assert_eq!(leftovers.len(), 2);
        assert!(leftovers[0].is_key_without_cert() && leftovers[0].id == pending.id);
        assert!(leftovers[1].is_cert_without_key() && leftovers[1].id == lost.key_pair().id);

        // Deleting the whole "sm" label leaves "cm" intact.
        let destroyed = token.delete_label("sm").unwrap();
        assert_eq!(
            destroyed,
            3 + 2 + 1 + 2,
            "good set, pending pair, lost cert, two CA certs"
        );
        assert!(token.inventory("sm").unwrap().sets.is_empty());
        let cm = token.inventory("cm").unwrap();
        assert_eq!(cm.complete().count(), 1);
        assert_eq!(cm.authority_certs, 2);
        assert_eq!(
            token.read_chain("cm", &other.key_pair().id).unwrap().len(),
            3
        );
    }
}
