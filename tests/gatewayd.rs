//! Two `aos-gatewayd` processes (a main node and a secondary over TCP) on loopback, each with its own
//! SoftHSM token directory, provisioned with `aosctl`. Outside witnesses check the result: `pkcs11-tool`
//! (every private key is sensitive and never extractable), `openssl verify` (every chain leads to the CA)
//! and `openssl s_client` (the protected endpoint refuses a client without a certificate). Then SIGTERM
//! stops both with exit code 0. Also: `--check-config` on broken configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GATEWAYD: &str = env!("CARGO_BIN_EXE_aos-gatewayd");
const AOSCTL: &str = env!("CARGO_BIN_EXE_aosctl");
const PASSWORD: &str = "so-pin-1234";
const PATIENCE: Duration = Duration::from_secs(60);

fn softhsm_library() -> PathBuf {
    aos_pkcs11::testkit::system_softhsm()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node's files: SoftHSM configuration and token directory, state, PIN file, config.
struct NodeDir {
    dir: PathBuf,
    public: u16,
    protected: u16,
}

impl NodeDir {
    fn new(root: &Path, id: &str) -> NodeDir {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        std::fs::write(
            dir.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        NodeDir {
            dir,
            public: free_port(),
            protected: free_port(),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    fn pin(&self) -> PathBuf {
        self.dir.join("aoscore.pin")
    }

    /// The node's config: `iam` and `sm` (P-256) on token `aoscore`.
    fn write_config(&self, ca: &Path, id: &str, extra: &str) -> PathBuf {
        let mut text = format!(
            "ca_cert = \"{ca}\"\n{extra}\n[node]\nid = \"{id}\"\nunit_id = \"unit-1\"\nrole = \"{role}\"\n\
             state_file = \"{dir}/state\"\nworking_dir = \"{dir}/work\"\n",
            ca = ca.display(),
            role = if id == "main" { "main" } else { "secondary" },
            dir = self.dir.display(),
        );
        text += &format!(
            "[iam]\npublic_listen = \"127.0.0.1:{}\"\nprotected_listen = \"127.0.0.1:{}\"\n",
            self.public, self.protected
        );
        for module in ["iam", "sm"] {
            text += &format!(
                "[[cert_modules]]\nid = \"{module}\"\nalgorithm = \"ecc-p256\"\n\
                 extended_key_usage = [\"server_auth\", \"client_auth\"]\n[cert_modules.pkcs11]\n\
                 library = \"{}\"\ntoken_label = \"aoscore\"\nuser_pin_path = \"{}\"\n",
                softhsm_library().display(),
                self.pin().display()
            );
        }
        let path = self.dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running daemon and its log lines (JSON).
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(config: &Path, conf: &Path, metrics: Option<u16>) -> Daemon {
        let mut cmd = Command::new(GATEWAYD);
        cmd.arg("--config")
            .arg(config)
            .args(["--log-format", "json"])
            .env("SOFTHSM2_CONF", conf)
            .env("AOS_LOG", "info,cryptoki=off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(port) = metrics {
            cmd.args(["--metrics", &format!("127.0.0.1:{port}")]);
        }
        let mut child = cmd.spawn().expect("aos-gatewayd starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Daemon { child, lines }
    }

    /// The first log line containing `needle`, waiting for it.
    fn wait_line(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no log line with {needle:?}; log:\n{}",
                lines.join("\n")
            );
            drop(lines);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The provisioning certificate's fingerprint from the start-up log.
    fn fingerprint(&self) -> String {
        let line = self.wait_line("provisioning_fingerprint");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        value["provisioning_fingerprint"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// SIGTERM; the exit code and how long it took.
    fn terminate(mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("the daemon did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn aosctl(args: &[&str]) -> serde_json::Value {
    let output = run(Command::new(AOSCTL).args(args).arg("--json"));
    serde_json::from_slice(&output.stdout).expect("aosctl --json prints JSON")
}

/// Wait until `addr` accepts TCP connections.
fn wait_listening(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < PATIENCE, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn two_daemons_provisioned_with_aosctl() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    aosctl(&[
        "ca",
        "init",
        "--dir",
        ca.to_str().unwrap(),
        "--unit",
        "unit-1",
    ]);
    let ca_root = ca.join("root.pem");
    let password = root.path().join("password");
    std::fs::write(&password, PASSWORD).unwrap();

    let main = NodeDir::new(root.path(), "main");
    let secondary = NodeDir::new(root.path(), "sec-1");
    let main_config = main.write_config(&ca_root, "main", "");
    let main_addr = |port: u16| format!("127.0.0.1:{port}");
    let metrics = free_port();
    let main_daemon = Daemon::spawn(&main_config, &main.conf(), Some(metrics));
    let fingerprint = main_daemon.fingerprint();
    // The secondary's [iam] table names the main node's endpoints and pins the main node's provisioning
    // certificate, so it can register while the main node is not provisioned either.
    let secondary_config = secondary.write_config(&ca_root, "sec-1", "");
    let text = std::fs::read_to_string(&secondary_config).unwrap().replace(
        "[iam]\n",
        &format!(
            "[iam]\nmain_public_addr = \"{}\"\nmain_protected_addr = \"{}\"\nmain_fingerprint = \"{fingerprint}\"\n\
             node_reconnect_interval = \"300ms\"\n",
            main_addr(main.public),
            main_addr(main.protected)
        ),
    );
    std::fs::write(&secondary_config, text).unwrap();
    let secondary_daemon = Daemon::spawn(&secondary_config, &secondary.conf(), None);
    wait_listening(main.public);
    assert!(http_get(metrics, "/ready").starts_with("HTTP/1.1 503"));
    // The secondary registers with the main node before the unit can be provisioned.
    main_daemon.wait_line("secondary node registered");

    // Provision both through the main node.
    let provisioned = aosctl(&[
        "provision",
        "--server",
        &main_addr(main.public),
        "--pin",
        &fingerprint,
        "--ca",
        ca.to_str().unwrap(),
        "--password-file",
        password.to_str().unwrap(),
        "--all",
    ]);
    let nodes: Vec<&str> = provisioned
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2, "{provisioned}");
    assert!(nodes.contains(&"main") && nodes.contains(&"sec-1"));
    main_daemon.wait_line("ready: provisioned");
    secondary_daemon.wait_line("ready: provisioned");
    assert!(http_get(metrics, "/ready").starts_with("HTTP/1.1 200"));
    let scraped = http_get(metrics, "/metrics");
    assert!(scraped.contains("aos_node_ready 1"), "{scraped}");
    assert!(
        scraped.contains("aos_cert_not_after_seconds{type=\"iam\"}"),
        "{scraped}"
    );

    // State through the protected endpoint, with an operator certificate (role cm) of the unit CA.
    let operator = root.path().join("operator");
    aosctl(&[
        "ca",
        "issue",
        "--dir",
        ca.to_str().unwrap(),
        "--node",
        "operator",
        "--role",
        "cm",
        "--out",
        operator.to_str().unwrap(),
    ]);
    for node in ["main", "sec-1"] {
        let certs = aosctl(&[
            "certs",
            "list",
            "--server",
            &main_addr(main.protected),
            "--ca",
            ca.to_str().unwrap(),
            "--cert",
            operator.with_extension("pem").to_str().unwrap(),
            "--key",
            operator.with_extension("key").to_str().unwrap(),
            "--node",
            node,
        ]);
        let mut types: Vec<&str> = certs
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cert_type"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(types, ["iam", "sm"], "{node}: {certs}");
    }

    // Outside witnesses on each node's token.
    for node in [&main, &secondary] {
        let pin = std::fs::read_to_string(node.pin()).unwrap();
        let pkcs11 = |args: &[&str]| {
            let mut cmd = Command::new("pkcs11-tool");
            cmd.env("SOFTHSM2_CONF", node.conf())
                .arg("--module")
                .arg(softhsm_library())
                .args(["--token-label", "aoscore", "--login", "--pin", pin.trim()])
                .args(args);
            run(&mut cmd)
        };
        let keys =
            String::from_utf8(pkcs11(&["--list-objects", "--type", "privkey"]).stdout).unwrap();
        let access: Vec<&str> = keys
            .lines()
            .filter(|l| l.trim_start().starts_with("Access:"))
            .collect();
        assert_eq!(access.len(), 2, "one key per cert type:\n{keys}");
        for line in access {
            assert!(
                line.contains("never extractable") && line.contains("sensitive"),
                "{line}"
            );
            assert!(
                !line.contains(" extractable,") || line.contains("never extractable"),
                "{line}"
            );
        }
        for cert_type in ["iam", "sm"] {
            let der = node.dir.join(format!("{cert_type}.der"));
            pkcs11(&[
                "--read-object",
                "--type",
                "cert",
                "--label",
                cert_type,
                "--output-file",
                der.to_str().unwrap(),
            ]);
            let pem = node.dir.join(format!("{cert_type}.pem"));
            run(Command::new("openssl")
                .args(["x509", "-inform", "DER", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&pem));
            let verified = run(Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&ca_root)
                .arg("-untrusted")
                .arg(ca.join("intermediate.pem"))
                .arg(&pem));
            assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));
        }
    }

    // A client without a certificate is refused on the protected endpoint.
    // -ign_eof: keep reading after stdin ends, so the refusal TLS 1.3 sends after the client's Finished
    // (alert certificate_required) is read and reported.
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-ign_eof",
            "-connect",
            &main_addr(main.protected),
            "-CAfile",
        ])
        .arg(&ca_root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&s_client.stdout) + String::from_utf8_lossy(&s_client.stderr);
    assert!(!s_client.status.success(), "s_client succeeded:\n{said}");
    assert!(said.contains("alert"), "no TLS alert:\n{said}");
    main_daemon.wait_line("no_certificate");

    // SIGTERM: both drain and exit 0 within 5 s.
    let (code, took) = secondary_daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (code, took) = main_daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn check_config_names_file_line_and_key() {
    let root = tempfile::tempdir().unwrap();
    let node = NodeDir::new(root.path(), "main");
    let config = node.write_config(Path::new("/etc/aos/ca.pem"), "main", "");
    let ok = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let broken = std::fs::read_to_string(&config)
        .unwrap()
        .replace("algorithm = \"ecc-p256\"", "algorithm = \"dsa\"");
    std::fs::write(&config, broken).unwrap();
    let bad = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("node.toml:") && said.contains("algorithm"),
        "{said}"
    );

    let missing = Command::new(GATEWAYD)
        .args(["--config", "/nonexistent/node.toml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/node.toml"));

    let usage = Command::new(GATEWAYD).arg("--bogus").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let node = NodeDir::new(root.path(), "main");
    let taken = TcpListener::bind(("127.0.0.1", node.public)).unwrap();
    let ca = tempfile::tempdir().unwrap();
    aosctl(&[
        "ca",
        "init",
        "--dir",
        ca.path().join("ca").to_str().unwrap(),
        "--unit",
        "unit-1",
    ]);
    let config = node.write_config(&ca.path().join("ca/root.pem"), "main", "");
    let output = Command::new(GATEWAYD)
        .arg("--config")
        .arg(&config)
        .env("SOFTHSM2_CONF", node.conf())
        .output()
        .unwrap();
    drop(taken);
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!("127.0.0.1:{}", node.public)),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn shipped_configurations_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "dist/config/main-node.toml",
        "dist/config/secondary-node.toml",
        "dist/quickstart/main.toml",
        "dist/quickstart/secondary.toml",
        "config/examples/main-node.toml",
        "config/examples/secondary-node.toml",
    ] {
        let output = Command::new(GATEWAYD)
            .arg("--config")
            .arg(root.join(file))
            .arg("--check-config")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
