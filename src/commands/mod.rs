//! One module per CNI command; `release` is the give-the-NIC-back story DEL, a failed ADD's
//! rollback (and later GC) share.

mod add;
mod addresses;
mod check;
mod del;
mod gc;
mod release;
mod status;

use serde_json::Value;

use crate::cni::{CniVersion, Command, Environment};
use crate::config::NetConf;
use crate::error::Error;
use crate::log::{self, LogLevel};

/// Runs `command` with the raw stdin; `Some(json)` is what goes to stdout. A failure is
/// logged before it leaves for the runtime, so the log file has it too.
pub fn run(command: Command, stdin: &[u8]) -> Result<Option<Value>, Error> {
    run_logged(command, stdin).inspect_err(|e| log_failure(command, e))
}

fn run_logged(command: Command, stdin: &[u8]) -> Result<Option<Value>, Error> {
    if command == Command::Version {
        return Ok(Some(crate::cni::skel::version_reply()));
    }
    log::configure(LogLevel::Error, None, command.as_str().to_owned());
    let env = Environment::from_lookup(command, |k| std::env::var(k).ok())?;
    let conf = NetConf::parse(stdin)?;
    log::configure(
        conf.log_level,
        conf.log_file.as_deref(),
        format!(
            "{} network={} container={} ifname={}",
            command.as_str(),
            conf.name,
            env.container_id,
            env.ifname
        ),
    );
    let ctx = Context { env, conf };
    match command {
        Command::Add => add::add(&ctx).map(Some),
        Command::Del => del::del(&ctx).map(|()| None),
        Command::Check => check::check(&ctx).map(|()| None),
        Command::Status => status::status(&ctx).map(|()| None),
        Command::Gc => gc::gc(&ctx).map(|()| None),
        Command::Version => unreachable!("handled above"),
    }
}

pub use release::find_device as find_device_in;

/// Gives one tracked device back to the host, finding host-device as DEL would (admin
/// `restore`, for the day a runtime never calls DEL).
pub fn release_attachment(
    ctx: &Context,
    store: &crate::state::StateStore,
    state: &crate::state::AttachmentState,
) -> Result<(), Error> {
    let delegate = crate::delegate::Delegate::find(&ctx.conf.delegate, &ctx.env.path).ok();
    release::release(ctx, delegate.as_ref(), store, state)
}

/// What every per-attachment command works from.
pub struct Context {
    pub env: Environment,
    pub conf: NetConf,
}

impl Context {
    pub fn version(&self) -> CniVersion {
        self.conf.cni_version
    }
}

/// STATUS and GC exist from spec 1.1.0 on.
fn require_1_1(what: &str, ctx: &Context) -> Result<(), Error> {
    if ctx.version().supports_status_and_gc() {
        Ok(())
    } else {
        Err(Error::IncompatibleVersion(format!(
            "{what} needs cniVersion 1.1.0, the config says {}",
            ctx.version()
        )))
    }
}

/// Test-only crash injection: `AMD_HOST_DEVICE_TEST_FAULT=<point>` SIGKILLs the plugin at
/// that point, so the crash-safety tests can stop an ADD exactly there. Unset in production,
/// where this is one environment lookup.
pub(crate) fn fault_point(point: &str) {
    if std::env::var_os("AMD_HOST_DEVICE_TEST_FAULT").is_some_and(|v| v == point) {
        crate::log_error!("test fault point {point}: killing myself");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

fn log_failure(command: Command, e: &Error) {
    if log::enabled(LogLevel::Error) {
        crate::log_error!(
            "{} failed (code {}): {e}",
            command.as_str(),
            e.code() as u32
        );
    }
}
