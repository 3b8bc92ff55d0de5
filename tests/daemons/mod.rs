//! Running `aos-gatewayd` and `aosctl` as processes, for the daemon tests and benchmarks: a node's
//! directory (own SoftHSM token directory, config), a daemon whose JSON log lines are collected, and small
//! helpers (free ports, HTTP GET, aosctl with `--json`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const GATEWAYD: &str = env!("CARGO_BIN_EXE_aos-gatewayd");
pub const AOSCTL: &str = env!("CARGO_BIN_EXE_aosctl");
pub const PASSWORD: &str = "so-pin-1234";
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn softhsm_library() -> PathBuf {
    aos_pkcs11::testkit::system_softhsm()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node's files: SoftHSM configuration and token directory, state, PIN file, config.
pub struct NodeDir {
    pub dir: PathBuf,
    pub public: u16,
    pub protected: u16,
}

impl NodeDir {
    pub fn new(root: &Path, id: &str) -> NodeDir {
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

    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    pub fn pin(&self) -> PathBuf {
        self.dir.join("aoscore.pin")
    }

    /// The node's config: `iam` and `sm` (P-256) on token `aoscore`.
    pub fn write_config(&self, ca: &Path, id: &str, extra: &str) -> PathBuf {
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
pub struct Daemon {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn spawn(config: &Path, conf: &Path, metrics: Option<u16>) -> Daemon {
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
    pub fn wait_line(&self, needle: &str) -> String {
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

    /// How many log lines so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// The provisioning certificate's fingerprint from the start-up log.
    pub fn fingerprint(&self) -> String {
        let line = self.wait_line("provisioning_fingerprint");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        value["provisioning_fingerprint"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// SIGTERM; the exit code and how long it took.
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
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

pub fn run(cmd: &mut Command) -> Output {
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

pub fn aosctl(args: &[&str]) -> serde_json::Value {
    let output = run(Command::new(AOSCTL).args(args).arg("--json"));
    serde_json::from_slice(&output.stdout).expect("aosctl --json prints JSON")
}

/// Wait until `addr` accepts TCP connections.
pub fn wait_listening(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < PATIENCE, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// A development CA made with `aosctl ca init` in `root/ca` for unit `unit-1`, and the provisioning
/// password in `root/password`.
pub struct DevCa {
    /// The CA directory (`--ca`).
    pub dir: PathBuf,
    /// Its root certificate (`ca_cert`).
    pub root: PathBuf,
    /// The password file (`--password-file`).
    pub password: PathBuf,
}

impl DevCa {
    /// `aosctl provision` of the node serving the public endpoint on `port` (every node of the unit with
    /// `all`), pinning its provisioning certificate `fingerprint`; the `--json` output.
    pub fn provision(&self, port: u16, fingerprint: &str, all: bool) -> serde_json::Value {
        let server = format!("127.0.0.1:{port}");
        let mut args = vec![
            "provision",
            "--server",
            &server,
            "--pin",
            fingerprint,
            "--ca",
            self.dir.to_str().unwrap(),
            "--password-file",
            self.password.to_str().unwrap(),
        ];
        if all {
            args.push("--all");
        }
        aosctl(&args)
    }

    pub fn new(root: &Path) -> DevCa {
        let dir = root.join("ca");
        aosctl(&[
            "ca",
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--unit",
            "unit-1",
        ]);
        let password = root.join("password");
        std::fs::write(&password, PASSWORD).unwrap();
        DevCa {
            root: dir.join("root.pem"),
            dir,
            password,
        }
    }
}

impl NodeDir {
    /// A secondary's config (see [`NodeDir::write_config`]) naming `main`'s endpoints and pinning its
    /// provisioning certificate `fingerprint`, so it registers while the main node is unprovisioned too.
    pub fn write_secondary_config(
        &self,
        ca: &Path,
        id: &str,
        main: &NodeDir,
        fingerprint: &str,
    ) -> PathBuf {
        let config = self.write_config(ca, id, "");
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "[iam]\n",
            &format!(
                "[iam]\nmain_public_addr = \"127.0.0.1:{}\"\nmain_protected_addr = \"127.0.0.1:{}\"\n\
                 main_fingerprint = \"{fingerprint}\"\nnode_reconnect_interval = \"300ms\"\n",
                main.public, main.protected
            ),
        );
        std::fs::write(&config, text).unwrap();
        config
    }
}
