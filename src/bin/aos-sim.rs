//! `aos-sim`: a whole aos-edge unit in one process — a simulated cloud, a main node and secondaries, one
//! SoftHSM token each, real mTLS over real links — through a scenario of actions and faults, with a summary,
//! an HTML report and checks (exit code 1 when one fails). See `docs/sim.md`.
//!
//! Without arguments it runs the default story on 3 nodes: provision, deploy, traffic, a link cut, a
//! renewal, and the deprovisioning of one node.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use aos_sim::bench::{self, BenchOptions};
use aos_sim::report::{html, summary};
use aos_sim::rng::fresh_seed;
use aos_sim::run::{self, RunOptions};
use aos_sim::scenario::{KeyProfile, LinkKind, Scenario};
use clap::Parser;

/// Run an aos-edge unit in one process through a scenario, and check it.
#[derive(Debug, Parser)]
#[command(name = "aos-sim", version)]
struct Args {
    /// Nodes in the unit (one main node, the rest secondaries); overrides the scenario's.
    #[arg(long)]
    nodes: Option<usize>,
    /// How secondaries reach the main node: tcp, unix or vchan; overrides the scenario's.
    #[arg(long)]
    link: Option<LinkKind>,
    /// Certificate modules and key algorithms of every node: aoscore (AosCore's shipped set: ECDSA P-384,
    /// RSA-2048 for `offline` and the self-signed `diskencryption`) or p256 (three ECDSA P-256 types, the
    /// cheapest); overrides the scenario's.
    #[arg(long)]
    keys: Option<KeyProfile>,
    /// Scenario file (TOML, see docs/sim.md); default: the built-in story.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Seed of the random fault schedule (printed in the summary; the same seed replays the same faults).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the HTML report here (one self-contained file).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Print the outcome as JSON instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Secondaries provisioned at once.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Print the scenario's plan (steps and seeded faults) and exit without running.
    #[arg(long)]
    dry_run: bool,
    /// Benchmark instead: provision units of these sizes (e.g. 10,100,1000) and measure.
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    bench: Option<Vec<usize>>,
    /// Seconds of permission checks per benchmark size.
    #[arg(long, default_value_t = 5.0)]
    bench_checks_secs: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs();
    if let Some(sizes) = &args.bench {
        return bench_main(&args, sizes);
    }
    let mut scenario = match &args.scenario {
        Some(path) => match Scenario::load(path) {
            Ok(s) => s,
            Err(e) => return refuse(&e),
        },
        None => Scenario::default_scenario(),
    };
    if let Some(nodes) = args.nodes {
        if nodes == 0 {
            eprintln!("aos-sim: --nodes: a unit has at least one node (the main node)");
            return ExitCode::from(2);
        }
        scenario.unit.nodes = nodes;
    }
    if let Some(link) = args.link {
        scenario.unit.link = link;
    }
    if let Some(keys) = args.keys {
        scenario.unit.keys = keys;
    }
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let plan = match scenario.resolve(seed) {
        Ok(p) => p,
        Err(e) => return refuse(&e),
    };
    if args.dry_run {
        println!(
            "scenario {:?}: {} nodes over {}, seed {seed}",
            scenario.name, plan.nodes, scenario.unit.link
        );
        for (i, step) in plan.steps.iter().enumerate() {
            println!("  step {}: {:?}", i + 1, step.action);
        }
        for fault in &plan.random_faults {
            println!("  seeded fault: {fault}");
        }
        return ExitCode::SUCCESS;
    }
    let options = RunOptions {
        parallel: args.parallel,
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let outcome = actix_rt::System::new().block_on(run::run(&scenario, &plan, &options));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("aos-sim: the unit did not start: {e}");
            return ExitCode::from(3);
        }
    };
    let link = scenario.unit.link.to_string();
    if args.json {
        match serde_json::to_string_pretty(&outcome) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("aos-sim: cannot write JSON: {e}"),
        }
    } else {
        print!("{}", summary::summary(&outcome, &link));
    }
    if let Some(path) = &args.report {
        match std::fs::write(path, html::report(&outcome, &link)) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => {
                eprintln!(
                    "aos-sim: cannot write the report to {}: {e}",
                    path.display()
                );
                return ExitCode::from(3);
            }
        }
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn bench_main(args: &Args, sizes: &[usize]) -> ExitCode {
    let options = BenchOptions {
        link: args.link.unwrap_or(LinkKind::Tcp),
        keys: args.keys.unwrap_or_default(),
        parallel: args.parallel,
        check_secs: args.bench_checks_secs,
    };
    let mut failed = false;
    for &nodes in sizes {
        let figures = actix_rt::System::new().block_on(bench::bench(nodes, &options));
        match figures {
            Ok(f) => {
                if args.json {
                    println!("{}", serde_json::to_string(&f).unwrap_or_default());
                } else {
                    println!("{f}");
                }
            }
            Err(e) => {
                eprintln!("aos-sim: bench with {nodes} nodes failed: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn refuse(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("aos-sim: {error}");
    ExitCode::from(2)
}

/// Logs to stderr, filtered by `AOS_SIM_LOG` (e.g. `AOS_SIM_LOG=info,cryptoki=off`); off by default so the
/// progress line and the summary stay readable.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AOS_SIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
