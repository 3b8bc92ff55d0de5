//! Wire API round trips through the frame codec's body encoding, and redaction.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aos_transport::frame::{decode_body, encode_body};

use super::*;
use crate::iam::cert_module::CertInfo;
use crate::iam::permissions::{InstanceIdent, InstanceKind, Secret};
use crate::iam::provisioner::{NodeState, Password};

const LIMIT: usize = 64 * 1024;

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode_body(value, LIMIT).unwrap();
    let back: T = decode_body(&bytes, LIMIT).unwrap();
    assert_eq!(&back, value);
}

fn cert() -> CertInfo {
    CertInfo {
        cert_type: "iam".into(),
        cert_url: "pkcs11:token=aoscore;object=iam;id=%01".into(),
        key_url: "pkcs11:token=aoscore;object=iam;id=%01".into(),
        serial: "0a1b".into(),
        issuer: vec![0x30, 0x00, 0xff],
        not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    }
}

fn ident() -> InstanceIdent {
    InstanceIdent {
        item_id: "service-1".into(),
        subject_id: "subject".into(),
        instance: 3,
        kind: InstanceKind::Service,
    }
}

#[test]
fn every_message_round_trips() {
    let password = WirePassword(Password::new("provisioning-pass"));
    let mut perms = BTreeMap::new();
    perms.insert(
        "vis".to_owned(),
        BTreeMap::from([("get".to_owned(), "r".to_owned())]),
    );
    let requests = vec![
        ProtectedRequest::StartProvisioning {
            node_id: "n1".into(),
            password: password.clone(),
        },
        ProtectedRequest::CreateKey {
            node_id: String::new(),
            cert_type: "iam".into(),
            subject: String::new(),
            password: password.clone(),
        },
        ProtectedRequest::ApplyCert {
            node_id: "n2".into(),
            cert_type: "sm".into(),
            pem: "-----BEGIN".into(),
        },
        ProtectedRequest::RegisterInstance {
            instance: ident(),
            permissions: perms,
        },
        ProtectedRequest::UnregisterInstance { instance: ident() },
        ProtectedRequest::PauseNode {
            node_id: "n1".into(),
        },
    ];
    for r in &requests {
        round_trip(r);
    }
    round_trip(&PublicRequest::GetPermissions {
        secret: WireSecret(Secret::generate().unwrap()),
        functional_server_id: "vis".into(),
    });
    round_trip(&PublicRequest::GetCert {
        node_id: String::new(),
        cert_type: "online".into(),
        issuer: vec![1, 2, 3],
        serial: "ff".into(),
    });
    round_trip(&PublicResponse::Cert(cert()));
    round_trip(&ProtectedResponse::State(NodeState::Paused));
    round_trip(&IamEvent::CertChanged(cert()));
    let info = NodeInfo {
        node_id: "n1".into(),
        unit_id: "u".into(),
        name: "n1".into(),
        node_type: "board".into(),
        is_main: false,
        state: NodeState::Provisioned,
        attrs: BTreeMap::from([("AosComponents".to_owned(), "iam,sm".to_owned())]),
    };
    round_trip(&NodeStreamMessage::Register(info.clone()));
    round_trip(&IamEvent::Node(NodeEvent::Disconnected {
        node_id: "n1".into(),
    }));
    let err = ApiError {
        code: ErrorCode::TooManyAttempts,
        message: "wait".into(),
        retry_after: Some(Duration::from_secs(4)),
    };
    round_trip(&NodeStreamMessage::ProtectedAnswer(Err(err)));
    round_trip(&NodeStreamMessage::PublicAnswer(Ok(
        PublicResponse::NodeInfo(info),
    )));
}

#[test]
fn secrets_and_passwords_never_show_in_debug() {
    let req = ProtectedRequest::StartProvisioning {
        node_id: "n1".into(),
        password: WirePassword(Password::new("hunter2-password")),
    };
    assert!(!format!("{req:?}").contains("hunter2"));
    let secret = Secret::generate().unwrap();
    let text = secret.expose().to_owned();
    let req = PublicRequest::GetPermissions {
        secret: WireSecret(secret),
        functional_server_id: "vis".into(),
    };
    assert!(!format!("{req:?}").contains(&text));
}

#[test]
fn errors_map_to_codes() {
    use crate::iam::provisioner::ProvisionError;
    let e: ApiError = ProvisionError::WrongPassword.into();
    assert_eq!(e.code, ErrorCode::WrongPassword);
    let e: ApiError = ProvisionError::TooManyAttempts {
        retry_after: Duration::from_secs(8),
    }
    .into();
    assert_eq!(
        (e.code, e.retry_after),
        (ErrorCode::TooManyAttempts, Some(Duration::from_secs(8)))
    );
    let e: ApiError = crate::iam::cert_module::CertError::UnknownCertType("x".into()).into();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e: ApiError = ProvisionError::Cert(crate::iam::cert_module::CertError::UnknownCertType(
        "x".into(),
    ))
    .into();
    assert_eq!(
        e.code,
        ErrorCode::NotFound,
        "a cert error inside a provisioning error keeps its code"
    );
}
