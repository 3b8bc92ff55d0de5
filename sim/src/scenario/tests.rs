//! Parsing, refusal of malformed and impossible scenarios, and the seeded schedule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse("test.toml", text)
}

fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_built_in_and_shipped_scenarios_parse_and_resolve() {
    let default = Scenario::default_scenario();
    assert_eq!(default.unit.nodes, 3);
    assert_eq!(default.unit.keys, KeyProfile::AosCore);
    assert!(default.resolve(1).is_ok());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        scenario.resolve(7).unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen >= 3);
}

#[test]
fn a_full_scenario_reads_into_the_model() {
    let s = parse(
        r#"
name = "x"
[unit]
nodes = 4
link = "vchan"
keys = "p256"
cert_lifetime = "10s"
cloud_renews = false
[checks]
orphans = false
grace = "1s"
[[step]]
do = "provision"
nodes = ["main", 2]
[[step]]
at = "3s"
do = "deploy"
node = "sec-1"
service = "nav"
grant = { get = "r" }
[[step]]
do = "crash"
node = 3
duration = "500ms"
"#,
    )
    .unwrap();
    assert_eq!(s.unit.nodes, 4);
    assert_eq!(s.unit.link, LinkKind::Vchan);
    assert_eq!(s.unit.cert_lifetime, Some(Duration::from_secs(10)));
    assert!(!s.unit.cloud_renews && !s.checks.orphans);
    assert_eq!(s.checks.grace, Duration::from_secs(1));
    assert_eq!(
        s.steps[0].action,
        Action::Provision(Some(vec![NodeRef::Name("main".into()), NodeRef::Index(2)]))
    );
    assert_eq!(s.steps[1].at, Some(Duration::from_secs(3)));
    assert_eq!(s.unit.keys, KeyProfile::P256);
    assert_eq!(s.steps[1].origin.line, 15);
    assert!(matches!(&s.steps[2].action, Action::Fault(f) if f.kind == FaultKind::Crash));
    let plan = s.resolve(0).unwrap();
    assert_eq!(plan.steps[0].action, PlannedAction::Provision(vec![0, 2]));
}

#[test]
fn malformed_scenarios_name_file_line_and_key() {
    assert_eq!(
        message("[unit]\nnodes = \"three\"\n"),
        "test.toml:2: unit.nodes: expected an integer, found string"
    );
    assert_eq!(
        message("[[step]]\ndo = \"provision\"\n\n[[step]]\ndo = \"explode\"\n"),
        "test.toml:5: step[2].do: unknown action \"explode\": use provision, deploy, traffic, renew, deprovision, pause, resume, wait, cut_link, crash or token_fail"
    );
    assert_eq!(
        message("[[step]]\ndo = \"wait\"\nduration = \"soon\"\n")
            .split(" (")
            .next()
            .unwrap()
            .split(": ")
            .take(2)
            .collect::<Vec<_>>()
            .join(": "),
        "test.toml:3: step[1].duration"
    );
    assert!(message("[[step]]\ndo = \"crash\"\nnode = 1\n")
        .starts_with("test.toml:1: step[1].duration: missing"));
    assert!(message("[unit]\nnodez = 3\n").starts_with("test.toml:2: unit.nodez: unknown key"));
    assert!(
        message("[[step]]\ndo = \"deploy\"\nnode = 1\nservice = \"s\"\ngrant = { get = 1 }\n")
            .starts_with("test.toml:5: step[1].grant.get: expected a permission string")
    );
    assert!(message("[unit]\nlink = \"carrier-pigeon\"\n")
        .starts_with("test.toml:2: unit.link: unknown link"));
    assert_eq!(
        message("[unit]\nnodes = 2\nkeys = \"rsa\"\n"),
        "test.toml:3: unit.keys: unknown key profile \"rsa\": use aoscore or p256"
    );
    assert!(message("[unit\nnodes = 3\n").starts_with("test.toml:1: not TOML"));
}

#[test]
fn impossible_scenarios_are_refused_before_the_run() {
    let refuse = |text: &str| parse(text).unwrap().resolve(1).unwrap_err().to_string();
    assert_eq!(
        refuse("[unit]\nnodes = 3\n[[step]]\ndo = \"crash\"\nnode = 7\nduration = \"1s\"\n"),
        "test.toml:3: step[1].node: impossible on this unit: node 7 is not in this unit of 3 nodes (main, sec-1 … sec-2)"
    );
    assert!(
        refuse("[[step]]\ndo = \"cut_link\"\nnode = \"main\"\nduration = \"1s\"\n")
            .contains("secondary nodes only")
    );
    assert!(refuse("[[step]]\ndo = \"deprovision\"\nnode = 0\n").contains("secondary nodes only"));
    assert!(refuse("[[step]]\ndo = \"pause\"\nnode = \"sec-9\"\n").contains("not in this unit"));
    assert!(
        refuse("[unit]\nnodes = 1\n[random_faults]\nper_minute = 5\nuntil = \"10s\"\n")
            .starts_with("test.toml:3: random_faults.include_main: impossible")
    );
}

#[test]
fn one_seed_gives_one_fault_schedule() {
    let text =
        "[unit]\nnodes = 5\n[random_faults]\nper_minute = 30\nfrom = \"1s\"\nuntil = \"60s\"\n";
    let s = parse(text).unwrap();
    let a = s.resolve(1234).unwrap().random_faults;
    let b = s.resolve(1234).unwrap().random_faults;
    let c = s.resolve(1235).unwrap().random_faults;
    assert!(a.len() >= 10, "{a:?}");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|f| f.node >= 1
        && f.node < 5
        && f.at >= Duration::from_secs(1)
        && f.at < Duration::from_secs(60)));
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
}
