//! Opening a log after a clean close (no recovery scan): `Log::open` of
//! `--records` written in batches of 100 by an earlier child, in a fresh
//! process, against `commitlog`'s `CommitLog::new` on the same records.

use super::{
    Column, Contender, EMBEDLOG, Figures, Params, Res, SMALL, Show, Step, Workload, append, peer,
};
use embedlog::{Log, LogConfig};
use std::time::Instant;

pub fn workloads() -> Vec<Workload> {
    let (records, size) = SMALL;
    vec![
        Workload::new(
            "open",
            "open after a clean close (`Log::open`, default config), data written in \
             batches of 100",
            records,
            size,
            Show::Millis,
        )
        .prepare(append::prepare_batches_step())
        .prepare(peer::prepare_step(100))
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::reads("embedlog", open)],
        ))
        .contender(Contender::new(Column::Commitlog, vec![peer::open_step()])),
    ]
}

fn open(p: &Params) -> Res<Figures> {
    let dir = p.dir.join(EMBEDLOG);
    let started = Instant::now();
    let log = Log::open(&dir, LogConfig::default())?;
    let elapsed = started.elapsed();
    let (records, bytes) = (log.end_offset(), log.size_bytes());
    log.close()?;
    Ok(Figures::from([
        ("ms".to_string(), elapsed.as_secs_f64() * 1e3),
        ("records".to_string(), records as f64),
        ("disk_bytes".to_string(), bytes as f64),
    ]))
}
