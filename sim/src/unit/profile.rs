//! [`KeyProfile`]: which certificate modules, with which key algorithms, each simulated node has.

use aos_config::KeyAlgorithm;

/// The key set of every node of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyProfile {
    /// The set AosCore ships, in the algorithms the security model names (`aoscore`): ECDSA P-384 for
    /// every CA-issued type, plus the RSA-2048 `offline` type on the main node and a self-signed
    /// RSA-2048 `diskencryption` certificate on every node.
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
}

const fn issued(id: &'static str, algorithm: KeyAlgorithm) -> ModuleSpec {
    ModuleSpec {
        id,
        algorithm,
        self_signed: false,
    }
}

const DISK: ModuleSpec = ModuleSpec {
    id: "diskencryption",
    algorithm: KeyAlgorithm::Rsa2048,
    self_signed: true,
};

// The CA-issued types of each list end with `iam`: the order renewals apply them.
const AOSCORE_MAIN: [ModuleSpec; 6] = [
    issued("online", KeyAlgorithm::EccP384),
    issued("offline", KeyAlgorithm::Rsa2048),
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
