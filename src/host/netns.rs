//! Entering a pod's network namespace on the current thread, and getting back out.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::cni::error::{errno_in_words, io_error_in_words};
use crate::error::Error;

/// While alive, the current thread is in another network namespace; dropping it goes back.
/// Netlink sockets opened meanwhile stay bound to that namespace.
pub struct NetnsGuard {
    original: File,
}

impl NetnsGuard {
    pub fn enter(path: &Path) -> Result<NetnsGuard, Error> {
        let original = current()?;
        let target = open(path)?;
        setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::invalid_env(
                "CNI_NETNS",
                format!(
                    "{} is not a network namespace: {}",
                    path.display(),
                    errno_in_words(e as i32)
                ),
            )
        })?;
        Ok(NetnsGuard { original })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original, CloneFlags::CLONE_NEWNET) {
            // Carrying on would apply host changes inside a pod: stop right here.
            crate::log_error!("cannot return to the host network namespace: {e}; aborting");
            std::process::abort();
        }
    }
}

/// The network namespace the calling thread is in now (`thread-self`, not `self`: setns
/// only moves the calling thread).
pub fn current() -> Result<File, Error> {
    File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("open the current network namespace", e))
}

/// Opens a network namespace file (e.g. `/var/run/netns/x`, `/proc/<pid>/ns/net`).
pub fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| {
        Error::invalid_env(
            "CNI_NETNS",
            format!(
                "cannot open network namespace {}: {}",
                path.display(),
                io_error_in_words(&e)
            ),
        )
    })
}

/// Whether `path` still names a live network namespace. Only a path that does not exist,
/// or no longer holds a namespace (a bind-mount target left behind after `ip netns del` is
/// a plain empty file), counts as gone: a namespace we merely cannot open now (a security
/// module, no file descriptors left) is not proof that its pod is gone.
pub fn exists(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => nix::sys::statfs::fstatfs(&f)
            .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .unwrap_or(true),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}
