//! GC (1.1.0): give back every attachment of this network that the runtime no longer lists
//! in `cni.dev/valid-attachments`, exactly as DEL would.

use crate::config::ValidAttachment;
use crate::error::{AttachmentFailure, Error, PartialFailure};
use crate::fault;
use crate::host::delegate::Delegate;
use crate::host::kernel::Kernel;
use crate::node::state::StateStore;
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;
use crate::{log_error, log_info};

pub fn gc(ctx: &Context, kernel: &dyn Kernel) -> Result<(), Error> {
    super::require_1_1("GC", ctx)?;
    if ctx.conf.name_made_safe {
        // The safe stand-in may be another network's real name: releasing "its" attachments
        // could take NICs out of live pods. Each of this network's pods still has its DEL.
        log_info!("GC of a network whose name the spec forbids releases nothing");
        return Ok(());
    }
    let _flow = fault::flow("gc");
    let valid = ctx.conf.valid_attachments.as_deref().unwrap_or_default();
    let store = StateStore::open(&ctx.conf.state_dir)?;
    let delegate = ctx.give_back_delegate();
    let mut failures = Vec::new();
    for (container_id, ifname) in store.attachments()? {
        if is_listed(valid, &container_id, &ifname) {
            continue;
        }
        let collect = gc_one(
            ctx,
            kernel,
            delegate.as_ref(),
            &store,
            &container_id,
            &ifname,
        );
        if let Err(error) = collect {
            log_error!("GC could not release {container_id}/{ifname}: {error}");
            failures.push(AttachmentFailure {
                container_id,
                ifname,
                error,
            });
        }
    }
    // A give-back cut short between a state and its claims left claims that name nobody.
    if let Err(e) = store.remove_all_stale_claims() {
        log_error!("GC could not remove claims that name nobody: {e}");
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Incomplete(PartialFailure {
            operation: "GC",
            failures,
        }))
    }
}

fn is_listed(valid: &[ValidAttachment], container_id: &str, ifname: &str) -> bool {
    valid
        .iter()
        .any(|v| v.container_id == container_id && v.ifname == ifname)
}

/// Gives back one stale attachment of this network; one that vanished meanwhile, belongs
/// to another network or cannot be read is left alone.
fn gc_one(
    ctx: &Context,
    kernel: &dyn Kernel,
    delegate: Option<&Delegate>,
    store: &StateStore,
    container_id: &str,
    ifname: &str,
) -> Result<(), Error> {
    let _lock = store.lock_attachment(container_id, ifname)?;
    let state = match store.load(container_id, ifname) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(()), // released meanwhile
        Err(e) => {
            log_error!("GC skips {container_id}/{ifname}: {e}");
            return Ok(());
        }
    };
    if state.network != ctx.conf.name {
        return Ok(());
    }
    crate::log::set_device(&state.host.name);
    let _device_lock = store.lock_device(&state.device_key())?;
    log_info!(
        "GC releases stale attachment {container_id}/{ifname} ({})",
        state.host.name
    );
    give_back(kernel, ctx, delegate, store, &state)
}
