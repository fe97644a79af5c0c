//! Everything that touches the kernel: the [`kernel::Kernel`] trait the verbs drive (with
//! its live side and an in-memory fake for unit tests), netlink, network namespaces, sysfs
//! and device selection, the names a link may carry into a namespace, the snapshot of a
//! NIC's state, RDMA, and the delegate runner that starts `host-device`. May import only
//! `error`, `cni` and the leaves, never `node` or `verbs`.

pub mod delegate;
pub mod device;
pub mod identity;
pub mod kernel;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod rdma;
pub mod snapshot;
#[cfg(test)]
mod testing;
