//! The `embedlog` binary, run in child processes. One module per subcommand.

mod support;

mod perf;
