//! Certificate renewal under live links.

use std::sync::Arc;

use aos_pkcs11::KeyAlgorithm;
use aos_transport::frame::Channel;
use aos_transport::tls::testutil::id;
use aos_transport::tls::{PeerIdentity, Role};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::FromDer;

use super::*;

fn connected_peer(state: &LinkState) -> (Option<PeerIdentity>, String) {
    match state {
        LinkState::Connected { peer, certificate } => {
            let der: &CertificateDer<'_> = certificate.as_ref().unwrap();
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
            (peer.clone(), cert.raw_serial_as_string())
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn a_cert_swap_keeps_the_live_link_and_new_links_see_the_new_serial() {
    let net = Net::new();
    let server = net.server(echo_routes()).await;
    let pool = ArbiterPool::new(2);
    let (watch, mut old_states) = super::states();
    let old = net.dial(&pool, server.addr, Routes::new().watch_state(watch));
    let (peer, serial) = connected_peer(&old_states.connected().await.state);
    assert_eq!(peer, Some(id("main", Role::Iam)));
    assert_eq!(serial, "01");

    // Renewal: a new key on the token and a certificate with serial 2.
    let new_key = net.hsm.key("iam-renewed", KeyAlgorithm::EccP256);
    let chain = net
        .pki
        .leaf(&new_key)
        .identity(id("main", Role::Iam))
        .serial(2)
        .issue();
    net.server_creds
        .set(chain, Arc::new(new_key.clone()))
        .unwrap();

    // The live link goes on, on its old session.
    for channel in [Channel::IamOpen, Channel::CmSecure] {
        assert_eq!(
            old.request(channel, b"still".to_vec()).await.unwrap(),
            [&[channel.id()][..], b"still"].concat()
        );
    }
    let (watch, mut new_states) = super::states();
    let new = net.dial(&pool, server.addr, Routes::new().watch_state(watch));
    let (peer, serial) = connected_peer(&new_states.connected().await.state);
    assert_eq!(peer, Some(id("main", Role::Iam)));
    assert_eq!(serial, "02");
    assert_eq!(
        new_key.sign_count(),
        1,
        "the new key signed the new handshake"
    );
    assert_eq!(
        net.server_key.sign_count(),
        1,
        "the old key signed only the first"
    );
    new.request(Channel::IamSecure, vec![]).await.unwrap();
    old.request(Channel::IamSecure, vec![]).await.unwrap();
    assert!(old.status().await.unwrap().state.is_connected());
}
