//! [`KeyProfile`]: which certificate modules, with which key algorithms, each simulated node has.

use aos_config::KeyAlgorithm;

/// The key set of every node of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyProfile {
    /// The set AosCore ships, in the algorithms the security model names (`aoscore`): RSA-2048 for the
    /// main node's `offline` type and for a self-signed `diskencryption` certificate on every node, ECDSA
    /// P-384 for every other type.
    #[default]
    AosCore,
    /// ECDSA P-256 for the three CA-issued types only (`p256`): the cheapest key generation, for runs
    /// where the unit's size matters more than its fidelity.
    P256,
}

/// One certificate module of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSpec {
    /// Cert type.
    pub id: &'static str,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Self-signed at StartProvisioning (not issued by the cloud's CA, never renewed by it).
    pub self_signed: bool,
    /// Used for TLS between components: serverAuth + clientAuth (the cloud-facing types have no
    /// extended key usage).
    pub tls: bool,
    /// Certificates kept (`max_items`).
    pub max_items: u32,
}

/// A CA-issued type that components use for TLS, keeping 2 certificates (renewal overlaps).
const fn issued(id: &'static str, algorithm: KeyAlgorithm) -> ModuleSpec {
    ModuleSpec {
        id,
        algorithm,
        self_signed: false,
        tls: true,
        max_items: 2,
    }
}

/// AosCore's `online` type: the cloud's, no extended key usage.
const ONLINE: ModuleSpec = ModuleSpec {
    id: "online",
    algorithm: KeyAlgorithm::EccP384,
    self_signed: false,
    tls: false,
    max_items: 2,
};

/// AosCore's `offline` type: RSA, no extended key usage, 5 certificates kept.
const OFFLINE: ModuleSpec = ModuleSpec {
    id: "offline",
    algorithm: KeyAlgorithm::Rsa2048,
    self_signed: false,
    tls: false,
    max_items: 5,
};

/// AosCore's `diskencryption` type: self-signed RSA, one certificate.
const DISK: ModuleSpec = ModuleSpec {
    id: "diskencryption",
    algorithm: KeyAlgorithm::Rsa2048,
    self_signed: true,
    tls: false,
    max_items: 1,
};

// The CA-issued types of each list end with `iam`: the order renewals apply them.
const AOSCORE_MAIN: [ModuleSpec; 6] = [
    ONLINE,
    OFFLINE,
    issued("cm", KeyAlgorithm::EccP384),
    issued("sm", KeyAlgorithm::EccP384),
    issued("iam", KeyAlgorithm::EccP384),
    DISK,
];
const AOSCORE_SECONDARY: [ModuleSpec; 4] = [
    issued("mp", KeyAlgorithm::EccP384),
    issued("sm", KeyAlgorithm::EccP384),
    issued("iam", KeyAlgorithm::EccP384),
    DISK,
];
const P256_MAIN: [ModuleSpec; 3] = [
    issued("cm", KeyAlgorithm::EccP256),
    issued("sm", KeyAlgorithm::EccP256),
    issued("iam", KeyAlgorithm::EccP256),
];
const P256_SECONDARY: [ModuleSpec; 3] = [
    issued("mp", KeyAlgorithm::EccP256),
    issued("sm", KeyAlgorithm::EccP256),
    issued("iam", KeyAlgorithm::EccP256),
];

impl KeyProfile {
    /// The modules of the main node (`main`) or of a secondary.
    pub fn modules(self, main: bool) -> &'static [ModuleSpec] {
        match (self, main) {
            (KeyProfile::AosCore, true) => &AOSCORE_MAIN,
            (KeyProfile::AosCore, false) => &AOSCORE_SECONDARY,
            (KeyProfile::P256, true) => &P256_MAIN,
            (KeyProfile::P256, false) => &P256_SECONDARY,
        }
    }

    /// The cert types the cloud's CA issues to the main node or a secondary, `iam` last.
    pub fn issued_types(self, main: bool) -> Vec<String> {
        self.modules(main)
            .iter()
            .filter(|m| !m.self_signed)
            .map(|m| m.id.to_owned())
            .collect()
    }
}

impl std::str::FromStr for KeyProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aoscore" => Ok(KeyProfile::AosCore),
            "p256" => Ok(KeyProfile::P256),
            other => Err(format!(
                "unknown key profile {other:?}: use aoscore or p256"
            )),
        }
    }
}

impl std::fmt::Display for KeyProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyProfile::AosCore => "aoscore",
            KeyProfile::P256 => "p256",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for p in [KeyProfile::AosCore, KeyProfile::P256] {
            assert_eq!(p.to_string().parse::<KeyProfile>(), Ok(p));
        }
        let err = "rsa".parse::<KeyProfile>().unwrap_err();
        assert!(err.contains("aoscore or p256"), "{err}");
    }

    #[test]
    fn issued_types_end_with_iam_and_leave_out_self_signed_ones() {
        for p in [KeyProfile::AosCore, KeyProfile::P256] {
            for main in [true, false] {
                let types = p.issued_types(main);
                assert_eq!(types.last().map(String::as_str), Some("iam"), "{p} {main}");
                assert!(!types.iter().any(|t| t == "diskencryption"));
            }
        }
        assert_eq!(
            KeyProfile::AosCore.issued_types(true),
            ["online", "offline", "cm", "sm", "iam"]
        );
    }
}
