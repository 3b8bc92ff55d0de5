//! The audit log through a node's life: provisioning with a wrong then the right password, an instance
//! registered and unregistered, refused TLS peers, deprovisioning; and no secret in any log record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aos_transport::tls::{Fingerprint, PeerIdentity, Role};

use super::capture::{Capture, Captured};
use super::*;
use crate::api::{ProtectedRequest, ProtectedResponse, WirePassword, WireSecret};
use crate::iam::cert_module::TrustRoots;
use crate::iam::client::IamServerAuth;
use crate::iam::permissions::{InstanceIdent, InstanceKind, Permissions};
use crate::iam::provisioner::Password;
use crate::iam::server::testing::{password, refused, TestUnit, PATIENCE, UNIT};
use crate::iam::service::Caller;
use crate::iam::test_support::{Fixture, PASSWORD};

const WRONG_PASSWORD_TEXT: &str = "not-the-so-pin-4711";

/// Wait until `event` has been recorded at least once (events of other threads arrive a little later).
async fn recorded(capture: &Capture, event: &str) -> Vec<Captured> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found = capture.audit(event);
        if !found.is_empty() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{event}` audit record; audit records: {:#?}",
            capture
                .records()
                .into_iter()
                .filter(|r| r.target == TARGET)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn one_with<'a>(records: &'a [Captured], name: &str, value: &str) -> &'a Captured {
    records
        .iter()
        .find(|r| r.field(name) == Some(value))
        .unwrap_or_else(|| panic!("no record with {name} = {value:?} among {records:#?}"))
}

/// Wait until an `event` record with `name` = `value` has been recorded.
async fn recorded_with(capture: &Capture, event: &str, name: &str, value: &str) -> Captured {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let found = capture.audit(event);
        if let Some(r) = found.iter().find(|r| r.field(name) == Some(value)) {
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{event}` record with {name} = {value:?} among {found:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_node_life_is_audited_and_no_record_holds_a_secret() {
    let everywhere = Capture::global();
    let capture = Capture::new();
    let _guard = capture.set_default();
    let unit = TestUnit::new();
    capture.install_on(&unit.pool).await;

    // A node whose token already has an owner, so a wrong password is caught by the token's SO PIN.
    let mut fx = Fixture::new();
    fx.ca = unit.ca.clone();
    fx.roots = Arc::new(TrustRoots::new(&[unit.ca.root_der()]).unwrap());
    fx.node.node_id = "main".to_owned();
    fx.node.unit_id = UNIT.to_owned();
    fx.own("aoscore");
    let node = unit.start(fx, true).await;

    let wrong = node
        .service
        .protected(
            &Caller::Anonymous,
            ProtectedRequest::StartProvisioning {
                node_id: String::new(),
                password: WirePassword(Password::new(WRONG_PASSWORD_TEXT)),
            },
        )
        .await;
    assert!(wrong.is_err(), "a wrong password is refused: {wrong:?}");
    let iam = node.provision().await;
    let user_pin = std::fs::read_to_string(node.fx.pin_path("aoscore")).unwrap();
    let user_pin = user_pin.trim().to_owned();
    assert!(user_pin.len() >= 4, "the provisioner wrote a user PIN");

    // An instance registered and unregistered by the node's SM.
    let sm = Caller::Peer(PeerIdentity::new(UNIT, "main", Role::Sm).unwrap());
    let ident = InstanceIdent {
        item_id: "service-audit".into(),
        subject_id: "subject".into(),
        instance: 0,
        kind: InstanceKind::Service,
    };
    let mut permissions = Permissions::new();
    permissions.insert("vis".into(), BTreeMap::from([("*".into(), "r".into())]));
    let register = ProtectedRequest::RegisterInstance {
        instance: ident.clone(),
        permissions,
    };
    let ProtectedResponse::Secret(WireSecret(secret)) =
        node.service.protected(&sm, register).await.unwrap()
    else {
        panic!("RegisterInstance answers a secret")
    };
    let unregister = ProtectedRequest::UnregisterInstance {
        instance: ident.clone(),
    };
    node.service.protected(&sm, unregister).await.unwrap();

    // A client without a certificate on the protected endpoint (the server refuses it), and a client
    // pinning another certificate on the public endpoint (the client refuses the server).
    let anonymous = node.protected_client(None);
    refused(&anonymous).await;
    anonymous.close().await;
    let mispinned = node.public_client(IamServerAuth::Pinned(Fingerprint::of(&unit.ca.root_der())));
    refused(&mispinned).await;
    mispinned.close().await;

    let cm = Caller::Peer(PeerIdentity::new(UNIT, "main", Role::Cm).unwrap());
    let deprovision = ProtectedRequest::Deprovision {
        node_id: String::new(),
        password: password(),
    };
    node.service.protected(&cm, deprovision).await.unwrap();

    // Provisioning.
    let wrong = recorded(&capture, WRONG_PASSWORD).await;
    assert_eq!(wrong.len(), 1, "{wrong:#?}");
    assert_eq!(wrong[0].field("attempts"), Some("1"));
    assert_eq!(wrong[0].field("retry_after_secs"), Some("0"));
    assert_eq!(wrong[0].level, tracing::Level::WARN);
    assert_eq!(recorded(&capture, PROVISIONING_STARTED).await.len(), 1);
    assert_eq!(recorded(&capture, PROVISIONING_FINISHED).await.len(), 1);
    let states = recorded(&capture, NODE_STATE_CHANGED).await;
    let transitions: Vec<(&str, &str)> = states
        .iter()
        .map(|r| (r.field("from").unwrap(), r.field("to").unwrap()))
        .collect();
    assert_eq!(
        transitions,
        [
            ("unprovisioned", "starting"),
            ("starting", "provisioning"),
            ("provisioning", "provisioned"),
            ("provisioned", "deprovisioning"),
            ("deprovisioning", "unprovisioned"),
        ]
    );
    let applied = recorded(&capture, CERT_APPLIED).await;
    let iam_applied = one_with(&applied, "cert_type", "iam");
    assert_eq!(iam_applied.field("serial"), Some(iam.serial.as_str()));
    assert_eq!(iam_applied.field("current"), Some("true"));
    let not_after = iam
        .not_after
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    assert_eq!(iam_applied.field("not_after"), Some(not_after.as_str()));
    one_with(&applied, "cert_type", "sm");

    // Instances.
    let registered = recorded(&capture, INSTANCE_REGISTERED).await;
    let registered = one_with(&registered, "instance", &ident.to_string());
    assert_eq!(registered.field("servers"), Some("1"));
    assert_eq!(registered.field("replaced"), Some("false"));
    assert_eq!(registered.field("new_secret"), Some("true"));
    let unregistered = recorded(&capture, INSTANCE_UNREGISTERED).await;
    one_with(&unregistered, "instance", &ident.to_string());

    // Refused peers, with the reason.
    let by_server = recorded_with(&capture, PEER_REFUSED, "reason", "no_certificate").await;
    assert_eq!(by_server.field("side"), Some("server"));
    assert!(by_server.field("remote").unwrap().contains("127.0.0.1"));
    assert!(!by_server.field("detail").unwrap().is_empty());
    let by_client = recorded_with(&capture, PEER_REFUSED, "reason", "pin_mismatch").await;
    assert_eq!(by_client.field("side"), Some("client"));

    // Deprovisioning removes the certificates of both types.
    assert_eq!(recorded(&capture, DEPROVISIONED).await.len(), 1);
    let removed = recorded(&capture, CERT_REMOVED).await;
    for cert_type in ["iam", "sm"] {
        let r = removed
            .iter()
            .find(|r| {
                r.field("cert_type") == Some(cert_type) && r.field("reason") == Some("deprovision")
            })
            .unwrap_or_else(|| panic!("no deprovision removal of {cert_type}: {removed:#?}"));
        assert_ne!(r.field("objects"), Some("0"));
    }

    // Every audit record names a documented event.
    let records = capture.records();
    for r in records.iter().filter(|r| r.target == TARGET) {
        let event = r.field("event").unwrap_or_default();
        assert!(
            EVENTS.contains(&event),
            "undocumented audit event in {r:#?}"
        );
    }

    // No record of any target, on any thread, holds the password, the wrong password, the user PIN or the
    // secret (the global capture sees the cert modules' worker threads, and other tests' records too).
    assert!(records.len() > 20, "the capture saw the node's log");
    let elsewhere = everywhere.records();
    assert!(
        elsewhere.iter().any(|r| r.field("cert_type").is_some()),
        "the global capture saw the cert modules' threads"
    );
    let records: Vec<Captured> = records.into_iter().chain(elsewhere).collect();
    let secrets = [
        ("the provisioning password", PASSWORD.to_owned()),
        ("the wrong password", WRONG_PASSWORD_TEXT.to_owned()),
        ("the user PIN", user_pin),
        ("the instance secret", secret.expose().to_owned()),
    ];
    for r in &records {
        for text in r.texts() {
            for (what, secret) in &secrets {
                assert!(!text.contains(secret.as_str()), "{what} leaked into {r:#?}");
            }
        }
    }
}

#[test]
fn every_event_is_documented() {
    let doc = include_str!("../../../docs/audit.md");
    for event in EVENTS {
        assert!(
            doc.contains(&format!("`{event}`")),
            "docs/audit.md does not describe `{event}`"
        );
    }
}
