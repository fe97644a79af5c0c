//! DEL: give the NIC back with everything it had. Idempotent: no state, nothing to do.
//! A corrupt state file does not strand the device: what can be read is used, the device
//! is found by what is left (PCI address, MAC, the pod-side name) and comes back up.

use std::path::Path;

use super::release::release;
use super::Context;
use crate::cni::Error;
use crate::delegate::Delegate;
use crate::netlink::Netlink;
use crate::netns::{self, NetnsGuard};
use crate::state::{AttachmentState, StateStore};
use crate::{log_error, log_info};

pub fn del(ctx: &Context) -> Result<(), Error> {
    let (env, conf) = (&ctx.env, &ctx.conf);
    let store = StateStore::open(&conf.state_dir)?;
    let _attachment_lock = store.lock_attachment(&env.container_id, &env.ifname)?;
    let state = match store.load(&env.container_id, &env.ifname) {
        Ok(Some(state)) => state,
        Ok(None) => {
            log_info!("no state for this attachment; nothing to do");
            return Ok(());
        }
        Err(e @ Error::CorruptState { .. }) => salvage(ctx, &store, &e.to_string())?,
        Err(e) => return Err(e),
    };
    crate::log::set_device(&state.host.name);
    let _device_lock = store.lock_device(&state.device_key())?;
    // Without host-device we can still bring back a device that is already on the host.
    let delegate = Delegate::find(&conf.delegate, &env.path)
        .map_err(|e| log_info!("{e}; restoring without it"))
        .ok();
    release(ctx, delegate.as_ref(), &store, &state)
}

/// Rebuilds what it can of a corrupt state file, and completes it from the device itself
/// if it is still in the pod (host-device keeps the original name in the link's alias).
fn salvage(ctx: &Context, store: &StateStore, why: &str) -> Result<AttachmentState, Error> {
    let path = store.path_of(&ctx.env.container_id, &ctx.env.ifname);
    let bytes = std::fs::read(&path).unwrap_or_default();
    let (mut state, lost) =
        AttachmentState::salvage(&ctx.env.container_id, &ctx.env.ifname, &bytes);
    log_error!(
        "{why}; recovering what it can (lost: {})",
        if lost.is_empty() {
            "nothing".to_owned()
        } else {
            lost.join(", ")
        }
    );
    if state.netns.is_empty() {
        state.netns = ctx.env.netns.clone();
    }
    if netns::exists(Path::new(&state.netns)) {
        let others = other_pod_ifnames(store, &state);
        if let Err(e) = complete_from_pod(&mut state, &others) {
            log_error!("could not inspect the pod for the device: {e}");
        }
    }
    if state.host.name.is_empty() {
        // The best name left; release renames nothing it cannot name.
        state.host.name = state.pod_ifname.clone();
    }
    Ok(state)
}

/// Pod-side names of the container's other attachments (e.g. net2 when net1 is corrupt).
fn other_pod_ifnames(store: &StateStore, state: &AttachmentState) -> Vec<String> {
    store
        .attachments()
        .unwrap_or_default()
        .into_iter()
        .filter(|(cid, ifname)| *cid == state.container_id && *ifname != state.ifname)
        .filter_map(|(cid, ifname)| store.load(&cid, &ifname).ok().flatten())
        .map(|s| s.pod_ifname)
        .collect()
}

fn complete_from_pod(state: &mut AttachmentState, others: &[String]) -> Result<(), Error> {
    let _in_pod = NetnsGuard::enter(Path::new(&state.netns))?;
    let nl = Netlink::connect()?;
    let link = match nl.link_by_name(&state.pod_ifname)? {
        Some(link) => link,
        // The pod-side name was lost too (it is the host name by default). host-device marks
        // every device it moved with an alias; if exactly one such device in this pod is not
        // another attachment's, it is ours.
        None => {
            let mut moved: Vec<_> = nl
                .links()?
                .into_iter()
                .filter(|l| l.alias.is_some() && !others.contains(&l.name))
                .collect();
            if moved.len() != 1 {
                return Ok(());
            }
            let link = moved.remove(0);
            state.pod_ifname = link.name.clone();
            link
        }
    };
    if state.host.mac.is_none() {
        state.host.mac = link.mac.clone();
    }
    if state.host.name.is_empty() {
        if let Some(alias) = link.alias {
            state.host.name = alias;
        }
    }
    Ok(())
}
