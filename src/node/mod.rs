//! What the node decides and keeps: the admin's node policy, kubelet's device checkpoint,
//! the state store of attachments, device-info files and the Hyper-V KVP pool. May import
//! `host` (a record holds a NIC's snapshot), `error`, `cni` and the leaves, never `verbs`.

pub mod device_info;
pub mod kubelet;
pub mod kvp;
pub mod lock_wait;
pub mod policy;
pub mod state;
