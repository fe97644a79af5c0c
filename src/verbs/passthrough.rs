//! PCI functions bound to a userspace driver (`vfio-pci`, `uio_pci_generic`, `igb_uio`: DPDK
//! and friends) have no netdev to move. As host-device's DPDK mode does, ADD succeeds without
//! moving anything; unlike it, the function is still claimed for this attachment (one
//! device, one pod), and DEL releases the claim. The pod reaches the function through its
//! device plugin's mounts (`/dev/vfio/...`), not through the network namespace.

use serde_json::{Map, Value};

use crate::cni::CniResult;
use crate::device_id::PciAddress;
use crate::error::Error;
use crate::host::snapshot::HostInterface;
use crate::log_info;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;

/// Claims `pci` for this attachment and returns the result: an interface entry for the pod
/// (its sandbox and, at 1.1.0, its PCI address), no addresses.
pub fn attach(
    ctx: &Context,
    store: &StateStore,
    pci: &PciAddress,
    driver: &str,
) -> Result<Value, Error> {
    let state = claim(ctx, pci, driver);
    store.save(&state)?;
    crate::fault::point("add-passthrough-after-claim");
    log_info!("{pci} is bound to {driver}: claimed for the pod, nothing to move");
    let mut interface = Map::new();
    interface.insert("name".into(), Value::String(ctx.env.ifname.clone()));
    interface.insert("sandbox".into(), Value::String(ctx.env.netns.clone()));
    interface.insert("pciID".into(), Value::String(pci.as_str().to_owned()));
    let result = CniResult {
        interfaces: vec![interface],
        ..CniResult::default()
    };
    Ok(result.to_json(ctx.version()))
}

/// The state of such an attachment: the function and its driver, no host interface.
fn claim(ctx: &Context, pci: &PciAddress, driver: &str) -> AttachmentState {
    let no_netdev = HostInterface::default();
    AttachmentState {
        userspace_driver: Some(driver.to_owned()),
        ..ctx.new_attachment(no_netdev, Some(pci.clone()))
    }
}
