//! Whether a link that came back from a pod is the NIC that went there.
//!
//! A pod with `CAP_NET_ADMIN` in its own network namespace can rename the NIC away and
//! create a link of its own with the NIC's name, MAC and alias: every name- or MAC-based
//! lookup then finds the pod's link, and the host's addresses and routes put on it would
//! reach the pod. What a pod cannot forge on a link it creates: its parent device (a PCI
//! function's netdev is made by the driver, never by a netlink request), its kind (a link a
//! pod creates always has one: `veth`, `dummy`, `macvlan`, ...), and where its other end is
//! (a veth the pod made has its peer in the pod, or in another namespace the pod holds,
//! never on the host). Those are captured at ADD and compared on the way back. The
//! interface index is not among them: a pod chooses it when it creates a link.

use serde::{Deserialize, Serialize};

use crate::device_id::PciAddress;
use crate::host::device::Sysfs;
use crate::host::netlink::Link;

/// What the kernel says a link is, beyond what a pod can set on a link it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkIdentity {
    /// `IFLA_INFO_KIND`; none for a device a driver made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `IFLA_PARENT_DEV_NAME` (kernel 5.14+): the PCI function it sits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_device: Option<String>,
    /// Its other end (a veth's peer) was in another network namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub other_end_elsewhere: bool,
}

impl LinkIdentity {
    pub fn of(link: &Link) -> LinkIdentity {
        LinkIdentity {
            kind: link.kind.clone(),
            parent_device: link.parent_device.clone(),
            other_end_elsewhere: link.other_end_elsewhere,
        }
    }
}

/// Why `link`, on the host, is not the NIC captured as `recorded` (none: a state written
/// before identities were captured) on PCI function `pci`; `None` if nothing says so.
/// `sysfs` is the host's: a link's `device` there is its parent on any kernel.
pub fn why_not_the_nic(
    recorded: Option<&LinkIdentity>,
    pci: Option<&PciAddress>,
    sysfs: &Sysfs,
    link: &Link,
) -> Option<String> {
    if let Some(why) = recorded.and_then(|r| differs(r, &LinkIdentity::of(link))) {
        return Some(why);
    }
    let pci = pci?;
    let parent = link
        .parent_device
        .clone()
        .or_else(|| sysfs.pci_of_netdev(&link.name).map(|p| p.to_string()));
    match parent {
        Some(p) if p != pci.as_str() => Some(format!("it sits on {p}, not on {pci}")),
        _ => None,
    }
}

/// What tells `now` from the `recorded` identity, in words.
fn differs(recorded: &LinkIdentity, now: &LinkIdentity) -> Option<String> {
    if recorded.kind != now.kind {
        return Some(match (&recorded.kind, &now.kind) {
            (None, Some(k)) => {
                format!("it is a {k} link, which a pod can create; the NIC is a device")
            }
            (Some(r), Some(k)) => format!("it is a {k} link; the NIC is a {r} link"),
            (Some(r), None) => format!("it has no link kind; the NIC is a {r} link"),
            (None, None) => unreachable!("the kinds differ"),
        });
    }
    if recorded.parent_device.is_some() && recorded.parent_device != now.parent_device {
        return Some(format!(
            "it sits on {}; the NIC sits on {}",
            now.parent_device.as_deref().unwrap_or("no device"),
            recorded.parent_device.as_deref().unwrap_or_default()
        ));
    }
    if now.other_end_elsewhere && !recorded.other_end_elsewhere {
        return Some(
            "its other end is in another network namespace (a pod's); the NIC's was on the host"
                .to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: Option<&str>, parent: Option<&str>, elsewhere: bool) -> Link {
        Link {
            index: 7,
            name: "enp1s0".into(),
            kind: kind.map(str::to_owned),
            parent_device: parent.map(str::to_owned),
            other_end_elsewhere: elsewhere,
            ..Link::default()
        }
    }

    fn verdict(recorded: Option<&Link>, pci: Option<&str>, now: &Link) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let pci = pci.map(|p| PciAddress::parse(p).unwrap());
        let recorded = recorded.map(LinkIdentity::of);
        why_not_the_nic(
            recorded.as_ref(),
            pci.as_ref(),
            &Sysfs::new(dir.path()),
            now,
        )
    }

    #[test]
    fn the_nic_itself_passes() {
        let nic = link(None, Some("0000:5e:00.1"), false);
        assert_eq!(verdict(Some(&nic), Some("0000:5e:00.1"), &nic), None);
        let veth_nic = link(Some("veth"), None, false);
        assert_eq!(verdict(Some(&veth_nic), None, &veth_nic), None);
        // A state from before identities were captured: nothing to compare.
        assert_eq!(verdict(None, None, &veth_nic), None);
    }

    #[test]
    fn a_link_a_pod_created_is_told_from_the_nic() {
        let nic = link(None, Some("0000:5e:00.1"), false);
        let veth = link(Some("veth"), None, true);
        let why = verdict(Some(&nic), Some("0000:5e:00.1"), &veth).unwrap();
        assert!(why.contains("veth link"), "{why}");
        // Where the NIC is a veth itself (the test suite's NICs), its peer tells.
        let veth_nic = link(Some("veth"), None, false);
        let why = verdict(Some(&veth_nic), None, &veth).unwrap();
        assert!(why.contains("other end"), "{why}");
        let dummy = link(Some("dummy"), None, false);
        assert!(verdict(Some(&veth_nic), None, &dummy).is_some());
    }

    #[test]
    fn another_parent_device_is_another_nic_even_without_a_recorded_identity() {
        let other = link(None, Some("0000:5e:00.2"), false);
        let why = verdict(None, Some("0000:5e:00.1"), &other).unwrap();
        assert!(why.contains("0000:5e:00.2"), "{why}");
        let nic = link(None, Some("0000:5e:00.1"), false);
        assert!(verdict(Some(&nic), None, &link(None, None, false)).is_some());
    }
}
