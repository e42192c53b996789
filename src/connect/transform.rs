//! Single-message transforms (`transforms=...`) and their predicates
//! (`predicates=...`), configured as in Kafka Connect:
//!
//! ```text
//! transforms=addSource,route
//! transforms.addSource.type=InsertField$Value
//! transforms.addSource.static.field=origin
//! transforms.addSource.static.value=embedlog
//! transforms.route.type=RegexRouter
//! transforms.route.regex=orders-(.*)
//! transforms.route.replacement=all-orders
//! transforms.route.predicate=isOrders
//! predicates=isOrders
//! predicates.isOrders.type=TopicNameMatches
//! predicates.isOrders.pattern=orders-.*
//! ```
//!
//! Types: `InsertField$Value` / `InsertField$Key` (`static.field` +
//! `static.value`, `topic.field`, `partition.field`, `timestamp.field`),
//! `ValueToKey` (`fields`), `Filter` (drops the record; use with a
//! predicate), `RegexRouter` (`regex` matching the whole topic name,
//! `replacement` with `$1` groups). Predicates: `TopicNameMatches`
//! (`pattern`), `HasHeaderKey` (`name`), `RecordIsTombstone`. Any
//! transform takes `predicate` (apply only to matching records) and
//! `negate`. Kafka's class names (`org.apache.kafka.connect.transforms.…`)
//! are accepted too.

use super::config::ConnectorConfig;
use super::error::{Error, Result};
use super::spi::ConnectRecord;
use super::value::{Map, Value};
use std::collections::BTreeMap;

/// One transform step over a record; `None` drops it.
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// The transformed record, or `None` to drop it.
    ///
    /// # Errors
    /// [`Error::Transform`] when the record has the wrong shape (for
    /// example a field to move that is not there).
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>>;
}

#[derive(Clone, Debug)]
enum Predicate {
    TopicNameMatches(regex::Regex),
    HasHeaderKey(String),
    RecordIsTombstone,
}

impl Predicate {
    fn test(&self, r: &ConnectRecord) -> bool {
        match self {
            Predicate::TopicNameMatches(re) => re.is_match(&r.topic),
            Predicate::HasHeaderKey(name) => r.headers.iter().any(|h| h.key() == name),
            Predicate::RecordIsTombstone => r.value.is_none(),
        }
    }
}

#[derive(Debug)]
enum Side {
    Key,
    Value,
}

#[derive(Debug)]
enum Step {
    InsertField {
        side: Side,
        fields: InsertFields,
    },
    ValueToKey {
        fields: Vec<String>,
    },
    Filter,
    RegexRouter {
        regex: regex::Regex,
        replacement: String,
    },
}

#[derive(Debug, Default)]
struct InsertFields {
    static_field: Option<(String, Value)>,
    topic: Option<String>,
    partition: Option<String>,
    timestamp: Option<String>,
}

#[derive(Debug)]
struct Configured {
    alias: String,
    step: Step,
    predicate: Option<(Predicate, bool)>,
}

/// The transforms of one connector, in order, as its configuration names
/// them.
#[derive(Debug, Default)]
pub struct TransformChain {
    steps: Vec<Configured>,
}

/// The setting `name` of the transform or predicate whose keys start with
/// `prefix`, or an error saying it is required.
fn required<'a>(
    connector: &str,
    prefix: &str,
    props: &'a BTreeMap<String, String>,
    name: &str,
) -> Result<&'a String> {
    props
        .get(name)
        .ok_or_else(|| Error::config(connector, &format!("{prefix}{name}"), "is required"))
}

fn short_type(t: &str) -> &str {
    t.rsplit('.').next().unwrap_or(t)
}

/// A regex that must match the whole text, as Java's `Matcher.matches`.
fn whole(connector: &str, key: &str, pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| Error::config(connector, key, format!("bad regex {pattern:?}: {e}")))
}

impl TransformChain {
    /// The chain `config`'s `transforms` and `predicates` describe.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown type, a missing or bad setting, or
    /// a predicate that is not declared.
    pub fn from_config(config: &ConnectorConfig) -> Result<Self> {
        let connector = config.name();
        let mut predicates = BTreeMap::new();
        for alias in config.list("predicates") {
            let prefix = format!("predicates.{alias}.");
            let props = config.with_prefix(&prefix);
            let key = |k: &str| format!("predicates.{alias}.{k}");
            let ty = required(connector, &prefix, &props, "type")?;
            let p = match short_type(ty) {
                "TopicNameMatches" => {
                    let pattern = required(connector, &prefix, &props, "pattern")?;
                    Predicate::TopicNameMatches(whole(connector, &key("pattern"), pattern)?)
                }
                "HasHeaderKey" => {
                    Predicate::HasHeaderKey(required(connector, &prefix, &props, "name")?.clone())
                }
                "RecordIsTombstone" => Predicate::RecordIsTombstone,
                other => {
                    return Err(Error::config(
                        connector,
                        &key("type"),
                        format!(
                            "unknown predicate {other:?}: TopicNameMatches, HasHeaderKey or RecordIsTombstone"
                        ),
                    ));
                }
            };
            predicates.insert(alias, p);
        }
        let mut steps = Vec::new();
        for alias in config.list("transforms") {
            let prefix = format!("transforms.{alias}.");
            let props = config.with_prefix(&prefix);
            let key = |k: &str| format!("transforms.{alias}.{k}");
            let ty = required(connector, &prefix, &props, "type")?;
            let step = match short_type(ty) {
                "InsertField$Value" | "InsertField$Key" => {
                    let side = if ty.ends_with("$Key") {
                        Side::Key
                    } else {
                        Side::Value
                    };
                    let static_field = match (props.get("static.field"), props.get("static.value"))
                    {
                        (Some(f), v) => {
                            Some((f.clone(), Value::from(v.cloned().unwrap_or_default())))
                        }
                        (None, Some(_)) => {
                            return Err(Error::config(
                                connector,
                                &key("static.field"),
                                "is required with static.value",
                            ));
                        }
                        (None, None) => None,
                    };
                    let fields = InsertFields {
                        static_field,
                        topic: props.get("topic.field").cloned(),
                        partition: props.get("partition.field").cloned(),
                        timestamp: props.get("timestamp.field").cloned(),
                    };
                    Step::InsertField { side, fields }
                }
                "ValueToKey" => {
                    let fields = ConnectorConfig::from_iter(props.clone()).list("fields");
                    if fields.is_empty() {
                        return Err(Error::config(
                            connector,
                            &key("fields"),
                            "is required (a comma-separated list)",
                        ));
                    }
                    Step::ValueToKey { fields }
                }
                "Filter" => Step::Filter,
                "RegexRouter" => {
                    let pattern = required(connector, &prefix, &props, "regex")?;
                    let replacement = required(connector, &prefix, &props, "replacement")?.clone();
                    Step::RegexRouter {
                        regex: whole(connector, &key("regex"), pattern)?,
                        replacement,
                    }
                }
                other => {
                    return Err(Error::config(
                        connector,
                        &key("type"),
                        format!(
                            "unknown transform {other:?}: InsertField$Value, InsertField$Key, ValueToKey, Filter or RegexRouter"
                        ),
                    ));
                }
            };
            let predicate = match props.get("predicate") {
                None => None,
                Some(name) => {
                    let p = predicates.get(name).cloned().ok_or_else(|| {
                        Error::config(
                            connector,
                            &key("predicate"),
                            format!("{name:?} is not declared in predicates"),
                        )
                    })?;
                    let negate =
                        ConnectorConfig::from_iter(props.clone()).parse_or("negate", false)?;
                    Some((p, negate))
                }
            };
            steps.push(Configured {
                alias,
                step,
                predicate,
            });
        }
        Ok(TransformChain { steps })
    }

    /// Whether the chain has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `record` through every step; `None` if one dropped it.
    ///
    /// # Errors
    /// The first step's [`Error::Transform`].
    pub fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        for c in &self.steps {
            if let Some((p, negate)) = &c.predicate
                && p.test(&record) == *negate
            {
                continue;
            }
            match c.step.apply(&c.alias, record)? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }
}

impl Transform for TransformChain {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        TransformChain::apply(self, record)
    }
}

impl Step {
    fn apply(&self, alias: &str, mut r: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let fail = |reason: String| Error::Transform {
            transform: alias.to_string(),
            reason,
        };
        match self {
            Step::Filter => return Ok(None),
            Step::RegexRouter { regex, replacement } => {
                if regex.is_match(&r.topic) {
                    r.topic = regex.replace(&r.topic, replacement.as_str()).into_owned();
                }
            }
            Step::ValueToKey { fields } => match &r.value {
                Some(Value::Map(m)) => {
                    let mut key = Map::new();
                    for f in fields {
                        let v = m
                            .get(f)
                            .ok_or_else(|| fail(format!("the value has no field {f:?}")))?;
                        key.insert(f.clone(), v.clone());
                    }
                    r.key = Some(Value::Map(key));
                }
                None => {}
                Some(other) => {
                    return Err(fail(format!("needs a map value, got a {}", other.kind())));
                }
            },
            Step::InsertField { side, fields } => {
                let (topic, partition, timestamp) = (r.topic.clone(), r.partition, r.timestamp);
                let target = match side {
                    Side::Key => &mut r.key,
                    Side::Value => &mut r.value,
                };
                match target {
                    // Tombstones and null keys pass unchanged, as in Kafka.
                    None | Some(Value::Null) => {}
                    Some(Value::Map(m)) => {
                        if let Some((f, v)) = &fields.static_field {
                            m.insert(f.clone(), v.clone());
                        }
                        if let Some(f) = &fields.topic {
                            m.insert(f.clone(), Value::String(topic));
                        }
                        if let (Some(f), Some(p)) = (&fields.partition, partition) {
                            m.insert(f.clone(), Value::Int(i64::from(p)));
                        }
                        if let (Some(f), Some(t)) = (&fields.timestamp, timestamp) {
                            m.insert(f.clone(), Value::Int(t));
                        }
                    }
                    Some(other) => {
                        return Err(fail(format!("needs a map, got a {}", other.kind())));
                    }
                }
            }
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Header;

    fn record(topic: &str, value: Option<Value>) -> ConnectRecord {
        ConnectRecord {
            topic: topic.into(),
            partition: Some(2),
            key: None,
            value,
            timestamp: Some(5),
            headers: vec![],
        }
    }

    fn chain(props: &[(&str, &str)]) -> Result<TransformChain> {
        let mut c = ConnectorConfig::new("c", "X");
        for (k, v) in props {
            c.insert(*k, v);
        }
        TransformChain::from_config(&c)
    }

    #[test]
    fn insert_field_then_value_to_key() {
        let t = chain(&[
            ("transforms", "ins, key"),
            (
                "transforms.ins.type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("transforms.ins.static.field", "origin"),
            ("transforms.ins.static.value", "here"),
            ("transforms.ins.topic.field", "t"),
            ("transforms.ins.partition.field", "p"),
            ("transforms.key.type", "ValueToKey"),
            ("transforms.key.fields", "id"),
        ])
        .unwrap();
        let v = Value::map([("id", Value::Int(1))]);
        let out = t.apply(record("orders", Some(v))).unwrap().unwrap();
        assert_eq!(out.key, Some(Value::map([("id", Value::Int(1))])));
        let v = out.value.unwrap();
        assert_eq!(v.get("origin"), Some(&Value::from("here")));
        assert_eq!(v.get("t"), Some(&Value::from("orders")));
        assert_eq!(v.get("p"), Some(&Value::Int(2)));
        // A tombstone passes through InsertField; ValueToKey leaves its key.
        assert_eq!(t.apply(record("o", None)).unwrap().unwrap().value, None);
        let e = t
            .apply(record("o", Some(Value::Int(3))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"ins\"") && e.contains("integer"), "{e}");
    }

    #[test]
    fn filter_and_route_obey_predicates() {
        let t = chain(&[
            ("transforms", "drop,route"),
            ("transforms.drop.type", "Filter"),
            ("transforms.drop.predicate", "tomb"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "orders-(.*)"),
            ("transforms.route.replacement", "all-$1"),
            ("transforms.route.predicate", "audit"),
            ("transforms.route.negate", "true"),
            ("predicates", "tomb,audit"),
            ("predicates.tomb.type", "RecordIsTombstone"),
            ("predicates.audit.type", "HasHeaderKey"),
            ("predicates.audit.name", "audit"),
        ])
        .unwrap();
        assert!(t.apply(record("orders-eu", None)).unwrap().is_none());
        let v = Some(Value::from("x"));
        assert_eq!(
            t.apply(record("orders-eu", v.clone()))
                .unwrap()
                .unwrap()
                .topic,
            "all-eu"
        );
        // Whole-name matching: a prefix match does not route.
        assert_eq!(
            t.apply(record("xorders-eu", v.clone()))
                .unwrap()
                .unwrap()
                .topic,
            "xorders-eu"
        );
        let mut audited = record("orders-eu", v);
        audited.headers.push(Header::new("audit", "1"));
        assert_eq!(t.apply(audited).unwrap().unwrap().topic, "orders-eu");
    }

    #[test]
    fn bad_configurations_say_which_key() {
        let e = chain(&[("transforms", "a"), ("transforms.a.type", "Cast")]).unwrap_err();
        assert!(e.to_string().contains("transforms.a.type"), "{e}");
        let e = chain(&[
            ("transforms", "a"),
            ("transforms.a.type", "RegexRouter"),
            ("transforms.a.regex", "("),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("transforms.a."), "{e}");
        let e = chain(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "p"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not declared"), "{e}");
    }
}
