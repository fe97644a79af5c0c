//! Taking a file lock without blocking in the kernel: non-blocking attempts, polled until a
//! deadline. A stuck holder then costs a bounded wait and a "try again later" (code 11),
//! never a hung CNI call. Used by the state store's locks and the KVP pool reader.

use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// How often a contended lock is tried again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How a wait for a lock ended.
#[derive(Debug)]
pub enum Waited<T> {
    Acquired(T),
    /// Still held by someone else when the time was up.
    TimedOut,
    /// The attempt failed for another reason than contention.
    Failed(Errno),
}

/// Calls `attempt` (a non-blocking lock request) until it succeeds, fails for a reason
/// other than contention, or `timeout` has passed.
pub fn poll_lock<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T, Errno>) -> Waited<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(held) => return Waited::Acquired(held),
            Err(e) if !is_contended(e) => return Waited::Failed(e),
            Err(_) if Instant::now() >= deadline => return Waited::TimedOut,
            Err(_) => sleep(POLL_INTERVAL),
        }
    }
}

/// A non-blocking lock attempt that failed because someone else holds the lock (or a
/// signal interrupted it): worth trying again.
pub fn is_contended(e: Errno) -> bool {
    matches!(e, Errno::EWOULDBLOCK | Errno::EACCES | Errno::EINTR)
}

/// An fcntl lock request of `kind` (`F_RDLCK`, `F_WRLCK`) on `len` bytes from `start`
/// (`len` 0: to the end of the file, however it grows).
pub fn byte_range(kind: i32, start: i64, len: i64) -> nix::libc::flock {
    // SAFETY: `flock` is a plain C struct of integers; all-zero is a valid value, and every
    // field that matters is set below.
    let mut range: nix::libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = kind as _;
    range.l_whence = nix::libc::SEEK_SET as _;
    range.l_start = start;
    range.l_len = len;
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn retries_contention_until_it_clears() {
        let tries = Cell::new(0);
        let outcome = poll_lock(Duration::from_secs(5), || {
            tries.set(tries.get() + 1);
            if tries.get() < 3 {
                Err(Errno::EWOULDBLOCK)
            } else {
                Ok("held")
            }
        });
        assert!(matches!(outcome, Waited::Acquired("held")));
        assert_eq!(tries.get(), 3);
    }

    #[test]
    fn gives_up_at_the_deadline_and_at_once_on_other_errors() {
        let start = Instant::now();
        let outcome = poll_lock::<()>(Duration::from_millis(100), || Err(Errno::EACCES));
        assert!(matches!(outcome, Waited::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(100));
        let outcome = poll_lock::<()>(Duration::from_secs(5), || Err(Errno::EBADF));
        assert!(matches!(outcome, Waited::Failed(Errno::EBADF)));
    }

    #[test]
    fn byte_ranges_are_what_was_asked() {
        let r = byte_range(nix::libc::F_WRLCK, 7, 1);
        assert_eq!(
            (i32::from(r.l_type), r.l_start, r.l_len),
            (nix::libc::F_WRLCK, 7, 1)
        );
    }
}
