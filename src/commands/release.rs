//! Giving a device back to the host from its saved state: the heart of DEL, also used to
//! roll back a failed ADD.
//!
//! host-device moves it out of the pod when it can; we then find it on the host wherever it
//! ended up (original name, temporary name, pod name, PCI address, MAC) and put back what
//! we captured. If host-device could not move it (it failed half way through its own ADD,
//! say), we move it out ourselves rather than leave a NIC stranded in a pod.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Context;
use crate::cni::{Command, Environment};
use crate::delegate::Delegate;
use crate::device::Sysfs;
use crate::error::Error;
use crate::netlink::{Link, LinkChange, Netlink};
use crate::netns::{self, NetnsGuard};
use crate::rdma::{self, RdmaSystem};
use crate::state::{AttachmentState, StateStore};
use crate::{log_debug, log_error, log_info};

type Result<T> = std::result::Result<T, Error>;

pub fn release(
    ctx: &Context,
    delegate: Option<&Delegate>,
    store: &StateStore,
    state: &AttachmentState,
) -> Result<()> {
    let pod_namespaces = live_pod_netns(&ctx.env, state);
    let host_nl = Netlink::connect()?;
    let mut found = None;
    for ns in &pod_namespaces {
        // RDMA devices first: they are only addressable from the pod they were moved into.
        detach_rdma(&state.rdma_devices, ns);
        if let Some(d) = delegate {
            if let Err(e) = delegate_del(ctx, d, ns, state) {
                // Not fatal: the device may never have reached the pod, or be elsewhere already.
                log_info!("host-device DEL in {} did not complete ({e})", ns.display());
            }
        }
        found = find_on_host(&host_nl, state)?;
        if found.is_none() && move_out_of_pod(ns, state)? {
            found = find_on_host(&host_nl, state)?;
        }
        if found.is_some() {
            break;
        }
    }
    if found.is_none() {
        found = find_on_host(&host_nl, state)?;
    }
    if found.is_none() && pod_namespaces.is_empty() {
        // The netns is gone: the kernel hands physical devices back to the host from a
        // workqueue, so the device may be a moment late.
        found = wait_for_device_on_host(&host_nl, state)?;
    }
    let Some(link) = found else {
        // Nowhere to be found: a virtual device destroyed with its netns, or hot-unplugged.
        log_error!(
            "{} is neither on the host nor in the pod; forgetting it. Captured configuration was: {}",
            state.host.name,
            serde_json::to_string(&state.host).unwrap_or_default()
        );
        return forget(store, state);
    };
    let problems = state.host.restore(&host_nl, &link)?;
    for p in &problems {
        log_error!("could not restore {p} on {}", state.host.name);
    }
    log_info!("restored {} (found as {})", state.host.summary(), link.name);
    forget(store, state)
}

/// Brings the RDMA devices of an exclusive-mode attachment back from `pod_ns`. Best effort:
/// a device already back (or never moved) is not an error, and a dead netns returns its
/// RDMA devices to the host by itself.
fn detach_rdma(devices: &[String], pod_ns: &Path) {
    if devices.is_empty() {
        return;
    }
    let system = rdma::NetlinkRdma;
    let outcome = system
        .netns_mode()
        .and_then(|mode| match rdma::plan(mode, devices) {
            rdma::Plan::Nothing(why) => {
                log_debug!("RDMA: nothing to move back ({why})");
                Ok(())
            }
            rdma::Plan::Move(devices) => rdma::move_back(&system, &devices, pod_ns),
        });
    if let Err(e) = outcome {
        log_info!("RDMA: could not move {} back: {e}", devices.join(", "));
    }
}

/// The pod netns that still exist: the one DEL names, then the one ADD recorded (a runtime
/// that passes another path, or none, must not strand the device in the real one).
fn live_pod_netns(env: &Environment, state: &AttachmentState) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for p in [env.netns.as_str(), state.netns.as_str()] {
        let p = PathBuf::from(p);
        if !p.as_os_str().is_empty() && !found.contains(&p) && netns::exists(&p) {
            found.push(p);
        }
    }
    found
}

fn delegate_del(ctx: &Context, d: &Delegate, ns: &Path, state: &AttachmentState) -> Result<()> {
    let device = state.staging_name.as_deref().unwrap_or(&state.host.name);
    let config = d.config(
        ctx.conf.cni_version,
        &ctx.conf.name,
        device,
        ctx.conf.ipam.as_ref(),
        &state.host.addresses,
    );
    // GC runs without a container of its own: the attachment's identity comes from its state.
    let env = Environment {
        container_id: state.container_id.clone(),
        netns: ns.to_string_lossy().into_owned(),
        ifname: state.ifname.clone(),
        ..ctx.env.clone()
    };
    d.run(Command::Del, &env, &state.pod_ifname, &config)
        .map(|_| ())
}

/// Names the device may carry now, most likely first.
fn candidate_names(state: &AttachmentState) -> Vec<&str> {
    let mut names = vec![state.host.name.as_str()];
    names.extend(state.staging_name.as_deref());
    names.push(state.pod_ifname.as_str());
    names.push(state.ifname.as_str());
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        // A salvaged state may not know every name.
        if !n.is_empty() && !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique
}

/// Finds our device in the current netns. A name only counts if the MAC matches too: `net1`
/// on the host may well be somebody else's device.
pub fn find_device(
    nl: &Netlink,
    state: &AttachmentState,
    sysfs: Option<&Sysfs>,
) -> Result<Option<Link>> {
    let mac = state.host.mac.as_ref();
    for name in candidate_names(state) {
        if let Some(l) = nl.link_by_name(name)? {
            if mac.is_none() || l.mac.as_ref() == mac {
                return Ok(Some(l));
            }
        }
    }
    if let (Some(sysfs), Some(pci)) = (sysfs, &state.pci_address) {
        for name in sysfs.netdevs_of(pci) {
            if let Some(l) = nl.link_by_name(&name)? {
                return Ok(Some(l));
            }
        }
    }
    match mac {
        Some(m) => nl.link_by_mac(m),
        None => Ok(None),
    }
}

fn find_on_host(nl: &Netlink, state: &AttachmentState) -> Result<Option<Link>> {
    find_device(nl, state, Some(&Sysfs::default()))
}

/// How long DEL waits for a device the kernel is still returning from a dead netns.
const RETURN_FROM_DEAD_NETNS: Duration = Duration::from_secs(2);

fn wait_for_device_on_host(nl: &Netlink, state: &AttachmentState) -> Result<Option<Link>> {
    let deadline = Instant::now() + RETURN_FROM_DEAD_NETNS;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let found = find_on_host(nl, state)?;
        if found.is_some() || Instant::now() >= deadline {
            return Ok(found);
        }
    }
}

/// Moves the device from the pod to the host ourselves, for when host-device could not.
/// Returns whether it was there to move.
fn move_out_of_pod(ns: &Path, state: &AttachmentState) -> Result<bool> {
    let host_ns = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("open host network namespace", e))?;
    let _in_pod = NetnsGuard::enter(ns)?;
    let nl = Netlink::connect()?;
    // sysfs shows the host's view, so only names and MAC are meaningful in here.
    let Some(link) = find_device(&nl, state, None)? else {
        return Ok(false);
    };
    use std::os::fd::AsRawFd;
    log_info!("moving {} out of {} ourselves", link.name, ns.display());
    nl.set_link(
        link.index,
        &LinkChange {
            up: Some(false),
            ..Default::default()
        },
    )?;
    nl.set_link(
        link.index,
        &LinkChange {
            netns_fd: Some(host_ns.as_raw_fd() as u32),
            ..Default::default()
        },
    )?;
    Ok(true)
}

/// Drops the state and the device claim of an attachment whose device is settled.
pub fn forget(store: &StateStore, state: &AttachmentState) -> Result<()> {
    store.remove(state)
}
