//! `amd-host-device restore <target>`: gives back the NICs of matching attachments by hand.

use anyhow::bail;

use crate::cni::{CniVersion, Environment};
use crate::config::{is_valid_network_name, NetConf};
use crate::error::{AttachmentFailure, Error, PartialFailure};
use crate::fault;
use crate::host::kernel::{Kernel, LiveKernel};
use crate::log::{self, LogLevel};
use crate::node::policy::NodePolicy;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;
use crate::verbs::give_back::give_back;

use super::tracked::{locate, open_store, tracked, Location, Tracked};
use super::{Options, EXIT_NOTHING_MATCHED, EXIT_OK, USAGE};

fn matches(state: &AttachmentState, target: &str) -> bool {
    state
        .pci_address
        .as_ref()
        .is_some_and(|p| p.as_str() == target.to_ascii_lowercase())
        || state.host.name == target
        || state.container_id == target
        || (target.len() >= 12 && state.container_id.starts_with(target))
}

/// Gives back every match; `EXIT_NOTHING_MATCHED` if none, an error if one could not be
/// given back (the others still were).
pub(super) fn restore(o: &Options) -> anyhow::Result<u8> {
    let [target] = o.positional.as_slice() else {
        bail!("restore needs exactly one PCI address, interface name or container id\n{USAGE}");
    };
    let store = open_store(&o.policy()?.state_dir)?;
    let chosen: Vec<Tracked> = tracked(&store)?
        .into_iter()
        .filter(|t| matches(&t.state, target))
        .collect();
    log::configure(LogLevel::Info, None, "restore".into());
    let finished = finish_cut_short(&store);
    if chosen.is_empty() {
        eprintln!("amd-host-device: nothing to restore: no tracked attachment matches {target}");
        return finished.map(|()| EXIT_NOTHING_MATCHED);
    }
    let kernel = LiveKernel::new();
    let mut failures = Vec::new();
    for Tracked { state, vendor } in chosen {
        let restored = match vendor {
            true => restore_vendors(&kernel, &store, &state, o),
            false => restore_one(&kernel, &store, &state, o),
        };
        match restored {
            Ok(()) if vendor => println!(
                "restored {} (the vendor plugin's attachment)",
                state.host.name
            ),
            Ok(()) => println!(
                "restored {} ({}/{})",
                state.host.name, state.container_id, state.ifname
            ),
            Err(error) => failures.push(AttachmentFailure {
                container_id: state.container_id,
                ifname: state.ifname,
                error,
            }),
        }
    }
    if failures.is_empty() {
        return finished.map(|()| EXIT_OK);
    }
    Err(Error::Incomplete(PartialFailure {
        operation: "restore",
        failures,
    })
    .into())
}

/// Removes what a give-back cut short left behind (claims that name nobody), so that
/// running `restore` again after a crash leaves nothing of the attachment.
fn finish_cut_short(store: &StateStore) -> anyhow::Result<()> {
    store
        .remove_all_stale_claims()
        .map_err(|e| anyhow::anyhow!("could not remove claims that name nobody: {e}"))
}

/// Gives back a NIC of the vendor plugin's that is on the host, and drops its entry. Its
/// record names no pod, so one still in a pod is its runtime's DEL to give back.
fn restore_vendors(
    kernel: &dyn Kernel,
    store: &StateStore,
    state: &AttachmentState,
    o: &Options,
) -> Result<(), Error> {
    let pci = state
        .pci_address
        .clone()
        .expect("vendor entries are keyed by PCI address");
    if locate(kernel, state) == Location::NotOnHost {
        return Err(Error::device_not_found(format!(
            "{} ({pci}) is not on the host, and the vendor plugin's record does not say which \
             pod has it; its runtime's DEL gives it back",
            state.host.name
        )));
    }
    let _device_lock = store.lock_device(&state.device_key())?;
    let _flow = fault::flow("restore-vendor");
    let ctx = Context {
        env: Environment::default(),
        conf: restore_config(state, &o.policy()?)?,
    };
    give_back(kernel, &ctx, None, store, state)?;
    store.remove_vendor_entry(&pci)
}

/// The network config DEL would have had, rebuilt from defaults and what the state recorded.
fn restore_config(state: &AttachmentState, policy: &NodePolicy) -> Result<NetConf, Error> {
    let version = CniVersion::parse(&state.cni_version).unwrap_or(CniVersion::LATEST);
    let conf = serde_json::json!({
        "cniVersion": version.as_str(),
        "name": if is_valid_network_name(&state.network) { &state.network } else { "restore" },
        "type": "amd-host-device",
    });
    NetConf::parse(conf.to_string().as_bytes(), policy)
}

/// Gives one attachment's device back as DEL would. A device still in a live pod is its
/// runtime's to DEL, unless `--force`.
fn restore_one(
    kernel: &dyn Kernel,
    store: &StateStore,
    state: &AttachmentState,
    o: &Options,
) -> Result<(), Error> {
    if let Location::Pod { netns, .. } = locate(kernel, state) {
        if !o.force {
            return Err(Error::Busy(format!(
                "{} is still in the live pod netns {netns}; its runtime should DEL it \
                 (use --force to take it out anyway)",
                state.host.name
            )));
        }
    }
    let _lock = store.lock_attachment(&state.container_id, &state.ifname)?;
    let _device_lock = store.lock_device(&state.device_key())?;
    let _flow = fault::flow("restore");
    let ctx = Context {
        env: Environment {
            container_id: state.container_id.clone(),
            ifname: state.ifname.clone(),
            ..Environment::default()
        },
        conf: restore_config(
            state,
            &NodePolicy {
                state_dir: store.dir().to_path_buf(),
                ..o.policy()?
            },
        )?,
    };
    let delegate = ctx.give_back_delegate();
    give_back(kernel, &ctx, delegate.as_ref(), store, state)
}
