//! The plugin's story: the CNI verbs, one module each, and the steps they share (giving a
//! NIC back, the recovery without state, stale claims, admission, DPDK pass-through, the
//! pod's addresses). May import everything below it (`host`, `node`, `config`, `cni`,
//! `error`, the leaves); only `main` and `admin` import it.
//!
//! `run` parses what every verb needs (environment and config), sets up logging and hands
//! the verb the live kernel.

mod add;
mod check;
mod del;
mod gc;
mod status;

pub mod admission;
pub mod context;
pub mod give_back;
pub mod nic_words;
pub mod passthrough;
pub mod pod_addresses;
pub mod recovery;
pub mod stale_claims;
#[cfg(test)]
mod testing;

use serde_json::Value;

use crate::cni::{Command, Environment};
use crate::config::NetConf;
use crate::error::Error;
use crate::host::kernel::LiveKernel;
use crate::log::{self, LogLevel};
use crate::node::policy::NodePolicy;
use crate::verbs::context::Context;

/// Runs `command` with the raw stdin; `Some(json)` is what goes to stdout. A failure is
/// logged before it leaves for the runtime, so the log file has it too.
pub fn run(command: Command, stdin: &[u8]) -> Result<Option<Value>, Error> {
    run_verb(command, stdin).inspect_err(|e| log_failure(command, e))
}

fn run_verb(command: Command, stdin: &[u8]) -> Result<Option<Value>, Error> {
    log::configure(LogLevel::Error, None, command.as_str().to_owned());
    let env = Environment::from_lookup(command, |k| std::env::var(k).ok())?;
    // The node policy decides what the config may decide, before anything is done; its log
    // file hears about a config it refuses.
    let policy = NodePolicy::load()?;
    log::configure(
        policy.log_level,
        policy.log_file.as_deref(),
        format!(
            "{} container={} ifname={}",
            command.as_str(),
            env.container_id,
            env.ifname
        ),
    );
    let conf = parse_config(command, stdin, &policy)?;
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
    let kernel = LiveKernel::new();
    match command {
        Command::Add => add::add(&ctx, &kernel).map(Some),
        Command::Del => del::del(&ctx, &kernel).map(|()| None),
        Command::Check => check::check(&ctx, &kernel).map(|()| None),
        Command::Status => status::status(&ctx).map(|()| None),
        Command::Gc => gc::gc(&ctx, &kernel).map(|()| None),
        // The process skeleton answers VERSION before any verb runs.
        Command::Version => Ok(Some(crate::cni::skel::version_reply())),
    }
}

/// The config under the node's policy. A verb that gives NICs back (DEL, GC) uses the node's
/// value for one the config may not choose, and says so in the node's log (logging still
/// points there); every other verb refuses such a config.
fn parse_config(command: Command, stdin: &[u8], policy: &NodePolicy) -> Result<NetConf, Error> {
    if !matches!(command, Command::Del | Command::Gc) {
        return NetConf::parse(stdin, policy);
    }
    let (conf, ignored) = NetConf::parse_for_give_back(stdin, policy)?;
    for why in ignored {
        crate::log_info!(
            "{} ignores a value of the network config and goes on as the node decides: {why}",
            command.as_str()
        );
    }
    Ok(conf)
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

/// The message and, for the admin reading the log, the details the runtime got too.
fn log_failure(command: Command, e: &Error) {
    if log::enabled(LogLevel::Error) {
        let details = e.details();
        crate::log_error!(
            "{} failed (code {}): {e}{}",
            command.as_str(),
            e.code() as u32,
            if details.is_empty() {
                String::new()
            } else {
                format!(" [{details}]")
            }
        );
    }
}
