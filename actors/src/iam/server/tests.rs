//! The IAM endpoints end to end: real SoftHSM tokens, a test CA, rustls over loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aos_transport::tls::{HandshakeError, PeerIdentity, ProvisioningCert, RefusalReason, Role};
use rustls::AlertDescription;

use super::testing::*;
use crate::api::{
    ErrorCode, ProtectedRequest, ProtectedResponse, PublicRequest, PublicResponse, WirePassword,
};
use crate::iam::client::{IamClient, IamServerAuth};
use crate::iam::permissions::{InstanceIdent, InstanceKind};
use crate::iam::provisioner::{NodeState, Password};
use crate::iam::service::Caller;
use crate::net::DisconnectReason;

fn handshake(reason: &DisconnectReason) -> &HandshakeError {
    match reason {
        DisconnectReason::Handshake(err) => err,
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

async fn provisioning(client: &IamClient, request: ProtectedRequest) -> ProtectedResponse {
    client.protected(request).await.unwrap()
}

fn get_cert_types() -> ProtectedRequest {
    ProtectedRequest::GetCertTypes {
        node_id: String::new(),
    }
}

#[actix_rt::test]
async fn a_client_pinning_the_fingerprint_provisions_the_node_over_the_public_endpoint() {
    let unit = TestUnit::new();
    let node = unit.node("main", true).await;
    let identity = PeerIdentity::new(UNIT, "main", Role::Iam).unwrap();

    // A client pinning another certificate is refused.
    let other = ProvisioningCert::generate(&identity, &[]).unwrap();
    let wrong = node.public_client(IamServerAuth::Pinned(other.fingerprint()));
    let reason = refused(&wrong).await;
    assert_eq!(
        handshake(&reason).refusal(),
        Some(RefusalReason::PinMismatch)
    );
    wrong.close().await;

    // Without a certificate of its own the node refuses every protected handshake.
    let cm = unit.client_creds("cm-node", Role::Cm);
    let early = node.protected_client_with(IamServerAuth::Pinned(node.fingerprint()), Some(&cm));
    let reason = refused(&early).await;
    handshake(&reason);
    early.close().await;

    // The pinned client provisions the node end to end.
    let client = node.pinned_client();
    let seen = client.connected(PATIENCE).await.unwrap();
    assert_eq!(seen.identity, Some(identity.clone()));
    let start = ProtectedRequest::StartProvisioning {
        node_id: String::new(),
        password: password(),
    };
    assert_eq!(
        provisioning(&client, start).await,
        ProtectedResponse::State(NodeState::Provisioning)
    );
    assert_eq!(
        provisioning(&client, get_cert_types()).await,
        ProtectedResponse::CertTypes(vec!["iam".into(), "sm".into()])
    );
    let mut iam_serial = String::new();
    for cert_type in APPLY_ORDER {
        let ProtectedResponse::Csr(csr) = provisioning(
            &client,
            ProtectedRequest::CreateKey {
                node_id: String::new(),
                cert_type: cert_type.into(),
                subject: String::new(),
                password: password(),
            },
        )
        .await
        else {
            panic!("no CSR")
        };
        let ProtectedResponse::Cert(info) = provisioning(
            &client,
            ProtectedRequest::ApplyCert {
                node_id: String::new(),
                cert_type: cert_type.into(),
                pem: unit_sign(&node, &csr),
            },
        )
        .await
        else {
            panic!("no cert")
        };
        if cert_type == "iam" {
            iam_serial = info.serial;
        }
    }
    let finish = ProtectedRequest::FinishProvisioning {
        node_id: String::new(),
        password: password(),
    };
    assert_eq!(
        provisioning(&client, finish).await,
        ProtectedResponse::State(NodeState::Provisioned)
    );

    // New connections see the node's own certificate; the pin no longer matches anything.
    let verified = ready(node.identity_client()).await;
    assert_eq!(server_serial(&verified).await, iam_serial);
    let pinned_again = node.pinned_client();
    let reason = refused(&pinned_again).await;
    assert_eq!(
        handshake(&reason).refusal(),
        Some(RefusalReason::PinMismatch)
    );
    pinned_again.close().await;
    // Anonymous provisioning is over, on old and new connections alike.
    for c in [&client, &verified] {
        let err = c.protected(get_cert_types()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthorized, "{err}");
    }
    // The old connection still serves public requests.
    assert!(matches!(
        client.public(PublicRequest::GetSystemInfo).await.unwrap(),
        PublicResponse::SystemInfo { node_id, .. } if node_id == "main"
    ));
    // And the protected endpoint now serves a cm client.
    let cm_client = ready(node.protected_client(Some(&cm))).await;
    assert_eq!(
        provisioning(&cm_client, get_cert_types()).await,
        ProtectedResponse::CertTypes(vec!["iam".into(), "sm".into()])
    );
}

fn unit_sign(node: &TestNode, csr: &str) -> String {
    node.fx.sign(csr, 30)
}

#[actix_rt::test]
async fn the_protected_endpoint_serves_each_role_its_operations_and_refuses_strangers() {
    let unit = TestUnit::new();
    let node = unit.node("main", true).await;
    node.provision().await;

    let cm = ready(node.protected_client(Some(&unit.client_creds("main", Role::Cm)))).await;
    let sm = ready(node.protected_client(Some(&unit.client_creds("n1", Role::Sm)))).await;
    assert_eq!(
        provisioning(&cm, get_cert_types()).await,
        ProtectedResponse::CertTypes(vec!["iam".into(), "sm".into()])
    );
    assert_eq!(
        sm.protected(get_cert_types()).await.unwrap_err().code,
        ErrorCode::Unauthorized
    );
    let register = ProtectedRequest::RegisterInstance {
        instance: InstanceIdent {
            item_id: "svc".into(),
            subject_id: "subject".into(),
            instance: 0,
            kind: InstanceKind::Service,
        },
        permissions: BTreeMap::from([(
            "vis".to_owned(),
            BTreeMap::from([("get".to_owned(), "r".to_owned())]),
        )]),
    };
    assert!(matches!(
        sm.protected(register.clone()).await.unwrap(),
        ProtectedResponse::Secret(_)
    ));
    assert_eq!(
        cm.protected(register).await.unwrap_err().code,
        ErrorCode::Unauthorized
    );
    // A wrong password reaches the caller as such.
    let wrong = ProtectedRequest::CreateKey {
        node_id: String::new(),
        cert_type: "sm".into(),
        subject: String::new(),
        password: WirePassword(Password::new("not-the-password")),
    };
    assert_eq!(
        cm.protected(wrong).await.unwrap_err().code,
        ErrorCode::WrongPassword
    );

    // No client certificate, a foreign CA, a role the endpoint does not serve, another unit: refused.
    let nobody = node.protected_client(None);
    let reason = refused(&nobody).await;
    assert!(
        matches!(
            handshake(&reason),
            HandshakeError::RefusedByPeer(AlertDescription::CertificateRequired)
        ),
        "{reason:?}"
    );
    let foreign_ca = aos_pkcs11::testkit::TestCa::new("elsewhere");
    let strangers = [
        (
            client_creds(&foreign_ca, UNIT, "main", Role::Cm),
            AlertDescription::UnknownCA,
        ),
        (
            unit.client_creds("main", Role::Online),
            AlertDescription::CertificateUnknown,
        ),
        (
            client_creds(&unit.ca, "unit-2", "main", Role::Cm),
            AlertDescription::CertificateUnknown,
        ),
    ];
    for (creds, alert) in strangers {
        let stranger = node.protected_client(Some(&creds));
        let reason = refused(&stranger).await;
        assert!(
            matches!(handshake(&reason), HandshakeError::RefusedByPeer(a) if *a == alert),
            "{reason:?}"
        );
        stranger.close().await;
    }
    nobody.close().await;
    // The accepted clients were not disturbed.
    assert!(cm.protected(get_cert_types()).await.is_ok());
}

#[actix_rt::test]
async fn a_renewed_iam_certificate_reaches_new_connections_while_old_ones_go_on() {
    let unit = TestUnit::new();
    let node = unit.node("main", true).await;
    let first = node.provision().await;
    let cm_creds = unit.client_creds("main", Role::Cm);

    let old_public = node.identity_client();
    let old_protected = node.protected_client(Some(&cm_creds));
    assert_eq!(server_serial(&old_public).await, first.serial);
    assert_eq!(server_serial(&old_protected).await, first.serial);
    let mut changes = old_public.subscribe_cert_changed("iam").await.unwrap();
    assert_eq!(
        old_public
            .subscribe_cert_changed("nope")
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    // Renewal through the protected endpoint, as the CM does it: new key, CSR, signed, applied.
    let ProtectedResponse::Csr(csr) = provisioning(
        &old_protected,
        ProtectedRequest::CreateKey {
            node_id: String::new(),
            cert_type: "iam".into(),
            subject: String::new(),
            password: password(),
        },
    )
    .await
    else {
        panic!("no CSR")
    };
    let ProtectedResponse::Cert(renewed) = provisioning(
        &old_protected,
        ProtectedRequest::ApplyCert {
            node_id: String::new(),
            cert_type: "iam".into(),
            pem: node.fx.sign(&csr, 60),
        },
    )
    .await
    else {
        panic!("no cert")
    };
    assert_ne!(renewed.serial, first.serial);
    let event = within("the CertChanged event", changes.recv())
        .await
        .unwrap();
    assert_eq!(event.serial, renewed.serial);

    // New connections present the new certificate on both endpoints.
    let new_public = node.identity_client();
    let new_protected = node.protected_client(Some(&cm_creds));
    assert_eq!(server_serial(&new_public).await, renewed.serial);
    assert_eq!(server_serial(&new_protected).await, renewed.serial);
    // The old connections keep their session, and their requests are served.
    assert_eq!(server_serial(&old_public).await, first.serial);
    assert!(matches!(
        old_public.public(PublicRequest::GetCurrentNodeInfo).await.unwrap(),
        PublicResponse::NodeInfo(info) if info.state == NodeState::Provisioned
    ));
    assert_eq!(
        provisioning(&old_protected, get_cert_types()).await,
        ProtectedResponse::CertTypes(vec!["iam".into(), "sm".into()])
    );

    // Applied elsewhere (the validator's renewal): the server follows through CertChanged.
    let third = node.apply_new_cert(&Caller::Forwarded, "iam", 90).await;
    let event = within("the second CertChanged event", changes.recv())
        .await
        .unwrap();
    assert_eq!(event.serial, third.serial);
    let mut status = node.local.subscribe();
    within(
        "the endpoints to follow the renewal",
        status.wait_for(|s| s.cert.as_ref().map(|c| &c.serial) == Some(&third.serial)),
    )
    .await
    .unwrap();
    assert_eq!(server_serial(&node.identity_client()).await, third.serial);

    // Shutting down closes every accepted link with a reason, and nothing is served any more.
    let mut node = node;
    let (reason, ()) = tokio::join!(refused(&old_protected), node.server.shutdown());
    assert!(
        matches!(&reason, DisconnectReason::PeerClose(why) if why.contains("shutting down")),
        "{reason:?}"
    );
    assert_eq!(
        old_public
            .public(PublicRequest::GetSystemInfo)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unavailable
    );
}
