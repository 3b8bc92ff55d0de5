//! Reading a scenario from TOML with `toml_edit`, which keeps each key's position: every error names the
//! file, the line and the key path.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use aos_config::duration::parse_duration;
use toml_edit::{ImDocument, Item, TableLike, Value};

use super::{
    Action, CheckSpec, Deploy, Fault, FaultKind, NodeRef, Origin, RandomFaults, Scenario,
    ScenarioError, Step, Traffic, UnitSpec,
};

/// The default functional server of `deploy` steps.
pub const DEFAULT_SERVER: &str = "vis";

pub(super) fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let src = Source { file, text };
    let doc = ImDocument::parse(text).map_err(|e| ScenarioError::Syntax {
        file: file.to_owned(),
        line: src.line(e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let root = Fields::new(&src, doc.as_table(), String::new(), 0);
    let name = root.str("name")?.unwrap_or("unnamed").to_owned();
    let description = root.str("description")?.unwrap_or_default().to_owned();
    let unit = match root.table("unit")? {
        Some(t) => unit(&t)?,
        None => UnitSpec::default(),
    };
    let checks = match root.table("checks")? {
        Some(t) => checks(&t)?,
        None => CheckSpec::default(),
    };
    let random_faults = root
        .table("random_faults")?
        .map(|t| random(&t))
        .transpose()?;
    let mut steps = Vec::new();
    for (i, t) in root.tables("step")?.into_iter().enumerate() {
        steps.push(step(&t, i)?);
    }
    root.no_others(&[
        "name",
        "description",
        "unit",
        "checks",
        "random_faults",
        "step",
    ])?;
    Ok(Scenario {
        file: file.to_owned(),
        name,
        description,
        unit,
        steps,
        random_faults,
        checks,
    })
}

fn unit(t: &Fields) -> Result<UnitSpec, ScenarioError> {
    let mut spec = UnitSpec::default();
    if let Some(n) = t.int("nodes")? {
        if n < 1 {
            return Err(t.invalid("nodes", "a unit has at least one node (the main node)"));
        }
        spec.nodes = n as usize;
    }
    if let Some(link) = t.str("link")? {
        spec.link = link.parse().map_err(|m: String| t.invalid("link", &m))?;
    }
    spec.cert_lifetime = t.duration("cert_lifetime")?;
    if let Some(lifetime) = spec.cert_lifetime {
        if lifetime < Duration::from_secs(2) {
            return Err(t.invalid(
                "cert_lifetime",
                "certificates need at least 2s to be renewed in time",
            ));
        }
    }
    if let Some(b) = t.bool("cloud_renews")? {
        spec.cloud_renews = b;
    }
    if let Some(keys) = t.str("keys")? {
        spec.keys = keys.parse().map_err(|m: String| t.invalid("keys", &m))?;
    }
    t.no_others(&["nodes", "link", "cert_lifetime", "cloud_renews", "keys"])?;
    Ok(spec)
}

fn checks(t: &Fields) -> Result<CheckSpec, ScenarioError> {
    let mut spec = CheckSpec::default();
    for (key, slot) in [
        ("provisioned", &mut spec.provisioned),
        ("granted", &mut spec.granted),
        ("ungranted", &mut spec.ungranted),
        ("renewal", &mut spec.renewal),
        ("orphans", &mut spec.orphans),
    ] {
        if let Some(b) = t.bool(key)? {
            *slot = b;
        }
    }
    if let Some(grace) = t.duration("grace")? {
        spec.grace = grace;
    }
    t.no_others(&[
        "provisioned",
        "granted",
        "ungranted",
        "renewal",
        "orphans",
        "grace",
    ])?;
    Ok(spec)
}

fn random(t: &Fields) -> Result<RandomFaults, ScenarioError> {
    let per_minute = t
        .float("per_minute")?
        .ok_or_else(|| t.missing("per_minute"))?;
    if !(per_minute > 0.0 && per_minute <= 600.0) {
        return Err(t.invalid("per_minute", "give a rate between 0 (excluded) and 600"));
    }
    let kinds = match t.strs("kinds")? {
        Some(names) => names
            .iter()
            .map(|n| {
                FaultKind::from_name(n).ok_or_else(|| {
                    t.invalid(
                        "kinds",
                        &format!("unknown fault {n:?}: use cut_link, crash or token_fail"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![FaultKind::CutLink, FaultKind::Crash, FaultKind::TokenFail],
    };
    if kinds.is_empty() {
        return Err(t.invalid("kinds", "name at least one fault kind"));
    }
    let from = t.duration("from")?.unwrap_or_default();
    let until = t.duration("until")?.ok_or_else(|| t.missing("until"))?;
    if until <= from {
        return Err(t.invalid("until", "the window must end after it starts (`from`)"));
    }
    let duration = t.duration("duration")?.unwrap_or(Duration::from_secs(2));
    let include_main = t.bool("include_main")?.unwrap_or(false);
    t.no_others(&[
        "per_minute",
        "kinds",
        "from",
        "until",
        "duration",
        "include_main",
    ])?;
    Ok(RandomFaults {
        per_minute,
        kinds,
        from,
        until,
        duration,
        include_main,
        origin: t.origin(),
    })
}

const ACTIONS: &str =
    "provision, deploy, traffic, renew, deprovision, pause, resume, wait, cut_link, crash \
                       or token_fail";

fn step(t: &Fields, _index: usize) -> Result<Step, ScenarioError> {
    let at = t.duration("at")?;
    let what = t.str("do")?.ok_or_else(|| t.missing("do"))?;
    let (action, keys): (Action, &[&str]) = match what {
        "provision" => (Action::Provision(t.nodes("nodes")?), &["nodes"]),
        "renew" => (Action::Renew(t.nodes("nodes")?), &["nodes"]),
        "deprovision" => (Action::Deprovision(t.node_required("node")?), &["node"]),
        "pause" => (Action::Pause(t.node_required("node")?), &["node"]),
        "resume" => (Action::Resume(t.node_required("node")?), &["node"]),
        "wait" => (
            Action::Wait(
                t.duration("duration")?
                    .ok_or_else(|| t.missing("duration"))?,
            ),
            &["duration"],
        ),
        "deploy" => (
            Action::Deploy(deploy(t)?),
            &["node", "service", "server", "grant"],
        ),
        "traffic" => {
            let duration = t
                .duration("duration")?
                .ok_or_else(|| t.missing("duration"))?;
            let checks_per_sec = t.int("checks_per_sec")?.unwrap_or(20);
            let messages_per_sec = t.int("messages_per_sec")?.unwrap_or(10);
            for (key, v) in [
                ("checks_per_sec", checks_per_sec),
                ("messages_per_sec", messages_per_sec),
            ] {
                if !(0..=100_000).contains(&v) {
                    return Err(t.invalid(key, "give a rate from 0 to 100000 per second"));
                }
            }
            (
                Action::Traffic(Traffic {
                    duration,
                    checks_per_sec: checks_per_sec as u32,
                    messages_per_sec: messages_per_sec as u32,
                }),
                &["duration", "checks_per_sec", "messages_per_sec"],
            )
        }
        other => match FaultKind::from_name(other) {
            Some(kind) => (
                Action::Fault(Fault {
                    kind,
                    node: t.node_required("node")?,
                    duration: t
                        .duration("duration")?
                        .ok_or_else(|| t.missing("duration"))?,
                }),
                &["node", "duration"],
            ),
            None => {
                return Err(t.invalid("do", &format!("unknown action {other:?}: use {ACTIONS}")));
            }
        },
    };
    let mut allowed = vec!["at", "do"];
    allowed.extend_from_slice(keys);
    t.no_others(&allowed)?;
    Ok(Step {
        at,
        action,
        origin: t.origin(),
    })
}

fn deploy(t: &Fields) -> Result<Deploy, ScenarioError> {
    let node = t.node_required("node")?;
    let service = t
        .str("service")?
        .ok_or_else(|| t.missing("service"))?
        .to_owned();
    let server = t.str("server")?.unwrap_or(DEFAULT_SERVER).to_owned();
    let grant = match t.table("grant")? {
        Some(g) => g.string_map()?,
        None => return Err(t.missing("grant")),
    };
    if grant.is_empty() {
        return Err(t.invalid(
            "grant",
            "grant at least one function (e.g. { get = \"r\" })",
        ));
    }
    Ok(Deploy {
        node,
        service,
        server,
        grant,
    })
}

// === Source and Fields: typed access with positions ===

struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}

/// A table of the document with its key path.
struct Fields<'a, 'd> {
    src: &'a Source<'a>,
    table: &'d dyn TableLike,
    path: String,
    /// Where the table starts (for errors about missing keys).
    at: usize,
}

impl<'a, 'd> Fields<'a, 'd> {
    fn new(src: &'a Source<'a>, table: &'d dyn TableLike, path: String, at: usize) -> Self {
        Fields {
            src,
            table,
            path,
            at,
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn origin(&self) -> Origin {
        Origin {
            line: self.src.line(self.at),
            key: if self.path.is_empty() {
                "(top)".to_owned()
            } else {
                self.path.clone()
            },
        }
    }

    /// Where `key` is (its key, else the table).
    fn offset(&self, key: &str) -> usize {
        self.table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| self.table.get(key).and_then(Item::span))
            .map_or(self.at, |r: Range<usize>| r.start)
    }

    fn invalid(&self, key: &str, message: &str) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.src.file.to_owned(),
            line: self.src.line(self.offset(key)),
            key: self.key_path(key),
            message: message.to_owned(),
        }
    }

    fn missing(&self, key: &str) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.src.file.to_owned(),
            line: self.src.line(self.at),
            key: self.key_path(key),
            message: "missing".to_owned(),
        }
    }

    fn value(&self, key: &str, kind: &str) -> Result<Option<&'d Value>, ScenarioError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Item::Value(v)) => Ok(Some(v)),
            Some(_) => Err(self.invalid(key, &format!("expected {kind}, found a table"))),
        }
    }

    fn str(&self, key: &str) -> Result<Option<&'d str>, ScenarioError> {
        match self.value(key, "a string")? {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| {
                self.invalid(key, &format!("expected a string, found {}", v.type_name()))
            }),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ScenarioError> {
        match self.value(key, "an integer")? {
            None => Ok(None),
            Some(v) => v.as_integer().map(Some).ok_or_else(|| {
                self.invalid(
                    key,
                    &format!("expected an integer, found {}", v.type_name()),
                )
            }),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>, ScenarioError> {
        match self.value(key, "a number")? {
            None => Ok(None),
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .map(Some)
                .ok_or_else(|| {
                    self.invalid(key, &format!("expected a number, found {}", v.type_name()))
                }),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ScenarioError> {
        match self.value(key, "true or false")? {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                self.invalid(
                    key,
                    &format!("expected true or false, found {}", v.type_name()),
                )
            }),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ScenarioError> {
        match self.str(key) {
            Ok(None) => Ok(None),
            Ok(Some(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| self.invalid(key, &format!("{e} (e.g. \"1.5s\", \"200ms\", \"2m\")"))),
            Err(_) => Err(self.invalid(
                key,
                "expected a duration string such as \"1.5s\", \"200ms\" or \"2m\"",
            )),
        }
    }

    fn strs(&self, key: &str) -> Result<Option<Vec<String>>, ScenarioError> {
        let Some(v) = self.value(key, "a list of strings")? else {
            return Ok(None);
        };
        let array = v
            .as_array()
            .ok_or_else(|| self.invalid(key, "expected a list of strings"))?;
        array
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.invalid(key, "expected a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn node_of(&self, key: &str, v: &Value) -> Result<NodeRef, ScenarioError> {
        if let Some(i) = v.as_integer() {
            return usize::try_from(i)
                .map(NodeRef::Index)
                .map_err(|_| self.invalid(key, "a node index is 0 (the main node) or more"));
        }
        if let Some(s) = v.as_str() {
            return Ok(NodeRef::Name(s.to_owned()));
        }
        Err(self.invalid(
            key,
            "name a node by index (0 is the main node) or by name (\"main\", \"sec-1\", …)",
        ))
    }

    fn node_required(&self, key: &str) -> Result<NodeRef, ScenarioError> {
        let v = self
            .value(key, "a node")?
            .ok_or_else(|| self.missing(key))?;
        self.node_of(key, v)
    }

    /// A list of nodes; `"all"` or absence means every node.
    fn nodes(&self, key: &str) -> Result<Option<Vec<NodeRef>>, ScenarioError> {
        let Some(v) = self.value(key, "a list of nodes")? else {
            return Ok(None);
        };
        if v.as_str() == Some("all") {
            return Ok(None);
        }
        let array = v.as_array().ok_or_else(|| {
            self.invalid(key, "expected \"all\" or a list of nodes ([\"main\", 2])")
        })?;
        array
            .iter()
            .map(|e| self.node_of(key, e))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn table(&self, key: &str) -> Result<Option<Fields<'a, 'd>>, ScenarioError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(item) => match item.as_table_like() {
                Some(t) => Ok(Some(Fields::new(
                    self.src,
                    t,
                    self.key_path(key),
                    item.span().unwrap_or_else(|| self.offset(key)..0).start,
                ))),
                None => Err(self.invalid(key, "expected a table")),
            },
        }
    }

    fn tables(&self, key: &str) -> Result<Vec<Fields<'a, 'd>>, ScenarioError> {
        match self.table.get(key) {
            None => Ok(Vec::new()),
            Some(Item::ArrayOfTables(array)) => Ok(array
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Fields::new(
                        self.src,
                        t,
                        format!("{}[{}]", self.key_path(key), i + 1),
                        t.span().map_or(self.offset(key), |s| s.start),
                    )
                })
                .collect()),
            Some(_) => Err(self.invalid(key, "expected [[step]] tables")),
        }
    }

    fn string_map(&self) -> Result<Vec<(String, String)>, ScenarioError> {
        self.table
            .iter()
            .map(|(k, item)| match item.as_str() {
                Some(v) => Ok((k.to_owned(), v.to_owned())),
                None => Err(self.invalid(k, "expected a permission string (e.g. \"r\" or \"rw\")")),
            })
            .collect()
    }

    /// Refuse keys not in `known` (a typo must not pass silently).
    fn no_others(&self, known: &[&str]) -> Result<(), ScenarioError> {
        let known: BTreeSet<&str> = known.iter().copied().collect();
        match self.table.iter().find(|(k, _)| !known.contains(k)) {
            Some((k, _)) => Err(self.invalid(
                k,
                &format!(
                    "unknown key; expected one of: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}
