//! The command line: every subcommand and flag, as clap parses them. `docs/aosctl.md` documents each one.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Operator CLI of aos-edge: a development CA, provisioning, certificates, permissions and diagnostics.
///
/// Exit codes: 0 ok, 1 the operation failed, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "aosctl", version, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of human tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A development CA for a unit: create it, issue client certificates.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Provision one node (or every node of the unit): start, a key and certificate per type, finish.
    Provision(ProvisionArgs),
    /// Remove a node's identity: its certificates and keys are cleared, it becomes unprovisioned.
    Deprovision(DeprovisionArgs),
    /// Pause a provisioned node.
    Pause(NodeArgs),
    /// Resume a paused node.
    Resume(NodeArgs),
    /// The nodes of the unit.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// A node's certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Service permissions (the secrets IAM hands to service instances).
    #[command(subcommand)]
    Permissions(PermissionsCommand),
    /// Diagnose a node from its configuration: config, PKCS#11, tokens, PIN files, certificates, clock.
    Check(CheckArgs),
    /// Node configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `aosctl ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a development CA (root and intermediate, ECDSA P-384) in a new directory.
    Init(CaInitArgs),
    /// Issue a client certificate with a software key (e.g. role `cm`, for the protected API).
    Issue(CaIssueArgs),
}

/// `aosctl ca init`.
#[derive(Debug, Args)]
pub struct CaInitArgs {
    /// Directory to create the CA in (mode 0700; existing CA files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Id of the unit the CA signs for.
    #[arg(long, value_name = "UNIT", default_value = "unit-0001")]
    pub unit: String,
}

/// `aosctl ca issue`.
#[derive(Debug, Args)]
pub struct CaIssueArgs {
    /// The CA directory (made by `aosctl ca init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Node id the certificate names.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// Role the certificate names: cm, sm, iam, mp, online or offline.
    #[arg(long, value_name = "ROLE")]
    pub role: String,
    /// Output prefix: writes PREFIX.pem (chain) and PREFIX.key (PKCS#8, mode 0600).
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Lifetime of the certificate (e.g. `30d`); the CA's default (365 days) when left out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lifetime: Option<Duration>,
}

/// How to reach a node's IAM endpoint and authenticate both sides.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The IAM endpoint: `host:port`, `ip:port` or `unix:///path`. The public endpoint (8090) without
    /// `--cert`, the protected one (8089) with it.
    #[arg(long, value_name = "ADDR")]
    pub server: String,
    /// SHA-256 fingerprint of the node's provisioning certificate (its log says it at start): accepted while
    /// the node has no CA-issued certificate.
    #[arg(long, value_name = "SHA256")]
    pub pin: Option<String>,
    /// The unit's CA: a directory made by `aosctl ca init`, or a PEM file of CA certificates. The node's
    /// `iam` certificate must chain to it.
    #[arg(long, value_name = "DIR|PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for the protected endpoint, e.g. from `aosctl ca issue --role cm`.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PKCS#8 or SEC1 PEM) of `--cert`.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// How long to wait for the connection (e.g. `10s`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Where the provisioning password comes from.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// File holding the provisioning password (the tokens' SO PIN); one line. Without it aosctl prompts on
    /// the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// `aosctl provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Password.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The node to provision (requests for another node are forwarded by the main node); the node serving
    /// `--server` when left out.
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub node: Option<String>,
    /// Provision every node of the unit (GetAllNodeIDs on the main node); the main node last.
    #[arg(long)]
    pub all: bool,
}

/// `aosctl deprovision`.
#[derive(Debug, Args)]
pub struct DeprovisionArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Password.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The node; the node serving `--server` when left out.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
}

/// `aosctl pause` and `aosctl resume`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The node; the node serving `--server` when left out.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
}

/// `aosctl nodes …`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Every node of the unit with its name, type, role and provisioning state (ask the main node).
    List(NodesListArgs),
}

/// `aosctl nodes list`.
#[derive(Debug, Args)]
pub struct NodesListArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `aosctl certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// The current certificate of each type: type, serial, not_after, URL.
    List(CertsListArgs),
    /// Renew one certificate: a new key and CSR on the node, signed by the CA, applied.
    Renew(CertsRenewArgs),
}

/// `aosctl certs list`.
#[derive(Debug, Args)]
pub struct CertsListArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The node; the node serving `--server` when left out.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// Cert types to list (repeatable); every type the node has when left out (GetCertTypes, which needs
    /// `--cert` once the node is provisioned).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
}

/// `aosctl certs renew`.
#[derive(Debug, Args)]
pub struct CertsRenewArgs {
    /// Connection (`--ca` must be the CA directory: it signs the new certificate).
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Password.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The node; the node serving `--server` when left out.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// The cert type to renew.
    #[arg(long = "type", value_name = "TYPE")]
    pub cert_type: String,
}

/// `aosctl permissions …`.
#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// What a secret grants on one functional server (GetPermissions), as that server would ask.
    Check(PermissionsCheckArgs),
}

/// `aosctl permissions check`.
#[derive(Debug, Args)]
pub struct PermissionsCheckArgs {
    /// Connection.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// File holding the instance's secret (its `AOS_SECRET`).
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    /// The functional server asking (e.g. `vis`).
    #[arg(long, value_name = "ID")]
    pub server_id: String,
}

/// `aosctl check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The node's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// A certificate expiring sooner than this is a warning (e.g. `30d`).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub expiry_warning: Duration,
}

/// `aosctl config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Turn an AosCore IAM JSON configuration into this runtime's TOML (validated before it is written).
    Import(ImportArgs),
}

/// `aosctl config import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The AosCore IAM JSON file (keys are matched case-insensitively).
    #[arg(value_name = "AOSCORE_IAM_JSON")]
    pub input: PathBuf,
    /// Write the TOML here (never over an existing file) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Node id: AosCore reads it from `nodeIdPath` at run time; taken from `nodeInfo.nodeName` when left out.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Unit id (AosCore's JSON has none).
    #[arg(long, value_name = "ID", default_value = "unit-0001")]
    pub unit_id: String,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    aos_config::duration::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command (as `### aosctl <path>`) and every flag (as `` `--flag ``) is in docs/aosctl.md.
    #[test]
    fn the_reference_documents_every_command_and_flag() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/aosctl.md"))
            .unwrap();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("aosctl"), Cli::command())];
        let mut commands = 0;
        while let Some((path, command)) = stack.pop() {
            let subcommands: Vec<_> = command.get_subcommands().cloned().collect();
            if subcommands.is_empty() {
                commands += 1;
                if !doc.contains(&format!("### {path}\n")) {
                    missing.push(path.clone());
                }
            }
            for arg in command.get_arguments() {
                let word = match (arg.get_long(), arg.get_value_names()) {
                    (Some(long), _) => format!("`--{long}"),
                    (None, Some(names)) => format!("`{}`", names[0]),
                    (None, None) => continue,
                };
                if matches!(arg.get_long(), Some("help" | "version")) {
                    continue;
                }
                if !doc.contains(&word) {
                    missing.push(format!("{path} {word}"));
                }
            }
            for sub in subcommands {
                stack.push((format!("{path} {}", sub.get_name()), sub));
            }
        }
        assert!(commands >= 12, "only {commands} commands");
        assert!(missing.is_empty(), "docs/aosctl.md lacks {missing:?}");
    }

    #[test]
    fn cert_without_key_is_a_usage_error() {
        let err = Cli::try_parse_from([
            "aosctl",
            "nodes",
            "list",
            "--server",
            "127.0.0.1:1",
            "--cert",
            "c.pem",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn node_and_all_exclude_each_other() {
        let err = Cli::try_parse_from([
            "aosctl",
            "provision",
            "--server",
            "a:1",
            "--all",
            "--node",
            "n",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn durations_use_the_config_syntax() {
        let cli = Cli::try_parse_from([
            "aosctl",
            "check",
            "--config",
            "n.toml",
            "--expiry-warning",
            "7d",
        ])
        .unwrap();
        let Command::Check(args) = cli.command else {
            panic!("not check")
        };
        assert_eq!(args.expiry_warning, Duration::from_secs(7 * 86_400));
        assert!(Cli::try_parse_from([
            "aosctl",
            "check",
            "--config",
            "n",
            "--expiry-warning",
            "7 days"
        ])
        .is_err());
    }
}
