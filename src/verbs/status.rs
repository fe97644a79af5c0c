//! STATUS (1.1.0): ready when the delegate can be found and the state dir is usable.

use crate::error::Error;
use crate::host::delegate::Delegate;
use crate::node::state::StateStore;
use crate::verbs::context::Context;

pub fn status(ctx: &Context) -> Result<(), Error> {
    super::require_1_1("STATUS", ctx)?;
    Delegate::find(&ctx.conf.delegate, &ctx.env.path)?;
    let unusable = |e: Error| Error::PluginNotAvailable(format!("state dir is not usable: {e}"));
    let store = StateStore::open(&ctx.conf.state_dir).map_err(unusable)?;
    store.probe_writable().map_err(unusable)
}
