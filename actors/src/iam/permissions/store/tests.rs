use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::iam::permissions::{InstanceKind, SECRET_TEXT_LEN};

fn ident(item: &str, instance: u64) -> InstanceIdent {
    InstanceIdent {
        item_id: item.into(),
        subject_id: "subject".into(),
        instance,
        kind: InstanceKind::Service,
    }
}

fn perms(entries: &[(&str, &str, &str)]) -> Permissions {
    let mut out = Permissions::new();
    for (server, function, value) in entries {
        out.entry((*server).to_owned())
            .or_default()
            .insert((*function).to_owned(), (*value).to_owned());
    }
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("permissions.db");
        Fixture { _dir: dir, path }
    }

    fn open(&self) -> PermissionStore {
        self.open_with(PermissionLimits::default())
    }

    fn open_with(&self, limits: PermissionLimits) -> PermissionStore {
        PermissionStore::open(&self.path, limits).unwrap()
    }

    fn open_err(&self) -> PermissionError {
        PermissionStore::open(&self.path, PermissionLimits::default()).unwrap_err()
    }
}

fn assert_not_found(store: &PermissionStore, secret: &str, server: &str) {
    match store.get(secret, server) {
        Err(PermissionError::NotFound { server_id }) => assert_eq!(server_id, server),
        other => panic!("expected NotFound for {server}, got {other:?}"),
    }
}

#[test]
fn register_get_unregister() {
    let fx = Fixture::new();
    let mut store = fx.open();
    assert!(store.is_empty());
    let p = perms(&[
        ("vis", "*", "rw"),
        ("vis", "Signal.Speed", "r"),
        ("dm", "*", "r"),
    ]);
    let secret = store.register(ident("svc", 0), p.clone()).unwrap();
    assert_eq!(secret.expose().len(), SECRET_TEXT_LEN);
    assert!(store.contains(&ident("svc", 0)));

    let grant = store.get(secret.expose(), "vis").unwrap();
    assert_eq!(grant.ident, ident("svc", 0));
    assert_eq!(grant.permissions, p["vis"]);
    assert_eq!(
        store.get(secret.expose(), "dm").unwrap().permissions,
        p["dm"]
    );

    store.unregister(&ident("svc", 0)).unwrap();
    assert!(store.is_empty());
    assert_not_found(&store, secret.expose(), "vis");
    assert_not_found(&store, secret.expose(), "dm");
}

#[test]
fn another_server_id_is_not_found() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let secret = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    assert_not_found(&store, secret.expose(), "VIS");
    assert_not_found(&store, secret.expose(), "");
    assert_not_found(&store, secret.expose(), "dm");
}

#[test]
fn instances_get_distinct_secrets_and_their_own_permissions() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let a = store
        .register(ident("a", 0), perms(&[("vis", "*", "r")]))
        .unwrap();
    let b = store
        .register(ident("b", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(store.get(a.expose(), "vis").unwrap().ident, ident("a", 0));
    assert_eq!(store.get(b.expose(), "vis").unwrap().permissions["*"], "rw");
    store.unregister(&ident("a", 0)).unwrap();
    assert_eq!(store.get(b.expose(), "vis").unwrap().ident, ident("b", 0));
}

#[test]
fn random_and_malformed_secrets_are_never_found() {
    let fx = Fixture::new();
    let mut store = fx.open();
    for i in 0..10 {
        store
            .register(ident("svc", i), perms(&[("vis", "*", "rw")]))
            .unwrap();
    }
    for _ in 0..10_000 {
        let guess = Secret::generate().unwrap();
        assert_not_found(&store, guess.expose(), "vis");
    }
    let real = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    let upper = real.expose().to_uppercase();
    let mut flipped = real.expose().to_owned();
    flipped.replace_range(..1, if flipped.starts_with('0') { "1" } else { "0" });
    let malformed = [
        String::new(),
        real.expose()[1..].to_owned(),
        format!("{}0", real.expose()),
        format!(" {}", &real.expose()[1..]),
        "z".repeat(SECRET_TEXT_LEN),
        flipped,
    ];
    for bad in &malformed {
        assert_not_found(&store, bad, "vis");
    }
    // Hex is case-insensitive on decode: the same 256 bits, the same instance.
    assert_eq!(store.get(&upper, "vis").unwrap().ident, ident("svc", 0));
}

#[test]
fn re_register_keeps_the_secret_and_replaces_permissions() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let first = store
        .register(
            ident("svc", 0),
            perms(&[("vis", "*", "r"), ("dm", "*", "r")]),
        )
        .unwrap();
    let second = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.get(first.expose(), "vis").unwrap().permissions["*"],
        "rw"
    );
    assert_not_found(&store, first.expose(), "dm");

    // And so it reads back after a restart.
    let store = fx.open();
    assert_eq!(
        store.get(first.expose(), "vis").unwrap().permissions["*"],
        "rw"
    );
    assert_not_found(&store, first.expose(), "dm");
}

#[test]
fn registrations_survive_a_restart() {
    let fx = Fixture::new();
    let mut secrets = Vec::new();
    {
        let mut store = fx.open();
        for i in 0..5 {
            let p = perms(&[("vis", "*", "r"), ("dm", &format!("f{i}"), "x")]);
            secrets.push(store.register(ident("svc", i), p).unwrap());
        }
        store.unregister(&ident("svc", 3)).unwrap();
    }
    let store = fx.open();
    assert_eq!(store.len(), 4);
    for (i, secret) in secrets.iter().enumerate() {
        if i == 3 {
            assert_not_found(&store, secret.expose(), "dm");
            continue;
        }
        let grant = store.get(secret.expose(), "dm").unwrap();
        assert_eq!(grant.ident, ident("svc", i as u64));
        assert_eq!(grant.permissions[&format!("f{i}")], "x");
    }
}

#[test]
fn store_file_is_0600_and_holds_no_plaintext_secret() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let secret = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    let mode = std::fs::metadata(&fx.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let content = std::fs::read_to_string(&fx.path).unwrap();
    assert!(!content.contains(secret.expose()));
    assert!(!content.contains(&secret.expose().to_uppercase()));
    assert!(
        content.contains(&secret.digest().unwrap().to_hex()),
        "{content}"
    );
    assert!(content.starts_with(r#"{"version":1,"#), "{content}");
}

#[test]
fn re_register_after_restart_issues_a_new_secret_and_keeps_at_most_two() {
    let fx = Fixture::new();
    let s1 = fx
        .open()
        .register(ident("svc", 0), perms(&[("vis", "*", "r")]))
        .unwrap();

    // Restart: only the digest of s1 is known, so a re-register cannot return s1.
    let mut store = fx.open();
    let s2 = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    assert_ne!(s1, s2);
    for s in [&s1, &s2] {
        assert_eq!(store.get(s.expose(), "vis").unwrap().permissions["*"], "rw");
    }
    // Within this process s2 is known in full and is kept.
    let again = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    assert_eq!(again, s2);
    assert_eq!(
        store.get(s1.expose(), "vis").unwrap().ident,
        ident("svc", 0)
    );

    // Another restart and re-register: s3 and s2 are valid, s1 (two generations old) is revoked.
    let mut store = fx.open();
    let s3 = store
        .register(ident("svc", 0), perms(&[("vis", "*", "r")]))
        .unwrap();
    assert_not_found(&store, s1.expose(), "vis");
    for s in [&s2, &s3] {
        assert_eq!(store.get(s.expose(), "vis").unwrap().ident, ident("svc", 0));
    }
    let store = fx.open();
    assert_not_found(&store, s1.expose(), "vis");
    assert!(store.get(s2.expose(), "vis").is_ok());
    assert!(store.get(s3.expose(), "vis").is_ok());

    // Unregister revokes both.
    let mut store = fx.open();
    store.unregister(&ident("svc", 0)).unwrap();
    assert_not_found(&store, s2.expose(), "vis");
    assert_not_found(&store, s3.expose(), "vis");
}

#[test]
fn unregister_of_an_unknown_instance_is_an_error() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let err = store.unregister(&ident("nobody", 7)).unwrap_err();
    assert!(
        matches!(&err, PermissionError::UnknownInstance { ident } if ident == "service:nobody/subject#7"),
        "{err:?}"
    );
    assert!(
        !fx.path.exists(),
        "a refused change must not write the store"
    );
}

#[test]
fn corrupt_store_is_an_error_at_open() {
    let digest = Secret::generate().unwrap().digest().unwrap().to_hex();
    let entry = |digests: &str| {
        format!(
            r#"{{"ident":{{"item_id":"a","subject_id":"s","instance":0,"kind":"service"}},"secret_digests":[{digests}],"permissions":{{}}}}"#
        )
    };
    let one = entry(&format!("\"{digest}\""));
    let cases = [
        ("garbage", "not json at all".to_owned()),
        ("empty file", String::new()),
        ("truncated", r#"{"version":1,"instances":[{"#.to_owned()),
        ("no version", r#"{"instances":[]}"#.to_owned()),
        (
            "unknown field",
            r#"{"version":1,"instances":[],"extra":1}"#.to_owned(),
        ),
        (
            "bad digest",
            format!(r#"{{"version":1,"instances":[{}]}}"#, entry("\"abcd\"")),
        ),
        (
            "no digest",
            format!(r#"{{"version":1,"instances":[{}]}}"#, entry("")),
        ),
        (
            "three digests",
            format!(
                r#"{{"version":1,"instances":[{}]}}"#,
                entry(&format!(
                    "\"{digest}\",\"{}\",\"{}\"",
                    "1".repeat(64),
                    "2".repeat(64)
                ))
            ),
        ),
        (
            "duplicate instance",
            format!(r#"{{"version":1,"instances":[{one},{one}]}}"#),
        ),
        (
            "digest twice in one instance",
            format!(
                r#"{{"version":1,"instances":[{}]}}"#,
                entry(&format!("\"{digest}\",\"{digest}\""))
            ),
        ),
        (
            "unknown kind",
            one.replace("\"service\"", "\"daemon\"")
                .replace("{\"ident\"", "{\"version\":1,\"instances\":[{\"ident\"")
                + "]}",
        ),
    ];
    let fx = Fixture::new();
    for (what, content) in cases {
        std::fs::write(&fx.path, content).unwrap();
        let err = fx.open_err();
        assert!(
            matches!(err, PermissionError::StoreCorrupt { .. }),
            "{what}: {err:?}"
        );
        assert!(err.to_string().contains("permissions.db"), "{what}: {err}");
    }
}

#[test]
fn store_of_another_version_is_refused() {
    let fx = Fixture::new();
    std::fs::write(&fx.path, r#"{"version":2,"instances":[],"new":true}"#).unwrap();
    let err = fx.open_err();
    assert!(
        matches!(
            err,
            PermissionError::StoreVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unreadable_store_is_an_error_at_open() {
    let fx = Fixture::new();
    std::fs::create_dir(&fx.path).unwrap();
    let err = fx.open_err();
    assert!(
        matches!(err, PermissionError::StoreUnreadable { .. }),
        "{err:?}"
    );
}

#[test]
fn a_failed_write_leaves_the_table_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("sub");
    let path = blocker.join("permissions.db");
    let mut store = PermissionStore::open(&path, PermissionLimits::default()).unwrap();
    // A file where the store's directory should be: every write fails.
    std::fs::write(&blocker, b"").unwrap();
    let err = store
        .register(ident("svc", 0), perms(&[("vis", "*", "r")]))
        .unwrap_err();
    assert!(matches!(err, PermissionError::StoreWrite { .. }), "{err:?}");
    assert!(store.is_empty());

    std::fs::remove_file(&blocker).unwrap();
    let secret = store
        .register(ident("svc", 0), perms(&[("vis", "*", "r")]))
        .unwrap();
    std::fs::remove_dir_all(&blocker).unwrap();
    std::fs::write(&blocker, b"").unwrap();
    let err = store.unregister(&ident("svc", 0)).unwrap_err();
    assert!(matches!(err, PermissionError::StoreWrite { .. }), "{err:?}");
    assert!(store.get(secret.expose(), "vis").is_ok());
    let err = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap_err();
    assert!(matches!(err, PermissionError::StoreWrite { .. }), "{err:?}");
    assert_eq!(
        store.get(secret.expose(), "vis").unwrap().permissions["*"],
        "r"
    );
}

fn small_limits() -> PermissionLimits {
    PermissionLimits {
        max_instances: 2,
        max_servers_per_instance: 2,
        max_string_len: 8,
    }
}

#[test]
fn too_many_instances_is_refused_but_re_register_is_not() {
    let fx = Fixture::new();
    let mut store = fx.open_with(small_limits());
    let p = perms(&[("vis", "*", "r")]);
    store.register(ident("a", 0), p.clone()).unwrap();
    store.register(ident("a", 1), p.clone()).unwrap();
    let err = store.register(ident("a", 2), p.clone()).unwrap_err();
    assert!(
        matches!(&err, PermissionError::TooManyInstances { max: 2, ident } if ident == "service:a/subject#2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_instances"), "{err}");
    store.register(ident("a", 1), p.clone()).unwrap();
    assert_eq!(store.len(), 2);
}

#[test]
fn too_many_servers_is_refused() {
    let fx = Fixture::new();
    let mut store = fx.open_with(small_limits());
    let p = perms(&[("a", "*", "r"), ("b", "*", "r"), ("c", "*", "r")]);
    let err = store.register(ident("a", 0), p).unwrap_err();
    assert!(
        matches!(
            err,
            PermissionError::TooManyServers {
                count: 3,
                max: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("max_servers_per_instance"),
        "{err}"
    );
    assert!(store.is_empty());
}

#[test]
fn each_string_too_long_is_refused_by_name() {
    let fx = Fixture::new();
    let mut store = fx.open_with(small_limits());
    let long = "x".repeat(9);
    let ok = perms(&[("vis", "*", "r")]);
    let mut long_subject = ident("a", 0);
    long_subject.subject_id = long.clone();
    let cases = [
        ("item id", ident(&long, 0), ok.clone()),
        ("subject id", long_subject, ok.clone()),
        (
            "functional server id",
            ident("a", 0),
            perms(&[(&long, "*", "r")]),
        ),
        (
            "function name on server \"vis\"",
            ident("a", 0),
            perms(&[("vis", &long, "r")]),
        ),
        (
            "permission string of function \"*\" on server \"vis\"",
            ident("a", 0),
            perms(&[("vis", "*", &long)]),
        ),
    ];
    for (expected, who, p) in cases {
        let err = store.register(who, p).unwrap_err();
        match &err {
            PermissionError::StringTooLong { what, len, max } => {
                assert_eq!((what.as_str(), *len, *max), (expected, 9, 8));
            }
            other => panic!("{expected}: {other:?}"),
        }
        assert!(err.to_string().contains("max_string_len"), "{err}");
    }
    // Exactly at the limit is fine.
    let at = "y".repeat(8);
    store
        .register(ident(&at, 0), perms(&[(&at, &at, &at)]))
        .unwrap();
}

#[test]
fn a_store_over_lowered_limits_loads_whole_and_refuses_new_instances() {
    let fx = Fixture::new();
    let mut secrets = Vec::new();
    {
        let mut store = fx.open();
        for i in 0..3 {
            secrets.push(
                store
                    .register(ident("svc", i), perms(&[("vis", "*", "r")]))
                    .unwrap(),
            );
        }
    }
    let mut store = fx.open_with(small_limits());
    assert_eq!(store.len(), 3);
    for s in &secrets {
        assert!(store.get(s.expose(), "vis").is_ok());
    }
    let err = store
        .register(ident("new", 0), perms(&[("vis", "*", "r")]))
        .unwrap_err();
    assert!(
        matches!(err, PermissionError::TooManyInstances { .. }),
        "{err:?}"
    );
}

#[test]
fn debug_of_errors_and_store_does_not_show_a_secret() {
    let fx = Fixture::new();
    let mut store = fx.open();
    let secret = store
        .register(ident("svc", 0), perms(&[("vis", "*", "rw")]))
        .unwrap();
    let err = store.get(secret.expose(), "other").unwrap_err();
    let guess = Secret::generate().unwrap();
    let miss = store.get(guess.expose(), "vis").unwrap_err();
    let shown = format!("{err:?} {err} {miss:?} {miss} {store:?}");
    for s in [&secret, &guess] {
        assert!(!shown.contains(s.expose()), "{shown}");
        assert!(!shown.contains(&s.digest().unwrap().to_hex()), "{shown}");
    }
}
