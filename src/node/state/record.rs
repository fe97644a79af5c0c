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
    /// Built by a DEL without state from the vendor plugin's entry for its PCI address, which
    /// it supersedes: the entry goes before the NIC moves (see `give_back`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted_vendor_entry: bool,
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

/// The longest file name the kernel takes (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// How much of a container id too long for a file name stays readable in it.
const READABLE_ID_PREFIX: usize = 128;

/// `<containerID>-<ifname>.json`, as long as that fits in a file name (any container id up
/// to 234 bytes: every id runtimes make, and every name earlier versions wrote). A longer
/// id (the spec sets no limit) is cut to its first 128 bytes and its FNV-1a 64-bit hash,
/// `<prefix>+<16 hex digits>-<ifname>.json`: a `+` is never part of a valid container id,
/// so such a name never equals the plain name of another id. Two long ids with the same
/// prefix and hash would share a name; `load` reads the ids inside the file, so one is never
/// taken for the other.
pub(super) fn state_file_name(container_id: &str, ifname: &str) -> String {
    let plain = format!("{container_id}-{ifname}.json");
    if plain.len() <= NAME_MAX {
        return plain;
    }
    let mut cut = READABLE_ID_PREFIX.min(container_id.len());
    while !container_id.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = fnv1a_64(container_id.as_bytes());
    format!("{}+{hash:016x}-{ifname}.json", &container_id[..cut])
}

/// FNV-1a, 64 bits: stable across versions and builds (the names it makes stay on disk
/// through upgrades), and small enough to keep in the crate.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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

    #[test]
    fn fnv1a_64_is_the_published_function() {
        // The reference test vectors of FNV-1a 64.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn ids_that_fit_keep_the_names_earlier_versions_wrote() {
        let sandbox = "a".repeat(64);
        assert_eq!(
            state_file_name(&sandbox, "net1"),
            format!("{sandbox}-net1.json")
        );
        // The longest plain name: 255 bytes.
        let longest = "b".repeat(255 - "-eth0.json".len());
        assert_eq!(
            state_file_name(&longest, "eth0"),
            format!("{longest}-eth0.json")
        );
    }

    #[test]
    fn longer_ids_get_a_readable_prefix_and_a_hash_that_fits() {
        let long = format!("{}x", "c".repeat(299));
        let other = format!("{}y", "c".repeat(299));
        let name = state_file_name(&long, "net1234567890ab");
        assert!(name.len() <= 255, "{} bytes", name.len());
        assert!(name.starts_with(&"c".repeat(128)), "{name}");
        assert!(name.ends_with("-net1234567890ab.json"), "{name}");
        assert_eq!(
            name,
            format!(
                "{}+{:016x}-net1234567890ab.json",
                "c".repeat(128),
                fnv1a_64(long.as_bytes())
            )
        );
        assert_ne!(name, state_file_name(&other, "net1234567890ab"));
        assert_eq!(name, state_file_name(&long, "net1234567890ab"), "stable");
        // One byte over the limit is enough to be hashed.
        let over = "d".repeat(256 - "-eth0.json".len());
        assert!(state_file_name(&over, "eth0").contains('+'));
    }
}
