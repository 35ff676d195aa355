//! The running task's `timeout`: when it runs out, Ansible abandons the task and reports
//! it timed out. The executor sets the moment for the thread that runs the task's
//! module; a plan's command started meanwhile ([`crate::modules`]' stoppable processes)
//! is ended with its process group when it passes.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// When the task this thread runs must have finished (`None`: no limit).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Holds a task's deadline for the thread while it lives; dropping it lifts it, so an
/// early return cannot leave a limit over the next task.
#[derive(Debug)]
pub struct Guard {
    previous: Option<Instant>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}

/// Sets the running task's limit to `seconds` from now (`None` or 0: no limit, as in
/// Ansible, where `timeout: 0` is no timeout).
pub fn start(seconds: Option<u64>) -> Guard {
    let previous = DEADLINE.with(Cell::get);
    let at = seconds
        .filter(|s| *s > 0)
        .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    DEADLINE.with(|d| d.set(at));
    Guard { previous }
}

/// True once the running task's limit has passed.
pub fn passed() -> bool {
    DEADLINE
        .with(Cell::get)
        .is_some_and(|at| Instant::now() >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifted_deadline_does_not_outlive_its_task() {
        {
            let _g = start(Some(1));
            assert!(!passed());
        }
        let _zero = start(Some(0));
        assert!(!passed(), "timeout 0 is no limit");
    }
}
