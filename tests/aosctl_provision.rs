//! `aosctl` against real IAM endpoints (in-process nodes with private SoftHSM tokens, loopback TLS): provision
//! one node and a two-node unit, list nodes and certificates, pause, resume, deprovision, wrong passwords.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aos_actors::net::ArbiterPool;
use aos_pkcs11::testkit::SO_PIN;
use common::*;

#[actix_rt::test]
async fn one_node_is_provisioned_listed_paused_resumed_and_deprovisioned() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca(dir.path());
    let ca = ca.to_str().unwrap().to_owned();
    let password = file(dir.path(), "password", &format!("{SO_PIN}\n"));
    let password = password.to_str().unwrap().to_owned();
    let wrong = file(dir.path(), "wrong", "not-the-password\n");
    let pool = ArbiterPool::new(2);
    let node = TestNode::start("main", None, std::path::Path::new(&ca)).await;

    // Unprovisioned: reached with the pinned provisioning certificate.
    let pin = node.pin();
    let report = json(
        &aosctl(args(&[
            "provision",
            "--server",
            &node.public(),
            "--pin",
            &pin,
            "--ca",
            &ca,
            "--password-file",
            &password,
            "--json",
        ]))
        .await,
    );
    let report = &report[0];
    assert_eq!(report["node"], "main");
    assert_eq!(report["state"], "provisioned");
    let applied: Vec<&str> = report["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cert_type"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["sm", "iam"], "iam is applied last");
    let iam_serial = report["certs"][1]["serial"].as_str().unwrap().to_owned();

    // Provisioned: the public endpoint now presents the CA-issued certificate; --ca alone verifies it.
    let listed = json(
        &aosctl(args(&[
            "certs",
            "list",
            "--server",
            &node.public(),
            "--ca",
            &ca,
            "--type",
            "iam",
            "--type",
            "sm",
            "--json",
        ]))
        .await,
    );
    assert_eq!(listed[0]["cert_type"], "iam");
    assert_eq!(listed[0]["serial"].as_str(), Some(iam_serial.as_str()));
    assert!(listed[0]["cert_url"]
        .as_str()
        .unwrap()
        .starts_with("pkcs11:"));
    assert!(listed[1]["not_after_unix"].as_u64().unwrap() > 0);

    // The pin alone no longer matches the node's certificate: a timeout naming the address.
    let refused = aosctl(args(&[
        "nodes",
        "list",
        "--server",
        &node.public(),
        "--pin",
        &pin,
        "--timeout",
        "2s",
    ]))
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&node.public()),
        "{}",
        stderr(&refused)
    );

    // Anonymous callers may not list cert types of a provisioned node; the error says what to do.
    let anonymous = aosctl(args(&[
        "certs",
        "list",
        "--server",
        &node.public(),
        "--ca",
        &ca,
    ]))
    .await;
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        stderr(&anonymous).contains("--cert/--key"),
        "{}",
        stderr(&anonymous)
    );

    // The protected API with an operator certificate (role cm) from the same CA.
    let operator = dir.path().join("operator");
    let operator = operator.to_str().unwrap();
    json(
        &aosctl(args(&[
            "ca", "issue", "--dir", &ca, "--node", "ops", "--role", "cm", "--out", operator,
            "--json",
        ]))
        .await,
    );
    let cert = format!("{operator}.pem");
    let key = format!("{operator}.key");
    let protected = |command: &[&str]| {
        let mut all = args(command);
        all.extend(args(&[
            "--server",
            &node.protected(),
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "--json",
        ]));
        all
    };
    let listed = json(&aosctl(protected(&["certs", "list"])).await);
    let types: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cert_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 2, "{listed}");
    assert!(types.contains(&"iam") && types.contains(&"sm"));

    let nodes = json(&aosctl(protected(&["nodes", "list"])).await);
    assert_eq!(nodes[0]["node_id"], "main");
    assert_eq!(nodes[0]["state"], "provisioned");
    assert_eq!(
        json(&aosctl(protected(&["pause"])).await)["state"],
        "paused"
    );
    assert_eq!(
        json(&aosctl(protected(&["resume"])).await)["state"],
        "provisioned"
    );

    // Renewal: a new sm certificate, signed by the CA, becomes the current one.
    let renew = protected(&[
        "certs",
        "renew",
        "--type",
        "sm",
        "--password-file",
        &password,
    ]);
    let renewed = json(&aosctl(renew).await);
    assert_eq!(renewed[0]["cert_type"], "sm");
    assert_ne!(renewed[0]["serial"], report["certs"][0]["serial"]);

    // A functional server's view of an instance's secret.
    let sm = dir.path().join("sm");
    let sm = sm.to_str().unwrap();
    json(
        &aosctl(args(&[
            "ca", "issue", "--dir", &ca, "--node", "main", "--role", "sm", "--out", sm, "--json",
        ]))
        .await,
    );
    let secret = register_instance(
        &node,
        std::path::Path::new(&ca),
        std::path::Path::new(&format!("{sm}.pem")),
        std::path::Path::new(&format!("{sm}.key")),
        &pool,
    )
    .await;
    let secret_file = file(dir.path(), "secret", &secret);
    let check = |server: &str| {
        args(&[
            "permissions",
            "check",
            "--server",
            &node.public(),
            "--ca",
            &ca,
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--server-id",
            server,
            "--json",
        ])
    };
    let grant = json(&aosctl(check("vis")).await);
    assert_eq!(grant["ident"]["item_id"], "climate");
    assert_eq!(grant["permissions"]["set"], "rw");
    let table = aosctl(args(&[
        "permissions",
        "check",
        "--server",
        &node.public(),
        "--ca",
        &ca,
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--server-id",
        "vis",
    ]))
    .await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("climate/owner/1 (service)") && text.contains("rw"),
        "{text}"
    );
    let other = aosctl(check("media")).await;
    assert_eq!(
        other.status.code(),
        Some(1),
        "no permissions on another server"
    );
    assert!(
        !stderr(&other).contains(&secret),
        "the secret is never printed"
    );

    // A wrong password is reported as such, and changes nothing.
    let bad = protected(&["deprovision", "--password-file", wrong.to_str().unwrap()]);
    let out = aosctl(bad).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong provisioning password for node `main`"),
        "{}",
        stderr(&out)
    );

    let deprovision = protected(&["deprovision", "--password-file", &password]);
    assert_eq!(json(&aosctl(deprovision).await)["state"], "unprovisioned");
    node.leak();
}

#[actix_rt::test]
async fn provision_all_provisions_a_secondary_through_the_main_node() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca(dir.path());
    let password = file(dir.path(), "password", SO_PIN);
    let main = TestNode::start("main", None, &ca).await;
    let secondary = TestNode::start("secondary-1", Some(&main), &ca).await;
    let ca = ca.to_str().unwrap();

    let nodes = json(
        &aosctl(args(&[
            "nodes",
            "list",
            "--server",
            &main.public(),
            "--pin",
            &main.pin(),
            "--json",
        ]))
        .await,
    );
    let mut ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["main", "secondary-1"]);

    let reports = json(
        &aosctl(args(&[
            "provision",
            "--all",
            "--server",
            &main.public(),
            "--pin",
            &main.pin(),
            "--ca",
            ca,
            "--password-file",
            password.to_str().unwrap(),
            "--json",
        ]))
        .await,
    );
    let order: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["secondary-1", "main"], "the main node goes last");
    assert!(reports
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["state"] == "provisioned" && r["certs"].as_array().unwrap().len() == 2));

    // The secondary's certificate through the main node, and from the secondary itself.
    let via_main = json(
        &aosctl(args(&[
            "certs",
            "list",
            "--server",
            &main.public(),
            "--ca",
            ca,
            "--node",
            "secondary-1",
            "--type",
            "iam",
            "--json",
        ]))
        .await,
    );
    assert_eq!(via_main[0]["node"], "secondary-1");
    assert_eq!(via_main[0]["serial"], reports[0]["certs"][1]["serial"]);
    let direct = json(
        &aosctl(args(&[
            "certs",
            "list",
            "--server",
            &secondary.public(),
            "--ca",
            ca,
            "--type",
            "iam",
            "--json",
        ]))
        .await,
    );
    assert_eq!(direct[0]["serial"], via_main[0]["serial"]);
    main.leak();
    secondary.leak();
}
