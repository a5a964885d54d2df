//! Process limits set at start: the open-file limit raised to what the hard limit allows, and
//! the size of the worker pool from the CPUs this process may actually use.

use std::num::NonZeroUsize;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Below this many open files a busy member can run out: etcd's packaged unit asks for it.
pub const RECOMMENDED_OPEN_FILES: u64 = 65536;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, logs both, and warns with the fix when
/// the result is below [`RECOMMENDED_OPEN_FILES`].
pub fn raise_open_files() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read RLIMIT_NOFILE");
            return;
        }
    };
    let raised = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the soft RLIMIT_NOFILE to the hard limit");
                soft
            }
        }
    } else {
        soft
    };
    tracing::info!(soft = raised, hard, was = soft, "RLIMIT_NOFILE: open files limit");
    if raised < RECOMMENDED_OPEN_FILES {
        tracing::warn!(
            "RLIMIT_NOFILE is {raised} (hard limit {hard}), below {RECOMMENDED_OPEN_FILES}: a busy member may \
             run out of file descriptors; set LimitNOFILE={RECOMMENDED_OPEN_FILES} in the systemd unit"
        );
    }
}

/// The worker threads to run: `configured` when not 0, else one per CPU this process may use
/// (`available_parallelism` honours the CPU affinity mask and the cgroup CPU quota).
pub fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}
