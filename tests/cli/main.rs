//! The `embedlog` binary, run in child processes. One module per subcommand.

mod connect;
mod dump_log;
mod follow;
mod groups;
mod perf;
mod produce_consume;
mod support;
mod topics;
mod verify;
