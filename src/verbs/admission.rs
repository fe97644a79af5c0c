//! Whether a NIC may be attached at all, checked before anything is captured or moved: it
//! must be the one kubelet's device manager allocated to this pod (on a Kubernetes node),
//! and not one the host itself relies on (its uplink, a bridge/bond/team/VRF port, the
//! lower device of VLANs or macvlans) unless the node policy lets it go.

use crate::device_id::DeviceError;
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::host::snapshot::HostInterface;
use crate::log_info;
use crate::node::kubelet::{check_allocation, Checkpoint, Selection};
use crate::verbs::context::Context;

type Result<T> = std::result::Result<T, Error>;

/// On a Kubernetes node, the NIC must be one the device plugin allocated to this pod.
pub fn ensure_allocated_to_this_pod(ctx: &Context) -> Result<()> {
    let conf = &ctx.conf;
    let Some(checkpoint) = Checkpoint::load(&conf.kubelet_checkpoint)? else {
        return Ok(()); // not a kubelet node: nothing says which pod owns which NIC
    };
    let selection = Selection {
        pci: conf.selector.pci.as_ref(),
        pod_uid: ctx.env.arg("K8S_POD_UID"),
        allow_unverified: conf.allow_unverified_selection,
    };
    if let Some(why) = check_allocation(&checkpoint, &selection)? {
        log_info!("{why}; allowed by the node policy (allowUnverifiedSelection)");
    }
    Ok(())
}

/// The host's own uses of a NIC stay the host's unless the node allows otherwise: its
/// uplink (the default route) and its membership in a bridge, bond, team or VRF, or the
/// VLAN/macvlan devices on it (a move would take the NIC from under them).
pub fn ensure_not_the_hosts_own(
    ctx: &Context,
    kernel: &dyn Kernel,
    nic: &HostInterface,
) -> Result<()> {
    let conf = &ctx.conf;
    ensure_not_the_uplink(nic, conf.allow_default_route_device)?;
    if conf.allow_enslaved_device {
        // Allowed whatever sits on it: no need to read its sysfs directory.
        return Ok(());
    }
    // Read only once the uplink guard has passed: most NICs stop at neither.
    let uppers = kernel.sysfs().uppers_of(&nic.name);
    ensure_not_stacked(nic, &uppers, conf.allow_enslaved_device)
}

/// The default-route guard alone (also what `doctor` asks of every NIC on the host).
pub fn ensure_not_the_uplink(nic: &HostInterface, allowed: bool) -> Result<()> {
    if nic.has_default_route() && !allowed {
        return Err(DeviceError::CarriesDefaultRoute(format!(
            "{} carries a default route of this host; refusing to move it into a pod \
             (the node policy's \"allowDefaultRouteDevice\" lifts this)",
            nic.name
        ))
        .into());
    }
    Ok(())
}

/// The guard for a NIC the host stacks devices on: `uppers` are its `upper_*` devices
/// in sysfs (its master among them).
pub fn ensure_not_stacked(nic: &HostInterface, uppers: &[String], allowed: bool) -> Result<()> {
    if (nic.master.is_none() && uppers.is_empty()) || allowed {
        return Ok(());
    }
    let mut uses = Vec::new();
    if let Some(master) = &nic.master {
        uses.push(format!("is a port of {master}"));
    }
    let children: Vec<&str> = uppers
        .iter()
        .filter(|u| Some(*u) != nic.master.as_ref())
        .map(String::as_str)
        .collect();
    if !children.is_empty() {
        uses.push(format!("carries {}", children.join(", ")));
    }
    Err(DeviceError::InUseByHost(format!(
        "{} {} on this host; refusing to move it into a pod (the node policy's \
         \"allowEnslavedDevice\" lets it go, and DEL makes it a port again)",
        nic.name,
        uses.join(" and ")
    ))
    .into())
}
