//! The `embedlog` binary, run in child processes. One module per subcommand.

#[path = "../common/mod.rs"]
mod common;
mod connect;
mod dump_log;
mod follow;
mod groups;
mod perf;
mod produce_consume;
mod support;
mod topics;
mod verify;
