//! One module per CNI command; `release` is the give-the-NIC-back story DEL, a failed ADD's
//! rollback (and later GC) share.

mod add;
mod del;
mod release;
mod version;

use serde_json::Value;

use crate::cni::{CniVersion, Command, Environment, Error};
use crate::config::NetConf;
use crate::log::{self, LogLevel};

/// Runs `command` with the raw stdin; `Some(json)` is what goes to stdout.
pub fn run(command: Command, stdin: &[u8]) -> Result<Option<Value>, Error> {
    if command == Command::Version {
        return version::version(stdin).map(Some);
    }
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
        Command::Check | Command::Status | Command::Gc => Err(Error::UnsupportedField(format!(
            "{} is not implemented by this version of amd-host-device",
            command.as_str()
        ))),
        Command::Version => unreachable!("handled above"),
    }
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

/// Logs at error level before a failure leaves for the runtime, so the log file has it too.
pub fn log_failure(command: Command, e: &Error) {
    if log::enabled(LogLevel::Error) {
        crate::log_error!(
            "{} failed (code {}): {e}",
            command.as_str(),
            e.code() as u32
        );
    }
}
