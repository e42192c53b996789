//! What a record that fails a converter or a transform does to its task:
//! Kafka Connect's `errors.*` settings.

use super::super::config::ConnectorConfig;
use super::super::error::{Error, Result};
use crate::{ConsumerRecord, Header, Record};

/// The step a record failed in, as Kafka names it in the dead-letter
/// queue's `__connect.errors.stage` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    KeyConverter,
    ValueConverter,
    Transformation,
    /// The log refused the record (no key for a compacted topic, no such
    /// partition, too large).
    Produce,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::Produce => "KAFKA_PRODUCE",
        }
    }
}

/// A connector's `errors.*` settings.
#[derive(Clone, Debug)]
pub(super) struct ErrorPolicy {
    /// `errors.tolerance=all`: skip failing records instead of failing the
    /// task. Default: `none`.
    tolerate: bool,
    /// `errors.log.enable`: a warning per skipped record. Default: false.
    log: bool,
    /// `errors.deadletterqueue.topic.name` (sinks only): where a skipped
    /// record's original bytes go. Default: none.
    pub(super) dead_letter_topic: Option<String>,
    /// `errors.deadletterqueue.context.headers.enable`: add the
    /// `__connect.errors.*` headers. Default: false.
    context_headers: bool,
}

impl ErrorPolicy {
    /// The policy `config` describes; `sink` says whether a dead-letter
    /// topic is allowed (Kafka has them for sinks only).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad value, or a dead-letter topic set on a
    /// source or without `errors.tolerance=all`.
    pub(super) fn from_config(config: &ConnectorConfig, sink: bool) -> Result<Self> {
        let tolerate = config.choice_or("errors.tolerance", &["none", "all"], "none")? == "all";
        let log = config.parse_or("errors.log.enable", false)?;
        let context_headers =
            config.parse_or("errors.deadletterqueue.context.headers.enable", false)?;
        let dead_letter_topic = config
            .get("errors.deadletterqueue.topic.name")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if let Some(t) = &dead_letter_topic {
            let key = "errors.deadletterqueue.topic.name";
            if !sink {
                return Err(Error::config(
                    config.name(),
                    key,
                    "dead-letter queues are for sink connectors; a source skips \
                     failing records with errors.tolerance=all",
                ));
            }
            if !tolerate {
                return Err(Error::config(
                    config.name(),
                    key,
                    "needs errors.tolerance=all (with the default, none, a failing record fails the task)",
                ));
            }
            crate::validate_topic_name(t)
                .map_err(|e| Error::config(config.name(), key, e.to_string()))?;
        }
        Ok(ErrorPolicy {
            tolerate,
            log,
            dead_letter_topic,
            context_headers,
        })
    }

    /// What to do with `error`, met at `stage` by the record `what`
    /// describes: `Err` fails the task; `Ok` skips the record (after a
    /// warning if `errors.log.enable`).
    pub(super) fn tolerate(&self, error: Error, stage: Stage, what: &str) -> Result<()> {
        if !self.tolerate {
            return Err(error);
        }
        if self.log {
            tracing::warn!(
                stage = stage.name(),
                record = what,
                error = %error,
                "embedlog connect: skipping a record (errors.tolerance=all)"
            );
        }
        Ok(())
    }

    /// The dead-letter record for `original`, which failed at `stage` in
    /// task `task` of `connector`: its bytes as stored, plus Kafka's
    /// `__connect.errors.*` headers when asked for.
    pub(super) fn dead_letter(
        &self,
        original: &ConsumerRecord,
        stage: Stage,
        error: &Error,
        connector: &str,
        task: usize,
    ) -> Record {
        let mut headers = original.headers();
        if self.context_headers {
            let mut add = |k: &str, v: String| headers.push(Header::new(k, v.into_bytes()));
            add("__connect.errors.topic", original.topic().to_string());
            add("__connect.errors.partition", original.partition.to_string());
            add("__connect.errors.offset", original.offset.to_string());
            add("__connect.errors.connector.name", connector.to_string());
            add("__connect.errors.task.id", task.to_string());
            add("__connect.errors.stage", stage.name().to_string());
            add(
                "__connect.errors.class.name",
                error_class(error).to_string(),
            );
            add("__connect.errors.exception.message", error.to_string());
        }
        Record {
            key: original.key_bytes(),
            value: original.value_bytes(),
            timestamp: original.timestamp,
            headers,
        }
    }
}

/// The error's kind, for `__connect.errors.class.name`.
fn error_class(error: &Error) -> &'static str {
    match error {
        Error::Conversion { .. } => "embedlog::connect::Error::Conversion",
        Error::Transform { .. } => "embedlog::connect::Error::Transform",
        _ => "embedlog::connect::Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("c", "X")
    }

    #[test]
    fn by_default_a_failing_record_fails_the_task() {
        let p = ErrorPolicy::from_config(&config(), true).unwrap();
        let e = Error::Retriable("x".into());
        assert!(p.tolerate(e, Stage::ValueConverter, "t@0").is_err());
    }

    #[test]
    fn a_dead_letter_topic_needs_a_sink_and_tolerance() {
        let c = config().set("errors.deadletterqueue.topic.name", "dlq");
        let e = ErrorPolicy::from_config(&c, true).unwrap_err().to_string();
        assert!(e.contains("errors.tolerance=all"), "{e}");
        let c = c.set("errors.tolerance", "all");
        let e = ErrorPolicy::from_config(&c, false).unwrap_err().to_string();
        assert!(e.contains("sink"), "{e}");
        let p = ErrorPolicy::from_config(&c, true).unwrap();
        assert_eq!(p.dead_letter_topic.as_deref(), Some("dlq"));
        let c = config().set("errors.tolerance", "some");
        let e = ErrorPolicy::from_config(&c, true).unwrap_err().to_string();
        assert!(e.contains("none, all"), "{e}");
    }

    #[test]
    fn dead_letters_keep_the_original_bytes_and_say_why() {
        let c = config()
            .set("errors.tolerance", "all")
            .set("errors.deadletterqueue.topic.name", "dlq")
            .set("errors.deadletterqueue.context.headers.enable", "true");
        let p = ErrorPolicy::from_config(&c, true).unwrap();
        let original = ConsumerRecord::of(
            "in",
            2,
            7,
            &crate::Record::new("{not json")
                .key("k")
                .timestamp(42)
                .header("h", "v"),
        );
        let error = Error::Conversion {
            converter: "json",
            reason: "bad".into(),
        };
        let r = p.dead_letter(&original, Stage::ValueConverter, &error, "c", 1);
        assert_eq!(r.key, original.key_bytes());
        assert_eq!(r.value, original.value_bytes());
        assert_eq!(r.timestamp, 42);
        let h = |k: &str| {
            r.headers
                .iter()
                .find(|h| h.key() == k)
                .and_then(|h| h.value().cloned())
        };
        assert_eq!(h("h").as_deref(), Some(&b"v"[..]));
        assert_eq!(h("__connect.errors.topic").as_deref(), Some(&b"in"[..]));
        assert_eq!(h("__connect.errors.partition").as_deref(), Some(&b"2"[..]));
        assert_eq!(h("__connect.errors.offset").as_deref(), Some(&b"7"[..]));
        assert_eq!(
            h("__connect.errors.stage").as_deref(),
            Some(&b"VALUE_CONVERTER"[..])
        );
        assert_eq!(h("__connect.errors.task.id").as_deref(), Some(&b"1"[..]));
    }
}
