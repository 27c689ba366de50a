//! The model runner shared by every loom test file.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `model` under loom with the preemption bound from
/// `LOOM_MAX_PREEMPTIONS` (3 when unset) and prints how many executions
/// were explored.
pub fn run(model: impl Fn() + Sync + Send + 'static) {
    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    let before = EXECUTIONS.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    builder.check(move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        model();
    });
    eprintln!(
        "loom: {} executions in {:.2?}",
        EXECUTIONS.load(Ordering::Relaxed) - before,
        started.elapsed()
    );
}
