//! CHECK: is the device still in the pod as ADD left it (name, MAC, up, MTU, addresses, routes)?

use std::path::Path;

use crate::cni::CniResult;
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::host::netlink::{Address, Link, Links, Route};
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;
use crate::verbs::pod_addresses;

type Result<T> = std::result::Result<T, Error>;

pub fn check(ctx: &Context, kernel: &dyn Kernel) -> Result<()> {
    if !ctx.version().supports_check() {
        return Err(Error::IncompatibleVersion(format!(
            "CHECK needs cniVersion 0.4.0 or later, the config says {}",
            ctx.version()
        )));
    }
    let prev = ctx
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("CHECK needs \"prevResult\"".into()))?;
    let prev = CniResult::from_value(prev)?;
    let store = StateStore::open(&ctx.conf.state_dir)?;
    let _lock = store.lock_attachment(&ctx.env.container_id, &ctx.env.ifname)?;
    let state = store
        .load(&ctx.env.container_id, &ctx.env.ifname)?
        .ok_or_else(|| {
            Error::UnknownContainer(format!(
                "no attachment {}/{} is known to amd-host-device",
                ctx.env.container_id, ctx.env.ifname
            ))
        })?;
    if let (Some(driver), Some(pci)) = (&state.userspace_driver, &state.pci_address) {
        return match kernel.sysfs().userspace_driver_of(pci) {
            Some(_) => Ok(()),
            None => Err(Error::CheckFailed(format!(
                "{pci} is no longer bound to {driver} without a network interface"
            ))),
        };
    }
    // ADD's result names the NIC by CNI_IFNAME when the NIC answers to it, else by its name.
    let listed = prev.interfaces.iter().any(|i| {
        let name = i.get("name").and_then(|n| n.as_str());
        name == Some(state.pod_ifname.as_str()) || name == Some(ctx.env.ifname.as_str())
    });
    if !listed {
        return Err(Error::CheckFailed(format!(
            "prevResult does not list interface {}",
            state.pod_ifname
        )));
    }
    kernel.in_netns(Path::new(&ctx.env.netns), |pod| {
        check_in_pod(ctx, pod, &prev, &state)
    })
}

/// The device in the pod against what ADD left there.
fn check_in_pod(
    ctx: &Context,
    pod: &dyn Links,
    prev: &CniResult,
    state: &AttachmentState,
) -> Result<()> {
    let link = pod.link_by_name(&state.pod_ifname)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "{} is not in the pod network namespace {}",
            state.pod_ifname, ctx.env.netns
        ))
    })?;
    check_link(&link, state)?;
    check_addresses(&pod.addresses(link.index)?, prev, state)?;
    if pod_addresses::captured_addresses_follow(&ctx.conf, &state.host) {
        check_routes(
            &pod.routes(link.index)?,
            &state.host.routes,
            &state.pod_ifname,
        )?;
    }
    Ok(())
}

fn check_link(link: &Link, state: &AttachmentState) -> Result<()> {
    let name = &state.pod_ifname;
    if state.host.mac.is_some() && link.mac != state.host.mac {
        return Err(Error::CheckFailed(format!(
            "{name} in the pod is not the device that was added (MAC differs)"
        )));
    }
    if !link.up {
        return Err(Error::CheckFailed(format!("{name} is down in the pod")));
    }
    if link.mtu != state.host.mtu {
        return Err(Error::CheckFailed(format!(
            "{name} has MTU {} in the pod, {} was captured",
            link.mtu, state.host.mtu
        )));
    }
    Ok(())
}

/// Every address of prevResult (ours, or the user's IPAM's) must be on the interface.
fn check_addresses(present: &[Address], prev: &CniResult, state: &AttachmentState) -> Result<()> {
    for ip in &prev.ips {
        let wanted = Address::from_cidr(&ip.address).ok_or_else(|| {
            Error::Decode(format!("prevResult address {:?} is not CIDR", ip.address))
        })?;
        if !present
            .iter()
            .any(|a| (a.ip, a.prefix_len) == (wanted.ip, wanted.prefix_len))
        {
            return Err(Error::CheckFailed(format!(
                "address {} is missing from {} in the pod",
                ip.address, state.pod_ifname
            )));
        }
    }
    Ok(())
}

fn check_routes(present: &[Route], captured: &[Route], name: &str) -> Result<()> {
    for r in captured {
        let found = present
            .iter()
            .any(|p| p.dst == r.dst && p.dst_len == r.dst_len && p.gateway == r.gateway);
        if !found {
            return Err(Error::CheckFailed(format!(
                "route {} is missing from {name} in the pod",
                r.dst_cidr()
            )));
        }
    }
    Ok(())
}
