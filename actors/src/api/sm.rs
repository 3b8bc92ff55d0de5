//! The CM ⇄ SM protocol, on [`SM_CHANNEL`] of an SM's link to the CM's SM controller (mutual TLS; the
//! controller accepts role `sm` only and knows each SM by the node of its certificate).
//!
//! | direction | message | answer |
//! |---|---|---|
//! | CM → SM, request | [`SmRequest::DesiredInstances`]: the whole set the node should run | [`SmResult`]: a [`StatusReport`] of every instance |
//! | CM → SM, request | [`SmRequest::GetStatus`] | the same |
//! | SM → CM, event | [`SmEvent::Status`]: the status of every instance, after a change (an instance exited, a restart) | — |

use std::collections::BTreeMap;

use aos_transport::frame::Channel;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::iam::permissions::{InstanceIdent, Permissions};

/// The channel of the SM protocol (both directions).
pub const SM_CHANNEL: Channel = Channel::CmSecure;

/// One service instance a node should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Which instance.
    pub ident: InstanceIdent,
    /// What it may do on functional servers (registered with IAM before it starts).
    pub permissions: Permissions,
    /// How to run it.
    pub run: RunSpec,
}

/// How an instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunSpec {
    /// A child process, started without a shell. Its environment is `PATH` (from the SM, or
    /// `/usr/bin:/bin`), `env`, and `AOS_SECRET`; nothing else of the SM's environment is passed on.
    Command {
        /// The program (absolute path, or looked up in `PATH`).
        program: String,
        /// Its arguments (never the secret).
        args: Vec<String>,
        /// Extra environment variables (`AOS_SECRET` cannot be set here).
        env: BTreeMap<String, String>,
    },
    /// A simulated instance (the simulator): the SM's simulated runner holds the secret.
    Simulated,
}

/// CM → SM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SmRequest {
    /// Run exactly these instances: start new ones, stop the ones no longer listed, re-register and restart
    /// the ones whose spec changed.
    DesiredInstances(Vec<InstanceSpec>),
    /// The status of every instance.
    GetStatus,
}

/// What an SM answers to an [`SmRequest`]: the status of every instance it knows.
pub type SmResult = Result<StatusReport, ApiError>;

/// The status of every instance of an SM, sorted by ident, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Counts up with every report one SM makes (from 1 when it starts); answers and events may arrive out
    /// of order, and the report with the higher revision is the newer one.
    pub revision: u64,
    /// The instances.
    pub instances: Vec<InstanceStatus>,
}

/// SM → CM, one-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SmEvent {
    /// The status of every instance, after a change.
    Status(StatusReport),
}

/// How one instance stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Which instance.
    pub ident: InstanceIdent,
    /// Its state.
    pub state: InstanceState,
    /// The process id while a child process runs.
    pub pid: Option<u32>,
}

/// The state of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InstanceState {
    /// Registered with IAM and started.
    Running,
    /// It ended by itself (`code` is the exit code, `None` when a signal ended it). It stays registered until
    /// it is no longer desired.
    Exited {
        /// Exit code.
        code: Option<i32>,
    },
    /// It could not be registered or started; the SM retries at its next reconciliation.
    Failed(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aos_transport::frame::{decode_body, encode_body};

    use super::*;
    use crate::iam::permissions::InstanceKind;

    #[test]
    fn requests_reports_and_events_round_trip() {
        let ident = InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subj".into(),
            instance: 1,
            kind: InstanceKind::Service,
        };
        let spec = InstanceSpec {
            ident: ident.clone(),
            permissions: BTreeMap::from([(
                "vis".to_owned(),
                BTreeMap::from([("get".to_owned(), "r".to_owned())]),
            )]),
            run: RunSpec::Command {
                program: "/bin/true".into(),
                args: vec!["-x".into()],
                env: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            },
        };
        let request = SmRequest::DesiredInstances(vec![
            spec,
            InstanceSpec {
                ident: ident.clone(),
                permissions: BTreeMap::new(),
                run: RunSpec::Simulated,
            },
        ]);
        let bytes = encode_body(&request, 1 << 16).unwrap();
        assert_eq!(decode_body::<SmRequest>(&bytes, 1 << 16).unwrap(), request);
        let report = StatusReport {
            revision: 7,
            instances: vec![
                InstanceStatus {
                    ident: ident.clone(),
                    state: InstanceState::Exited { code: Some(3) },
                    pid: None,
                },
                InstanceStatus {
                    ident,
                    state: InstanceState::Failed("no runner".into()),
                    pid: Some(42),
                },
            ],
        };
        let event = SmEvent::Status(report.clone());
        let bytes = encode_body(&event, 1 << 16).unwrap();
        assert_eq!(decode_body::<SmEvent>(&bytes, 1 << 16).unwrap(), event);
        let answer: SmResult = Ok(report);
        let bytes = encode_body(&answer, 1 << 16).unwrap();
        assert_eq!(decode_body::<SmResult>(&bytes, 1 << 16).unwrap(), answer);
    }
}
