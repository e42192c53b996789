//! The Kafka bridge (feature `kafka`): connectors that mirror local topics
//! to a Kafka cluster ([`KafkaSinkConnector`]) and Kafka topics into local
//! ones ([`KafkaSourceConnector`]), over Kafka's wire protocol through
//! librdkafka (rdkafka's synchronous `BaseProducer` and `BaseConsumer`,
//! which fit task threads; no async runtime).
//!
//! Both move records unchanged: key and value bytes, timestamp, headers
//! (in order, repeated names and null values kept) and partition number
//! (local partition `p` is remote partition `p`, so per-key order holds).
//! Their converters default to `bytes`. The keys both read
//! (`bootstrap.servers`, `topic.rename.format`, `timeout.ms`, `kafka.*`)
//! are parsed here into [`Settings`]; each connector's docs list all of
//! its keys.
//!
//! Tests run against librdkafka's mock cluster on loopback (`testing.rs`).

mod sink;
mod source;
#[cfg(test)]
mod testing;

pub use sink::KafkaSinkConnector;
pub use source::KafkaSourceConnector;

use super::config::ConnectorConfig;
use super::error::{Error, Result};
use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// The `system` of the errors these connectors report.
const SYSTEM: &str = "kafka";

/// Key: the remote cluster's brokers.
const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
/// Key: the topic name on the other side.
const RENAME_FORMAT: &str = "topic.rename.format";
/// The rename format's placeholder, and its default.
const TOPIC_PLACEHOLDER: &str = "${topic}";
/// Key: bound on each blocking request to the remote cluster.
const TIMEOUT_MS: &str = "timeout.ms";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Prefix of the keys passed to librdkafka.
const PASSTHROUGH: &str = "kafka.";

/// What both connectors share: the remote cluster and how names map.
#[derive(Clone, Debug)]
struct Settings {
    /// The connector's name, for errors.
    name: String,
    /// librdkafka's configuration (bootstrap servers, defaults, `kafka.*`).
    client: ClientConfig,
    /// `topic.rename.format`.
    rename: String,
    /// `timeout.ms`.
    timeout: Duration,
}

impl Settings {
    /// Reads the shared keys. `defaults` are librdkafka properties set
    /// before the user's `kafka.*` ones (which win).
    fn from_config(config: &ConnectorConfig, defaults: &[(&str, &str)]) -> Result<Settings> {
        let name = config.name().to_string();
        let servers = config.required(BOOTSTRAP_SERVERS)?;
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", servers);
        client.set("client.id", format!("embedlog-connect-{name}"));
        for (key, value) in defaults {
            client.set(*key, *value);
        }
        for (key, value) in config.with_prefix(PASSTHROUGH) {
            if key == "bootstrap.servers" {
                return Err(Error::config(
                    &name,
                    "kafka.bootstrap.servers",
                    "set bootstrap.servers instead",
                ));
            }
            client.set(key, value);
        }
        // librdkafka checks every property and value here, without
        // connecting.
        if let Err(e) = client.create_native_config() {
            return Err(match e {
                KafkaError::ClientConfig(_, reason, key, _) => {
                    // librdkafka says "... not available at build time" of
                    // TLS and SASL when built without OpenSSL.
                    let hint = if reason.contains("build time") && !cfg!(feature = "kafka-tls") {
                        " (TLS and SASL need embedlog's `kafka-tls` feature)"
                    } else {
                        ""
                    };
                    Error::config(
                        &name,
                        &format!("{PASSTHROUGH}{key}"),
                        format!("{reason}{hint}"),
                    )
                }
                other => Error::config(&name, PASSTHROUGH, other.to_string()),
            });
        }
        let rename = config
            .get(RENAME_FORMAT)
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .unwrap_or(TOPIC_PLACEHOLDER)
            .to_string();
        // Kafka's and embedlog's topic names follow the same rules: check
        // the characters the format adds.
        if let Err(e) = crate::validate_topic_name(&rename_topic(&rename, "t")) {
            return Err(Error::config(&name, RENAME_FORMAT, e.to_string()));
        }
        let timeout = config.duration_ms_or(TIMEOUT_MS, DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(Error::config(&name, TIMEOUT_MS, "must be at least 1"));
        }
        Ok(Settings {
            name,
            client,
            rename,
            timeout,
        })
    }

    /// The name on the other side of `topic`.
    fn rename(&self, topic: &str) -> String {
        rename_topic(&self.rename, topic)
    }
}

/// `format` with every `${topic}` replaced by `topic`.
fn rename_topic(format: &str, topic: &str) -> String {
    format.replace(TOPIC_PLACEHOLDER, topic)
}

/// The remote cluster's topics (all of them, or just `only`) with their
/// partition counts, without asking the cluster to create any. A topic the
/// cluster does not know is left out.
fn remote_topics<C: ClientContext>(
    client: &Client<C>,
    only: Option<&str>,
    timeout: Duration,
) -> Result<Vec<(String, u32)>> {
    let metadata = client
        .fetch_metadata(only, timeout)
        .map_err(|e| kafka_error("fetch the cluster's metadata", e))?;
    let mut topics = Vec::new();
    for topic in metadata.topics() {
        match topic.error().map(RDKafkaErrorCode::from) {
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => continue,
            Some(code) => {
                return Err(error_code(
                    &format!("read the metadata of topic {:?}", topic.name()),
                    code,
                ));
            }
        }
        let partitions = u32::try_from(topic.partitions().len()).unwrap_or(u32::MAX);
        topics.push((topic.name().to_string(), partitions));
    }
    Ok(topics)
}

/// A client library error as a Connect error: [`Error::Retriable`] when
/// the library says trying again may work, [`Error::External`] otherwise.
fn kafka_error(what: &str, e: KafkaError) -> Error {
    match e.rdkafka_error_code() {
        Some(code) if is_retriable(code) => Error::Retriable(format!("{SYSTEM}: {what}: {e}")),
        _ => Error::external(SYSTEM, what, e),
    }
}

/// [`kafka_error`] for a bare error code.
fn error_code(what: &str, code: RDKafkaErrorCode) -> Error {
    if is_retriable(code) {
        Error::Retriable(format!("{SYSTEM}: {what}: {code}"))
    } else {
        Error::External {
            system: SYSTEM,
            reason: format!("{what}: {code}"),
            source: None,
        }
    }
}

/// Whether a request that failed with `code` may succeed if made again:
/// Kafka's retriable errors (a leader moving, a broker unreachable, too few
/// in-sync replicas, a timeout) and librdkafka's local ones alike.
fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::QueueFull
            | C::Resolve
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NotController
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
            | C::ThrottlingQuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConnectorConfig {
        ConnectorConfig::new("bridge", "KafkaSink").set("bootstrap.servers", "127.0.0.1:9092")
    }

    #[test]
    fn passthrough_keys_reach_librdkafka_and_win_over_defaults() {
        let c = config()
            .set("kafka.compression.type", "lz4")
            .set("kafka.acks", "1");
        let s = Settings::from_config(&c, &[("acks", "all"), ("linger.ms", "5")]).unwrap();
        assert_eq!(s.client.get("compression.type"), Some("lz4"));
        assert_eq!(s.client.get("acks"), Some("1"));
        assert_eq!(s.client.get("linger.ms"), Some("5"));
        assert_eq!(s.client.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(s.rename("orders"), "orders");
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let cases = [
            (
                ConnectorConfig::new("bridge", "KafkaSink"),
                "bootstrap.servers",
            ),
            (
                config().set("kafka.no.such.property", "1"),
                "kafka.no.such.property",
            ),
            (config().set("kafka.acks", "sometimes"), "kafka.acks"),
            (
                config().set("kafka.bootstrap.servers", "x:1"),
                "kafka.bootstrap.servers",
            ),
            (
                config().set("topic.rename.format", "a/${topic}"),
                "topic.rename.format",
            ),
            (config().set("timeout.ms", "0"), "timeout.ms"),
            (config().set("timeout.ms", "soon"), "timeout.ms"),
        ];
        for (c, key) in cases {
            let e = Settings::from_config(&c, &[]).unwrap_err();
            assert!(
                matches!(&e, Error::Config { key: k, connector, .. } if k == key && connector == "bridge"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn tls_and_sasl_need_the_kafka_tls_feature() {
        let c = config()
            .set("kafka.security.protocol", "SASL_SSL")
            .set("kafka.sasl.mechanism", "SCRAM-SHA-512")
            .set("kafka.sasl.username", "u")
            .set("kafka.sasl.password", "p");
        let result = Settings::from_config(&c, &[]);
        if cfg!(feature = "kafka-tls") {
            result.unwrap();
        } else {
            let e = result.unwrap_err().to_string();
            assert!(
                e.contains("kafka.security.protocol") && e.contains("kafka-tls"),
                "{e}"
            );
        }
    }

    #[test]
    fn rename_replaces_every_placeholder() {
        let s = Settings::from_config(&config().set("topic.rename.format", "dc1.${topic}"), &[])
            .unwrap();
        assert_eq!(s.rename("orders"), "dc1.orders");
        assert_eq!(rename_topic("${topic}-${topic}", "a"), "a-a");
    }
}
