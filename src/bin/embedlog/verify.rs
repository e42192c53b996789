//! `embedlog verify`: checks every file of the data directory (topic
//! configurations, checkpoints, every batch's CRC and records, every index
//! against its log), read-only, so it works while the application runs.

use crate::Outcome;
use crate::common::{EXIT_DAMAGED, Fail, print_json, progress};
use embedlog::inspect::{Finding, Progress, verify_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON document (counts, problems, warnings).
    #[arg(long)]
    pub json: bool,
}

pub fn run(dir: &Path, args: Args) -> Outcome {
    if !dir.join("topics").is_dir() {
        return Err(Fail::new(format!(
            "{} is not an embedlog data directory (it has no topics/ directory)",
            dir.display()
        ))
        .hint("pass the application's directory with --dir"));
    }
    let bar = progress(None, "verifying");
    let report = verify_dir(dir, |p| match p {
        Progress::Segment { path, .. } => {
            let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
            bar.set_message(name);
        }
        Progress::Bytes(n) => bar.inc(n),
    });
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        let list = |fs: &[Finding]| {
            fs.iter()
                .map(|f| {
                    json!({
                        "path": f.path.display().to_string(),
                        "position": f.position,
                        "reason": f.reason,
                    })
                })
                .collect::<Vec<_>>()
        };
        print_json(&json!({
            "dir": dir.display().to_string(),
            "clean": report.is_clean(),
            "topics": report.topics,
            "partitions": report.partitions,
            "segments": report.segments,
            "batches": report.batches,
            "records": report.records,
            "bytes": report.bytes,
            "problems": Value::Array(list(&report.problems)),
            "warnings": Value::Array(list(&report.warnings)),
        }));
    } else {
        println!(
            "checked {} topics, {} partitions, {} segments: {} batches, {} records, {} bytes",
            report.topics,
            report.partitions,
            report.segments,
            report.batches,
            report.records,
            report.bytes
        );
        for w in &report.warnings {
            println!("warning: {w}");
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
        println!(
            "{} problems, {} warnings",
            report.problems.len(),
            report.warnings.len()
        );
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}
