//! `embedlog`: the command-line tool for an embedlog data directory, doing
//! what Kafka's scripts do (`kafka-topics`, `kafka-console-producer`,
//! `kafka-console-consumer`, `kafka-consumer-groups`, `kafka-dump-log`,
//! `kafka-delete-records`, `connect-standalone`, the perf tests), in one
//! binary.
//!
//! Commands that only read (`topics list|describe`, `consume` without
//! `--group`, `groups list|describe`, `dump-log`, `verify`) open the
//! directory read-only, so they work while an application owns it.
//! Commands that change it need the directory lock and say so when another
//! process holds it.
//!
//! Exit status: 0 on success, 1 on an error, 2 on a usage error, 3 when
//! `verify` or `dump-log` found damage.

mod common;
mod connect;
mod consume;
mod dump;
mod groups;
mod perf;
mod produce;
mod topics;
mod verify;

use clap::{Parser, Subcommand};
use common::Fail;
use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line tool for an embedlog data directory.
#[derive(Debug, Parser)]
#[command(name = "embedlog", version, about, long_about = None)]
struct Cli {
    /// The data directory.
    #[arg(
        long,
        global = true,
        default_value = "./embedlog-data",
        value_name = "DIR"
    )]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topics(topics::Cmd),
    /// Append lines from stdin or a file to a topic.
    Produce(produce::Args),
    /// Print a topic's records; `--follow` keeps reading as they arrive.
    Consume(consume::Args),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::Cmd),
    /// Print the batches, records and index entries of segment files.
    DumpLog(dump::Args),
    /// Check every CRC of every segment and every index against its log.
    Verify(verify::Args),
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Perf(perf::Cmd),
    /// Delete a partition's records before an offset (moves its start).
    DeleteRecords(topics::DeleteRecords),
    /// Run connectors (Kafka Connect's standalone mode) or list them.
    #[command(subcommand)]
    Connect(connect::Cmd),
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topics(cmd) => topics::run(&cli.dir, cmd),
        Command::Produce(args) => produce::run(&cli.dir, args),
        Command::Consume(args) => consume::run(&cli.dir, args),
        Command::Groups(cmd) => groups::run(&cli.dir, cmd),
        Command::DumpLog(args) => dump::run(args),
        Command::Verify(args) => verify::run(&cli.dir, args),
        Command::Perf(cmd) => perf::run(&cli.dir, cmd),
        Command::DeleteRecords(args) => topics::delete_records(&cli.dir, args),
        Command::Connect(cmd) => connect::run(&cli.dir, cmd),
    };
    match result {
        Ok(code) => code,
        Err(fail) => fail.report(),
    }
}

/// What a subcommand returns: its exit status, or why it failed.
type Outcome = Result<ExitCode, Fail>;

/// Rust ignores SIGPIPE, so printing to a closed pipe (`embedlog consume
/// … | head`) fails with EPIPE, and `println!` panics on it. A command-line
/// tool should end quietly instead, as `cat` does: restore the default.
fn restore_sigpipe() {
    // SAFETY: called first in `main`, before any other thread exists;
    // setting a signal's disposition to its default has no other effect.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
