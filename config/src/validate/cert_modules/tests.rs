use crate::test_support::{assert_error_at, ok, MAIN, ONLINE};

/// [`MAIN`] + [`ONLINE`] + a third module whose pkcs11 table is `pkcs11`.
fn with_third_module(module_keys: &str, pkcs11: &str) -> String {
    format!(
        "{MAIN}{ONLINE}\n[[cert_modules]]\nid = \"sm\"\nalgorithm = \"ecc\"\n{module_keys}\n\n\
         [cert_modules.pkcs11] # third\nlibrary = \"/usr/lib/softhsm/libsofthsm2.so\"\n{pkcs11}\n"
    )
}

const CORE_TOKEN: &str = "token_label = \"aoscore\"\nuser_pin_path = \"/var/aos/aoscore.pin\"";

#[test]
fn base_configs_are_valid() {
    ok(MAIN);
    ok(&format!("{MAIN}{ONLINE}"));
    ok(&with_third_module("", CORE_TOKEN));
}

#[test]
fn two_slot_selectors_point_at_the_pkcs11_table() {
    let text = with_third_module("", &format!("slot_id = 1\n{CORE_TOKEN}"));
    assert_error_at(
        &text,
        "# third",
        "cert_modules[2].pkcs11",
        "two slot selectors set (slot_id, token_label); set exactly one",
    );
}

#[test]
fn selectors_in_an_inline_table_point_at_its_key() {
    let text = MAIN.replace(
        "[cert_modules.pkcs11]\nlibrary = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"aoscore\"\n\
         user_pin_path = \"/var/aos/aoscore.pin\"",
        "pkcs11 = { library = \"/l.so\", slot_index = 0, token_serial = \"1\", user_pin_path = \"/p\" }",
    );
    assert_error_at(
        &text,
        "pkcs11 = {",
        "cert_modules[0].pkcs11",
        "two slot selectors set (slot_index, token_serial)",
    );
}

#[test]
fn max_items_out_of_range() {
    for bad in ["0", "6"] {
        let text = with_third_module(&format!("max_items = {bad}"), CORE_TOKEN);
        assert_error_at(
            &text,
            "max_items",
            "cert_modules[2].max_items",
            "out of range 1..=5",
        );
    }
    ok(&with_third_module("max_items = 5", CORE_TOKEN));
}

#[test]
fn max_items_one_needs_self_signed() {
    let text = with_third_module("max_items = 1", CORE_TOKEN);
    assert_error_at(
        &text,
        "max_items",
        "cert_modules[2].max_items",
        "1 is only allowed with self_signed = true",
    );
    ok(&with_third_module(
        "max_items = 1\nself_signed = true",
        CORE_TOKEN,
    ));
}

#[test]
fn duplicate_id_points_at_the_second() {
    let text = format!(
        "{MAIN}{}",
        ONLINE.replace("id = \"online\"", "id = \"iam\" # again")
    );
    assert_error_at(
        &text,
        "# again",
        "cert_modules[1].id",
        "duplicate id \"iam\": cert_modules[0] has it already",
    );
}

#[test]
fn id_longer_than_16_characters() {
    let text = format!(
        "{MAIN}{}",
        ONLINE.replace("\"online\"", "\"online_seventeen1\"")
    );
    assert_error_at(
        &text,
        "online_seventeen1",
        "cert_modules[1].id",
        "has 17 characters",
    );
    ok(&format!(
        "{MAIN}{}",
        ONLINE.replace("\"online\"", "\"online_sixteen_x\"")
    ));
}

#[test]
fn more_than_four_alternative_names() {
    let names =
        "alternative_names = [\"a.local\", \"b.local\", \"c.local\", \"d.local\", \"e.local\"]";
    let text = with_third_module(names, CORE_TOKEN);
    assert_error_at(
        &text,
        "alternative_names",
        "cert_modules[2].alternative_names",
        "5 names; at most 4",
    );
    ok(&with_third_module(
        "alternative_names = [\"a.local\", \"b\", \"c-1.x\", \"d\"]",
        CORE_TOKEN,
    ));
}

#[test]
fn invalid_alternative_name_points_at_the_element() {
    let text = with_third_module(
        "alternative_names = [\n  \"sm.local\",\n  \"bad_name.local\",\n]",
        CORE_TOKEN,
    );
    assert_error_at(
        &text,
        "bad_name",
        "cert_modules[2].alternative_names[1]",
        "\"bad_name.local\"",
    );
}

#[test]
fn duplicate_key_usage() {
    let text = MAIN.replace(
        "[\"server_auth\", \"client_auth\"]",
        "[\"server_auth\", \"serverAuth\"]",
    );
    assert_error_at(
        &text,
        "serverAuth",
        "cert_modules[0].extended_key_usage[1]",
        "server_auth listed twice",
    );
}

#[test]
fn tee_user_login_needs_uid() {
    let text = with_third_module("", "token_label = \"tee\"\ntee_login_type = \"user\"");
    assert_error_at(
        &text,
        "tee_login_type",
        "cert_modules[2].pkcs11.uid",
        "tee_login_type = \"user\" needs uid",
    );
    ok(&with_third_module(
        "",
        "token_label = \"tee\"\ntee_login_type = \"user\"\nuid = 1000",
    ));
}

#[test]
fn tee_group_login_needs_gid() {
    let text = with_third_module(
        "",
        "token_label = \"tee\"\ntee_login_type = \"group\"\nuid = 5",
    );
    assert_error_at(
        &text,
        "tee_login_type",
        "cert_modules[2].pkcs11.gid",
        "needs gid",
    );
    ok(&with_third_module(
        "",
        "token_label = \"tee\"\ntee_login_type = \"public\"",
    ));
}

#[test]
fn tee_login_refuses_a_pin_file() {
    let text = with_third_module(
        "",
        "token_label = \"tee\"\ntee_login_type = \"public\"\nuser_pin_path = \"/p\"",
    );
    assert_error_at(
        &text,
        "user_pin_path = \"/p\"",
        "cert_modules[2].pkcs11.user_pin_path",
        "not used with tee_login_type",
    );
}

#[test]
fn ordinary_token_needs_a_pin_file() {
    let text = with_third_module("", "token_label = \"aoscore\"");
    assert_error_at(
        &text,
        "# third",
        "cert_modules[2].pkcs11.user_pin_path",
        "missing",
    );
}

#[test]
fn modules_sharing_a_token_share_its_pin_file() {
    let text = with_third_module(
        "",
        "token_label = \"aoscore\"\nuser_pin_path = \"/other.pin\"",
    );
    assert_error_at(
        &text,
        "/other.pin",
        "cert_modules[2].pkcs11.user_pin_path",
        "must share its PIN file",
    );
    // A disabled module is not loaded, so it cannot clash.
    ok(&with_third_module(
        "disabled = true",
        "token_label = \"aoscore\"\nuser_pin_path = \"/other.pin\"",
    ));
}

#[test]
fn cert_storage_must_name_a_configured_module() {
    let text = MAIN.replace("[node]", "cert_storage = \"tls\"\n\n[node]");
    assert_error_at(
        &text,
        "cert_storage",
        "cert_storage",
        "\"tls\" names no cert module (configured: iam)",
    );
}

#[test]
fn default_cert_storage_points_at_the_modules_when_iam_is_missing() {
    let text = MAIN.replace("id = \"iam\"", "id = \"sm\"");
    assert_error_at(
        &text,
        "[[cert_modules]]",
        "cert_storage",
        "\"iam\" names no cert module (configured: sm)",
    );
}

#[test]
fn cert_storage_module_must_be_enabled_and_serve_tls() {
    let text = MAIN.replace(
        "algorithm = \"ecc\"",
        "algorithm = \"ecc\"\ndisabled = true",
    );
    assert_error_at(
        &text,
        "[[cert_modules]]",
        "cert_storage",
        "cert module \"iam\" is disabled",
    );
    let text = MAIN.replace("[\"server_auth\", \"client_auth\"]", "[\"client_auth\"]");
    assert_error_at(
        &text,
        "[[cert_modules]]",
        "cert_storage",
        "lacks extended_key_usage server_auth",
    );
}
