//! Test-only crash and pause injection. Built with the cargo feature `test-faults` (the
//! end-to-end suite's build), a named point does what the environment asks:
//! - `AMD_HOST_DEVICE_TEST_FAULT=<point>` SIGKILLs the plugin there, so the crash-safety
//!   tests can stop a verb exactly at that step;
//! - `AMD_HOST_DEVICE_TEST_PAUSE=<point>` with `AMD_HOST_DEVICE_TEST_PAUSE_DIR=<dir>` creates
//!   `<dir>/<point>.reached` there and waits until the test creates `<dir>/<point>.go`
//!   (at most [`PAUSE_LIMIT`]), so a test can hold one call inside a window while another
//!   call runs: interleavings become deterministic instead of lucky.
//!
//! A point's name starts with the flow that reaches it (`add-`, `del-`, `gc-`, ...). A step
//! several flows share (the give-back, the restore of a NIC, the removal of a state) is a
//! [`step`]: its point is named after the [`flow`] the caller entered, so `del-after-link`
//! and `gc-after-link` are two points, each tested through its own verb.
//!
//! Without the feature (every deployable build) a point is nothing at all. The test suite
//! finds every point by grepping the source: the literal names of `point`, and every flow
//! of `flow` with every step of `step` (see docs/architecture.md, "Crash points").

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

/// The flow whose shared steps run while this guard lives; the flow it replaced comes back
/// when it drops (a stale claim's repair or a rollback inside ADD).
#[cfg(feature = "test-faults")]
#[must_use = "the flow ends when the guard drops"]
pub struct Flow {
    previous: &'static str,
}

// Per thread: a verb runs on one thread (a netns is entered on it and left), and unit tests
// running side by side keep their flows apart.
#[cfg(feature = "test-faults")]
thread_local! {
    static FLOW: std::cell::Cell<&'static str> = const { std::cell::Cell::new("") };
}

/// Enters flow `name`: the shared steps reached until the guard drops are its points.
#[cfg(feature = "test-faults")]
pub fn flow(name: &'static str) -> Flow {
    Flow {
        previous: FLOW.replace(name),
    }
}

#[cfg(feature = "test-faults")]
impl Drop for Flow {
    fn drop(&mut self) {
        FLOW.set(self.previous);
    }
}

/// A step shared by several flows: the point `<flow>-<name>` of the flow entered. Outside
/// any flow (a unit test) it is no point at all.
#[cfg(feature = "test-faults")]
pub fn step(name: &str) {
    let flow = FLOW.get();
    if !flow.is_empty() {
        point(&qualified(flow, name));
    }
}

/// The name of the point of step `name` in `flow`.
#[cfg(any(feature = "test-faults", test))]
fn qualified(flow: &str, name: &str) -> String {
    format!("{flow}-{name}")
}

/// Fault injection is not built in.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Fault injection is not built in: no flow to enter.
#[cfg(not(feature = "test-faults"))]
pub struct Flow;

/// Fault injection is not built in.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn flow(_name: &'static str) -> Flow {
    Flow
}

/// Fault injection is not built in.
#[cfg(not(feature = "test-faults"))]
#[inline(always)]
pub fn step(_name: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_step_is_named_after_its_flow() {
        assert_eq!(qualified("del", "after-link"), "del-after-link");
        assert_eq!(
            qualified("add-rollback", "before-forget"),
            "add-rollback-before-forget"
        );
    }

    #[cfg(feature = "test-faults")]
    #[test]
    fn a_nested_flow_gives_the_outer_one_back() {
        let outer = flow("add-rollback");
        {
            let _inner = flow("stale");
            assert_eq!(FLOW.get(), "stale");
        }
        assert_eq!(FLOW.get(), "add-rollback");
        drop(outer);
        assert_eq!(FLOW.get(), "");
    }
}
