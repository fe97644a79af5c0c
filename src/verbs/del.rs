//! DEL: give the NIC back with everything it had. Idempotent: no state, nothing to do.
//! A corrupt state file does not strand the device: what can be read is used, the device
//! is found by what is left (PCI address, MAC, the pod-side name) and comes back up.

use std::path::Path;

use crate::error::Error;
use crate::fault;
use crate::host::kernel::Kernel;
use crate::host::netlink::Links;
use crate::log_error;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;
use crate::verbs::recovery::recover_without_state;

pub fn del(ctx: &Context, kernel: &dyn Kernel) -> Result<(), Error> {
    let _flow = fault::flow("del");
    let (env, conf) = (&ctx.env, &ctx.conf);
    let store = StateStore::open(&conf.state_dir)?;
    let _attachment_lock = store.lock_attachment(&env.container_id, &env.ifname)?;
    let state = match store.load(&env.container_id, &env.ifname) {
        Ok(Some(state)) => state,
        Ok(None) => return recover_without_state(ctx, kernel, &store),
        Err(e @ Error::CorruptState { .. }) => salvage(ctx, kernel, &store, &e.to_string())?,
        Err(e) => return Err(e),
    };
    crate::log::set_device(&state.host.name);
    let _device_lock = store.lock_device(&state.device_key())?;
    let delegate = ctx.give_back_delegate();
    give_back(kernel, ctx, delegate.as_ref(), &store, &state)
}

/// Rebuilds what it can of a corrupt state file, and completes it from the device itself
/// if it is still in the pod (host-device keeps the original name in the link's alias).
fn salvage(
    ctx: &Context,
    kernel: &dyn Kernel,
    store: &StateStore,
    why: &str,
) -> Result<AttachmentState, Error> {
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
    let pod_ns = Path::new(&state.netns).to_path_buf();
    if kernel.netns_exists(&pod_ns) {
        let others = other_pod_ifnames(store, &state);
        let completed = kernel.in_netns(&pod_ns, |pod| complete_from_pod(pod, &mut state, &others));
        if let Err(e) = completed {
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

fn complete_from_pod(
    nl: &dyn Links,
    state: &mut AttachmentState,
    others: &[String],
) -> Result<(), Error> {
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
