//! A functional server: serves a request only when IAM grants the asking service instance the function.
//!
//! ```text
//! functional_server --iam <host:port> (--ca <unit-ca.pem> | --pin <fingerprint>) [--id vis] [--listen 127.0.0.1:9000]
//! ```
//!
//! - `--iam`: the IAM public endpoint (`iam.public_listen` of the main node, e.g. `127.0.0.1:8090`).
//! - `--ca`: the unit CA (PEM); the IAM must present its CA-issued `iam` certificate. `--pin`: the
//!   fingerprint of an unprovisioned IAM's provisioning certificate instead (tests and bring-up only).
//! - `--id`: this server's functional server id, the key of the permissions SM registered (`vis`).
//! - `--listen`: a loopback address. The example speaks plaintext lines, so it refuses anything else; a real
//!   functional server puts TLS in front of the secret.
//!
//! Protocol, one request per line: `<function> <secret>` (the secret is what the service got as
//! `AOS_SECRET`). Answers: `OK <function> <permission> <instance>` when IAM grants the function, else
//! `ERR <code> <message>` (`NotFound` for an unknown, forged or revoked secret, `Unauthorized` for a function
//! not granted). The secret never appears in an answer or a log line.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aos_actors::api::ApiError;
use aos_actors::iam::client::{
    client_tls, dialer_for, IamClient, IamServerAuth, PermissionChecker,
};
use aos_actors::iam::permissions::Secret;
use aos_actors::iam::server::EndpointKind;
use aos_actors::net::{ArbiterPool, LinkConfig};
use aos_transport::tls::{root_store, Fingerprint, Policy, Role, TlsOptions};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

/// Longest request line accepted; longer ones end the connection.
const MAX_LINE: usize = 1024;

struct Args {
    iam: String,
    auth: Auth,
    id: String,
    listen: SocketAddr,
}

enum Auth {
    Ca(std::path::PathBuf),
    Pin(Fingerprint),
}

const USAGE: &str = "usage: functional_server --iam <host:port> (--ca <unit-ca.pem> | --pin <fingerprint>) [--id vis] [--listen 127.0.0.1:9000]";

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut iam, mut auth, mut id, mut listen) = (None, None, "vis".to_owned(), None);
    while let Some(flag) = argv.next() {
        let mut value = || {
            argv.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--iam" => iam = Some(value()?),
            "--ca" => auth = Some(Auth::Ca(value()?.into())),
            "--pin" => {
                let pin = value()?;
                auth = Some(Auth::Pin(pin.parse().map_err(|e| format!("--pin: {e}"))?));
            }
            "--id" => id = value()?,
            "--listen" => {
                let addr = value()?;
                listen = Some(addr.parse().map_err(|e| format!("--listen {addr}: {e}"))?);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let listen: SocketAddr = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000)));
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen}: this example speaks plaintext and listens on loopback only"
        ));
    }
    Ok(Args {
        iam: iam.ok_or_else(|| format!("--iam is required\n{USAGE}"))?,
        auth: auth.ok_or_else(|| format!("--ca or --pin is required\n{USAGE}"))?,
        id,
        listen,
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(64);
        }
    };
    match actix_rt::System::new().block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("functional_server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let auth = match &args.auth {
        Auth::Ca(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let roots = aos_pkcs11::certs::parse_pem_chain(&pem)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            IamServerAuth::Identity {
                roots: root_store(&roots).map_err(|e| e.to_string())?,
                policy: Policy::roles([Role::Iam]),
            }
        }
        Auth::Pin(pin) => IamServerAuth::Pinned(*pin),
    };
    let pool = ArbiterPool::default_size();
    let tls = client_tls(auth, None, &TlsOptions::default()).map_err(|e| e.to_string())?;
    let dialer = dialer_for(&args.iam).map_err(|e| e.to_string())?;
    let client = IamClient::connect(
        &pool,
        dialer,
        tls,
        EndpointKind::Public,
        LinkConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let server = client
        .connected(Duration::from_secs(30))
        .await
        .map_err(|e| format!("cannot reach IAM at {}: {}", args.iam, e.message))?;
    if let Some(identity) = &server.identity {
        eprintln!("connected to IAM {identity}");
    }
    let checker = PermissionChecker::new(client);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "functional server {:?} listening on {}",
        args.id, args.listen
    );
    let id: Arc<str> = args.id.into();
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                actix_rt::spawn(serve(tcp, checker.clone(), id.clone()));
            }
            Err(err) => eprintln!("accept failed: {err}"),
        }
    }
}

/// Answer each request line of one connection.
async fn serve(tcp: TcpStream, checker: PermissionChecker, id: Arc<str>) {
    let mut lines = Framed::new(tcp, LinesCodec::new_with_max_length(MAX_LINE));
    while let Some(Ok(line)) = lines.next().await {
        let reply = answer(&checker, &id, &line).await;
        if lines.send(reply).await.is_err() {
            return;
        }
    }
}

async fn answer(checker: &PermissionChecker, id: &str, line: &str) -> String {
    let mut words = line.split_whitespace();
    let (Some(function), Some(secret), None) = (words.next(), words.next(), words.next()) else {
        return "ERR InvalidArgument expected: <function> <secret>".to_owned();
    };
    let secret = Secret::from_text(secret);
    match checker.authorize(&secret, id, function).await {
        Ok(granted) => format!("OK {function} {} {}", granted.permission, granted.ident),
        Err(ApiError { code, message, .. }) => format!("ERR {code:?} {message}"),
    }
}
