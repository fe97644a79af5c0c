//! Device identities (PCI address, MAC) and PCI → netdev resolution through sysfs.
//!
//! The sysfs root is a parameter so unit tests can build a fake tree in a temp dir; end-to-end
//! tests bind-mount a fake tree over `/sys/bus/pci/devices` instead.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device_id::{MacAddress, PciAddress};
use crate::error::Error;
use crate::netlink::{Link, Links};

/// How the runtime asked us to find the device. Every selector given must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<MacAddress>,
}

impl Selector {
    /// ADD needs a device; DEL, CHECK, GC and STATUS work from the saved state (and the NAD a
    /// runtime passes to GC carries no per-pod deviceID).
    pub fn require_some(&self) -> Result<(), Error> {
        if *self == Selector::default() {
            return Err(Error::InvalidConfig(
                "no device selected: set \"deviceID\" (Multus injects it from the device plugin), \
                 \"device\" (interface name) or \"hwaddr\" (MAC address)"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.pci {
            parts.push(format!("PCI {p}"));
        }
        if let Some(d) = &self.device {
            parts.push(format!("device {d}"));
        }
        if let Some(m) = &self.hwaddr {
            parts.push(format!("hwaddr {m}"));
        }
        parts.join(", ")
    }
}

/// Drivers that take a function away from the kernel network stack (DPDK and friends).
const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Read-only view of sysfs under a configurable root (`/sys` in production).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// The directory this view reads (`/sys` in production).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn pci_device_dir(&self, addr: &PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr.as_str())
    }

    /// Interface names the kernel lists under the PCI function (`.../net/<ifname>`), sorted.
    pub fn netdevs_of(&self, addr: &PciAddress) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.pci_device_dir(addr).join("net"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The devices stacked on interface `ifname` of this namespace: its master (bridge,
    /// bond, team, VRF) and its children (VLAN, macvlan), from its `upper_*` links.
    pub fn uppers_of(&self, ifname: &str) -> Vec<String> {
        let mut uppers: Vec<String> = std::fs::read_dir(self.root.join("class/net").join(ifname))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix("upper_").map(str::to_owned))
            .collect();
        uppers.sort();
        uppers
    }

    /// The physical function of a virtual function (its `physfn` link); `None` for a PF.
    pub fn physfn_of(&self, addr: &PciAddress) -> Option<PciAddress> {
        let link = std::fs::read_link(self.pci_device_dir(addr).join("physfn")).ok()?;
        PciAddress::parse(link.file_name()?.to_str()?).ok()
    }

    /// The kernel driver bound to the function, if any.
    pub fn driver_of(&self, addr: &PciAddress) -> Option<String> {
        let link = std::fs::read_link(self.pci_device_dir(addr).join("driver")).ok()?;
        link.file_name()?.to_str().map(str::to_owned)
    }

    /// The one netdev of `addr`; `wanted` picks among several (a `device` selector).
    pub fn resolve_pci(&self, addr: &PciAddress, wanted: Option<&str>) -> Result<String, Error> {
        let names = self.netdevs_of(addr);
        match (names.as_slice(), wanted) {
            ([], _) => Err(self.explain_missing_netdev(addr)),
            (names, Some(w)) if names.iter().any(|n| n == w) => Ok(w.to_owned()),
            (names, Some(w)) => Err(Error::InvalidConfig(format!(
                "conflicting selectors: \"device\" is {w} but PCI device {addr} has {}",
                names.join(", ")
            ))),
            ([one], None) => Ok(one.clone()),
            (many, None) => Err(Error::InvalidConfig(format!(
                "PCI device {addr} has several interfaces ({}); set \"device\" to pick one",
                many.join(", ")
            ))),
        }
    }

    /// Why a PCI function has no netdev: absent, bound to a userspace driver, or unbound.
    fn explain_missing_netdev(&self, addr: &PciAddress) -> Error {
        let dir = self.pci_device_dir(addr);
        if !Path::new(&dir).exists() {
            return Error::device_not_found(format!("no PCI device {addr} on this host"));
        }
        Error::device_not_found(match self.driver_of(addr) {
            Some(d) if USERSPACE_DRIVERS.contains(&d.as_str()) => format!(
                "PCI device {addr} is bound to the userspace driver {d} and has no network \
                 interface; bind it to its kernel network driver to use it with amd-host-device"
            ),
            Some(d) => format!(
                "PCI device {addr} (driver {d}) has no network interface in this network namespace \
                 (already moved into a pod?)"
            ),
            None => {
                format!("PCI device {addr} is not bound to any driver and has no network interface")
            }
        })
    }
}

/// The host link a selector names, and its PCI address when it was selected by one.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub link: Link,
    pub pci: Option<PciAddress>,
}

/// Finds the one host interface `selector` names. A PCI address goes through sysfs, a name
/// straight to netlink, a MAC alone needs a link dump; every selector given must agree.
pub fn resolve(selector: &Selector, sysfs: &Sysfs, nl: &dyn Links) -> Result<Resolved, Error> {
    let name = match &selector.pci {
        Some(addr) => Some(sysfs.resolve_pci(addr, selector.device.as_deref())?),
        None => selector.device.clone(),
    };
    let link = match (&name, &selector.hwaddr) {
        (Some(n), _) => nl.link_by_name(n)?.ok_or_else(|| {
            Error::device_not_found(format!(
                "interface {n} ({}) not found on the host",
                selector.describe()
            ))
        })?,
        (None, Some(mac)) => nl.link_by_mac(mac)?.ok_or_else(|| {
            Error::device_not_found(format!("no interface with MAC {mac} on the host"))
        })?,
        (None, None) => {
            return Err(Error::InvalidConfig(
                "no device selected: set \"deviceID\", \"device\" or \"hwaddr\"".into(),
            ))
        }
    };
    if let Some(mac) = &selector.hwaddr {
        if link.mac.as_ref() != Some(mac) {
            return Err(Error::InvalidConfig(format!(
                "conflicting selectors: {} has MAC {} but \"hwaddr\" is {mac}",
                link.name,
                link.mac
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "none".into())
            )));
        }
    }
    Ok(Resolved {
        link,
        pci: selector.pci.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeSysfs {
        dir: tempfile::TempDir,
    }

    impl FakeSysfs {
        fn new() -> FakeSysfs {
            FakeSysfs {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn function(&self, addr: &str, netdevs: &[&str], driver: Option<&str>) -> &Self {
            let dev = self.dir.path().join("bus/pci/devices").join(addr);
            std::fs::create_dir_all(&dev).unwrap();
            for n in netdevs {
                std::fs::create_dir_all(dev.join("net").join(n)).unwrap();
            }
            if let Some(d) = driver {
                let drv = self.dir.path().join("bus/pci/drivers").join(d);
                std::fs::create_dir_all(&drv).unwrap();
                std::os::unix::fs::symlink(&drv, dev.join("driver")).unwrap();
            }
            self
        }
        fn sysfs(&self) -> Sysfs {
            Sysfs::new(self.dir.path())
        }
    }

    fn pci(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    #[test]
    fn resolves_the_single_netdev_of_a_function() {
        let fake = FakeSysfs::new();
        fake.function("0000:5e:00.1", &["enp94s0f1"], Some("ionic"));
        let sys = fake.sysfs();
        assert_eq!(
            sys.resolve_pci(&pci("0000:5e:00.1"), None).unwrap(),
            "enp94s0f1"
        );
        assert_eq!(
            sys.driver_of(&pci("0000:5e:00.1")).as_deref(),
            Some("ionic")
        );
    }

    #[test]
    fn several_netdevs_need_a_device_selector() {
        let fake = FakeSysfs::new();
        fake.function("0000:5e:00.0", &["ib0", "ib1"], Some("mlx5_core"));
        let sys = fake.sysfs();
        let a = pci("0000:5e:00.0");
        let err = sys.resolve_pci(&a, None).unwrap_err();
        assert_eq!(err.code() as u32, 7);
        assert!(err.to_string().contains("ib0, ib1"), "{err}");
        assert_eq!(sys.resolve_pci(&a, Some("ib1")).unwrap(), "ib1");
        let err = sys.resolve_pci(&a, Some("eth9")).unwrap_err();
        assert!(err.to_string().contains("conflicting selectors"), "{err}");
    }

    #[test]
    fn a_missing_netdev_is_explained() {
        let fake = FakeSysfs::new();
        fake.function("0000:5e:00.2", &[], Some("vfio-pci"));
        fake.function("0000:5e:00.3", &[], None);
        fake.function("0000:5e:00.4", &[], Some("ionic"));
        let sys = fake.sysfs();
        let msg = |a: &str| {
            let e = sys.resolve_pci(&pci(a), None).unwrap_err();
            assert_eq!(e.code() as u32, 100);
            e.to_string()
        };
        assert!(msg("0000:5e:00.2").contains("userspace driver vfio-pci"));
        assert!(msg("0000:5e:00.3").contains("not bound to any driver"));
        assert!(msg("0000:5e:00.4").contains("driver ionic"));
        assert!(msg("0000:99:00.0").contains("no PCI device 0000:99:00.0"));
    }

    #[test]
    fn uppers_are_the_upper_links_of_the_interface() {
        let fake = FakeSysfs::new();
        let nic = fake.dir.path().join("class/net/enp1s0");
        std::fs::create_dir_all(&nic).unwrap();
        for entry in ["upper_br0", "upper_enp1s0.100", "master", "mtu"] {
            std::fs::write(nic.join(entry), "").unwrap();
        }
        assert_eq!(fake.sysfs().uppers_of("enp1s0"), ["br0", "enp1s0.100"]);
        assert!(fake.sysfs().uppers_of("eth9").is_empty());
    }
}
