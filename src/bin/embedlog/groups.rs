//! placeholder
use crate::Outcome;
use crate::common::Fail;
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// placeholder
    List {},
}

#[derive(Debug, clap::Args)]
pub struct DeleteRecords {}

pub fn run(_dir: &Path, _cmd: Cmd) -> Outcome {
    Err(Fail::new("not built yet"))
}

pub fn delete_records(_dir: &Path, _args: DeleteRecords) -> Outcome {
    Err(Fail::new("not built yet"))
}
