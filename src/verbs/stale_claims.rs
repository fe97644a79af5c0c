//! A claim names the attachment that owns a NIC. A live owner is refused (code 101); a
//! claim whose attachment is provably gone — its pod's network namespace no longer exists,
//! or kubelet now allocates the NIC to the pod asking — is repaired: the NIC is given back
//! exactly as that attachment's DEL would (renamed from `net1`/`devN`, addresses, routes,
//! MTU, up), its state removed, and only then is the NIC attached again. Without this, a
//! pod that vanished without DEL would keep its NIC from every later pod forever. An ADD
//! that dies during the repair leaves it to its own DEL, which finds the claim still there
//! and repairs it the same way (see `holder_after_repair`).

use std::path::Path;

use crate::cni::Environment;
use crate::device_id::DeviceError;
use crate::error::Error;
use crate::fault;
use crate::host::kernel::Kernel;
use crate::log_info;
use crate::node::kubelet::Checkpoint;
use crate::node::state::{AttachmentState, Claim, StateStore};
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;

type Result<T> = std::result::Result<T, Error>;

/// Whether a claim was in the way (and repaired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    No,
    RepairedStale,
}

/// Refuses a NIC a live attachment owns; gives back one whose owner is gone. The caller
/// holds its own attachment's lock, and `device_locked` says whether it also holds the
/// device's (else it is taken here for the repair).
pub fn ensure_unclaimed(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    key: &str,
    what: &str,
    device_locked: bool,
) -> Result<Claimed> {
    match settle(ctx, kernel, store, key, what, device_locked)? {
        Holder::Nobody => Ok(Claimed::No),
        Holder::Repaired => Ok(Claimed::RepairedStale),
        Holder::Live(owner) => Err(claimed(what, &owner)),
        Holder::Releasing(owner) => Err(Error::Busy(format!(
            "{what} is being released by container {} interface {}; try again later",
            owner.container_id, owner.ifname
        ))),
    }
}

/// Who holds a NIC once a claim whose owner is gone has been repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Nobody,
    /// A gone owner's claim, repaired: the NIC is back on the host.
    Repaired,
    Live(Claim),
    /// A gone owner whose own DEL holds its lock, so is giving the NIC back now.
    Releasing(Claim),
}

/// For a DEL without state of its own: the ADD of this attachment may have died while it
/// repaired a gone owner's claim, and then this DEL finishes the repair, exactly as that ADD
/// would have. Who holds the NIC then (a live owner keeps it).
pub fn holder_after_repair(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    key: &str,
    what: &str,
) -> Result<Holder> {
    settle(ctx, kernel, store, key, what, false)
}

fn settle(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    key: &str,
    what: &str,
    device_locked: bool,
) -> Result<Holder> {
    let Some(owner) = store.claim_of(key)? else {
        return Ok(Holder::Nobody);
    };
    let state = store
        .load(&owner.container_id, &owner.ifname)
        .ok()
        .flatten();
    let Some((state, why)) = state.and_then(|s| gone_because(ctx, kernel, &s).map(|why| (s, why)))
    else {
        return Ok(Holder::Live(owner));
    };
    // The owner's own DEL may be running: never wait for its lock while holding ours.
    let Some(_owner_lock) = store.try_lock_attachment(&state.container_id, &state.ifname)? else {
        return Ok(Holder::Releasing(owner));
    };
    let _device_lock = match device_locked {
        true => None,
        false => Some(store.lock_device(&state.device_key())?),
    };
    log_info!(
        "{what} is claimed by container {} interface {}, which is gone ({why}): giving it back \
         as that attachment's DEL would",
        owner.container_id,
        owner.ifname
    );
    let _flow = fault::flow("stale");
    give_back(
        kernel,
        &owner_context(ctx, &state),
        ctx.give_back_delegate().as_ref(),
        store,
        &state,
    )?;
    Ok(Holder::Repaired)
}

fn claimed(what: &str, owner: &Claim) -> Error {
    DeviceError::Claimed(format!(
        "{what} is already claimed by container {} interface {}",
        owner.container_id, owner.ifname
    ))
    .into()
}

/// Why the owner is provably gone, if it is: its netns does not exist any more, or kubelet
/// allocates the NIC to another pod than the owner's (the asking pod's, checked before).
fn gone_because(ctx: &Context, kernel: &dyn Kernel, owner: &AttachmentState) -> Option<String> {
    if !owner.netns.is_empty() && !kernel.netns_exists(Path::new(&owner.netns)) {
        return Some(format!(
            "its network namespace {} no longer exists",
            owner.netns
        ));
    }
    let owner_uid = owner.pod.uid.as_deref()?;
    let asking_uid = ctx.env.arg("K8S_POD_UID").filter(|u| !u.is_empty())?;
    let pci = owner.pci_address.as_ref()?;
    let checkpoint = Checkpoint::load(&ctx.conf.kubelet_checkpoint).ok()??;
    let holders = checkpoint.pods_holding(pci);
    // Only kubelet's giving the NIC to the pod that asks proves the owner gone.
    (holders.contains(&asking_uid) && !holders.contains(&owner_uid)).then(|| {
        format!(
            "kubelet allocates {pci} to pod {} now, not to its pod {owner_uid}",
            holders.join(", ")
        )
    })
}

/// The context the owner's DEL would have had: its identity, this node's config.
fn owner_context(ctx: &Context, owner: &AttachmentState) -> Context {
    Context {
        env: Environment {
            container_id: owner.container_id.clone(),
            ifname: owner.ifname.clone(),
            netns: String::new(),
            args: String::new(),
            path: ctx.env.path.clone(),
        },
        conf: ctx.conf.clone(),
    }
}
