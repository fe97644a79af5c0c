//! `amd-host-device doctor [--json]`: the node check an admin runs before the first pod.
//! Everything ADD would refuse at a pod's expense — an unsafe policy file, a missing
//! `host-device`, a state dir it cannot write, a NIC it would not move — is found here
//! first, one line per check, `ok`, `warn` or `FAIL`, with what to do about it.
//!
//! Read-only, by construction where it can be: the kernel is seen through [`view`], which
//! refuses every change; the state dir is opened without creating or locking anything;
//! writability and room are asked of access(2) and statvfs(3); the plugins are only asked
//! `VERSION`; nothing is logged to the policy's log file. One module per group of checks,
//! each over the same parts the plugin itself uses (policy, checkpoint, state store, sysfs,
//! the delegate lookup, ADD's guards).

mod kubelet;
mod log_file;
mod nics;
mod plugins;
mod policy;
mod rdma;
mod report;
mod state;
mod view;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::Error;
use crate::host::kernel::{Kernel, LiveKernel};
use crate::node::policy::NodePolicy;

use super::Options;
use report::Report;
use view::NodeView;

/// What doctor examines besides the kernel: where the policy is, and what the command
/// line says instead of it.
pub(super) struct Inputs {
    /// The policy file (`Err`: `AMD_HOST_DEVICE_NODE_POLICY` names no usable path).
    pub(super) policy_path: Result<PathBuf, Error>,
    /// `--state-dir`: instead of the policy's.
    pub(super) state_dir: Option<PathBuf>,
    /// `--cni-path`: the runtime's CNI_PATH, searched before the usual plugin directories.
    pub(super) cni_path: Vec<String>,
    pub(super) now: SystemTime,
}

/// Runs every check on this node and prints the report; exit status 1 if any check failed.
pub(super) fn doctor(o: &Options) -> anyhow::Result<u8> {
    if !o.positional.is_empty() || o.force {
        anyhow::bail!(
            "doctor takes only --json, --state-dir and --cni-path\n{}",
            super::USAGE
        );
    }
    let inputs = Inputs {
        policy_path: NodePolicy::path(),
        state_dir: o.state_dir.clone(),
        cni_path: o.cni_path.clone(),
        now: SystemTime::now(),
    };
    let report = examine(&LiveKernel::new(), &inputs);
    match o.json {
        true => println!("{}", report.json()),
        false => print!("{}", report.text()),
    }
    Ok(if report.has_failures() { 1 } else { 0 })
}

/// Every check, in the order a pod's ADD meets them.
fn examine(kernel: &dyn Kernel, inputs: &Inputs) -> Report {
    let mut report = Report::default();
    let policy = policy::check(&mut report, inputs.policy_path.as_deref());
    let state_dir = inputs.state_dir.clone().unwrap_or(policy.state_dir.clone());
    plugins::check(&mut report, &policy, &inputs.cni_path);
    let view = match NodeView::new(kernel) {
        Ok(v) => v,
        Err(e) => {
            report.fail(
                "host links",
                format!("cannot read the host's links and routes: {e}"),
                "run doctor as root in the host's network namespace",
            );
            log_file::check(&mut report, policy.log_file.as_deref());
            return report;
        }
    };
    let seen = state::check(&mut report, &view, &state_dir, inputs);
    let checkpoint = kubelet::check(&mut report, &policy.kubelet_checkpoint, view.sysfs(), &seen);
    nics::check(&mut report, &view, &policy, checkpoint.as_ref(), &seen);
    rdma::check(&mut report, &view);
    log_file::check(&mut report, policy.log_file.as_deref());
    report
}

#[cfg(test)]
mod tests;
