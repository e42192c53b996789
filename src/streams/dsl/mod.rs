//! The DSL's stream and table types.

mod grouped;
mod join;
mod session;
mod sliding;
mod stream;
mod stream_join;
mod suppress;
mod table;
mod windowed;

pub(crate) use grouped::Emitter;
pub use grouped::KGroupedStream;
pub use session::SessionWindowedKStream;
pub(crate) use stream::FnProcessor;
pub use stream::{BranchedKStream, KStream};
pub use suppress::{BufferConfig, Suppressed};
pub(crate) use table::table_source;
pub use table::{GlobalKTable, KTable};
pub use windowed::TimeWindowedKStream;

use super::processor::{Processor, ProcessorContext};
use super::record::StreamRecord;
use crate::Result;

/// Forwards every record as it is (branches, merges).
pub(crate) struct PassThrough;

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V> for PassThrough {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: StreamRecord<K, V>,
    ) -> Result<()> {
        ctx.forward(record)
    }
}
