//! The model runner shared by every loom test file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Branch points one execution may take before loom reports a livelock.
const MAX_BRANCHES: usize = 10_000;

/// Runs `model` under loom and prints how many executions were explored.
///
/// The preemption bound is `LOOM_MAX_PREEMPTIONS` when set, else
/// `default_bound`: each model's own, the highest that keeps it within a
/// few seconds.
pub fn run(default_bound: usize, model: impl Fn() + Sync + Send + 'static) {
    let executions = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(default_bound);
    }
    // Loom's default (1,000 branch points per execution) flags livelock.
    // The pool models run the real miss path (clock sweeps, epoch flushes)
    // and the teardown of crossbeam's global queue, which together pass
    // 1,000 in some executions without spinning; a livelock still runs
    // past this bound.
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = MAX_BRANCHES;
    }
    let bound = builder.preemption_bound;
    let started = std::time::Instant::now();
    let counter = executions.clone();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    eprintln!(
        "loom: {} executions in {:.2?} (preemption bound {bound:?})",
        executions.load(Ordering::Relaxed),
        started.elapsed()
    );
}
