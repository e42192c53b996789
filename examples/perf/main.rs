//! embedlog's performance harness: every figure beside a floor (a plain
//! `BufWriter<File>`) and, where it has one, the `commitlog` 0.2 crate (the
//! nearest Rust peer), measured so that one figure cannot disturb another.
//!
//! ```text
//! cargo run --release --example perf -- list
//! cargo run --release --example perf -- [all | WORKLOAD | GROUP ...]
//!     [--records N] [--size BYTES] [--reps N] [--sync-records N]
//!     [--reads N] [--dir PATH]
//! EMBEDLOG_PERF_SCALE_GB=10 cargo run --release --example perf
//! ```
//!
//! # How
//!
//! - **A fresh process per figure.** The parent measures nothing: it runs
//!   this same binary again (`--child <workload> <step> ...`, hidden) for
//!   every step, and the child prints its figures as one JSON line. Before
//!   each child the parent removes what that step is about to write and
//!   calls `sync(2)`, so no child inherits another's dirty pages or
//!   writeback.
//! - **Reads read what another process wrote.** A reading workload's data
//!   is written first by *prepare* children (embedlog's, the floor's,
//!   commitlog's); each reading child then starts with whatever the page
//!   cache holds after `sync`, as a fresh consumer process would.
//! - **Interleaved rounds.** `--reps` rounds (default 3); in each, every
//!   contender runs once, in order embedlog, floor (or the workload's own
//!   baseline), commitlog, so drift affects all alike. The table gives each
//!   contender's median and min–max over the rounds, and the **median of
//!   the per-round ratios** embedlog / floor and embedlog / commitlog (for
//!   an opening time, the ratio of speeds: above 1 is embedlog faster).
//! - **Payloads already in memory.** Every payload is built before the timer
//!   starts, in one buffer, and handed over as `&[u8]` (100 B or 1 KiB: `x`s
//!   stamped with the record's index). An embedlog record is built from the
//!   slice as a caller holding `&[u8]` must today:
//!   `Record::new(Bytes::copy_from_slice(p))` (a copy, and the clock read
//!   for its timestamp), inside the timer.
//! - **What is timed.** Writes: from the first record to `flush` returning
//!   (producer, floor) or the last append returning (`Log::append`,
//!   commitlog's `append`); opening and closing happen outside the timer,
//!   and nothing is fsync'd except in the durable workloads. Reads: from
//!   the first read (log or broker already open, consumer assigned) to the
//!   last record, every record's payload length summed and the count
//!   checked.
//!
//! # The contenders
//!
//! - **The floor**: a plain `BufWriter<File>` (std's default 8 KiB
//!   buffer) of `[len u32][crc32c u32][payload]` records, flushed at the
//!   end; read back by a plain `BufReader` that checks every CRC; random reads `pread`
//!   one record at a position computed from its index (fixed-size records:
//!   an index that costs nothing). Durable: `write` + `fdatasync` every
//!   record or every 100.
//! - **commitlog 0.2**: `append_msg` per record, or a reused `MessageBuf` of
//!   100 per `append` (256 MiB segments); reads by `read` of 1 MiB (it
//!   checks each message's CRC); random reads of one message.
//!
//! # The workloads (`perf -- list`)
//!
//! Records of 100 B × 1 000 000 by default, 1 KiB × 200 000 for `-1k`;
//! `--records` / `--size` override every workload's (`--sync-records` the
//! durable ones').
//!
//! - `produce[-1k]`: `Producer::send` per record to a 1-partition topic,
//!   default producer and topic config, until `flush` returns. Floor.
//! - `append-batch[-1k]`: `Log::append` of 100-record batches (a reused
//!   `Vec<Record>` built from the slices), default `LogConfig`. Floor,
//!   commitlog (100 per `append`).
//! - `append-single[-1k]`: `Log::append` of one record per call. Floor,
//!   commitlog (`append_msg`).
//! - `read-poll[-1k]`: data written by `produce`'s code; `Consumer::poll`
//!   (owned records), default consumer config but `OffsetReset::Earliest`.
//!   Floor, commitlog (written 100 per append).
//! - `read-batches[-1k]`: the same data, `Consumer::poll_batches` +
//!   `Batches::records_ref`.
//! - `read-log[-1k]`: data written one record per `Log::append`;
//!   `Log::read` of 1 MiB + `records_ref`. Commitlog written by
//!   `append_msg`.
//! - `read-random[-1k]`: producer-written data; `--reads` (100 000) lookups
//!   at offsets drawn before the timer (the same for all), each
//!   `Partition::read(o, ReadLimit::bytes(1).records(1))` and the record at
//!   `o` from `records_ref`. Floor `pread`, commitlog `read` of one
//!   message.
//! - `sync-1`, `sync-100`: `Log::append` with `Durability::Sync`, one
//!   record per call or 100 (`--sync-records`, 5 000). Floor: `write` +
//!   `fdatasync` per record or per 100.
//! - `latency-append`: each `Log::append` of one record (no fsync) timed
//!   alone, 200 000 of them: p50, p99, p99.9.
//! - `latency-e2e`: a producer (linger 0) and a consumer blocked in `poll`,
//!   same process, two threads, 20 000 records; each is sent once the
//!   consumer has taken the previous one and 100 µs have passed, and its
//!   latency runs from just before `send` to the consumer holding it.
//! - `produce-2p`: two threads sharing one `Producer`, each sending to its
//!   own partition of a 2-partition topic, until `flush`; the baseline is
//!   one thread sending the same records to the same partitions.
//! - `txn` group (as before, each run in its own child): `txn-idempotence`
//!   (idempotent against idempotence off), `txn-1`, `txn-100`,
//!   `txn-10000` (records per transaction, against a plain producer);
//!   64 KiB batches, explicit timestamps; `txn-1` writes at most 20 000.
//! - `compression` group: `compression-<codec>` for gzip, snappy, lz4,
//!   zstd (`--features compression`): 200 000 JSON-line text records of
//!   about 500 B sent (64 KiB batches), bytes on disk, then read by
//!   `Consumer::poll` in a fresh child; the baseline is the same
//!   uncompressed.
//! - `open`: `Log::open` after a clean close (no scan) of 1 000 000 records
//!   written 100 per append; commitlog's `CommitLog::new` on the same.
//! - `scale` (not in `all`): `EMBEDLOG_PERF_SCALE_GB` GiB (default 10)
//!   through one producer in 1 GiB steps, each step's rate and resident
//!   memory, then the time to reopen; one run. Setting the variable and
//!   naming no workload runs it alone.
//!
//! Use a real disk for `--dir` (default `./embedlog-perf`): fsync on tmpfs
//! means nothing. A quiet machine matters more than anything above.

mod child;
mod cli;
mod driver;
mod report;
mod workloads;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            0
        }
        Ok(cli::Command::List) => {
            print!("{}", workloads::list());
            0
        }
        Ok(cli::Command::Child(child)) => child::run(child),
        Ok(cli::Command::Run(run)) => match workloads::select(&run.names) {
            Ok(selected) => {
                let outcomes = driver::run(&run, selected);
                println!("\n{}", report::render(&run, &outcomes));
                let failed = outcomes.iter().any(|o| match &o.contenders {
                    Ok(c) => c.iter().flatten().any(Result::is_err),
                    Err(_) => o.workload.unavailable.is_none(),
                });
                i32::from(failed)
            }
            Err(e) => usage_error(&e),
        },
        Err(e) => usage_error(&e),
    };
    std::process::exit(code);
}

fn usage_error(message: &str) -> i32 {
    eprintln!("perf: {message} (`perf -- --help` for usage)");
    2
}
