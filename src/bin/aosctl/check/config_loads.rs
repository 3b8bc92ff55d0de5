//! Check: the configuration file loads and validates; the provisioning state file is readable.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aos_actors::iam::provisioner::{NodeState, StateFile};
use aos_config::Config;

use super::{Context, Finding, Status};

const CHECK: &str = "config";

/// Load `path`; a context for the other checks when it loads, else `None` with a FAIL in `findings`.
pub fn check(
    path: &Path,
    now: SystemTime,
    expiry_warning: Duration,
    findings: &mut Vec<Finding>,
) -> Option<Context> {
    let subject = path.display().to_string();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => {
            findings.push(Finding {
                check: CHECK,
                subject,
                status: Status::Fail,
                detail: err.to_string(),
            });
            return None;
        }
    };
    findings.push(Finding {
        check: CHECK,
        subject,
        status: Status::Pass,
        detail: format!(
            "node `{}` ({}) of unit `{}`, {} cert module(s)",
            config.node.id,
            if config.node.is_main() {
                "main"
            } else {
                "secondary"
            },
            config.node.unit_id,
            config.enabled_cert_modules().count()
        ),
    });
    let state_path = config.node.state_file.clone();
    let (provisioned, finding) = match StateFile::new(&state_path).load() {
        Ok(record) => (
            matches!(record.state, NodeState::Provisioned | NodeState::Paused),
            Finding {
                check: CHECK,
                subject: state_path.display().to_string(),
                status: Status::Pass,
                detail: format!("provisioning state: {}", record.state),
            },
        ),
        Err(err) => (
            false,
            Finding {
                check: CHECK,
                subject: state_path.display().to_string(),
                status: Status::Fail,
                detail: format!("state file unreadable: {err}"),
            },
        ),
    };
    findings.push(finding);
    Some(Context {
        config,
        provisioned,
        now,
        expiry_warning,
        modules: BTreeMap::new(),
        certs: Vec::new(),
        findings: Vec::new(),
    })
}
