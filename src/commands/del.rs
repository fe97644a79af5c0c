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
        Err(Error::Decode(why)) => salvage(ctx, &store, &why)?,
        Err(e) => return Err(e),
    };
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
        if let Err(e) = complete_from_pod(&mut state) {
            log_error!("could not inspect the pod for the device: {e}");
        }
    }
    if state.host.name.is_empty() {
        // The best name left; release renames nothing it cannot name.
        state.host.name = state.pod_ifname.clone();
    }
    Ok(state)
}

fn complete_from_pod(state: &mut AttachmentState) -> Result<(), Error> {
    let _in_pod = NetnsGuard::enter(Path::new(&state.netns))?;
    let nl = Netlink::connect()?;
    let Some(link) = nl.link_by_name(&state.pod_ifname)? else {
        return Ok(());
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
