//! Whole runs on real units: the default story passes its checks, and the checks that depend on the unit
//! fail when their condition is broken on purpose (a node left unprovisioned, certificates left to
//! expire, a stray key on a token).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::scenario::Scenario;
use crate::unit::{SimUnit, UnitOptions};

fn scenario(text: &str) -> Scenario {
    Scenario::parse("test.toml", text).unwrap()
}

fn check<'a>(outcome: &'a Outcome, name: &str) -> &'a CheckResult {
    outcome.checks.iter().find(|c| c.name == name).unwrap()
}

#[actix_rt::test]
async fn the_default_scenario_passes_every_check() {
    let s = Scenario::default_scenario();
    let plan = s.resolve(42).unwrap();
    let outcome = run(&s, &plan, &RunOptions::default()).await.unwrap();
    let summary = crate::report::summary::summary(&outcome, "tcp");
    assert!(outcome.passed(), "{summary}");
    let r = &outcome.record;
    assert_eq!(r.faults.len(), 1, "the link cut");
    assert!(r.nodes[1].renewals >= 1, "the renewal of sec-1: {summary}");
    assert_eq!(r.nodes[2].state, "unprovisioned", "sec-2 deprovisioned");
    assert!(r.checks() > 100, "{summary}");
    assert!(summary.contains("seed 42"));
    let html = crate::report::html::report(&outcome, "tcp");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && !html.contains("<script")
    );
}

#[actix_rt::test]
async fn a_node_left_unprovisioned_fails_the_provisioned_check() {
    let s = scenario(
        "[unit]\nnodes = 3\n[[step]]\ndo = \"provision\"\nnodes = [\"main\", \"sec-1\"]\n",
    );
    let outcome = run(&s, &s.resolve(1).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    let provisioned = check(&outcome, "provisioned");
    assert!(!provisioned.passed);
    assert!(
        provisioned.detail.contains("sec-2 ends unprovisioned"),
        "{}",
        provisioned.detail
    );
    assert!(check(&outcome, "orphans").passed);
}

#[actix_rt::test]
async fn certificates_nobody_renews_fail_the_renewal_check() {
    // The cloud does not renew the secondaries' 3 s certificates; the run lasts past their expiry.
    let s = scenario(
        "[unit]\nnodes = 2\ncert_lifetime = \"3s\"\ncloud_renews = false\n[[step]]\ndo = \"provision\"\n[[step]]\ndo = \"wait\"\nduration = \"5s\"\n",
    );
    let outcome = run(&s, &s.resolve(1).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    let renewal = check(&outcome, "renewal");
    assert!(!renewal.passed, "{renewal:?}");
    assert!(
        renewal.detail.contains("sec-1: certificate expired"),
        "{}",
        renewal.detail
    );
    assert!(
        outcome.record.nodes[0].renewals >= 1,
        "the main node renews its own"
    );
}

#[actix_rt::test]
async fn a_stray_key_fails_the_orphan_check() {
    let unit = SimUnit::start(UnitOptions {
        nodes: 2,
        ..UnitOptions::default()
    })
    .await
    .unwrap();
    let s = scenario("[unit]\nnodes = 2\n[[step]]\ndo = \"provision\"\n");
    let plan = s.resolve(1).unwrap();
    let first = run_on(&unit, &s, &plan, &RunOptions::default(), Duration::ZERO).await;
    assert!(first.passed(), "{:?}", first.checks);
    let pin = unit.nodes[1].user_pin().unwrap();
    unit.tokens.plant_orphan("sec-1", pin, "sm").unwrap();
    let again = run_on(&unit, &s, &plan, &RunOptions::default(), Duration::ZERO).await;
    let orphans = check(&again, "orphans");
    assert!(!orphans.passed);
    assert!(
        orphans.detail.contains("sec-1: orphan objects: 1 under sm"),
        "{}",
        orphans.detail
    );
    unit.stop().await;
}

#[actix_rt::test]
async fn a_service_granted_the_probe_function_fails_the_ungranted_check() {
    // The traffic's "ungranted" function is granted for real: IAM accepts it, the check must say so.
    let s = scenario(&format!(
        "[unit]\nnodes = 2\n[[step]]\ndo = \"provision\"\n[[step]]\ndo = \"deploy\"\nnode = 1\nservice = \"leaky\"\ngrant = {{ get = \"r\", {} = \"rw\" }}\n[[step]]\ndo = \"traffic\"\nduration = \"1s\"\nchecks_per_sec = 20\nmessages_per_sec = 0\n[[step]]\ndo = \"wait\"\nduration = \"1200ms\"\n",
        traffic::UNGRANTED_FUNCTION
    ));
    let outcome = run(&s, &s.resolve(1).unwrap(), &RunOptions::default())
        .await
        .unwrap();
    let ungranted = check(&outcome, "ungranted");
    assert!(!ungranted.passed);
    assert!(
        ungranted.detail.contains("leaky was granted"),
        "{}",
        ungranted.detail
    );
    assert!(check(&outcome, "granted").passed);
}

#[actix_rt::test]
async fn a_function_the_traffic_wrongly_believes_granted_fails_the_granted_check() {
    let unit = SimUnit::start(UnitOptions {
        nodes: 2,
        ..UnitOptions::default()
    })
    .await
    .unwrap();
    let s = scenario("[unit]\nnodes = 2\n[[step]]\ndo = \"provision\"\n[[step]]\ndo = \"deploy\"\nnode = 1\nservice = \"nav\"\ngrant = { get = \"r\" }\n");
    let plan = s.resolve(1).unwrap();
    let options = RunOptions::default();
    let ctx = context::Ctx::new(&unit, &s, &plan, &options);
    steps::play(&ctx, &plan).await;
    // Break it: the traffic believes `set` is granted too; IAM refuses it.
    ctx.services.borrow_mut()[0].functions = vec!["get".into(), "set".into()];
    traffic::run(
        &ctx,
        crate::scenario::Traffic {
            duration: Duration::from_secs(1),
            checks_per_sec: 40,
            messages_per_sec: 0,
        },
    )
    .await;
    let record = ctx.finish();
    let results = checks::evaluate(&record, &s.checks);
    let granted = results.iter().find(|c| c.name == "granted").unwrap();
    assert!(!granted.passed);
    assert!(
        granted.detail.contains("nav \"set\" on vis"),
        "{}",
        granted.detail
    );
    unit.stop().await;
}

#[actix_rt::test]
async fn one_seed_replays_the_same_faults() {
    let s = scenario(
        "[unit]\nnodes = 3\n[random_faults]\nper_minute = 40\nkinds = [\"cut_link\", \"token_fail\"]\nfrom = \"1s\"\nuntil = \"5s\"\nduration = \"200ms\"\n[[step]]\ndo = \"provision\"\n[[step]]\nat = \"5500ms\"\ndo = \"wait\"\nduration = \"100ms\"\n",
    );
    let seed = (1..100)
        .find(|seed| s.resolve(*seed).unwrap().random_faults.len() >= 2)
        .unwrap();
    let plan = s.resolve(seed).unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let outcome = run(&s, &plan, &RunOptions::default()).await.unwrap();
        let faults: Vec<(usize, String)> = outcome
            .record
            .faults
            .iter()
            .map(|f| {
                assert!(f.random);
                (f.node, f.kind.clone())
            })
            .collect();
        // Each started when the schedule said.
        for (f, planned) in outcome.record.faults.iter().zip(&plan.random_faults) {
            assert!(
                (f.start - planned.at.as_secs_f64()).abs() < 0.5,
                "{f:?} vs {planned}"
            );
        }
        runs.push(faults);
    }
    let planned: Vec<(usize, String)> = plan
        .random_faults
        .iter()
        .map(|f| (f.node, f.kind.name().to_owned()))
        .collect();
    assert_eq!(runs[0], planned);
    assert_eq!(runs[1], planned);
}
