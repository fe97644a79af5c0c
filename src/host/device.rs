//! Which NIC a selector names: a PCI address, an auxiliary-bus device (a sub-function) or a
//! kernel device path resolved to its netdev through sysfs, or a name or MAC asked of netlink.
//!
//! The sysfs root is a parameter so unit tests can build a fake tree in a temp dir; end-to-end
//! tests bind-mount a fake tree over `/sys/bus/pci/devices` instead.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device_id::{MacAddress, PciAddress};
use crate::error::Error;
use crate::host::netlink::{Link, Links};

/// How the runtime asked us to find the device. Every selector given must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<MacAddress>,
    /// An auxiliary-bus device (`/sys/bus/auxiliary/devices/<id>`), given as `deviceID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auxiliary: Option<String>,
    /// host-device's `kernelpath`: the device's path under `/sys/devices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_path: Option<String>,
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
        if let Some(a) = &self.auxiliary {
            parts.push(format!("auxiliary device {a}"));
        }
        if let Some(k) = &self.kernel_path {
            parts.push(format!("kernel path {k}"));
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

    /// Every PCI function of the host, by address.
    pub fn pci_functions(&self) -> Vec<PciAddress> {
        sorted_names(&self.root.join("bus/pci/devices"))
            .iter()
            .filter_map(|name| PciAddress::parse(name).ok())
            .collect()
    }

    /// Whether the function is a network controller (PCI class `0x02xxxx`, Ethernet,
    /// InfiniBand and the rest). A function whose `class` cannot be read counts when the
    /// kernel lists a network interface under it.
    pub fn is_network_function(&self, addr: &PciAddress) -> bool {
        let class = std::fs::read_to_string(self.pci_device_dir(addr).join("class"));
        match class.ok().and_then(|c| parse_class(&c)) {
            Some(class) => class >> 16 == 0x02,
            None => !self.netdevs_of(addr).is_empty(),
        }
    }

    /// Interface names the kernel lists under the PCI function (`.../net/<ifname>`), sorted.
    pub fn netdevs_of(&self, addr: &PciAddress) -> Vec<String> {
        sorted_names(&self.pci_device_dir(addr).join("net"))
    }

    /// Interfaces on a child device of the function rather than on the function itself
    /// (`<pci>/virtio0/net/eth0`, a virtio NIC): a PCI address does not resolve to them.
    pub fn netdevs_below(&self, addr: &PciAddress) -> Vec<String> {
        let dir = self.pci_device_dir(addr);
        let mut names: Vec<String> = sorted_names(&dir)
            .iter()
            .filter(|child| *child != "net" && *child != "driver" && *child != "physfn")
            .flat_map(|child| sorted_names(&dir.join(child).join("net")))
            .collect();
        names.sort();
        names
    }

    /// The devices stacked on interface `ifname` of this namespace: its master (bridge,
    /// bond, team, VRF) and its children (VLAN, macvlan), from its `upper_*` links.
    pub fn uppers_of(&self, ifname: &str) -> Vec<String> {
        // A netdev's directory has ~35 attribute entries and rarely any `upper_` link: pick
        // those out before anything is allocated, converted or sorted (this runs on every ADD).
        let mut uppers: Vec<String> = std::fs::read_dir(self.root.join("class/net").join(ifname))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let upper = name.as_bytes().strip_prefix(b"upper_")?;
                std::str::from_utf8(upper).ok().map(str::to_owned)
            })
            .collect();
        uppers.sort();
        uppers
    }

    /// Interface names the kernel lists under auxiliary device `id` (a sub-function), sorted;
    /// `None` if there is no such device.
    pub fn netdevs_of_auxiliary(&self, id: &str) -> Option<Vec<String>> {
        let dir = self.root.join("bus/auxiliary/devices").join(id);
        dir.exists().then(|| sorted_names(&dir.join("net")))
    }

    /// The interface whose `device` is the kernel device at `kernel_path` (`/sys/devices/...`),
    /// found the way host-device does: through every `/sys/class/net/*/device` link.
    pub fn netdev_of_kernel_path(&self, kernel_path: &str) -> Option<String> {
        let wanted = self
            .root
            .join(kernel_path.strip_prefix("/sys/")?)
            .canonicalize()
            .ok()?;
        sorted_names(&self.root.join("class/net"))
            .into_iter()
            .find(|name| {
                let device = self.root.join("class/net").join(name).join("device");
                device.canonicalize().is_ok_and(|d| d == wanted)
            })
    }

    /// The userspace driver (DPDK's) a function without netdev is bound to, if it is.
    pub fn userspace_driver_of(&self, addr: &PciAddress) -> Option<String> {
        let driver = self.driver_of(addr)?;
        (USERSPACE_DRIVERS.contains(&driver.as_str()) && self.netdevs_of(addr).is_empty())
            .then_some(driver)
    }

    /// The PCI function interface `ifname` of this namespace sits on, if it sits on one (its
    /// `device` link ends in a PCI address).
    pub fn pci_of_netdev(&self, ifname: &str) -> Option<PciAddress> {
        pci_address_linked_from(&self.root.join("class/net").join(ifname).join("device"))
    }

    /// The physical function of a virtual function (its `physfn` link); `None` for a PF.
    pub fn physfn_of(&self, addr: &PciAddress) -> Option<PciAddress> {
        pci_address_linked_from(&self.pci_device_dir(addr).join("physfn"))
    }

    /// The kernel driver bound to the function, if any.
    pub fn driver_of(&self, addr: &PciAddress) -> Option<String> {
        link_target_name(&self.pci_device_dir(addr).join("driver"))
    }

    /// The one netdev of `addr`; `wanted` picks among several (a `device` selector).
    pub fn resolve_pci(&self, addr: &PciAddress, wanted: Option<&str>) -> Result<String, Error> {
        let names = self.netdevs_of(addr);
        if names.is_empty() {
            return Err(self.explain_missing_netdev(addr));
        }
        pick(&names, wanted, &format!("PCI device {addr}"))
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
    let name = name_from_sysfs(selector, sysfs)?.or_else(|| selector.device.clone());
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

/// The interface name sysfs gives for the PCI, auxiliary or kernel-path selector, checked
/// against every other selector given.
fn name_from_sysfs(selector: &Selector, sysfs: &Sysfs) -> Result<Option<String>, Error> {
    let wanted = selector.device.as_deref();
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(addr) = &selector.pci {
        names.push((
            format!("PCI device {addr}"),
            sysfs.resolve_pci(addr, wanted)?,
        ));
    }
    if let Some(id) = &selector.auxiliary {
        let netdevs = sysfs.netdevs_of_auxiliary(id).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "\"deviceID\" {id:?} is not a PCI address, and no auxiliary device has that name"
            ))
        })?;
        names.push((
            format!("auxiliary device {id}"),
            pick(&netdevs, wanted, id)?,
        ));
    }
    if let Some(path) = &selector.kernel_path {
        let name = sysfs.netdev_of_kernel_path(path).ok_or_else(|| {
            Error::device_not_found(format!("no interface has the kernel device {path}"))
        })?;
        names.push((format!("kernel path {path}"), name));
    }
    if let (Some(w), Some((what, other))) = (
        wanted,
        names.iter().find(|(_, n)| Some(n.as_str()) != wanted),
    ) {
        return Err(Error::InvalidConfig(format!(
            "conflicting selectors: \"device\" is {w} but {what} is {other}"
        )));
    }
    match names.as_slice() {
        [] => Ok(None),
        [(_, name)] => Ok(Some(name.clone())),
        [(a, first), rest @ ..] => match rest.iter().find(|(_, n)| n != first) {
            Some((b, other)) => Err(Error::InvalidConfig(format!(
                "conflicting selectors: {a} is {first} but {b} is {other}"
            ))),
            None => Ok(Some(first.clone())),
        },
    }
}

/// The one netdev of a device (`wanted` picks among several).
fn pick(netdevs: &[String], wanted: Option<&str>, what: &str) -> Result<String, Error> {
    match (netdevs, wanted) {
        ([], _) => Err(Error::device_not_found(format!(
            "{what} has no network interface"
        ))),
        (_, Some(w)) if netdevs.iter().any(|n| n == w) => Ok(w.to_owned()),
        (_, Some(w)) => Err(Error::InvalidConfig(format!(
            "conflicting selectors: \"device\" is {w} but {what} has {}",
            netdevs.join(", ")
        ))),
        ([one], None) => Ok(one.clone()),
        (many, None) => Err(Error::InvalidConfig(format!(
            "{what} has several interfaces ({}); set \"device\" to pick one",
            many.join(", ")
        ))),
    }
}

/// A PCI class as sysfs writes it: `0x020000`.
fn parse_class(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

/// The last part of what symlink `link` points to: sysfs names a device's driver, PCI
/// function or physical function that way.
fn link_target_name(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    target.file_name()?.to_str().map(str::to_owned)
}

/// The PCI function symlink `link` points to, if it points to one.
fn pci_address_linked_from(link: &Path) -> Option<PciAddress> {
    PciAddress::parse(&link_target_name(link)?).ok()
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
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
    fn network_functions_are_those_of_class_0x02() {
        let fake = FakeSysfs::new();
        fake.function("0000:5e:00.0", &["enp94s0f0"], Some("ionic"));
        fake.function("0000:5e:00.1", &[], Some("vfio-pci"));
        fake.function("0000:c1:00.0", &[], Some("amdgpu"));
        fake.function("0000:c2:00.0", &[], None);
        let devices = fake.dir.path().join("bus/pci/devices");
        std::fs::write(devices.join("0000:5e:00.1/class"), "0x020000\n").unwrap();
        std::fs::write(devices.join("0000:c1:00.0/class"), "0x038000\n").unwrap();
        std::fs::create_dir_all(devices.join("not-a-pci-address")).unwrap();
        let sys = fake.sysfs();
        assert_eq!(
            sys.pci_functions(),
            [
                "0000:5e:00.0",
                "0000:5e:00.1",
                "0000:c1:00.0",
                "0000:c2:00.0"
            ]
            .map(pci)
        );
        let network: Vec<PciAddress> = sys
            .pci_functions()
            .into_iter()
            .filter(|p| sys.is_network_function(p))
            .collect();
        // 5e:00.0 has no class file but a netdev; c2:00.0 has neither.
        assert_eq!(network, ["0000:5e:00.0", "0000:5e:00.1"].map(pci));
        std::fs::create_dir_all(devices.join("0000:5e:00.1/virtio0/net/eth0")).unwrap();
        assert_eq!(sys.netdevs_below(&pci("0000:5e:00.1")), ["eth0"]);
        assert!(sys.netdevs_of(&pci("0000:5e:00.1")).is_empty());
        assert!(sys.netdevs_below(&pci("0000:5e:00.0")).is_empty());
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

    #[test]
    fn kernel_paths_resolve_through_the_device_links_of_the_interfaces() {
        let fake = FakeSysfs::new();
        let root = fake.dir.path();
        let device = root.join("devices/pci0000:00/0000:00:1f.6");
        std::fs::create_dir_all(&device).unwrap();
        for (name, target) in [
            ("eno1", device.clone()),
            ("eno2", root.join("devices/other")),
        ] {
            std::fs::create_dir_all(&target).unwrap();
            let net = root.join("class/net").join(name);
            std::fs::create_dir_all(&net).unwrap();
            std::os::unix::fs::symlink(&target, net.join("device")).unwrap();
        }
        let sys = fake.sysfs();
        assert_eq!(
            sys.netdev_of_kernel_path("/sys/devices/pci0000:00/0000:00:1f.6")
                .as_deref(),
            Some("eno1")
        );
        assert_eq!(
            sys.netdev_of_kernel_path("/sys/devices/pci0000:00/0000:00:1f.7"),
            None
        );
        let selector = Selector {
            kernel_path: Some("/sys/devices/pci0000:00/0000:00:1f.6".into()),
            device: Some("eno2".into()),
            ..Selector::default()
        };
        let err = name_from_sysfs(&selector, &sys).unwrap_err();
        assert!(err.to_string().contains("conflicting selectors"), "{err}");
    }

    #[test]
    fn auxiliary_devices_resolve_through_their_net_entry() {
        let fake = FakeSysfs::new();
        let sf = fake
            .dir
            .path()
            .join("bus/auxiliary/devices/mlx5_core.sf.2/net/enp3s0f0s2");
        std::fs::create_dir_all(sf).unwrap();
        let sys = fake.sysfs();
        let selector = |id: &str| Selector {
            auxiliary: Some(id.into()),
            ..Selector::default()
        };
        assert_eq!(
            name_from_sysfs(&selector("mlx5_core.sf.2"), &sys)
                .unwrap()
                .as_deref(),
            Some("enp3s0f0s2")
        );
        let err = name_from_sysfs(&selector("mlx5_core.sf.9"), &sys).unwrap_err();
        assert_eq!(err.code() as u32, 7);
        assert!(
            err.to_string()
                .contains("no auxiliary device has that name"),
            "{err}"
        );
    }

    #[test]
    fn a_netdev_knows_the_pci_function_it_sits_on() {
        let fake = FakeSysfs::new();
        let root = fake.dir.path();
        let function = root.join("devices/pci0000:00/0000:5e:00.1");
        std::fs::create_dir_all(&function).unwrap();
        for (name, target) in [
            ("enp94s0f1", function),
            ("veth0", root.join("devices/virtual/net/veth0")),
        ] {
            std::fs::create_dir_all(&target).unwrap();
            let net = root.join("class/net").join(name);
            std::fs::create_dir_all(&net).unwrap();
            std::os::unix::fs::symlink(&target, net.join("device")).unwrap();
        }
        let sys = fake.sysfs();
        assert_eq!(sys.pci_of_netdev("enp94s0f1"), Some(pci("0000:5e:00.1")));
        assert_eq!(sys.pci_of_netdev("veth0"), None);
        assert_eq!(sys.pci_of_netdev("lo"), None);
    }
}
