//! RDMA: the subsystem's netns mode and which RDMA device sits on which NIC. In exclusive
//! mode ADD moves a NIC's RDMA devices with it; in shared mode (the default) none moves.

use crate::host::kernel::Kernel;
use crate::host::rdma::{all_devices, NetnsMode};

use super::report::Report;

const NAME: &str = "rdma";

pub(super) fn check(report: &mut Report, kernel: &dyn Kernel) {
    let sysfs = kernel.sysfs();
    let devices = all_devices(sysfs.root());
    let mode = match kernel.rdma().netns_mode() {
        Ok(mode) => mode,
        Err(e) => {
            report.warn(
                NAME,
                format!("cannot ask the RDMA subsystem its netns mode: {e}"),
                "check `rdma system show`",
            );
            return;
        }
    };
    let mode = match mode {
        None if devices.is_empty() => {
            report.ok(NAME, "no RDMA subsystem: nothing moves with a NIC");
            return;
        }
        None => "unknown (no RDMA netlink)",
        Some(NetnsMode::Shared) => "shared: every netns sees every RDMA device, none moves",
        Some(NetnsMode::Exclusive) => "exclusive: ADD moves a NIC's RDMA devices with it",
    };
    let listed: Vec<String> = devices
        .iter()
        .map(|d| match &d.pci {
            Some(pci) => {
                let netdevs = sysfs.netdevs_of(pci);
                let on = if netdevs.is_empty() {
                    "no interface here".to_owned()
                } else {
                    netdevs.join(", ")
                };
                format!("{} on {pci} ({on})", d.name)
            }
            None => format!("{} (no PCI function)", d.name),
        })
        .collect();
    report.ok(
        NAME,
        format!(
            "netns mode {mode}; devices: {}",
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join("; ")
            }
        ),
    );
}
