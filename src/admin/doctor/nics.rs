//! The NICs of the host: every PCI network function (class 0x02), its driver, its
//! interface, and whether ADD would take it under the current policy: the same guards ADD
//! runs (`verbs::admission`), over the one dump of the host's links and routes.
//!
//! A NIC ADD would refuse is a failure only where pods will be given it (kubelet's device
//! plugin offers it); the host's own uplink, which no one offers, is fine. Without a
//! checkpoint nothing says which NICs pods get, so a refusal is a warning.

use crate::device_id::PciAddress;
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::host::netlink::Link;
use crate::host::snapshot::HostInterface;
use crate::node::kubelet::Checkpoint;
use crate::node::policy::NodePolicy;
use crate::verbs::admission::{ensure_not_stacked, ensure_not_the_uplink};

use super::report::{Report, Status};
use super::state::{where_is, Seen};

/// Whether kubelet's device plugin gives a function to pods.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Offered {
    /// No checkpoint: any NAD may select it.
    Unknown,
    No,
    /// Registered under this resource (or allocated to a pod).
    Yes(String),
}

pub(super) fn check(
    report: &mut Report,
    kernel: &dyn Kernel,
    policy: &NodePolicy,
    checkpoint: Option<&Checkpoint>,
    seen: &[Seen],
) {
    let sysfs = kernel.sysfs();
    let functions: Vec<PciAddress> = sysfs
        .pci_functions()
        .into_iter()
        .filter(|p| sysfs.is_network_function(p))
        .collect();
    if functions.is_empty() {
        report.warn(
            "nics",
            format!(
                "no PCI network function under {}/bus/pci/devices",
                sysfs.root().display()
            ),
            "nothing to attach on this node; check that the NICs' drivers are loaded",
        );
        return;
    }
    for pci in &functions {
        let offered = match checkpoint {
            None => Offered::Unknown,
            Some(c) => match c.resource_of(pci) {
                Some(r) => Offered::Yes(r.to_owned()),
                None if !c.pods_holding(pci).is_empty() => Offered::Yes("allocated".into()),
                None => Offered::No,
            },
        };
        let (status, detail, fix) = verdict(kernel, policy, pci, &offered, seen);
        report.push(format!("nic {pci}"), status, detail, fix);
    }
}

type Verdict = (Status, String, Option<String>);

fn verdict(
    kernel: &dyn Kernel,
    policy: &NodePolicy,
    pci: &PciAddress,
    offered: &Offered,
    seen: &[Seen],
) -> Verdict {
    let sysfs = kernel.sysfs();
    let driver = sysfs.driver_of(pci);
    let offer = match offered {
        Offered::Yes(r) if r != "allocated" => format!("; offered to pods as {r}"),
        Offered::Yes(_) => "; allocated to a pod".into(),
        Offered::No => "; not offered to pods by kubelet".into(),
        Offered::Unknown => String::new(),
    };
    let holder = seen
        .iter()
        .find(|s| s.state.pci_address.as_ref() == Some(pci));
    if let Some(s) = holder {
        let by = match s.vendor {
            true => "the vendor plugin's attachment".to_owned(),
            false => format!("attachment {}/{}", s.state.container_id, s.state.ifname),
        };
        return (
            Status::Ok,
            format!(
                "{} (driver {}): held by {by}, {}{offer}",
                or_dash(&s.state.host.name),
                driver.as_deref().unwrap_or("none"),
                where_is(&s.location)
            ),
            None,
        );
    }
    let Some(driver) = driver else {
        return refused(
            offered,
            format!("no driver bound: ADD fails (code 100){offer}"),
            format!("bind {pci} to its network driver"),
        );
    };
    if sysfs.userspace_driver_of(pci).is_some() {
        return (
            Status::Ok,
            format!(
                "bound to the userspace driver {driver}: ADD claims it without moving \
                 anything (DPDK){offer}"
            ),
            None,
        );
    }
    let mut netdevs = sysfs.netdevs_of(pci);
    let nested = netdevs.is_empty();
    if nested {
        netdevs = sysfs.netdevs_below(pci);
    }
    let name = match netdevs.as_slice() {
        [] => {
            return refused(
                offered,
                format!(
                    "driver {driver} but no network interface in this netns (in a pod that \
                     is not ours?): ADD fails (code 100){offer}"
                ),
                format!(
                    "find where its interface went (ip -all netns exec ip -br link), or \
                     rebind {pci} to its driver"
                ),
            )
        }
        [one] => one,
        many => {
            return (
                Status::Warn,
                format!(
                    "{} (driver {driver}): several interfaces, a NAD must set \"device\" to \
                     pick one{offer}",
                    many.join(", ")
                ),
                Some("set \"device\" in the NADs that select it".into()),
            )
        }
    };
    let host = match kernel.host() {
        Ok(h) => h,
        Err(e) => return (Status::Warn, e.to_string(), None),
    };
    let Some(link) = host.link_by_name(name).ok().flatten() else {
        return refused(
            offered,
            format!("sysfs lists {name} (driver {driver}) but the host has no such link{offer}"),
            "check the host's links (ip -br link)".into(),
        );
    };
    let nic = as_add_sees_it(host, &link);
    let shown = format!(
        "{name} (driver {driver}, {})",
        if link.up { "up" } else { "down" }
    );
    match guards(kernel, policy, &nic) {
        // The interface hangs off a child device (virtio): only "device" finds it.
        Ok(()) if nested => (
            Status::Warn,
            format!(
                "{shown}, on a child device of the function: a PCI \"deviceID\" finds no \
                 interface (code 100); ADD would accept it selected by \"device\"{offer}"
            ),
            Some(format!("select it by \"device\": \"{name}\"")),
        ),
        Ok(()) => (
            Status::Ok,
            format!("{shown}: ADD would accept it{offer}"),
            None,
        ),
        Err(e) => {
            let fix = match e.code() as u32 {
                104 => {
                    "do not offer the host's uplink to pods (take it out of the device \
                        plugin's resource), or set \"allowDefaultRouteDevice\" in the node policy"
                }
                _ => {
                    "take it out of the host's bridge/bond or remove the devices on it, or set \
                      \"allowEnslavedDevice\" in the node policy"
                }
            };
            refused(
                offered,
                format!(
                    "{shown}: ADD would refuse it (code {}): {e}{offer}",
                    e.code() as u32
                ),
                fix.into(),
            )
        }
    }
}

/// A function ADD would refuse: a failure where pods get it, the host's own otherwise.
fn refused(offered: &Offered, detail: String, fix: String) -> Verdict {
    match offered {
        Offered::Yes(_) => (Status::Fail, detail, Some(fix)),
        Offered::Unknown => (Status::Warn, detail, Some(fix)),
        Offered::No => (Status::Ok, format!("the host's own; {detail}"), None),
    }
}

/// What ADD captures of the NIC, as far as its guards look: routes and master.
fn as_add_sees_it(host: &dyn crate::host::netlink::Links, link: &Link) -> HostInterface {
    let master = link
        .master
        .and_then(|m| host.link_by_index(m).ok().flatten())
        .map(|m| m.name);
    let routes = host.routes(link.index).unwrap_or_default();
    HostInterface::from_routes(link, routes, master)
}

/// ADD's host-use guards under the node's own policy.
fn guards(kernel: &dyn Kernel, policy: &NodePolicy, nic: &HostInterface) -> Result<(), Error> {
    ensure_not_the_uplink(nic, policy.allow_default_route_device)?;
    let uppers = kernel.sysfs().uppers_of(&nic.name);
    ensure_not_stacked(nic, &uppers, policy.allow_enslaved_device)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
