//! amd-host-device: a CNI plugin that hands a whole NIC to a pod through the reference
//! `host-device` plugin and gives it back intact.
//!
//! The command flow: `main` → `commands` (the CNI verbs) or `admin` → `give_back`,
//! `pod_addresses`, `context` → the concerns below them (`kernel`, `state`, `config`,
//! `snapshot`, `device`, `delegate`, `rdma`, `netlink`, `netns`, `kvp`) → `error` → the
//! leaves (`cni`, `device_id`, `lock_wait`, `log`, `arena`). docs/architecture.md tells
//! the flow of ADD and DEL and the invariants of the state directory.

pub mod admin;
pub mod cni;
pub mod config;
pub mod device_id;
pub mod error;
pub mod fault;
pub mod host;
pub mod log;
pub mod node;
#[cfg(test)]
mod testing;
pub mod verbs;
