//! Kafka Streams in-process (feature `streams`): transform, aggregate,
//! join and window event streams, with state in stores backed by
//! compacted changelog topics.
//!
//! Build a [`Topology`] with the DSL ([`StreamsBuilder`], [`KStream`],
//! [`KTable`]) or the Processor API ([`Processor`]); test it with a
//! [`TopologyTestDriver`] (no threads, no broker); run it with
//! [`Streams`] over a [`Broker`](crate::Broker).
//!
//! ```
//! use embedlog::streams::{Consumed, Serdes, StreamsBuilder, TopologyTestDriver};
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("text", Consumed::with(Serdes::string(), Serdes::string()))
//!     .flat_map_values(|line: String| {
//!         line.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
//!     })
//!     .group_by(|_, word: &String| word.clone())
//!     .count()
//!     .to_stream()
//!     .to("counts");
//! let driver = TopologyTestDriver::new(builder.build()?)?;
//! let input = driver.input_topic("text", Serdes::string(), Serdes::string());
//! input.pipe_input("k".to_string(), "to be or not to be".to_string(), 0)?;
//! let counts = driver.output_topic("counts", Serdes::string(), Serdes::optional(Serdes::i64()));
//! let last = counts.read_key_values_to_map()?;
//! assert_eq!(last["to"], Some(2));
//! assert_eq!(last["not"], Some(1));
//! # Ok::<(), embedlog::Error>(())
//! ```

mod builder;
mod copartition;
mod driver;
mod dsl;
mod join_windows;
mod outbox;
mod processor;
mod record;
mod runtime;
mod serde;
pub mod store;
mod task;
mod topology;
mod windows;

pub use builder::{Consumed, Grouped, Materialized, Produced, Repartitioned, StreamsBuilder};
pub use driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use dsl::{
    BranchedKStream, BufferConfig, GlobalKTable, KGroupedStream, KStream, KTable,
    SessionWindowedKStream, Suppressed, TimeWindowedKStream,
};
pub use join_windows::{JoinWindows, StreamJoined};
pub use processor::{Processor, ProcessorContext, PunctuationType, RecordMetadata};
pub use record::{StreamRecord, Window, Windowed, windowed_serde};
pub use runtime::{
    ProcessingGuarantee, ReadOnlyKeyValueStore, ReadOnlyWindowStore, StreamThreadErrorResponse,
    Streams, StreamsConfig, StreamsState,
};
pub use serde::{Serde, SerdeRef, Serdes};
pub use store::{BytesStore, KeyValueStore, SessionStore, StoreSpec, Stores, WindowStore};
#[cfg(feature = "streams-persistent")]
pub use store::{PersistentStore, PersistentStoreConfig};
pub use task::{DeserializationErrors, TaskId, TaskMetrics};
pub use topology::{Partitioner, Topology};
pub use windows::{SessionWindows, SlidingWindows, TimeWindows};
