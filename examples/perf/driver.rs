//! The parent: runs every step of the selected workloads in a fresh child
//! of this same binary, each after `sync(2)`: prepare steps once, then
//! `--reps` rounds in which every contender runs once, in order. It never
//! measures anything itself.

use crate::child;
use crate::cli::{self, RunArgs};
use crate::report;
use crate::workloads::{Contender, Data, Figures, Params, Show, Step, Workload};
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

/// What one contender measured in each round (its steps' figures merged),
/// or why it failed that round.
pub type Rounds = Vec<Result<Figures, String>>;

/// A workload's results.
pub struct Outcome {
    pub workload: Workload,
    pub params: Params,
    /// Per contender (in the workload's order), per round; `Err` if the
    /// workload could not run at all (unavailable, or a prepare step
    /// failed).
    pub contenders: Result<Vec<Rounds>, String>,
}

/// Runs `workloads` as `args` says.
pub fn run(args: &RunArgs, workloads: Vec<Workload>) -> Vec<Outcome> {
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        let why = format!("cannot create {}: {e}", args.dir.display());
        return workloads
            .into_iter()
            .map(|w| Outcome {
                params: args.params(&w),
                workload: w,
                contenders: Err(why.clone()),
            })
            .collect();
    }
    let outcomes = workloads
        .into_iter()
        .map(|w| {
            let params = args.params(&w);
            let contenders = match &w.unavailable {
                Some(why) => Err(why.clone()),
                None => run_workload(&w, &params, args.reps),
            };
            Outcome {
                workload: w,
                params,
                contenders,
            }
        })
        .collect();
    // The scratch root goes only if nothing else is in it.
    let _ = std::fs::remove_dir(&args.dir);
    outcomes
}

fn run_workload(w: &Workload, params: &Params, reps: usize) -> Result<Vec<Rounds>, String> {
    remove(&params.dir)?;
    std::fs::create_dir_all(&params.dir)
        .map_err(|e| format!("cannot create {}: {e}", params.dir.display()))?;
    let result = (|| {
        for step in &w.prepare {
            eprintln!("perf: {}: {} ...", w.name, step.name);
            run_step(w, step, params).map_err(|e| format!("{}: {e}", step.name))?;
        }
        let reps = if w.show == Show::Scale { 1 } else { reps };
        let mut rounds: Vec<Rounds> = w.contenders.iter().map(|_| Vec::new()).collect();
        for round in 1..=reps {
            for (contender, results) in w.contenders.iter().zip(&mut rounds) {
                let figures = run_contender(w, contender, params);
                let shown = match &figures {
                    Ok(f) => report::brief(w.show, f),
                    Err(e) => format!("failed: {e}"),
                };
                let name = contender.steps.first().map_or("", |s| s.name);
                eprintln!("perf: {} round {round}/{reps}: {name}: {shown}", w.name);
                results.push(figures);
            }
        }
        Ok(rounds)
    })();
    let _ = remove(&params.dir);
    result
}

/// The contender's steps, one child each, their figures merged.
fn run_contender(w: &Workload, c: &Contender, params: &Params) -> Result<Figures, String> {
    let mut all = Figures::new();
    for step in &c.steps {
        all.extend(run_step(w, step, params).map_err(|e| format!("{}: {e}", step.name))?);
    }
    Ok(all)
}

/// One child: the step's output directory removed (if it writes one), then
/// `sync(2)`, so that the child inherits no dirty pages, then the child.
fn run_step(w: &Workload, step: &Step, params: &Params) -> Result<Figures, String> {
    if let Data::Writes(name) = step.data {
        remove(&params.dir.join(name))?;
    }
    rustix::fs::sync();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = Command::new(exe)
        .args(cli::child_args(&w.name, step.name, params))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    if !out.status.success() {
        return Err(format!("the child failed ({})", out.status));
    }
    child::figures(&out.stdout, &w.name, step.name)
}

fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}
