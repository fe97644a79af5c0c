//! ADD: resolve → lock → capture → persist → delegate → routes in the pod → result.
//! Any failure after the state is written rolls back, so the NIC ends where it started.

use std::path::Path;

use serde_json::Value;

use crate::cni::{CniResult, Command};
use crate::config::PodInterfaceName;
use crate::device_id::{DeviceError, PciAddress};
use crate::error::Error;
use crate::fault;
use crate::host::delegate::{Delegate, Started};
use crate::host::device::{self, Resolved};
use crate::host::kernel::Kernel;
use crate::host::names;
use crate::host::netlink::{Link, Links};
use crate::host::rdma;
use crate::host::snapshot::{apply_routes, HostInterface};
use crate::node::device_info;
use crate::node::state::{self, AttachmentState, Lock, StateStore};
use crate::verbs::admission;
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;
use crate::verbs::nic_words::{nic, nic_of};
use crate::verbs::passthrough;
use crate::verbs::pod_addresses;
use crate::verbs::stale_claims::{ensure_unclaimed, Claimed};
use crate::{log_debug, log_error, log_info};

type Result<T> = std::result::Result<T, Error>;

pub fn add(ctx: &Context, kernel: &dyn Kernel) -> Result<Value> {
    let (env, conf) = (&ctx.env, &ctx.conf);
    // Everything that can be checked without touching the device is checked first.
    conf.selector.require_some()?;
    admission::ensure_allocated_to_this_pod(ctx)?;
    let delegate = Delegate::find(&conf.delegate, &env.path)?;
    let pod_ns = Path::new(&env.netns);
    // Our own namespace would "move" the NIC nowhere and rename it on the host; a FIFO
    // would hang the call: neither is a pod.
    kernel.check_pod_netns(pod_ns)?;
    let store = StateStore::open(&conf.state_dir)?;
    let _attachment_lock = store.lock_attachment(&env.container_id, &env.ifname)?;
    ensure_new_attachment(ctx, &store)?;
    // A device is claimed under its PCI address and host name: say who has it even when it
    // is away in their pod (and so not on the host to be resolved). The PCI claim is
    // checked under the device lock, before resolving (`resolve_and_lock`).
    if let Some(name) = &conf.selector.device {
        let key = state::name_key(name);
        ensure_unclaimed(ctx, kernel, &store, &key, &conf.selector.describe(), false)?;
    }

    let host = kernel.host()?;
    let found = resolve_and_lock(ctx, kernel, host, &store)?;
    let (Resolved { link, pci }, _device_lock) = match found {
        Found::Netdev(resolved, lock) => (resolved, lock),
        Found::Userspace { pci, driver, lock } => {
            let _device_lock = lock;
            let result = passthrough::attach(ctx, &store, &pci, &driver)?;
            // DPDK workloads are the ones that most need to know which function they got.
            if let Some(file) = &conf.device_info_file {
                device_info::publish(file, kernel.sysfs(), &pci, &[]);
            }
            return Ok(result);
        }
    };
    let captured = HostInterface::capture(host, &link)
        .map_err(|e| e.during(format!("capturing {}", nic(&link.name, pci.as_ref()))))?;
    admission::ensure_not_the_hosts_own(ctx, kernel, &captured)?;
    // One socket in the pod serves every question and change ADD makes there.
    let pod = kernel.links_in(pod_ns)?;
    let naming = choose_names(ctx, &*pod, &captured)?;
    // Read before the move: /sys/class/net only shows this netns.
    let rdma_devices = rdma::devices_of(kernel.sysfs().root(), pci.as_ref(), &captured.name);
    let mut state = attachment_state(ctx, pci, captured, naming, rdma_devices);
    fault::point("add-after-capture");
    // The delegate starts up while the state is made durable, but only gets its config (and
    // so can act) once the state is on disk; dropped on error, it is killed unfed.
    let started = delegate.start(Command::Add, &ctx.env, &state.pod_ifname)?;
    // Persist before anything moves: from here on a crash leaves what DEL needs.
    store.save(&state)?;
    fault::point("add-after-state-write");
    log_info!(
        "captured {} as {}",
        state.host.summary(),
        store.path_of(&state.container_id, &state.ifname).display()
    );

    let attached = stage_on_host(kernel, &store, &mut state, &link)
        .and_then(|()| attach(ctx, kernel, &*pod, &delegate, started, &state));
    match attached {
        Ok(result) => {
            if let (Some(file), Some(pci)) = (&conf.device_info_file, &state.pci_address) {
                device_info::publish(file, kernel.sysfs(), pci, &state.rdma_devices);
            }
            fault::point("add-before-result");
            log_info!(
                "attached {} to {} as {}",
                state.host.name,
                env.netns,
                state.pod_ifname
            );
            Ok(result.to_json(conf.cni_version))
        }
        Err(e) => {
            roll_back(ctx, kernel, &delegate, &store, &state, &e);
            Err(e)
        }
    }
}

/// The runtime must DEL an attachment before adding it again.
fn ensure_new_attachment(ctx: &Context, store: &StateStore) -> Result<()> {
    let env = &ctx.env;
    if store.load(&env.container_id, &env.ifname)?.is_some() {
        return Err(DeviceError::Claimed(format!(
            "attachment {}/{} already exists; DEL it before adding it again",
            env.container_id, env.ifname
        ))
        .into());
    }
    Ok(())
}

/// Gives the device back after a failed ADD, so it ends where it started. If that fails
/// too, the state stays for the runtime's DEL.
fn roll_back(
    ctx: &Context,
    kernel: &dyn Kernel,
    delegate: &Delegate,
    store: &StateStore,
    state: &AttachmentState,
    why: &Error,
) {
    log_error!("ADD of {} failed: {why}; rolling back", state.host.name);
    let _flow = fault::flow("add-rollback");
    if let Err(rollback) = give_back(kernel, ctx, Some(delegate), store, state) {
        log_error!(
            "rollback failed: {rollback}; state kept in {} for the runtime's DEL",
            store.path_of(&state.container_id, &state.ifname).display()
        );
    }
}

fn attachment_state(
    ctx: &Context,
    pci_address: Option<PciAddress>,
    host: HostInterface,
    naming: Naming,
    rdma_devices: Vec<String>,
) -> AttachmentState {
    AttachmentState {
        pod_ifname: naming.pod_ifname,
        staging_name: naming.staging_name,
        rdma_devices,
        ..ctx.new_attachment(host, pci_address)
    }
}

/// What the selection found, with the device's lock held.
enum Found {
    Netdev(Resolved, Lock),
    /// A PCI function bound to a userspace (DPDK) driver: it has no netdev to move.
    Userspace {
        pci: PciAddress,
        driver: String,
        lock: Lock,
    },
}

/// Finds the selected device and takes its lock; the link is read under the lock, since
/// another ADD may have taken the device meanwhile. A PCI address is the device's key before
/// netlink is asked, so then the lock comes first and the link is read once.
fn resolve_and_lock(
    ctx: &Context,
    kernel: &dyn Kernel,
    host: &dyn Links,
    store: &StateStore,
) -> Result<Found> {
    let selector = &ctx.conf.selector;
    let resolve = || device::resolve(selector, kernel.sysfs(), host);
    if let Some(pci) = &selector.pci {
        let key = state::pci_key(pci);
        let lock = store.lock_device(&key)?;
        ensure_unclaimed(ctx, kernel, store, &key, &selector.describe(), true)?;
        let resolved = match resolve() {
            Ok(resolved) => resolved,
            // Asked only once resolving failed: the common case costs nothing more.
            Err(e) => match kernel.sysfs().userspace_driver_of(pci) {
                Some(driver) => {
                    let pci = pci.clone();
                    return Ok(Found::Userspace { pci, driver, lock });
                }
                None => return Err(e),
            },
        };
        crate::log::set_device(&resolved.link.name);
        return Ok(Found::Netdev(resolved, lock));
    }
    let Resolved { link, pci } = resolve()?;
    crate::log::set_device(&link.name);
    // However it was selected, a NIC on a PCI function is locked and claimed under its PCI
    // address: a claim made under it is seen, and two ADDs of one NIC exclude each other.
    let pci = pci.or_else(|| kernel.sysfs().pci_of_netdev(&link.name));
    let key = state::device_key(pci.as_ref(), link.mac.as_ref(), &link.name);
    let lock = store.lock_device(&key)?;
    if ensure_unclaimed(ctx, kernel, store, &key, &link.name, true)? == Claimed::RepairedStale {
        // Given back under its host name: find it again.
        let resolved = resolve()?;
        crate::log::set_device(&resolved.link.name);
        return Ok(Found::Netdev(resolved, lock));
    }
    let link = host
        .link_by_index(link.index)?
        .filter(|l| l.name == link.name)
        .ok_or_else(|| Error::device_not_found(format!("{} left the host meanwhile", link.name)))?;
    Ok(Found::Netdev(Resolved { link, pci }, lock))
}

struct Naming {
    pod_ifname: String,
    /// Temporary host name used when the host name is already taken in the pod.
    staging_name: Option<String>,
}

/// The pod keeps the host name unless asked for CNI_IFNAME or the name is taken there.
/// host-device moves the link under its current name, so a name clash in the pod also
/// means renaming it on the host first (to a temporary name we remember in the state).
fn choose_names(ctx: &Context, pod: &dyn Links, host: &HostInterface) -> Result<Naming> {
    let taken_in_pod = pod.link_by_name(&host.name)?.is_some();
    let pod_ifname = match (ctx.conf.pod_interface_name, taken_in_pod) {
        (PodInterfaceName::Host, false) => host.name.clone(),
        (PodInterfaceName::Host, true) => {
            log_info!(
                "{} is already taken in the pod; using {} instead",
                host.name,
                ctx.env.ifname
            );
            ctx.env.ifname.clone()
        }
        (PodInterfaceName::Cni, _) => ctx.env.ifname.clone(),
    };
    Ok(Naming {
        pod_ifname,
        staging_name: taken_in_pod.then(|| first_temporary_name(host.ifindex)),
    })
}

fn first_temporary_name(ifindex: i32) -> String {
    names::temporary_names(ifindex)
        .next()
        .expect("there is always a first temporary name")
}

/// Renames the NIC on the host to its staging name, if it needs one: host-device moves a
/// link under its current name, and the pod has a link of the NIC's host name. The host is
/// shared, so the rename itself is the test: a name taken there (EEXIST), even a moment
/// ago, means the next candidate, written into the state before it is tried, so that the
/// state always names what the NIC may be called.
fn stage_on_host(
    kernel: &dyn Kernel,
    store: &StateStore,
    state: &mut AttachmentState,
    link: &Link,
) -> Result<()> {
    if state.staging_name.is_none() {
        return Ok(());
    }
    let why = format!(
        "{} is taken in the pod, so {} goes in under a temporary name",
        state.host.name,
        nic_of(state)
    );
    let staging_failed = |e: Error| e.during(&why);
    let host = kernel.host()?;
    host.set_down(link.index).map_err(staging_failed)?;
    let candidates = names::temporary_names(state.host.ifindex);
    names::rename_to_first_free(host, link.index, candidates, |name| {
        if state.staging_name.as_deref() == Some(name) {
            return Ok(());
        }
        log_info!(
            "{} is taken on the host; staging {} as {name} instead",
            state.staging_name.as_deref().unwrap_or_default(),
            state.host.name
        );
        state.staging_name = Some(name.to_owned());
        store.save(state)
    })
    .map_err(staging_failed)?;
    fault::point("add-after-staging-rename");
    Ok(())
}

/// The part of ADD that changes things once the NIC is staged: delegate, `CNI_IFNAME` as an
/// alternative name, routes, result.
fn attach(
    ctx: &Context,
    kernel: &dyn Kernel,
    pod: &dyn Links,
    delegate: &Delegate,
    started: Started<'_>,
    state: &AttachmentState,
) -> Result<CniResult> {
    let conf = &ctx.conf;
    let host = &state.host;
    let device_name = state.staging_name.as_deref().unwrap_or(&host.name);
    let nic = nic_of(state);
    let config = delegate.config(
        conf.cni_version,
        &conf.name,
        device_name,
        conf.ipam.as_ref(),
        &pod_addresses::for_pod(conf, host)?,
    );
    log_debug!(
        "delegate {} ADD config: {config}",
        delegate.binary().display()
    );
    let out = started
        .finish(&config)
        .map_err(|e| e.during(format!("moving {nic} into the pod")))?;
    fault::point("add-after-delegate");
    let mut result = CniResult::parse(&out).map_err(|e| Error::Delegate {
        code: None,
        msg: format!(
            "{} printed an unusable result: {e}",
            delegate.binary().display()
        ),
        details: String::new(),
    })?;
    let mut name_in_result = state.pod_ifname.as_str();
    let already_its_own = host.altnames.contains(&ctx.env.ifname);
    if already_its_own || answer_to_cni_ifname(pod, &state.pod_ifname, &ctx.env.ifname) {
        fault::point("add-after-altname");
        result.rename_interface(&state.pod_ifname, &ctx.env.ifname);
        name_in_result = &ctx.env.ifname;
    }
    let pci_id = state.pci_address.as_ref().map(|p| p.as_str());
    result.describe_interface(name_in_result, host.mtu, pci_id);
    attach_rdma(kernel, &state.rdma_devices, Path::new(&ctx.env.netns))?;
    // Captured gateways are only reachable where the captured addresses went.
    if pod_addresses::captured_addresses_follow(conf, host) {
        if !host.routes.is_empty() {
            add_routes_in_pod(pod, &state.pod_ifname, host)?;
            fault::point("add-after-routes");
            for r in &host.routes {
                result.add_route(r.dst_cidr(), r.gateway.map(|g| g.to_string()));
            }
        }
        pod_addresses::point_to_point_gateways(&mut result.ips, &host.routes);
    }
    Ok(result)
}

/// Makes the NIC, which keeps its host name in the pod, answer to `CNI_IFNAME` too (an
/// alternative name), so that runtimes and chained plugins that look for `CNI_IFNAME`
/// (containerd takes the pod IP from it, `tuning` acts on it) find it. Whether it does: a
/// kernel without altnames, or a `CNI_IFNAME` already taken in the pod, leaves the NIC
/// with its one name, as before.
fn answer_to_cni_ifname(pod: &dyn Links, pod_ifname: &str, cni_ifname: &str) -> bool {
    if pod_ifname == cni_ifname {
        return false;
    }
    match pod.add_altname(pod_ifname, cni_ifname) {
        Ok(()) => {
            log_debug!("{pod_ifname} also answers to {cni_ifname} in the pod");
            true
        }
        Err(e) => {
            log_info!(
                "{pod_ifname} does not answer to {cni_ifname} in the pod ({e}); the result \
                 names it {pod_ifname}"
            );
            false
        }
    }
}

/// In exclusive RDMA netns mode the RDMA devices of the NIC follow it into the pod.
fn attach_rdma(kernel: &dyn Kernel, devices: &[String], pod_ns: &Path) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let system = kernel.rdma();
    match rdma::plan(system.netns_mode()?, devices) {
        rdma::Plan::Nothing(why) => {
            log_debug!("RDMA: nothing to move ({why})");
            Ok(())
        }
        rdma::Plan::Move(devices) => {
            log_info!("RDMA: moving {} into the pod", devices.join(", "));
            rdma::move_into(system, &devices, pod_ns)?;
            fault::point("add-after-rdma-move");
            Ok(())
        }
    }
}

fn add_routes_in_pod(pod: &dyn Links, pod_ifname: &str, host: &HostInterface) -> Result<()> {
    let link = pod.link_by_name(pod_ifname)?.ok_or_else(|| {
        Error::device_not_found(format!(
            "{pod_ifname} not found in the pod after host-device ADD"
        ))
    })?;
    let refused = apply_routes(pod, link.index, &host.routes);
    if refused.is_empty() {
        return Ok(());
    }
    let each = |f: fn(&Error) -> String| refused.iter().map(f).collect::<Vec<_>>().join("; ");
    Err(Error::Netlink {
        doing: format!("re-adding the captured routes of {} in the pod", host.name),
        why: Some(each(Error::to_string)),
        errno: None,
        detail: each(Error::details),
    })
}

#[cfg(test)]
#[path = "add_tests.rs"]
mod tests;
