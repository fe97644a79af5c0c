//! DEL without state of ours. The state may have been lost (state directory wiped, an old
//! backup, `/var/lib/cni` on tmpfs), or the attachment may be the vendor plugin's, on a node
//! that swapped plugins under running pods. Either way the NIC must not stay stranded in
//! the pod — yet a DEL's config is a tenant's NAD, so nothing may be touched that is not
//! provably the selected device, and nothing already on the host is reconfigured on a
//! NAD's word.
//!
//! - The selection must pass the same allocation check as ADD (on a Kubernetes node: the
//!   PCI address kubelet gave this pod).
//! - The NIC is identified in `CNI_NETNS` only by proof: its parent device is the selected
//!   PCI address (`IFLA_PARENT_DEV_NAME`, kernel 5.14+), its MAC is the selected one, or
//!   host-device's alias is the NIC's host name (from the `device` selector, sysfs or the
//!   vendor's entry). A name alone proves nothing; exactly one link must match, and none
//!   may if the NIC is visibly on the host.
//! - What that link carries in the pod (its addresses and MTU are the host's, host-device
//!   gave it the captured ones) except default routes, under its host name, with the
//!   vendor's addresses and up/down state where there is an entry, becomes a state of ours,
//!   found again by the link's MAC. It is written before anything moves, then the link is
//!   moved out by its index and given back like any other attachment: a crash on the way
//!   leaves that state for the next DEL.
//! - A vendor NIC that is already on the host is restored from its entry only if it looks
//!   the way the kernel hands a NIC back (down, without addresses): one the host has taken
//!   back into use is left alone, and so is its entry.
//! - A NIC another attachment of ours claims is left to it, unless that owner is provably
//!   gone: then this attachment's ADD died repairing the claim, and this DEL finishes it.

use std::path::Path;

use crate::device_id::{MacAddress, PciAddress};
use crate::error::Error;
use crate::fault;
use crate::host::device::Selector;
use crate::host::kernel::Kernel;
use crate::host::names;
use crate::host::netlink::{Address, Link};
use crate::host::snapshot::HostInterface;
use crate::node::state::{
    name_key, pci_key, AttachmentState, PodRef, StateStore, VendorEntry, SCHEMA_VERSION,
};
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;
use crate::verbs::nic_words::{moving_back_failed, nic_of};
use crate::verbs::stale_claims::{holder_after_repair, Holder};
use crate::{log_error, log_info};

type Result<T> = std::result::Result<T, Error>;

/// What is known of the NIC without state: enough to recognise it, never to guess.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Identity {
    pub pci: Option<PciAddress>,
    pub mac: Option<MacAddress>,
    /// Names the NIC has on the host, most trusted first.
    pub host_names: Vec<String>,
}

impl Identity {
    /// Why `link` is provably this NIC, if it is.
    fn proves(&self, link: &Link) -> Option<&'static str> {
        if self.pci.is_some()
            && link.parent_device.as_deref() == self.pci.as_ref().map(|p| p.as_str())
        {
            return Some("its parent device is the selected PCI address");
        }
        // A link on another PCI function is not ours, whatever its MAC or alias says (a pod
        // sets both on a link it creates).
        let other_device = matches!((&link.parent_device, &self.pci),
            (Some(parent), Some(pci)) if parent != pci.as_str());
        if other_device {
            return None;
        }
        if self.mac.is_some() && link.mac == self.mac {
            return Some("its MAC is the selected one");
        }
        link.alias
            .as_ref()
            .is_some_and(|a| self.host_names.contains(a))
            .then_some("host-device's alias names its host name")
    }
}

/// Gives back the NIC of an attachment we have no state for, if it can be identified: from
/// the pod by proof (with the vendor plugin's entry for its PCI address, if there is one),
/// else a vendor NIC the kernel already handed back. Nothing found is not an error: DEL
/// stays idempotent. What is found becomes a state of ours, written before anything moves,
/// and is given back like any other: a crash on the way leaves that state for the next DEL.
pub fn recover_without_state(ctx: &Context, kernel: &dyn Kernel, store: &StateStore) -> Result<()> {
    let selector = &ctx.conf.selector;
    if selector.require_some().is_err() {
        log_info!("no state for this attachment and no selector; nothing to do");
        return Ok(());
    }
    if let Err(e) = crate::verbs::admission::ensure_allocated_to_this_pod(ctx) {
        log_error!("no state for this attachment, and not recovering what its config names: {e}");
        return Ok(());
    }
    match holder(ctx, kernel, store, selector)? {
        Holder::Nobody => {}
        Holder::Repaired => return Ok(()),
        Holder::Live(owner) | Holder::Releasing(owner) => {
            log_info!(
                "no state for this attachment, and the NIC is attachment {}/{}'s now; nothing to do",
                owner.container_id,
                owner.ifname
            );
            return Ok(());
        }
    }
    let vendor = selector
        .pci
        .as_ref()
        .and_then(|pci| vendor_entry(store, pci));
    let identity = identity_of(ctx, kernel, vendor.as_ref());
    let _device_lock = store.lock_device(&recovery_key(&identity))?;
    // A removal cut short (a crash between a state and its claims) left claims that name
    // nobody: this attachment's, or a gone owner's this attachment's ADD was repairing.
    store.remove_stale_claims(&identity_keys(&identity))?;
    if let Some(found) = find_in_pod(ctx, kernel, &identity)? {
        let state = recovered_state(ctx, &identity, vendor.as_ref(), &found);
        return adopt(ctx, kernel, store, &state, Some(&found.link));
    }
    let (Some(pci), Some(entry)) = (&identity.pci, &vendor) else {
        log_info!("no state for this attachment and nothing of it in the pod; nothing to do");
        return Ok(());
    };
    match handed_back(kernel, pci)? {
        Some(link) => adopt(
            ctx,
            kernel,
            store,
            &handed_back_state(ctx, pci, entry, &link),
            None,
        ),
        None => Ok(()),
    }
}

/// Who holds the selected NIC, once a claim whose owner is gone has been repaired (this
/// attachment's ADD may have died repairing it).
fn holder(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    selector: &Selector,
) -> Result<Holder> {
    let keys = selector
        .pci
        .iter()
        .map(pci_key)
        .chain(selector.device.iter().map(|d| name_key(d)));
    for key in keys {
        let holder = holder_after_repair(ctx, kernel, store, &key, &selector.describe())?;
        if holder != Holder::Nobody {
            return Ok(holder);
        }
    }
    Ok(Holder::Nobody)
}

/// The device lock a recovery takes: the same key an attachment of the NIC would.
fn recovery_key(identity: &Identity) -> String {
    crate::node::state::device_key(
        identity.pci.as_ref(),
        identity.mac.as_ref(),
        identity
            .host_names
            .first()
            .map(String::as_str)
            .unwrap_or(""),
    )
}

/// Every key an attachment of the NIC may have claimed it under.
fn identity_keys(identity: &Identity) -> Vec<String> {
    let mut keys = vec![recovery_key(identity)];
    keys.extend(identity.host_names.iter().map(|n| name_key(n)));
    keys.dedup();
    keys
}

/// A pod link proven to be the NIC, and what it carries there.
struct FoundInPod {
    link: Link,
    carried: HostInterface,
}

/// Makes `state` ours (written, with its claims, before anything moves), moves the proven
/// link out of the pod by its index if it is there, and gives the NIC back from that state.
fn adopt(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    state: &AttachmentState,
    in_pod: Option<&Link>,
) -> Result<()> {
    let vendor = state.adopted_vendor_entry;
    let _flow = match vendor {
        true => fault::flow("vendor"),
        false => fault::flow("recovery"),
    };
    crate::log::set_device(&state.host.name);
    match (in_pod, vendor) {
        (Some(_), true) => log_info!(
            "recovering {} without state of ours (the vendor plugin's attachment)",
            state.host.summary()
        ),
        (Some(_), false) => log_info!("recovering {} without state of ours", state.host.summary()),
        (None, _) => log_info!(
            "recovering {} from the vendor plugin's entry",
            state.host.summary()
        ),
    }
    store.save(state)?;
    match vendor {
        true => fault::point("vendor-after-state-write"),
        false => fault::point("recovery-after-state-write"),
    }
    if let Some(link) = in_pod {
        move_out(ctx, kernel, state, link)?;
    }
    give_back(kernel, ctx, None, store, state)
}

/// Moves the proven link out of the pod: by its index, not by a name another link may
/// carry. `CNI_IFNAME` (its kernel name in the pod under the vendor plugin, an alternative
/// name under ours) is taken off in the pod before the move, where no other NIC coming
/// home can race for it.
fn move_out(
    ctx: &Context,
    kernel: &dyn Kernel,
    state: &AttachmentState,
    link: &Link,
) -> Result<()> {
    let cni_ifname = &ctx.env.ifname;
    let pod_only = (*cni_ifname != state.host.name).then_some(cni_ifname.as_str());
    let host_ns = kernel.host_netns_fd()?;
    let host = kernel.host()?;
    kernel.in_netns(Path::new(&ctx.env.netns), |pod| {
        let own = state.host.own_altnames(link, pod_only);
        names::move_to_host(pod, host, host_ns, link, &own, pod_only, &state.host.name).map_err(
            |e| {
                // Told with the names it has now, after what was shed in the pod.
                let now = pod.link_by_index(link.index).ok().flatten();
                moving_back_failed(kernel, &nic_of(state), now.as_ref().unwrap_or(link), e)
            },
        )
    })
}

/// The state of a NIC found in the pod, as an ADD would have captured it: under its host
/// name, with what it carries there (its addresses and MTU are the host's) but no default
/// route (a pod's way out is not the host's), the vendor's addresses and up/down state where
/// there is an entry, and found again by its MAC.
fn recovered_state(
    ctx: &Context,
    identity: &Identity,
    vendor: Option<&VendorEntry>,
    found: &FoundInPod,
) -> AttachmentState {
    let host = recovered_host(identity, vendor, found.carried.clone(), &found.link, ctx);
    AttachmentState {
        pod_ifname: found.link.name.clone(),
        adopted_vendor_entry: vendor.is_some(),
        ..ctx.new_attachment(host, identity.pci.clone())
    }
}

/// The host side of a NIC found in the pod: its host name, what it carried there (but no
/// default route: a pod's way out is not the host's), the vendor's addresses and up/down
/// state where there is an entry. `CNI_IFNAME` was its name in the pod only.
fn recovered_host(
    identity: &Identity,
    vendor: Option<&VendorEntry>,
    carried: HostInterface,
    link: &Link,
    ctx: &Context,
) -> HostInterface {
    let mut host = carried;
    host.name = host_name(identity, link);
    host.routes.retain(|r| !r.is_default());
    host.up = vendor.is_none_or(VendorEntry::was_up);
    if let Some(v) = vendor {
        host.addresses = vendor_addresses(v);
        host.routes.clear();
    }
    host.alias = None;
    host.master = None;
    host.altnames.retain(|a| *a != ctx.env.ifname);
    // Captured from a link the pod may have made: nothing to tell the NIC by. The give-back
    // still checks its parent device against the selected PCI address.
    host.identity = None;
    host
}

/// A vendor NIC the kernel already handed back (its netns gone): the one netdev sysfs lists
/// under its PCI address, if it looks handed back — down, without global addresses.
fn handed_back(kernel: &dyn Kernel, pci: &PciAddress) -> Result<Option<Link>> {
    let host = kernel.host()?;
    let names = kernel.sysfs().netdevs_of(pci);
    let [name] = names.as_slice() else {
        log_info!("{pci} is neither in the pod nor a single netdev on the host; nothing to do");
        return Ok(None);
    };
    let Some(link) = host.link_by_name(name)? else {
        return Ok(None);
    };
    let in_use = link.up
        || !host
            .addresses(link.index)?
            .iter()
            .all(Address::is_ipv6_link_local);
    if in_use {
        log_info!(
            "{} ({pci}) is up or has addresses on the host: in use, not the kernel's hand-back; \
             leaving it and the vendor plugin's entry alone",
            link.name
        );
        return Ok(None);
    }
    Ok(Some(link))
}

/// The state of a vendor NIC the kernel handed back: the vendor's entry, for this
/// attachment, found again by the MAC it has.
fn handed_back_state(
    ctx: &Context,
    pci: &PciAddress,
    entry: &VendorEntry,
    link: &Link,
) -> AttachmentState {
    let mut host = vendor_attachment(pci, entry).host;
    host.mac = link.mac.clone();
    host.ifindex = link.index;
    AttachmentState {
        pod_ifname: link.name.clone(),
        netns: String::new(),
        adopted_vendor_entry: true,
        ..ctx.new_attachment(host, Some(pci.clone()))
    }
}

/// The vendor plugin's entry for `pci`; a malformed file is logged and treated as none.
fn vendor_entry(store: &StateStore, pci: &PciAddress) -> Option<VendorEntry> {
    match store.vendor_entry(pci) {
        Ok(entry) => entry,
        Err(e) => {
            log_error!("{e}; recovering without the vendor plugin's entries");
            None
        }
    }
}

/// What identifies the selected NIC: the config's selector, the vendor's host name, and
/// the netdev sysfs lists under the PCI address (while it is on the host, or on a kernel
/// whose sysfs shows it anyway).
pub fn identity_of(ctx: &Context, kernel: &dyn Kernel, vendor: Option<&VendorEntry>) -> Identity {
    let selector = &ctx.conf.selector;
    let mut host_names: Vec<String> = Vec::new();
    host_names.extend(selector.device.clone());
    host_names.extend(vendor.map(|v| v.host_interface_name.clone()));
    if let Some(pci) = &selector.pci {
        host_names.extend(kernel.sysfs().netdevs_of(pci));
    }
    host_names.dedup();
    Identity {
        pci: selector.pci.clone(),
        mac: selector.hwaddr.clone(),
        host_names,
    }
}

/// The one link of the pod that is provably the NIC, with what it carries there. None if
/// the NIC is visibly on the host: then nothing in the pod can be it.
fn find_in_pod(
    ctx: &Context,
    kernel: &dyn Kernel,
    identity: &Identity,
) -> Result<Option<FoundInPod>> {
    let netns = Path::new(&ctx.env.netns);
    if ctx.env.netns.is_empty() || !kernel.netns_exists(netns) {
        return Ok(None);
    }
    if let Some(home) = on_the_host(kernel, identity)? {
        log_info!("the selected NIC is on the host as {home}; nothing in the pod is it");
        return Ok(None);
    }
    kernel.in_netns(netns, |pod| {
        let proven: Vec<(Link, &str)> = pod
            .links()?
            .into_iter()
            .filter_map(|l| identity.proves(&l).map(|why| (l, why)))
            .collect();
        match proven.as_slice() {
            [] => Ok(None),
            [(link, why)] => {
                log_info!("found {} in the pod without state ({why})", link.name);
                let carried = HostInterface::capture(pod, link)?;
                Ok(Some(FoundInPod {
                    link: link.clone(),
                    carried,
                }))
            }
            many => {
                let names: Vec<&str> = many.iter().map(|(l, _)| l.name.as_str()).collect();
                log_error!(
                    "several links in the pod match the selection ({}); touching none",
                    names.join(", ")
                );
                Ok(None)
            }
        }
    })
}

/// The selected NIC's name on the host, if it is there (by its MAC, or the netdev sysfs
/// lists under its PCI address carrying a host name of the selection).
fn on_the_host(kernel: &dyn Kernel, identity: &Identity) -> Result<Option<String>> {
    let host = kernel.host()?;
    if let Some(mac) = &identity.mac {
        if let Some(l) = host.link_by_mac(mac)? {
            return Ok(Some(l.name));
        }
    }
    let Some(pci) = &identity.pci else {
        return Ok(None);
    };
    for name in kernel.sysfs().netdevs_of(pci) {
        if let Some(l) = host.link_by_name(&name)? {
            return Ok(Some(l.name));
        }
    }
    Ok(None)
}

/// The name the NIC goes back under: what the selection, sysfs or the vendor's entry say;
/// only without any of them host-device's record of it (an alias, which a pod can set too),
/// else the name it has (never a guess).
fn host_name(identity: &Identity, link: &Link) -> String {
    identity
        .host_names
        .first()
        .cloned()
        .or_else(|| link.alias.clone())
        .unwrap_or_else(|| link.name.clone())
}

/// The vendor plugin's attachment of `pci` as a state of ours would describe it: no
/// container, pod or MAC is recorded, so it is found by its PCI address and host name.
pub fn vendor_attachment(pci: &PciAddress, entry: &VendorEntry) -> AttachmentState {
    AttachmentState {
        schema: SCHEMA_VERSION,
        container_id: String::new(),
        ifname: String::new(),
        network: String::new(),
        cni_version: String::new(),
        netns: String::new(),
        selector: Selector {
            pci: Some(pci.clone()),
            ..Selector::default()
        },
        pci_address: Some(pci.clone()),
        host: HostInterface {
            name: entry.host_interface_name.clone(),
            ifindex: 0,
            mac: None,
            mtu: 0,
            up: entry.was_up(),
            alias: None,
            addresses: vendor_addresses(entry),
            routes: Vec::new(),
            master: None,
            carries_default_route: false,
            // The vendor records none: the names it carries count as its own, but CNI_IFNAME.
            altnames: Vec::new(),
            altnames_complete: false,
            identity: None,
        },
        pod_ifname: entry.host_interface_name.clone(),
        staging_name: None,
        rdma_devices: Vec::new(),
        userspace_driver: None,
        adopted_vendor_entry: false,
        pod: PodRef::default(),
        created: String::new(),
    }
}

/// The vendor's `hostInterfaceIPs` (`198.51.100.7/24`); anything else is skipped.
pub fn vendor_addresses(entry: &VendorEntry) -> Vec<Address> {
    entry
        .host_interface_ips
        .iter()
        .flatten()
        .filter_map(|cidr| Address::from_cidr(cidr))
        .collect()
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
