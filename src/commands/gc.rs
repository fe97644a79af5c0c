//! GC (1.1.0): release every attachment of this network that the runtime no longer lists in
//! `cni.dev/valid-attachments`, exactly as DEL would.

use super::release::release;
use super::Context;
use crate::config::ValidAttachment;
use crate::delegate::Delegate;
use crate::error::Error;
use crate::state::StateStore;
use crate::{log_error, log_info};

pub fn gc(ctx: &Context) -> Result<(), Error> {
    super::require_1_1("GC", ctx)?;
    let valid = ctx.conf.valid_attachments.as_deref().unwrap_or_default();
    let store = StateStore::open(&ctx.conf.state_dir)?;
    let delegate = Delegate::find(&ctx.conf.delegate, &ctx.env.path)
        .map_err(|e| log_info!("{e}; restoring without it"))
        .ok();
    let mut failures = Vec::new();
    for (container_id, ifname) in store.attachments()? {
        let listed = valid
            .iter()
            .any(|v: &ValidAttachment| v.container_id == container_id && v.ifname == ifname);
        if listed {
            continue;
        }
        let _lock = store.lock_attachment(&container_id, &ifname)?;
        let state = match store.load(&container_id, &ifname) {
            Ok(Some(s)) => s,
            Ok(None) => continue, // released meanwhile
            Err(e) => {
                log_error!("GC skips {container_id}/{ifname}: {e}");
                continue;
            }
        };
        if state.network != ctx.conf.name {
            continue;
        }
        crate::log::set_device(&state.host.name);
        let _device_lock = store.lock_device(&state.device_key())?;
        log_info!(
            "GC releases stale attachment {container_id}/{ifname} ({})",
            state.host.name
        );
        if let Err(e) = release(ctx, delegate.as_ref(), &store, &state) {
            log_error!("GC could not release {container_id}/{ifname}: {e}");
            failures.push(format!("{container_id}/{ifname}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Busy(format!(
            "GC could not release {} attachment(s): {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}
