//! The `embedlog` binary, run in child processes. One module per subcommand.

mod dump_log;
mod support;
mod verify;
