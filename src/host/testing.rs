//! A fixture the unit tests of the kernel-facing modules share: a scratch network namespace
//! on the running kernel.

use std::path::PathBuf;

/// A network namespace of the test's own on the running kernel (root only), removed when
/// dropped, so a failed assertion still cleans up. `None` (and a note) without root.
pub struct ScratchNetns {
    name: String,
}

impl ScratchNetns {
    pub fn new(purpose: &str) -> Option<ScratchNetns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root for a network namespace");
            return None;
        }
        let name = format!("ahd-unit-{purpose}-{}", std::process::id());
        let created = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !created {
            eprintln!("skipped: ip netns add failed");
            return None;
        }
        Some(ScratchNetns { name })
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs `ip -n <ns> <args>`; whether it succeeded.
    pub fn ip(&self, args: &[&str]) -> bool {
        std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
