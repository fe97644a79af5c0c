//! Test-only crash injection. Built with the cargo feature `test-faults` (the end-to-end
//! suite's build), `AMD_HOST_DEVICE_TEST_FAULT=<point>` SIGKILLs the plugin at that point,
//! so the crash-safety tests can stop an ADD exactly there. Without the feature (every
//! deployable build) a fault point is nothing at all.

/// Whether this binary has the fault points (`--version` says so, for the test suite).
pub const BUILT_IN: bool = cfg!(feature = "test-faults");

/// Dies here if the test asked for this point.
#[cfg(feature = "test-faults")]
pub fn point(name: &str) {
    if std::env::var_os("AMD_HOST_DEVICE_TEST_FAULT").is_some_and(|v| v == name) {
        crate::log_error!("test fault point {name}: killing myself");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Fault injection is not built in.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn point(_name: &str) {}
