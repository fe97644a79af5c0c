//! DEL: give the NIC back with everything it had. Idempotent: no state, nothing to do.

use super::release::release;
use super::Context;
use crate::cni::Error;
use crate::delegate::Delegate;
use crate::log_info;
use crate::state::StateStore;

pub fn del(ctx: &Context) -> Result<(), Error> {
    let (env, conf) = (&ctx.env, &ctx.conf);
    let store = StateStore::open(&conf.state_dir)?;
    let _attachment_lock = store.lock_attachment(&env.container_id, &env.ifname)?;
    let Some(state) = store.load(&env.container_id, &env.ifname)? else {
        log_info!("no state for this attachment; nothing to do");
        return Ok(());
    };
    let _device_lock = store.lock_device(&state.device_key())?;
    // Without host-device we can still bring back a device that is already on the host.
    let delegate = Delegate::find(&conf.delegate, &env.path)
        .map_err(|e| log_info!("{e}; restoring without it"))
        .ok();
    release(ctx, delegate.as_ref(), &store, &state)
}
