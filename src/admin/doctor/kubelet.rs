//! kubelet's device checkpoint: readable, which network functions it allocates to which
//! pods, and whether each allocated NIC is where the state says.

use std::collections::BTreeMap;
use std::path::Path;

use crate::admin::tracked::Location;
use crate::device_id::PciAddress;
use crate::host::device::Sysfs;
use crate::node::kubelet::Checkpoint;

use super::report::Report;
use super::state::{where_is, Seen};

const NAME: &str = "kubelet checkpoint";

/// Checks the checkpoint at `path`; the checkpoint when there is a readable one.
pub(super) fn check(
    report: &mut Report,
    path: &Path,
    sysfs: &Sysfs,
    attachments: &[Seen],
) -> Option<Checkpoint> {
    let checkpoint = match Checkpoint::load(path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            report.ok(
                NAME,
                format!(
                    "no file at {}: not a Kubernetes node (or kubelet's device manager has \
                     not started); ADD checks no allocation",
                    path.display()
                ),
            );
            return None;
        }
        Err(e) => {
            report.fail(
                NAME,
                format!("{e} (code 6 for every pod)"),
                format!(
                    "kubelet rewrites {} when it restarts (systemctl restart kubelet); or set \
                     the policy's kubeletCheckpoint to where this kubelet keeps it",
                    path.display()
                ),
            );
            return None;
        }
    };
    let allocated = network_allocations(&checkpoint, sysfs);
    let resources: Vec<String> = checkpoint
        .registered
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| is_network_function(sysfs, id)))
        .map(|(r, ids)| format!("{r} ({} devices)", ids.len()))
        .collect();
    report.ok(
        NAME,
        format!(
            "{}: {} allocated network functions; network resources: {}",
            path.display(),
            allocated.len(),
            if resources.is_empty() {
                "none".to_owned()
            } else {
                resources.join(", ")
            }
        ),
    );
    for (pci, pods) in &allocated {
        check_allocation(report, pci, pods, attachments);
    }
    Some(checkpoint)
}

fn is_network_function(sysfs: &Sysfs, id: &str) -> bool {
    PciAddress::parse(id).is_ok_and(|p| sysfs.is_network_function(&p))
}

/// The network functions of this host kubelet allocates, each with the pods it gives it to
/// (one, normally). Devices of other kinds (GPUs...) are not ours to check.
fn network_allocations(c: &Checkpoint, sysfs: &Sysfs) -> BTreeMap<PciAddress, Vec<String>> {
    let mut by_pci: BTreeMap<PciAddress, Vec<String>> = BTreeMap::new();
    for a in &c.allocations {
        for pci in a
            .device_ids
            .iter()
            .filter_map(|id| PciAddress::parse(id).ok())
        {
            if sysfs.is_network_function(&pci) {
                let pods = by_pci.entry(pci).or_default();
                if !pods.contains(&a.pod_uid) {
                    pods.push(a.pod_uid.clone());
                }
            }
        }
    }
    by_pci
}

/// One allocated NIC against the state: attached to the pod kubelet gave it to, and there.
fn check_allocation(report: &mut Report, pci: &PciAddress, pods: &[String], seen: &[Seen]) {
    let name = format!("allocation {pci}");
    let to = format!("allocated to pod {}", pods.join(", pod "));
    let ours: Vec<&Seen> = seen
        .iter()
        .filter(|s| !s.vendor && s.state.pci_address.as_ref() == Some(pci))
        .collect();
    let Some(attached) = ours.first() else {
        report.ok(
            name,
            format!("{to}; no attachment of amd-host-device holds it"),
        );
        return;
    };
    let state = &attached.state;
    let holder = state.pod.uid.clone().unwrap_or_else(|| "-".into());
    let attachment = format!("{}/{}", state.container_id, state.ifname);
    if !pods.contains(&holder) {
        report.warn(
            name,
            format!(
                "{to}, but attachment {attachment} holds it for pod {holder}: the next ADD \
                 for the allocated pod repairs that claim"
            ),
            "nothing, unless that pod is stuck: then amd-host-device restore ".to_owned()
                + &state.container_id,
        );
        return;
    }
    match &attached.location {
        Location::Pod { netns, ifname } => report.ok(
            name,
            format!(
                "{to}: in its pod (netns {netns} as {ifname}), as attachment {attachment} says"
            ),
        ),
        elsewhere => report.warn(
            name,
            format!(
                "{to}: attachment {attachment} says it is in that pod, but it is {}",
                where_is(elsewhere)
            ),
            "see the attachment's line above",
        ),
    }
}
