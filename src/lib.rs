//! amd-host-device: a CNI plugin that hands a whole NIC to a pod through the reference
//! `host-device` plugin and gives it back intact.
//!
//! Layout: `cni` (protocol), `config` (network config), `device` (which NIC), `netlink` +
//! `netns` (kernel requests), `rdma` (RDMA devices that follow their netdev), `snapshot` (capture/restore policy), `state` (on-disk state and
//! locks), `delegate` (exec host-device), `commands` (one module per CNI command).

pub mod admin;
pub mod arena;
pub mod cni;
pub mod commands;
pub mod config;
pub mod context;
pub mod delegate;
pub mod device;
pub mod device_id;
pub mod error;
pub mod fault;
pub mod give_back;
pub mod kernel;
pub mod kvp;
pub mod lock_wait;
pub mod log;
pub mod netlink;
pub mod netns;
pub mod pod_addresses;
pub mod rdma;
pub mod snapshot;
pub mod state;
#[cfg(test)]
mod testing;
