//! Entering the benchmark's namespaces: each world's "host" is the network and mount
//! namespace of a `sleep infinity` that bench.sh started with `unshare -n -m`.
//!
//! The program enters a world with setns(2) before each cycle, outside the timed
//! section, so the plugin it spawns starts in that host, as under `nsenter -n -m`.
//! Entering a mount namespace needs a single-threaded process: this one never starts
//! a thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A process's network and mount namespaces, held open.
#[derive(Debug)]
pub struct Namespaces {
    net: File,
    mnt: File,
}

impl Namespaces {
    /// Those of process `pid`.
    pub fn of(pid: u32) -> io::Result<Namespaces> {
        Self::at(&format!("/proc/{pid}/ns"))
    }

    /// This process's own (to come back to).
    pub fn own() -> io::Result<Namespaces> {
        Self::at("/proc/self/ns")
    }

    fn at(dir: &str) -> io::Result<Namespaces> {
        let open = |ns: &str| {
            File::open(format!("{dir}/{ns}"))
                .map_err(|e| io::Error::new(e.kind(), format!("{dir}/{ns}: {e}")))
        };
        Ok(Namespaces {
            net: open("net")?,
            mnt: open("mnt")?,
        })
    }

    /// Moves this process into them. Entering a mount namespace also moves the current
    /// directory to its root: every path this program uses is absolute.
    pub fn enter(&self) -> io::Result<()> {
        setns(&self.net, libc::CLONE_NEWNET)?;
        setns(&self.mnt, libc::CLONE_NEWNS)
    }
}

fn setns(ns: &File, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor is open for the duration of the call; setns only reads it.
    if unsafe { libc::setns(ns.as_raw_fd(), kind) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One world: the host namespaces the plugin runs in, and the pod whose network
/// namespace it is given (CNI_NETNS).
#[derive(Debug)]
pub struct World {
    pub host: Namespaces,
    pub pod_pid: u32,
}

impl World {
    pub fn open(host_pid: u32, pod_pid: u32) -> io::Result<World> {
        Ok(World {
            host: Namespaces::of(host_pid)?,
            pod_pid,
        })
    }

    /// The pod's network namespace, as a runtime passes it.
    pub fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.pod_pid)
    }
}
