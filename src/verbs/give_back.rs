//! Giving a device back to the host from its saved state: the heart of DEL, and what a failed
//! ADD's rollback, GC and the admin `restore` do too.
//!
//! host-device moves it out of the pod when it can; we then find it on the host wherever it
//! ended up (original name, temporary name, pod name, PCI address, MAC) and put back what
//! we captured. If host-device could not move it (it failed half way through its own ADD,
//! say), we move it out ourselves rather than leave a NIC stranded in a pod.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cni::{Command, Environment};
use crate::device_id::PciAddress;
use crate::error::Error;
use crate::fault;
use crate::host::delegate::Delegate;
use crate::host::device::Sysfs;
use crate::host::identity;
use crate::host::kernel::Kernel;
use crate::host::names;
use crate::host::netlink::{is_not_found, Link, Links};
use crate::host::rdma;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;
use crate::verbs::nic_words::{moving_back_failed, nic_of};
use crate::{log_debug, log_error, log_info};

type Result<T> = std::result::Result<T, Error>;

/// How long to wait for a device the kernel is still returning from a dead netns.
const RETURN_FROM_DEAD_NETNS: Duration = Duration::from_secs(2);

/// Brings the device of `state` back to the host as it was captured, then forgets the
/// attachment. The caller holds the attachment and device locks.
pub fn give_back(
    kernel: &dyn Kernel,
    ctx: &Context,
    delegate: Option<&Delegate>,
    store: &StateStore,
    state: &AttachmentState,
) -> Result<()> {
    if let Some(driver) = &state.userspace_driver {
        log_info!(
            "releasing the claim on {} ({driver}): nothing was moved",
            state.device_key()
        );
        return store.remove(state);
    }
    drop_adopted_vendor_entry(store, state)?;
    let Some(link) = bring_to_host(kernel, ctx, delegate, state)? else {
        // Nowhere to be found: a virtual device destroyed with its netns, or hot-unplugged.
        log_error!(
            "{} is neither on the host nor in the pod; forgetting it. Captured configuration was: {}",
            state.host.name,
            serde_json::to_string(&state.host).unwrap_or_default()
        );
        return store.remove(state);
    };
    // The NIC is home but not restored yet: another DEL may run now.
    fault::step("after-move-to-host");
    let host = kernel.host()?;
    // Restoring takes off first any name the pod gave it that it still carries (the kernel
    // handed it back from a dead pod, or taking it off in the pod failed).
    let problems = state
        .host
        .with_own_altnames(&link, pod_only_name(state))
        .restore(host, &link)
        .map_err(|e| e.during(format!("restoring {} on the host", nic_of(state))))?;
    for p in &problems {
        log_error!("restoring {}: {p}", nic_of(state));
    }
    log_info!("restored {} (found as {})", state.host.summary(), link.name);
    fault::step("before-forget");
    store.remove(state)
}

/// A state a DEL without state built from the vendor plugin's entry holds everything the
/// entry said: the entry goes before the NIC moves, and a crash from here on leaves our
/// state to finish from.
fn drop_adopted_vendor_entry(store: &StateStore, state: &AttachmentState) -> Result<()> {
    let (true, Some(pci)) = (state.adopted_vendor_entry, &state.pci_address) else {
        return Ok(());
    };
    store.remove_vendor_entry(pci)?;
    log_info!("removed the vendor plugin's entry for {pci}");
    Ok(())
}

/// Gets the device onto the host: from each live pod netns in turn (host-device first, then
/// ourselves), else wherever the kernel put it. `None` if it is nowhere. A link a pod made
/// in the NIC's place is never taken for it (`host/identity.rs`): it is set aside and the
/// NIC itself looked for in the pod; if it cannot be found there, the give-back fails and
/// the state stays.
fn bring_to_host(
    kernel: &dyn Kernel,
    ctx: &Context,
    delegate: Option<&Delegate>,
    state: &AttachmentState,
) -> Result<Option<Link>> {
    let mut impostor: Option<Impostor> = None;
    let found = search(kernel, ctx, delegate, state, &mut impostor)?;
    match (found, impostor) {
        (None, Some(i)) => Err(Error::device_not_found(format!(
            "{} was not given back: the link that came back from the pod under its name \
             ({}, #{}) is not the NIC ({}), so nothing of the host's was put on it; the NIC \
             itself was not found in the pod (renamed and given another MAC there?). \
             The attachment's state is kept for the next DEL",
            nic_of(state),
            i.link.name,
            i.link.index,
            i.why
        ))),
        (found, _) => Ok(found),
    }
}

/// A link a pod made in the NIC's place, as it came back, and what tells it apart.
struct Impostor {
    link: Link,
    why: String,
}

fn search(
    kernel: &dyn Kernel,
    ctx: &Context,
    delegate: Option<&Delegate>,
    state: &AttachmentState,
    impostor: &mut Option<Impostor>,
) -> Result<Option<Link>> {
    let pod_namespaces = live_pod_netns(kernel, &ctx.env, state);
    for ns in &pod_namespaces {
        // RDMA devices first: they are only addressable from the pod they were moved into.
        detach_rdma(kernel, &state.rdma_devices, ns);
        shed_pod_names_in_pod(kernel, ns, state);
        // About to leave the pod: another NIC may come home first.
        fault::step("before-move-to-host");
        if let Some(d) = delegate {
            if let Err(e) = delegate_del(ctx, d, ns, state) {
                // Not fatal: the device may never have reached the pod, or be elsewhere already.
                log_info!("host-device DEL in {} did not complete ({e})", ns.display());
            }
        }
        if let Some(link) = verified_on_host(kernel, state, impostor)? {
            return Ok(Some(link));
        }
        if let Some(moved) = move_out_of_pod(kernel, ns, state)? {
            if let Some(link) = arrived(kernel, state, &moved, impostor)? {
                return Ok(Some(link));
            }
        }
    }
    if let Some(link) = verified_on_host(kernel, state, impostor)? {
        return Ok(Some(link));
    }
    if pod_namespaces.is_empty() {
        // The netns is gone: the kernel hands physical devices back to the host from a
        // workqueue, so the device may be a moment late.
        return wait_for_device_on_host(kernel, state);
    }
    Ok(None)
}

/// The link we moved out of the pod, on the host: looked up by its index (the kernel keeps
/// it unless the host has it), not by a name a pod's link may carry too; else searched.
fn arrived(
    kernel: &dyn Kernel,
    state: &AttachmentState,
    moved: &Link,
    impostor: &mut Option<Impostor>,
) -> Result<Option<Link>> {
    let host = kernel.host()?;
    let by_index = host
        .link_by_index(moved.index)?
        .filter(|l| l.mac == moved.mac);
    match by_index {
        Some(link) => match why_not_ours(kernel, state, &link) {
            None => Ok(Some(link)),
            Some(why) => {
                set_aside(host, &link, &why, state);
                *impostor = Some(Impostor { link, why });
                Ok(None)
            }
        },
        None => verified_on_host(kernel, state, impostor),
    }
}

/// Our device on the host, found as `find_on_host` does; a link a pod made in its place is
/// set aside (and remembered), never returned.
fn verified_on_host(
    kernel: &dyn Kernel,
    state: &AttachmentState,
    impostor: &mut Option<Impostor>,
) -> Result<Option<Link>> {
    match look_on_host(kernel, state)? {
        OnHost::Nic(link) => Ok(Some(link)),
        OnHost::Impostor(link, why) => {
            set_aside(kernel.host()?, &link, &why, state);
            *impostor = Some(Impostor { link, why });
            Ok(None)
        }
        OnHost::Nothing => Ok(None),
    }
}

/// Renames a link a pod made in the NIC's place out of the NIC's way (down, to a temporary
/// name), so that the NIC can have its name back. Nothing else is done to it: it is the
/// pod's, and goes with the pod's netns (its peer is there). Best effort: logged.
fn set_aside(host: &dyn Links, link: &Link, why: &str, state: &AttachmentState) {
    log_error!(
        "{} (#{}) came back from the pod under the name of {} but is not it ({why}); \
         putting nothing of the host's on it",
        link.name,
        link.index,
        nic_of(state)
    );
    let aside = host.set_down(link.index).and_then(|()| {
        names::rename_to_first_free(host, link.index, names::temporary_names(link.index), |_| {
            Ok(())
        })
    });
    match aside {
        Ok(name) => log_info!("renamed the pod's link {} to {name}", link.name),
        Err(e) => log_error!("could not rename the pod's link {} aside: {e}", link.name),
    }
}

/// Why `link` on the host is not our NIC, if something says so (`host/identity.rs`).
fn why_not_ours(kernel: &dyn Kernel, state: &AttachmentState, link: &Link) -> Option<String> {
    if state.host.ifindex != 0 && link.index != state.host.ifindex {
        // Not a proof either way (the kernel gives a new index when the host has the old
        // one, and a pod chooses the index of a link it creates): only worth a line.
        log_debug!(
            "{} has index {}, {} had {} when captured",
            link.name,
            link.index,
            state.host.name,
            state.host.ifindex
        );
    }
    identity::why_not_the_nic(
        state.host.identity.as_ref(),
        state.pci_address.as_ref(),
        kernel.sysfs(),
        link,
    )
}

/// `CNI_IFNAME` when it is a name the pod gave the NIC (its alternative name there, or its
/// kernel name in the pod) and not one of its own on the host: the host must never see it.
fn pod_only_name(state: &AttachmentState) -> Option<&str> {
    let its_own = state.ifname == state.host.name || state.host.altnames.contains(&state.ifname);
    (!its_own && !state.ifname.is_empty()).then_some(state.ifname.as_str())
}

/// Takes the names the pod gave the NIC off it while it is still in the pod, whatever the
/// host looks like: `CNI_IFNAME`, and every alternative name it did not have on the host (a
/// tenant with `CAP_NET_ADMIN` in its netns may add any: a name the node creates later,
/// another NIC's host name). The host is shared, and another NIC coming home may answer to
/// `net1` the instant after any look (the kernel refuses a link whose alternative name the
/// target has); the pod is ours alone, so there it cannot race. The common case, a NIC
/// answering to `CNI_IFNAME` only, is one round trip: the removal by the NIC's pod-side
/// name and a read of the names it has left, sent together; what else it carries goes in
/// one more request. A kernel name equal to `CNI_IFNAME` stays for the move itself:
/// host-device renames the link to its alias in the pod before moving it, and so do we
/// (`names::move_to_host`).
fn shed_pod_names_in_pod(kernel: &dyn Kernel, ns: &Path, state: &AttachmentState) {
    let shed = kernel.in_netns(ns, |pod| {
        let Some(link) = nic_in_pod_without_cni_ifname(pod, state) else {
            return Ok(Vec::new());
        };
        let own = state.host.own_altnames(&link, pod_only_name(state));
        let given = names::altnames_not_in(&link, &own);
        if !given.is_empty() {
            pod.del_altnames(link.index, &given)?;
        }
        Ok(given)
    });
    match shed {
        Ok(given) if given.is_empty() => {}
        Ok(given) => log_info!(
            "took the alternative names {} the pod gave {} off it in the pod",
            given.join(", "),
            state.pod_ifname
        ),
        Err(e) => log_info!(
            "could not take the names the pod gave {} off it in the pod: {e}",
            state.pod_ifname
        ),
    }
}

/// The NIC in the pod as it is once `CNI_IFNAME` is off it (taken off by its pod-side name,
/// in the same round trip as the read), `None` if it is not there.
fn nic_in_pod_without_cni_ifname(pod: &dyn Links, state: &AttachmentState) -> Option<Link> {
    let cni_ifname = pod_only_name(state).filter(|c| *c != state.pod_ifname);
    if state.pod_ifname.is_empty() {
        // A salvaged state may not know the pod-side name: find the NIC first; its
        // CNI_IFNAME goes with the other names the pod gave it.
        return find_device(pod, state, None).ok().flatten();
    }
    let (dropped, link) = match cni_ifname {
        Some(c) => pod.del_altname_of_then_read(&state.pod_ifname, c),
        None => (Ok(()), pod.link_by_name(&state.pod_ifname)),
    };
    match (dropped, cni_ifname) {
        (Ok(()), Some(c)) => log_debug!("took {c} off {} in the pod", state.pod_ifname),
        // Not there (never given, already gone, or the NIC is not in this netns).
        (Err(e), Some(c)) if is_not_found(&e) || is_invalid(&e) => {
            log_debug!("{} in the pod answers to no {c} ({e})", state.pod_ifname)
        }
        (Err(e), Some(c)) => log_info!(
            "could not take {c} off {} in the pod: {e}",
            state.pod_ifname
        ),
        _ => {}
    }
    match link {
        Ok(link) => link,
        Err(e) => {
            log_info!("could not look up {} in the pod: {e}", state.pod_ifname);
            None
        }
    }
}

/// EINVAL: for an alternative name's removal, the name is another link's.
fn is_invalid(e: &Error) -> bool {
    e.errno() == Some(nix::libc::EINVAL)
}

/// Brings the RDMA devices of an exclusive-mode attachment back from `pod_ns`. Best effort:
/// a device already back (or never moved) is not an error, and a dead netns returns its
/// RDMA devices to the host by itself.
fn detach_rdma(kernel: &dyn Kernel, devices: &[String], pod_ns: &Path) {
    if devices.is_empty() {
        return;
    }
    let system = kernel.rdma();
    let outcome = system
        .netns_mode()
        .and_then(|mode| match rdma::plan(mode, devices) {
            rdma::Plan::Nothing(why) => {
                log_debug!("RDMA: nothing to move back ({why})");
                Ok(())
            }
            rdma::Plan::Move(devices) => rdma::move_back(system, &devices, pod_ns),
        });
    if let Err(e) = outcome {
        log_info!("RDMA: could not move {} back: {e}", devices.join(", "));
    }
}

/// The pod netns that still exist: the one DEL names, then the one ADD recorded (a runtime
/// that passes another path, or none, must not strand the device in the real one).
fn live_pod_netns(kernel: &dyn Kernel, env: &Environment, state: &AttachmentState) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for p in [env.netns.as_str(), state.netns.as_str()] {
        let p = PathBuf::from(p);
        if !p.as_os_str().is_empty() && !found.contains(&p) && kernel.netns_exists(&p) {
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

/// Names the device may carry now, most likely first: the host name (host-device gives it
/// back under the name it moved), the staging name, the pod-side name, CNI_IFNAME.
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

/// Finds our device among `links` (one namespace). A name only counts if the MAC matches
/// too: `net1` on the host may well be somebody else's device. `sysfs` (the host's view
/// only) adds the netdevs of the recorded PCI address, tried first when the MAC is not
/// known (a recovery without state); the MAC alone is the last resort, and with a
/// recorded PCI address it counts only on that function: a tenant can give its own NIC
/// any MAC, another attachment's too.
pub fn find_device(
    links: &dyn Links,
    state: &AttachmentState,
    sysfs: Option<&Sysfs>,
) -> Result<Option<Link>> {
    let mac = state.host.mac.as_ref();
    if mac.is_none() {
        if let Some(l) = by_pci_address(links, state, sysfs)? {
            return Ok(Some(l));
        }
    }
    for name in candidate_names(state) {
        if let Some(l) = links.link_by_name(name)? {
            if name_counts(&l, name, state, sysfs) {
                return Ok(Some(l));
            }
        }
    }
    if let Some(l) = by_pci_address(links, state, sysfs)? {
        return Ok(Some(l));
    }
    let Some(m) = mac else {
        return Ok(None);
    };
    let by_mac = links.link_by_mac(m)?;
    Ok(by_mac.filter(|l| state.pci_address.is_none() || on_recorded_pci(l, state, sysfs)))
}

/// Whether link `l`, found by candidate `name`, is our device: its MAC is the captured one;
/// without a captured MAC (a salvaged state), a name is all there is, but on the host
/// `CNI_IFNAME` — a name the pod's annotation chooses, `eno1` say — counts only on the
/// recorded PCI function, and no name counts on another function.
fn name_counts(l: &Link, name: &str, state: &AttachmentState, sysfs: Option<&Sysfs>) -> bool {
    if let Some(mac) = &state.host.mac {
        return l.mac.as_ref() == Some(mac);
    }
    let on_host = sysfs.is_some();
    if on_host && name == state.ifname && !is_host_side_name(name, state) {
        return state.pci_address.is_some() && on_recorded_pci(l, state, sysfs);
    }
    match (parent_pci(l, sysfs), &state.pci_address) {
        (Some(parent), Some(pci)) => parent == *pci,
        _ => true,
    }
}

/// A name the device had or was given on the host: its host name, its staging name.
fn is_host_side_name(name: &str, state: &AttachmentState) -> bool {
    name == state.host.name || state.staging_name.as_deref() == Some(name)
}

/// The netdev sysfs lists under the recorded PCI address, if it is among `links` under
/// that kernel name and its parent, where the kernel tells one, is that function (a
/// listing read a moment before a rename may name another link now).
fn by_pci_address(
    links: &dyn Links,
    state: &AttachmentState,
    sysfs: Option<&Sysfs>,
) -> Result<Option<Link>> {
    let (Some(sysfs), Some(pci)) = (sysfs, &state.pci_address) else {
        return Ok(None);
    };
    for name in sysfs.netdevs_of(pci) {
        let Some(l) = links.link_by_name(&name)? else {
            continue;
        };
        let on_another = parent_pci(&l, Some(sysfs)).is_some_and(|parent| parent != *pci);
        if l.name == name && !on_another {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

/// Whether link `l` sits on the recorded PCI function: its parent says so or, where no
/// parent can be told, the host's sysfs lists it under that function.
fn on_recorded_pci(l: &Link, state: &AttachmentState, sysfs: Option<&Sysfs>) -> bool {
    let Some(pci) = &state.pci_address else {
        return false;
    };
    match parent_pci(l, sysfs) {
        Some(parent) => parent == *pci,
        None => sysfs.is_some_and(|s| s.netdevs_of(pci).contains(&l.name)),
    }
}

/// The PCI function link `l` sits on, as the kernel tells it: its parent device
/// (`IFLA_PARENT_DEV_NAME`), else its sysfs `device` link (the host's view only).
fn parent_pci(l: &Link, sysfs: Option<&Sysfs>) -> Option<PciAddress> {
    match &l.parent_device {
        Some(parent) => PciAddress::parse(parent).ok(),
        None => sysfs.and_then(|s| s.pci_of_netdev(&l.name)),
    }
}

/// What the host has where our device would be.
enum OnHost {
    Nic(Link),
    /// A link found by the NIC's names or MAC that is provably not the NIC.
    Impostor(Link, String),
    Nothing,
}

fn look_on_host(kernel: &dyn Kernel, state: &AttachmentState) -> Result<OnHost> {
    let found = find_device(kernel.host()?, state, Some(kernel.sysfs()))
        .map_err(|e| e.during(format!("looking for {} on the host", nic_of(state))))?;
    Ok(match found {
        None => OnHost::Nothing,
        Some(link) => match why_not_ours(kernel, state, &link) {
            None => OnHost::Nic(link),
            Some(why) => OnHost::Impostor(link, why),
        },
    })
}

/// Our device on the host, if it is there (never a link a pod made in its place).
pub fn find_on_host(kernel: &dyn Kernel, state: &AttachmentState) -> Result<Option<Link>> {
    Ok(match look_on_host(kernel, state)? {
        OnHost::Nic(link) => Some(link),
        OnHost::Impostor(..) | OnHost::Nothing => None,
    })
}

/// Our device in pod netns `ns`, if it is there (sysfs shows the host's view, so only names
/// and MAC are meaningful in there).
pub fn find_in_pod(
    kernel: &dyn Kernel,
    ns: &Path,
    state: &AttachmentState,
) -> Result<Option<Link>> {
    kernel
        .in_netns(ns, |pod| find_device(pod, state, None))
        .map_err(|e| e.during(format!("looking for {} in the pod", nic_of(state))))
}

fn wait_for_device_on_host(kernel: &dyn Kernel, state: &AttachmentState) -> Result<Option<Link>> {
    let deadline = Instant::now() + RETURN_FROM_DEAD_NETNS;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let found = find_on_host(kernel, state)?;
        if found.is_some() || Instant::now() >= deadline {
            return Ok(found);
        }
    }
}

/// Moves the device from the pod to the host ourselves, for when host-device could not:
/// never under a name only the pod may have, and past a name another NIC brought home
/// meanwhile (`names::move_to_host`). Returns the link moved, if it was there to move.
fn move_out_of_pod(
    kernel: &dyn Kernel,
    ns: &Path,
    state: &AttachmentState,
) -> Result<Option<Link>> {
    let host_ns = kernel.host_netns_fd()?;
    let host = kernel.host()?;
    kernel.in_netns(ns, |pod| {
        let Some(link) = find_device(pod, state, None)? else {
            return Ok(None);
        };
        log_info!("moving {} out of {} ourselves", link.name, ns.display());
        // The name host-device would have given it back: its alias.
        let home_name = state.staging_name.as_deref().unwrap_or(&state.host.name);
        let own = state.host.own_altnames(&link, pod_only_name(state));
        names::move_to_host(
            pod,
            host,
            host_ns,
            &link,
            &own,
            pod_only_name(state),
            home_name,
        )
        .map_err(|e| {
            // Told with the names it has now, after what was shed in the pod.
            let now = pod.link_by_index(link.index).ok().flatten();
            moving_back_failed(kernel, &nic_of(state), now.as_ref().unwrap_or(&link), e)
        })?;
        Ok(Some(link))
    })
}

#[cfg(test)]
#[path = "give_back_tests.rs"]
mod tests;
