//! Test-only crash and pause injection. Built with the cargo feature `test-faults` (the
//! end-to-end suite's build), a named point does what the environment asks:
//! - `AMD_HOST_DEVICE_TEST_FAULT=<point>` SIGKILLs the plugin there, so the crash-safety
//!   tests can stop a verb exactly at that step;
//! - `AMD_HOST_DEVICE_TEST_PAUSE=<point>` with `AMD_HOST_DEVICE_TEST_PAUSE_DIR=<dir>` creates
//!   `<dir>/<point>.reached` there and waits until the test creates `<dir>/<point>.go`
//!   (at most [`PAUSE_LIMIT`]), so a test can hold one call inside a window while another
//!   call runs: interleavings become deterministic instead of lucky.
//!
//! Without the feature (every deployable build) a point is nothing at all. The test suite
//! finds every point by grepping the source for `fault::point("…")`; a point's name starts
//! with the verb that reaches it (see docs/architecture.md, "Crash points").

/// Whether this binary has the fault points (`--version` says so, for the test suite).
pub const BUILT_IN: bool = cfg!(feature = "test-faults");

/// The longest a paused call waits for its test: a forgotten `.go` file must not hang it.
#[cfg(feature = "test-faults")]
pub const PAUSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Dies, or waits, here if the test asked for this point.
#[cfg(feature = "test-faults")]
pub fn point(name: &str) {
    if std::env::var_os("AMD_HOST_DEVICE_TEST_FAULT").is_some_and(|v| v == name) {
        crate::log_error!("test fault point {name}: killing myself");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    if std::env::var_os("AMD_HOST_DEVICE_TEST_PAUSE").is_some_and(|v| v == name) {
        if let Some(dir) = std::env::var_os("AMD_HOST_DEVICE_TEST_PAUSE_DIR") {
            pause(name, std::path::Path::new(&dir));
        }
    }
}

#[cfg(feature = "test-faults")]
fn pause(name: &str, dir: &std::path::Path) {
    crate::log_error!("test pause point {name}: waiting for {name}.go");
    let _ = std::fs::write(dir.join(format!("{name}.reached")), b"");
    let go = dir.join(format!("{name}.go"));
    let deadline = std::time::Instant::now() + PAUSE_LIMIT;
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Fault injection is not built in.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn point(_name: &str) {}
