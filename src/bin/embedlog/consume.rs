//! placeholder
use crate::Outcome;
use crate::common::Fail;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_dir: &Path, _args: Args) -> Outcome {
    Err(Fail::new("not built yet"))
}
