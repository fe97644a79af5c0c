//! What ADD and the give-back logic ask of the kernel, behind one trait so that their logic
//! has unit tests: the host's links, a pod's links (entering its network namespace), whether
//! a namespace still exists, sysfs and the RDMA subsystem.
//!
//! [`LiveKernel`] is the real one; `fake::FakeKernel` (tests only) keeps links in memory
//! and records every change, so a test can assert the order of what was done.

#[cfg(test)]
pub mod fake;

use std::cell::OnceCell;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::Error;
use crate::host::device::Sysfs;
use crate::host::netlink::{Links, Netlink};
use crate::host::netns::{self, NetnsGuard};
use crate::host::rdma::{NetlinkRdma, RdmaSystem};

type Result<T> = std::result::Result<T, Error>;

pub trait Kernel {
    /// The host's links: the network namespace the plugin was started in.
    fn host(&self) -> Result<&dyn Links>;
    /// The links of network namespace `netns` (a pod's): a netlink socket opened inside it,
    /// which keeps talking to it after the thread has come back to the host. One handle
    /// serves every request an operation makes of the pod.
    fn links_in(&self, netns: &Path) -> Result<Box<dyn Links>>;
    /// Whether `netns` still names a live pod network namespace (never the plugin's own).
    fn netns_exists(&self, netns: &Path) -> bool;
    /// `netns` is a pod's network namespace ADD may move a NIC into: a network namespace,
    /// not the plugin's own; else the runtime's error (code 4).
    fn check_pod_netns(&self, netns: &Path) -> Result<()>;
    /// A descriptor of the host's namespace, for [`crate::host::netlink::LinkChange::netns_fd`].
    fn host_netns_fd(&self) -> Result<u32>;
    fn sysfs(&self) -> &Sysfs;
    fn rdma(&self) -> &dyn RdmaSystem;
}

/// The running kernel. The host netlink socket is opened on first use (a DEL with nothing to
/// do needs none), and so is the host's namespace descriptor (`netns::home`).
#[derive(Default)]
pub struct LiveKernel {
    host: OnceCell<Netlink>,
    sysfs: Sysfs,
    rdma: NetlinkRdma,
}

impl LiveKernel {
    pub fn new() -> LiveKernel {
        LiveKernel::default()
    }
}

impl dyn Kernel + '_ {
    /// `f`'s answer about the links of network namespace `netns`.
    pub fn in_netns<T>(&self, netns: &Path, f: impl FnOnce(&dyn Links) -> Result<T>) -> Result<T> {
        f(&*self.links_in(netns)?)
    }
}

impl Kernel for LiveKernel {
    fn host(&self) -> Result<&dyn Links> {
        if let Some(nl) = self.host.get() {
            return Ok(nl);
        }
        let nl = Netlink::connect()?;
        Ok(self.host.get_or_init(|| nl))
    }

    fn links_in(&self, netns: &Path) -> Result<Box<dyn Links>> {
        let inside = NetnsGuard::enter(netns)?;
        // Opened inside: a netlink socket talks to the namespace it was created in, wherever
        // the thread goes next.
        let links = Netlink::connect()?;
        drop(inside);
        Ok(Box::new(links))
    }

    fn netns_exists(&self, netns: &Path) -> bool {
        netns::exists(netns)
    }

    fn check_pod_netns(&self, netns: &Path) -> Result<()> {
        netns::open(netns).map(drop)
    }

    fn host_netns_fd(&self) -> Result<u32> {
        Ok(netns::home()?.as_raw_fd() as u32)
    }

    fn sysfs(&self) -> &Sysfs {
        &self.sysfs
    }

    fn rdma(&self) -> &dyn RdmaSystem {
        &self.rdma
    }
}
