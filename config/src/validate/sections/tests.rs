use crate::test_support::{assert_error_at, ok, MAIN};

fn secondary(iam: &str) -> String {
    format!(
        "{}\n{iam}",
        MAIN.replace("role = \"main\"", "role = \"secondary\"")
    )
}

#[test]
fn secondary_needs_the_main_addresses() {
    let text = secondary("[iam]\nmain_protected_addr = \"main:8089\"\n");
    assert_error_at(
        &text,
        "[iam]",
        "iam.main_public_addr",
        "required on a secondary node",
    );
    let text = secondary("");
    assert_error_at(
        &text,
        "role = \"secondary\"",
        "iam.main_public_addr",
        "required on a secondary node",
    );
    ok(&secondary(
        "[iam]\nmain_public_addr = \"main:8090\"\nmain_protected_addr = \"10.0.0.1:8089\"\n",
    ));
}

#[test]
fn main_refuses_main_addresses() {
    let text = format!("{MAIN}\n[iam]\nmain_protected_addr = \"main:8089\"\n");
    assert_error_at(
        &text,
        "main_protected_addr",
        "iam.main_protected_addr",
        "only secondary nodes",
    );
}

#[test]
fn main_address_must_be_host_port() {
    let text =
        secondary("[iam]\nmain_public_addr = \"main\"\nmain_protected_addr = \"main:8089\"\n");
    assert_error_at(
        &text,
        "main_public_addr = \"main\"",
        "iam.main_public_addr",
        "is not host:port",
    );
}

#[test]
fn main_fingerprint_is_a_sha256_for_secondaries_only() {
    let addrs = "main_public_addr = \"main:8090\"\nmain_protected_addr = \"main:8089\"\n";
    let hex = "ab".repeat(32);
    ok(&secondary(&format!(
        "[iam]\n{addrs}main_fingerprint = \"{hex}\"\n"
    )));
    let colons = vec!["AB"; 32].join(":");
    ok(&secondary(&format!(
        "[iam]\n{addrs}main_fingerprint = \"{colons}\"\n"
    )));
    let text = secondary(&format!("[iam]\n{addrs}main_fingerprint = \"abcd\"\n"));
    assert_error_at(
        &text,
        "main_fingerprint",
        "iam.main_fingerprint",
        "is not a SHA-256 fingerprint",
    );
    let text = format!("{MAIN}\n[iam]\nmain_fingerprint = \"{hex}\"\n");
    assert_error_at(
        &text,
        "main_fingerprint",
        "iam.main_fingerprint",
        "only secondary nodes",
    );
}

#[test]
fn listen_addresses_must_differ() {
    let text = format!(
        "{MAIN}\n[iam]\npublic_listen = \"0.0.0.0:9000\"\nprotected_listen = \"0.0.0.0:9000\"\n"
    );
    assert_error_at(
        &text,
        "protected_listen",
        "iam.protected_listen",
        "same address as public_listen",
    );
    ok(&format!(
        "{MAIN}\n[iam]\npublic_listen = \"127.0.0.1:0\"\nprotected_listen = \"127.0.0.1:0\"\n"
    ));
}

#[test]
fn zero_durations_are_refused() {
    let text = format!("{MAIN}\n[provisioning]\nhook_timeout = \"0s\"\n");
    assert_error_at(
        &text,
        "hook_timeout",
        "provisioning.hook_timeout",
        "longer than zero",
    );
}

#[test]
fn node_id_must_fit_a_san_uri() {
    let text = MAIN.replace("id = \"main\"", "id = \"main:1\"");
    assert_error_at(&text, "main:1", "node.id", "is not an id");
}

#[test]
fn empty_hook_is_refused() {
    let text = format!("{MAIN}\n[provisioning]\nstart = [\"/bin/true\"]\nfinish = []\n");
    assert_error_at(&text, "finish", "provisioning.finish", "empty command");
}

#[test]
fn permission_limits_must_be_positive() {
    let text = format!("{MAIN}\n[permissions.limits]\nmax_instances = 0\n");
    assert_error_at(
        &text,
        "max_instances",
        "permissions.limits.max_instances",
        "at least 1",
    );
}

#[test]
fn renewal_ranges() {
    let text = format!("{MAIN}\n[renewal]\nthreshold_percent = 100\n");
    assert_error_at(
        &text,
        "threshold_percent",
        "renewal.threshold_percent",
        "out of range 1..=99",
    );
    let text = format!("{MAIN}\n[renewal]\njitter_percent = 51\n");
    assert_error_at(
        &text,
        "jitter_percent",
        "renewal.jitter_percent",
        "out of range 0..=50",
    );
    let text = format!("{MAIN}\n[renewal]\nthreshold_percent = 20\njitter_percent = 20\n");
    assert_error_at(
        &text,
        "jitter_percent",
        "renewal.jitter_percent",
        "not below threshold_percent",
    );
    ok(&format!(
        "{MAIN}\n[renewal]\nthreshold_percent = 99\njitter_percent = 0\n"
    ));
}

#[test]
fn frame_size_range() {
    for bad in ["1023", "16777217"] {
        let text = format!("{MAIN}\n[transport]\nmax_frame_size = {bad}\n");
        assert_error_at(
            &text,
            "max_frame_size",
            "transport.max_frame_size",
            "out of range 1024..=16777216",
        );
    }
    ok(&format!("{MAIN}\n[transport]\nmax_frame_size = 1024\n"));
    ok(&format!("{MAIN}\n[transport]\nmax_frame_size = 16777216\n"));
}

#[test]
fn backoff_max_must_not_be_below_initial() {
    let text = format!("{MAIN}\n[transport]\nreconnect_backoff_initial = \"1m\"\n");
    assert_error_at(
        &text,
        "reconnect_backoff_initial",
        "transport.reconnect_backoff_max",
        "30s is shorter than",
    );
}

#[test]
fn empty_log_filter_is_refused() {
    let text = format!("{MAIN}\n[logging]\nfilter = \" \"\nformat = \"json\"\n");
    assert_error_at(&text, "filter", "logging.filter", "empty filter");
}

#[test]
fn cm_defaults_and_a_full_table() {
    let config = ok(MAIN);
    assert!(!config.cm.enabled);
    assert_eq!(config.cm.sm_listen.port(), 8093);
    assert_eq!(config.cm.cloud_addr, None);
    assert_eq!(
        config.cm.cloud_request_timeout,
        std::time::Duration::from_secs(60)
    );
    let text = format!(
        "{MAIN}\n[cm]\nenabled = true\ncloud_addr = \"cloud.example.com:9443\"\ncloud_server_name = \"cloud.local\"\n\
         sm_listen = \"127.0.0.1:9093\"\ncloud_request_timeout = \"10s\"\nsm_request_timeout = \"5s\"\n"
    );
    let config = ok(&text);
    assert_eq!(
        config.cm.cloud_addr.as_deref(),
        Some("cloud.example.com:9443")
    );
    assert_eq!(config.cm.cloud_server_name.as_deref(), Some("cloud.local"));
}

#[test]
fn cm_runs_on_the_main_node_only() {
    let text = secondary(
        "[iam]\nmain_public_addr = \"main:8090\"\nmain_protected_addr = \"main:8089\"\n[cm]\nenabled = true\n",
    );
    assert_error_at(&text, "enabled = true", "cm.enabled", "main node only");
}

#[test]
fn cm_addresses_are_checked() {
    let text = format!("{MAIN}\n[cm]\ncloud_addr = \"cloud\"\n");
    assert_error_at(&text, "cloud_addr", "cm.cloud_addr", "is not host:port");
    let text = format!("{MAIN}\n[cm]\ncloud_server_name = \"cloud.local\"\n");
    assert_error_at(
        &text,
        "cloud_server_name",
        "cm.cloud_server_name",
        "without cloud_addr",
    );
    let text = format!("{MAIN}\n[cm]\ncloud_addr = \"c:1\"\ncloud_server_name = \"a_b\"\n");
    assert_error_at(
        &text,
        "cloud_server_name",
        "cm.cloud_server_name",
        "only letters",
    );
    let text = format!("{MAIN}\n[cm]\nsm_listen = \"0.0.0.0:8089\"\n");
    assert_error_at(
        &text,
        "sm_listen",
        "cm.sm_listen",
        "same address as iam.protected_listen",
    );
    let text = format!("{MAIN}\n[cm]\nsm_request_timeout = \"0s\"\n");
    assert_error_at(
        &text,
        "sm_request_timeout",
        "cm.sm_request_timeout",
        "longer than zero",
    );
}

#[test]
fn sm_keys_are_checked() {
    let config = ok(MAIN);
    assert_eq!(config.sm.cm_addr, None);
    assert!(!config.sm.enabled);
    // Without cm_addr the SM needs this node's CM (main) or the MP bridge (secondary).
    let text = format!("{MAIN}\n[sm]\nenabled = true\n");
    assert_error_at(&text, "[sm]", "sm.cm_addr", "set cm.enabled = true");
    ok(&format!(
        "{MAIN}\n[cm]\nenabled = true\n[sm]\nenabled = true\n"
    ));
    let text = secondary(
        "[iam]\nmain_public_addr = \"main:8090\"\nmain_protected_addr = \"main:8089\"\n[sm]\nenabled = true\n",
    );
    assert_error_at(&text, "[sm]", "sm.cm_addr", "set mp.main_addr");
    let text = format!("{MAIN}\n[sm]\nenabled = true\ncm_addr = \"main\"\n");
    assert_error_at(&text, "cm_addr", "sm.cm_addr", "is not host:port");
    let text = format!("{MAIN}\n[sm]\nreconcile_interval = \"0s\"\n");
    assert_error_at(
        &text,
        "reconcile_interval",
        "sm.reconcile_interval",
        "longer than zero",
    );
    ok(&format!(
        "{MAIN}\n[sm]\nenabled = true\ncm_addr = \"127.0.0.1:8093\"\nreconcile_interval = \"1m\"\n"
    ));
}
