//! The child process: runs one step of one workload and prints its
//! figures as one JSON line on stdout; and the parent's reading of that
//! line.

use crate::cli::ChildArgs;
use crate::workloads::{self, Figures};
use serde::{Deserialize, Serialize};

/// The one line a child prints.
#[derive(Serialize, Deserialize)]
struct Line {
    workload: String,
    step: String,
    figures: Figures,
}

/// Runs the step; the exit code is 0, 1 if the step failed, 2 if no such
/// step exists.
pub fn run(args: ChildArgs) -> i32 {
    let registry = workloads::registry();
    let Some(step) = registry
        .iter()
        .find(|w| w.name == args.workload)
        .and_then(|w| w.step(&args.step))
    else {
        eprintln!(
            "perf: no step {:?} in workload {:?}",
            args.step, args.workload
        );
        return 2;
    };
    match step.run(&args.params) {
        Ok(figures) => {
            let line = Line {
                workload: args.workload,
                step: args.step,
                figures,
            };
            match serde_json::to_string(&line) {
                Ok(json) => {
                    println!("{json}");
                    0
                }
                Err(e) => {
                    eprintln!("perf: figures not printable: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("perf: {} / {}: {e}", args.workload, args.step);
            1
        }
    }
}

/// The figures in a child's stdout (its last line), checked to be those of
/// `workload`'s `step`.
pub fn figures(stdout: &[u8], workload: &str, step: &str) -> Result<Figures, String> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default();
    let line: Line =
        serde_json::from_str(last).map_err(|e| format!("unreadable child output {last:?}: {e}"))?;
    if line.workload != workload || line.step != step {
        return Err(format!(
            "child answered for {} / {}",
            line.workload, line.step
        ));
    }
    Ok(line.figures)
}
