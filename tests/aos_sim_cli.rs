//! The `aos-sim` binary refuses bad input before it builds a unit: a malformed scenario names
//! file:line:key, an impossible one (a fault on node 7 of 3) says so, both with exit code 2; `--dry-run`
//! prints the seeded schedule, the same for the same seed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

fn aos_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aos-sim"))
        .args(args)
        .output()
        .expect("aos-sim runs")
}

fn scenario(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn a_malformed_scenario_names_file_line_and_key() {
    let (_dir, path) = scenario("name = \"x\"\n\n[[step]]\ndo = \"provision\"\nnodes = 3\n");
    let out = aos_sim(&["--scenario", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{path}:5: step[1].nodes: expected \"all\" or a list of nodes"
        )),
        "{err}"
    );
}

#[test]
fn an_impossible_scenario_is_refused_before_the_run() {
    let (_dir, path) = scenario(
        "[[step]]\ndo = \"provision\"\n[[step]]\ndo = \"crash\"\nnode = 7\nduration = \"1s\"\n",
    );
    let out = aos_sim(&["--scenario", &path, "--nodes", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{path}:3: step[2].node: impossible on this unit: node 7 is not in this unit of 3 nodes")),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn dry_run_prints_the_same_schedule_for_the_same_seed() {
    let args = [
        "--scenario",
        "sim/scenarios/chaos.toml",
        "--dry-run",
        "--seed",
        "99",
    ];
    let a = aos_sim(&args);
    let b = aos_sim(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(
        text.contains("seeded fault:") && text.contains("seed 99"),
        "{text}"
    );
    assert_eq!(a.stdout, b.stdout);
    let c = aos_sim(&[
        "--scenario",
        "sim/scenarios/chaos.toml",
        "--dry-run",
        "--seed",
        "100",
    ]);
    assert_ne!(a.stdout, c.stdout);
}
