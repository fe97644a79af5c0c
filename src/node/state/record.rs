//! What a state file holds (the attachment record and its schema) and the keys that name a
//! device in locks and claims.

use serde::{Deserialize, Serialize};

use crate::device_id::{MacAddress, PciAddress};
use crate::host::device::Selector;
use crate::host::snapshot::HostInterface;

/// The format of the state files this binary writes, and the newest it reads. Every release
/// so far wrote 1. It goes up only with a change an earlier binary would misread (a field
/// renamed, removed, or given another meaning); a field added with a default needs no new
/// format, since earlier binaries ignore what they do not know. A file in a newer format is
/// [`Error::NewerState`](crate::error::Error::NewerState): never salvaged, never acted on.
pub const SCHEMA_VERSION: u32 = 1;

/// Kubernetes identity from CNI_ARGS, for humans reading the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentState {
    pub schema: u32,
    pub container_id: String,
    /// CNI_IFNAME the runtime used (the key of this attachment, e.g. `net1`).
    pub ifname: String,
    pub network: String,
    pub cni_version: String,
    pub netns: String,
    pub selector: Selector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddress>,
    /// The device as it was on the host before ADD.
    pub host: HostInterface,
    /// The name the device has inside the pod.
    pub pod_ifname: String,
    /// Temporary host name given before the move when the host name was taken in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_name: Option<String>,
    /// RDMA devices bound to the netdev (moved with it in exclusive netns mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rdma_devices: Vec<String>,
    /// The userspace (DPDK) driver of a PCI function attached without a netdev: nothing was
    /// moved, the attachment only claims the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userspace_driver: Option<String>,
    #[serde(default)]
    pub pod: PodRef,
    pub created: String,
}

impl AttachmentState {
    /// The key that names the physical device in locks and claims: its PCI address when
    /// known, else its MAC, else its host name.
    pub fn device_key(&self) -> String {
        device_key(
            self.pci_address.as_ref(),
            self.host.mac.as_ref(),
            &self.host.name,
        )
    }

    /// Every key this attachment claims its device under: the device key, and the host name
    /// so that a second pod selecting the device by `device` hears who has it.
    pub fn claim_keys(&self) -> Vec<String> {
        let mut keys = vec![self.device_key()];
        let by_name = name_key(&self.host.name);
        if !keys.contains(&by_name) && !self.host.name.is_empty() {
            keys.push(by_name);
        }
        keys
    }

    /// The state file's name (what the symlink claims of earlier versions point at).
    pub fn file_name(&self) -> String {
        state_file_name(&self.container_id, &self.ifname)
    }
}

pub fn pci_key(pci: &PciAddress) -> String {
    format!("pci-{pci}")
}

pub fn device_key(pci: Option<&PciAddress>, mac: Option<&MacAddress>, name: &str) -> String {
    match (pci, mac) {
        (Some(p), _) => pci_key(p),
        (None, Some(m)) => format!("mac-{}", m.to_string().replace(':', "")),
        (None, None) => name_key(name),
    }
}

pub fn name_key(ifname: &str) -> String {
    format!("name-{ifname}")
}

/// `<containerID>-<ifname>.json`.
pub(super) fn state_file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}.json")
}

/// The identity fields of a state file, readable even from a newer schema.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Ids {
    pub(super) container_id: String,
    pub(super) ifname: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::testing::sample_state;

    #[test]
    fn device_keys_prefer_pci_then_mac() {
        let mut s = sample_state("c1", "net1");
        assert_eq!(s.device_key(), "pci-0000:5e:00.1");
        s.pci_address = None;
        assert_eq!(s.device_key(), "mac-020000000001");
        s.host.mac = None;
        assert_eq!(s.device_key(), "name-enp94s0f1");
    }

    #[test]
    fn the_host_name_is_claimed_too_unless_it_is_the_device_key() {
        let mut s = sample_state("c1", "net1");
        assert_eq!(s.claim_keys(), ["pci-0000:5e:00.1", "name-enp94s0f1"]);
        s.pci_address = None;
        s.host.mac = None;
        assert_eq!(s.claim_keys(), ["name-enp94s0f1"], "no key twice");
        s.pci_address = sample_state("c1", "net1").pci_address;
        s.host.name.clear();
        assert_eq!(s.claim_keys(), ["pci-0000:5e:00.1"], "no key for no name");
    }

    #[test]
    fn ids_are_read_from_a_newer_schema() {
        let ids: Ids = serde_json::from_str(
            r#"{"schema": 9, "containerId": "c-1", "ifname": "net-1", "unknown": {}}"#,
        )
        .unwrap();
        assert_eq!(
            (ids.container_id.as_str(), ids.ifname.as_str()),
            ("c-1", "net-1")
        );
        assert_eq!(sample_state("c-1", "net-1").file_name(), "c-1-net-1.json");
    }
}
