//! amd-host-device: a CNI plugin that hands a whole NIC to a pod through the reference
//! `host-device` plugin and gives it back intact.
//!
//! The command flow: `main` → `commands` (the CNI verbs) or `admin` → `give_back`,
//! `pod_addresses`, `context` → the concerns below them (`kernel`, `state`, `config`,
//! `snapshot`, `device`, `delegate`, `rdma`, `netlink`, `netns`, `kvp`) → `error` → the
//! leaves (`cni`, `device_id`, `lock_wait`, `log`, `arena`). docs/architecture.md tells
//! the flow of ADD and DEL and the invariants of the state directory.

pub mod admin;
pub mod admission;
pub mod arena;
pub mod cni;
pub mod commands;
pub mod config;
pub mod context;
pub mod delegate;
pub mod device;
pub mod device_id;
pub mod device_info;
pub mod error;
pub mod fault;
pub mod give_back;
pub mod kernel;
pub mod kubelet;
pub mod kvp;
pub mod lock_wait;
pub mod log;
pub mod netlink;
pub mod netns;
pub mod passthrough;
pub mod pod_addresses;
pub mod policy;
pub mod rdma;
pub mod recovery;
pub mod snapshot;
pub mod stale_claims;
pub mod state;
#[cfg(test)]
mod testing;
