//! Which device the device plugin gave to which pod, from kubelet's device-manager
//! checkpoint (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`, the file
//! Multus reads to inject `deviceID`), and the check that a NIC moves only into the pod it
//! was allocated to.
//!
//! The checkpoint is JSON: `Data.PodDeviceEntries[]` with `PodUID`, `ContainerName`,
//! `ResourceName` and `DeviceIDs` (a map from NUMA node to a list of ids since Kubernetes
//! 1.20, a plain list before), and `Data.RegisteredDevices` (resource → ids). `Checksum` is
//! kubelet's business and ignored. Without the file (podman, cnitool, a plain containerd
//! host) there is no allocation to check.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::device_id::{DeviceError, PciAddress};
use crate::error::Error;

type Result<T> = std::result::Result<T, Error>;

/// The part of the checkpoint we read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub allocations: Vec<Allocation>,
    /// Resource name → the device ids its plugin registered.
    pub registered: BTreeMap<String, Vec<String>>,
}

/// Devices of one resource given to one container of one pod.
#[derive(Debug, PartialEq, Eq)]
pub struct Allocation {
    pub pod_uid: String,
    pub container: String,
    pub resource: String,
    pub device_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Data")]
    data: WireData,
}

#[derive(Deserialize)]
struct WireData {
    #[serde(rename = "PodDeviceEntries", default)]
    entries: Option<Vec<WireEntry>>,
    #[serde(rename = "RegisteredDevices", default)]
    registered: Option<BTreeMap<String, Option<Vec<String>>>>,
}

#[derive(Deserialize)]
struct WireEntry {
    #[serde(rename = "PodUID")]
    pod_uid: String,
    #[serde(rename = "ContainerName", default)]
    container: String,
    #[serde(rename = "ResourceName")]
    resource: String,
    #[serde(rename = "DeviceIDs", default)]
    device_ids: Option<DeviceIds>,
}

/// `DeviceIDs` before and since Kubernetes 1.20.
#[derive(Deserialize)]
#[serde(untagged)]
enum DeviceIds {
    PerNuma(BTreeMap<String, Option<Vec<String>>>),
    Plain(Vec<String>),
}

impl DeviceIds {
    fn flatten(self) -> Vec<String> {
        match self {
            DeviceIds::Plain(ids) => ids,
            DeviceIds::PerNuma(by_node) => by_node.into_values().flatten().flatten().collect(),
        }
    }
}

impl Checkpoint {
    /// The checkpoint at `path`; `None` if there is none (not a kubelet node). One that
    /// cannot be read or parsed is an error: the check fails closed.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("read kubelet's device checkpoint {}", path.display()),
                    e,
                ))
            }
        };
        Checkpoint::parse(&bytes).map(Some).map_err(|why| {
            Error::Decode(format!(
                "kubelet's device checkpoint {} cannot be parsed ({why}); refusing to attach \
                 a NIC whose allocation cannot be checked",
                path.display()
            ))
        })
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let allocations = wire
            .data
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| Allocation {
                pod_uid: e.pod_uid,
                container: e.container,
                resource: e.resource,
                device_ids: e.device_ids.map(DeviceIds::flatten).unwrap_or_default(),
            })
            .collect();
        let registered = wire
            .data
            .registered
            .unwrap_or_default()
            .into_iter()
            .map(|(resource, ids)| (resource, ids.unwrap_or_default()))
            .collect();
        Ok(Checkpoint {
            allocations,
            registered,
        })
    }

    /// The resource whose plugin registered device `pci`.
    pub fn resource_of(&self, pci: &PciAddress) -> Option<&str> {
        self.registered
            .iter()
            .find(|(_, ids)| ids.iter().any(|id| names(id, pci)))
            .map(|(resource, _)| resource.as_str())
    }

    /// The pods `pci` is allocated to (one, normally).
    pub fn pods_holding(&self, pci: &PciAddress) -> Vec<&str> {
        self.allocations
            .iter()
            .filter(|a| a.device_ids.iter().any(|id| names(id, pci)))
            .map(|a| a.pod_uid.as_str())
            .collect()
    }
}

/// Whether device id `id` is the PCI function `pci` (ids are compared in canonical form).
fn names(id: &str, pci: &PciAddress) -> bool {
    PciAddress::parse(id).is_ok_and(|p| p == *pci)
}

/// How ADD asks: the PCI address selected (if any), the pod's UID from `CNI_ARGS`, and
/// whether the node policy lets a selection that cannot be tied to an allocation through.
pub struct Selection<'a> {
    pub pci: Option<&'a PciAddress>,
    pub pod_uid: Option<&'a str>,
    pub allow_unverified: bool,
}

/// Refuses a NIC the device plugin did not allocate to this pod (code 106). `Ok(Some(why))`
/// is a selection the policy lets through unverified, for the log.
pub fn check_allocation(checkpoint: &Checkpoint, ask: &Selection) -> Result<Option<String>> {
    let unverified = |why: String| {
        if ask.allow_unverified {
            Ok(Some(why))
        } else {
            Err(Error::from(DeviceError::NotAllocated(format!(
                "{why}; on a Kubernetes node a NIC moves only into the pod its device plugin \
                 allocated it to (the node policy's \"allowUnverifiedSelection\" lifts this)"
            ))))
        }
    };
    let Some(pci) = ask.pci else {
        return unverified("a NIC selected by name or MAC cannot be tied to an allocation".into());
    };
    let Some(resource) = checkpoint.resource_of(pci) else {
        return unverified(format!(
            "PCI device {pci} is not a device of any resource registered with kubelet"
        ));
    };
    let holders = checkpoint.pods_holding(pci);
    let Some(uid) = ask.pod_uid.filter(|u| !u.is_empty()) else {
        // Never another pod's NIC, whatever the policy lets through.
        if !holders.is_empty() {
            return Err(DeviceError::NotAllocated(format!(
                "PCI device {pci} ({resource}) is allocated to pod {}, and CNI_ARGS has no \
                 K8S_POD_UID to show this is that pod",
                holders.join(", pod ")
            ))
            .into());
        }
        return unverified(format!(
            "PCI device {pci} ({resource}) cannot be tied to this pod: CNI_ARGS has no K8S_POD_UID"
        ));
    };
    if holders.contains(&uid) {
        return Ok(None);
    }
    let held_by = if holders.is_empty() {
        "no pod".to_owned()
    } else {
        format!("pod {}", holders.join(", pod "))
    };
    Err(DeviceError::NotAllocated(format!(
        "PCI device {pci} ({resource}) is not allocated to pod {uid}: kubelet gave it to {held_by}"
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pci(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    /// Pod `uid-a` holds 0000:5e:00.1 of amd.com/nic; 0000:5e:00.2 is registered, free.
    fn checkpoint(device_ids: serde_json::Value) -> Checkpoint {
        let doc = json!({
            "Data": {
                "PodDeviceEntries": [{
                    "PodUID": "uid-a", "ContainerName": "c", "ResourceName": "amd.com/nic",
                    "DeviceIDs": device_ids, "AllocResp": "CgA="
                }],
                "RegisteredDevices": {"amd.com/nic": ["0000:5e:00.1", "0000:5E:00.2"], "other": null}
            },
            "Checksum": 12345
        });
        Checkpoint::parse(doc.to_string().as_bytes()).unwrap()
    }

    fn ask<'a>(p: &'a PciAddress, uid: Option<&'a str>) -> Selection<'a> {
        Selection {
            pci: Some(p),
            pod_uid: uid,
            allow_unverified: false,
        }
    }

    fn code(r: Result<Option<String>>) -> u32 {
        r.unwrap_err().code() as u32
    }

    #[test]
    fn reads_both_device_id_shapes() {
        for ids in [
            json!({"0": ["0000:5e:00.1"], "1": null}),
            json!(["0000:5e:00.1"]),
        ] {
            let c = checkpoint(ids);
            assert_eq!(c.allocations[0].device_ids, ["0000:5e:00.1"]);
            assert_eq!(c.allocations[0].pod_uid, "uid-a");
            assert_eq!(c.resource_of(&pci("0000:5e:00.2")), Some("amd.com/nic"));
            assert_eq!(c.pods_holding(&pci("0000:5e:00.1")), ["uid-a"]);
        }
        let empty = Checkpoint::parse(br#"{"Data": {}}"#).unwrap();
        assert_eq!(empty, Checkpoint::default());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [&b""[..], b"{", b"[]", br#"{"Data": 1}"#, br#"{"Data": {"PodDeviceEntries": [{}]}}"#,
            br#"{"Data": {"PodDeviceEntries": [{"PodUID": "u", "ResourceName": "r", "DeviceIDs": 7}]}}"#] {
            assert!(Checkpoint::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_missing_file_is_no_kubelet_node_and_a_bad_one_fails_closed() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(&tmp.path().join("none")).unwrap(), None);
        let bad = tmp.path().join("kubelet_internal_checkpoint");
        std::fs::write(&bad, "{not json").unwrap();
        let e = Checkpoint::load(&bad).unwrap_err();
        assert!(e.to_string().contains("cannot be parsed"), "{e}");
    }

    #[test]
    fn only_the_pod_it_was_allocated_to_gets_a_nic() {
        let c = checkpoint(json!({"0": ["0000:5e:00.1"]}));
        let mine = pci("0000:5e:00.1");
        assert_eq!(
            check_allocation(&c, &ask(&mine, Some("uid-a"))).unwrap(),
            None
        );
        let e = check_allocation(&c, &ask(&mine, Some("uid-b"))).unwrap_err();
        assert_eq!(e.code() as u32, 106);
        assert!(
            e.to_string()
                .contains("not allocated to pod uid-b: kubelet gave it to pod uid-a"),
            "{e}"
        );
        let free = pci("0000:5e:00.2");
        let e = check_allocation(&c, &ask(&free, Some("uid-a"))).unwrap_err();
        assert!(e.to_string().contains("kubelet gave it to no pod"), "{e}");
    }

    #[test]
    fn selections_that_cannot_be_tied_need_the_policy() {
        let c = checkpoint(json!(["0000:5e:00.1"]));
        let unknown = pci("0000:99:00.0");
        let mine = pci("0000:5e:00.1");
        let free = pci("0000:5e:00.2");
        let cases = [
            Selection {
                pci: None,
                pod_uid: Some("uid-a"),
                allow_unverified: false,
            },
            ask(&unknown, Some("uid-a")),
            ask(&free, None),
        ];
        for mut case in cases {
            assert_eq!(code(check_allocation(&c, &case)), 106);
            case.allow_unverified = true;
            assert!(
                check_allocation(&c, &case).unwrap().is_some(),
                "let through, with a reason"
            );
        }
        // The policy never lets another pod's NIC through, with or without a pod UID.
        let other = Selection {
            allow_unverified: true,
            ..ask(&mine, Some("uid-b"))
        };
        assert_eq!(code(check_allocation(&c, &other)), 106);
        let anonymous = Selection {
            allow_unverified: true,
            ..ask(&mine, None)
        };
        assert_eq!(code(check_allocation(&c, &anonymous)), 106);
    }
}
