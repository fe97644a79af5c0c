//! DEL without state of ours. The state may have been lost (state directory wiped, an old
//! backup, `/var/lib/cni` on tmpfs), or the attachment may be the vendor plugin's, on a node
//! that swapped plugins under running pods. Either way the NIC must not stay stranded in
//! the pod, yet nothing may be touched that is not provably the selected device.
//!
//! The NIC is identified in `CNI_NETNS` only by proof: its parent device is the selected PCI
//! address (`IFLA_PARENT_DEV_NAME`, kernel 5.14+), its MAC is the selected one, or its name
//! or host-device's alias is the NIC's host name (from the selector, from sysfs, or from the
//! vendor's entry). Exactly one link must match. What it carries in the pod — addresses,
//! routes, MTU — is what the host had (host-device gave it the captured addresses), so that
//! is read before it moves, and it goes back through the same give-back as a DEL with state.

use std::net::IpAddr;
use std::path::Path;

use crate::context::Context;
use crate::delegate::Delegate;
use crate::device::Selector;
use crate::device_id::{MacAddress, PciAddress};
use crate::error::Error;
use crate::give_back::give_back;
use crate::kernel::Kernel;
use crate::netlink::{Address, Link};
use crate::snapshot::HostInterface;
use crate::state::{
    name_key, pci_key, AttachmentState, Claim, PodRef, StateStore, VendorEntry, SCHEMA_VERSION,
};
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
        if self.mac.is_some() && link.mac == self.mac {
            return Some("its MAC is the selected one");
        }
        if link
            .alias
            .as_ref()
            .is_some_and(|a| self.host_names.contains(a))
        {
            return Some("host-device's alias names its host name");
        }
        self.host_names
            .contains(&link.name)
            .then_some("it carries its host name")
    }
}

/// Gives back the NIC of an attachment we have no state for, if it can be identified: from
/// the vendor plugin's entry for its PCI address, else from the pod itself. Nothing found
/// is not an error: DEL stays idempotent.
pub fn recover_without_state(ctx: &Context, kernel: &dyn Kernel, store: &StateStore) -> Result<()> {
    let selector = &ctx.conf.selector;
    let vendor = match &selector.pci {
        Some(pci) => vendor_entry(store, pci),
        None => None,
    };
    if let Some(owner) = claimed_by_another(store, &ctx.conf.selector)? {
        log_info!(
            "no state for this attachment, and the NIC is attachment {}/{}'s now; nothing to do",
            owner.container_id,
            owner.ifname
        );
        return Ok(());
    }
    let identity = identity_of(ctx, kernel, vendor.as_ref());
    let in_pod = find_in_pod(ctx, kernel, &identity)?;
    let Some(state) = recovered_state(ctx, &identity, vendor.as_ref(), in_pod) else {
        log_info!("no state for this attachment and nothing of it in the pod; nothing to do");
        return Ok(());
    };
    crate::log::set_device(&state.host.name);
    let _device_lock = store.lock_device(&state.device_key())?;
    let delegate = Delegate::find_for_give_back(&ctx.conf.delegate, &ctx.env.path);
    give_back(kernel, ctx, delegate.as_ref(), store, &state)?;
    if let (Some(pci), Some(_)) = (&selector.pci, &vendor) {
        store.remove_vendor_entry(pci)?;
        log_info!("removed the vendor plugin's entry for {pci}");
    }
    Ok(())
}

/// An attachment of ours that owns the selected NIC: then it is not this one's to give back.
fn claimed_by_another(store: &StateStore, selector: &Selector) -> Result<Option<Claim>> {
    let keys = selector
        .pci
        .iter()
        .map(pci_key)
        .chain(selector.device.iter().map(|d| name_key(d)));
    for key in keys {
        if let Some(owner) = store.claim_of(&key)? {
            return Ok(Some(owner));
        }
    }
    Ok(None)
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

/// The one link of the pod that is provably the NIC, with what it carries there.
fn find_in_pod(
    ctx: &Context,
    kernel: &dyn Kernel,
    identity: &Identity,
) -> Result<Option<HostInterface>> {
    let netns = Path::new(&ctx.env.netns);
    if ctx.env.netns.is_empty() || !kernel.netns_exists(netns) {
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
                Ok(Some(HostInterface::capture(pod, link)?))
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

/// The state a DEL would have had, rebuilt from what was found: the pod side as it is,
/// the vendor's record of the host side where there is one. `None`: nothing to give back.
fn recovered_state(
    ctx: &Context,
    identity: &Identity,
    vendor: Option<&VendorEntry>,
    in_pod: Option<HostInterface>,
) -> Option<AttachmentState> {
    let pod_ifname = in_pod
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| ctx.env.ifname.clone());
    let mut host = match (in_pod, vendor) {
        (Some(found), _) => found,
        // Not in the pod (netns gone, or the NIC already back): the vendor's record still
        // says what the host had, and the NIC is found on the host by PCI address.
        (None, Some(_)) => HostInterface {
            name: String::new(),
            ifindex: 0,
            mac: None,
            mtu: 0,
            up: true,
            alias: None,
            addresses: Vec::new(),
            routes: Vec::new(),
            master: None,
        },
        (None, None) => return None,
    };
    host.name = host_name(identity, &host, &pod_ifname);
    // Back up on the host: it carried addresses, so it was in use.
    host.up = vendor.is_none_or(VendorEntry::was_up);
    if let Some(v) = vendor {
        host.addresses = vendor_addresses(v);
    }
    // host-device's alias is its bookkeeping, not the NIC's own.
    host.alias = None;
    log_info!(
        "recovering {} without state of ours{}",
        host.summary(),
        if vendor.is_some() {
            " (the vendor plugin's attachment)"
        } else {
            ""
        }
    );
    Some(AttachmentState {
        pod_ifname,
        ..ctx.new_attachment(host, identity.pci.clone())
    })
}

/// The name the NIC goes back under: host-device's record of it, else what the selection
/// says, else the name it has (never a guess).
fn host_name(identity: &Identity, found: &HostInterface, pod_ifname: &str) -> String {
    found
        .alias
        .clone()
        .or_else(|| identity.host_names.first().cloned())
        .unwrap_or_else(|| pod_ifname.to_owned())
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
        },
        pod_ifname: entry.host_interface_name.clone(),
        staging_name: None,
        rdma_devices: Vec::new(),
        userspace_driver: None,
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
        .filter_map(|cidr| {
            let (ip, len) = cidr.split_once('/')?;
            Some(Address::global(
                ip.parse::<IpAddr>().ok()?,
                len.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
