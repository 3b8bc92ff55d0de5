//! IAM clients against real IAM servers: the permission checker of functional servers, and subscriptions
//! that outlive a server restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aos_transport::tls::Role;

use super::*;
use crate::api::{ErrorCode, ProtectedRequest, ProtectedResponse, WireSecret};
use crate::iam::permissions::{InstanceIdent, InstanceKind, Secret};
use crate::iam::server::testing::*;
use crate::iam::server::{IamServer, IamServerConfig};
use crate::iam::service::Caller;

fn instance() -> InstanceIdent {
    InstanceIdent {
        item_id: "climate".into(),
        subject_id: "owner".into(),
        instance: 1,
        kind: InstanceKind::Service,
    }
}

#[actix_rt::test]
async fn a_functional_server_accepts_a_secret_for_exactly_its_granted_functions() {
    let unit = TestUnit::new();
    let main = unit.node("main", true).await;
    main.provision().await;
    let sm = ready(main.protected_client(Some(&unit.client_creds("n1", Role::Sm)))).await;
    let permissions = BTreeMap::from([
        (
            "vis".to_owned(),
            BTreeMap::from([
                ("get".to_owned(), "r".to_owned()),
                ("set".to_owned(), "rw".to_owned()),
            ]),
        ),
        (
            "media".to_owned(),
            BTreeMap::from([("play".to_owned(), "x".to_owned())]),
        ),
    ]);
    let ProtectedResponse::Secret(WireSecret(secret)) = sm
        .protected(ProtectedRequest::RegisterInstance {
            instance: instance(),
            permissions,
        })
        .await
        .unwrap()
    else {
        panic!("no secret")
    };

    // The functional server `vis` asks the public endpoint, verifying the node's certificate.
    let checker = PermissionChecker::new(ready(main.identity_client()).await);
    let get = checker.authorize(&secret, "vis", "get").await.unwrap();
    assert_eq!(
        get,
        Authorized {
            ident: instance(),
            function: "get".into(),
            permission: "r".into(),
        }
    );
    assert_eq!(
        checker
            .authorize(&secret, "vis", "set")
            .await
            .unwrap()
            .permission,
        "rw"
    );
    let grant = checker.check(&secret, "vis").await.unwrap();
    assert_eq!(
        grant.permissions.len(),
        2,
        "only vis's functions: {grant:?}"
    );
    // A function it was not granted, a server it has nothing on, a forged secret.
    let denied = checker
        .authorize(&secret, "vis", "reset")
        .await
        .unwrap_err();
    assert_eq!(denied.code, ErrorCode::Unauthorized);
    assert!(!denied.message.contains(secret.expose()));
    assert_eq!(
        checker
            .authorize(&secret, "diagnostics", "get")
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    let forged = Secret::generate().unwrap();
    assert_eq!(
        checker
            .authorize(&forged, "vis", "get")
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    let garbage = Secret::from_text("not-a-secret");
    assert_eq!(
        checker.check(&garbage, "vis").await.unwrap_err().code,
        ErrorCode::NotFound
    );

    // Unregistered: the secret stops working at once.
    assert_eq!(
        sm.protected(ProtectedRequest::UnregisterInstance {
            instance: instance()
        })
        .await
        .unwrap(),
        ProtectedResponse::Done
    );
    assert_eq!(
        checker
            .authorize(&secret, "vis", "get")
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[actix_rt::test]
async fn subscriptions_are_renewed_when_the_client_reconnects() {
    let unit = TestUnit::new();
    let mut main = unit.node("main", true).await;
    main.provision().await;
    let client = ready(main.identity_client()).await;
    let mut changes = client.subscribe_cert_changed("iam").await.unwrap();

    // The server goes away and comes back on the same ports.
    let public_listen = main.server.public_addr();
    let protected_listen = main.server.protected_addr();
    let (down, ()) = tokio::join!(refused(&client), main.server.shutdown());
    assert!(
        matches!(down, crate::net::DisconnectReason::PeerClose(_)),
        "{down:?}"
    );
    let config = IamServerConfig {
        public_listen,
        protected_listen,
        link: link_config(),
        tls: aos_transport::tls::TlsOptions::default(),
        roots: unit.roots.clone(),
    };
    main.server = IamServer::start(
        main.local.clone(),
        main.controller.clone(),
        config,
        unit.pool.clone(),
    )
    .await
    .unwrap();
    client
        .wait_state(PATIENCE, |s| s.is_connected())
        .await
        .unwrap();

    // A round trip after the reconnection: the client renewed its subscription first, on the same link.
    client
        .public(crate::api::PublicRequest::GetSystemInfo)
        .await
        .unwrap();
    let renewed = main.apply_new_cert(&Caller::Forwarded, "iam", 40).await;
    let event = within("a CertChanged event after the reconnection", changes.recv())
        .await
        .unwrap();
    assert_eq!(event.serial, renewed.serial);
}
