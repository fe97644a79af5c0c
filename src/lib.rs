//! amd-host-device: a CNI plugin that hands a whole NIC to a pod through the reference
//! `host-device` plugin and gives it back intact.
//!
//! The tree is the architecture, from the top down (nothing imports upward):
//! - `verbs` — the CNI verbs and their stories; `admin` — the commands for a person;
//! - `config` — the network config a NAD writes, parsed under the node policy;
//! - `node` — what the node decides and keeps: policy, kubelet's checkpoint, the state
//!   store, device-info, the KVP pool;
//! - `host` — everything that touches the kernel, behind the `host::kernel::Kernel` trait;
//! - `error` — the typed errors and the one table mapping them to CNI codes;
//! - the leaves: `cni` (the protocol and the process skeleton), `device_id` (PCI and MAC
//!   addresses), `log`, `fault` (test-only crash points).
//!
//! docs/architecture.md tells the flow of ADD and DEL and the invariants of the state
//! directory.

pub mod admin;
pub mod cni;
pub mod config;
pub mod device_id;
pub mod error;
pub mod fault;
pub mod host;
pub mod log;
pub mod node;
pub mod verbs;
