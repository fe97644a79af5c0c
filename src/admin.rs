//! Commands for a person at a shell (`amd-host-device list`, `restore`, `--version`).
//! Without arguments the binary is a pure CNI plugin; these never run under a runtime.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::cni::{CniVersion, Environment};
use crate::config::{is_valid_network_name, NetConf};
use crate::error::{AttachmentFailure, Error, PartialFailure};
use crate::host::kernel::{Kernel, LiveKernel};
use crate::log::{self, LogLevel};
use crate::node::policy::NodePolicy;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::context::Context;
use crate::verbs::give_back::{find_in_pod, find_on_host, give_back};
use crate::verbs::recovery::vendor_attachment;

const USAGE: &str = "usage:
  amd-host-device --version
  amd-host-device list [--json] [--state-dir DIR]
  amd-host-device restore <PCI address | interface name | container id> [--force] [--state-dir DIR]

Without arguments, amd-host-device is a CNI plugin driven by CNI_COMMAND and stdin.";

/// Runs an admin command; errors go to stderr with their context chain.
pub fn run(args: &[String]) -> ExitCode {
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amd-host-device: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    json: bool,
    force: bool,
    /// `--state-dir`; else the node policy's.
    state_dir: Option<PathBuf>,
    positional: Vec<String>,
}

impl Options {
    /// The node policy, with `--state-dir` (a person at a root shell decides) over its own.
    fn policy(&self) -> Result<NodePolicy, Error> {
        let policy = NodePolicy::load()?;
        Ok(NodePolicy {
            state_dir: self.state_dir.clone().unwrap_or(policy.state_dir.clone()),
            ..policy
        })
    }
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        json: false,
        force: false,
        state_dir: None,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--force" => o.force = true,
            "--state-dir" => {
                o.state_dir = Some(it.next().context("--state-dir needs a directory")?.into());
            }
            s if s.starts_with("--state-dir=") => {
                o.state_dir = Some(s["--state-dir=".len()..].into())
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => o.positional.push(s.to_owned()),
        }
    }
    Ok(o)
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
    let Some((command, rest)) = args.split_first() else {
        bail!("{USAGE}");
    };
    match command.as_str() {
        "--version" | "version" => {
            let versions: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
            println!(
                "amd-host-device {} (CNI spec versions {}){}",
                env!("CARGO_PKG_VERSION"),
                versions.join(", "),
                if crate::fault::BUILT_IN {
                    " [test build: fault injection built in]"
                } else {
                    ""
                }
            );
            Ok(())
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "list" => list(&parse_options(rest)?),
        "restore" => restore(&parse_options(rest)?),
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn open_store(dir: &Path) -> anyhow::Result<StateStore> {
    if !dir.exists() {
        bail!(
            "state dir {} does not exist (nothing was ever attached?)",
            dir.display()
        );
    }
    StateStore::open(dir).with_context(|| format!("cannot use state dir {}", dir.display()))
}

/// An attachment this node knows of: one of ours, or one the vendor plugin made before
/// the node switched to amd-host-device.
struct Tracked {
    state: AttachmentState,
    vendor: bool,
}

fn tracked(store: &StateStore) -> anyhow::Result<Vec<Tracked>> {
    let ids = store
        .attachments()
        .with_context(|| format!("cannot list {}", store.dir().display()))?;
    let ours = ids
        .into_iter()
        .filter_map(|(cid, ifname)| match store.load(&cid, &ifname) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("amd-host-device: {e}");
                None
            }
        })
        .map(|state| Tracked {
            state,
            vendor: false,
        });
    let vendors = store.vendor_entries().unwrap_or_else(|e| {
        eprintln!("amd-host-device: {e}");
        Default::default()
    });
    let theirs = vendors.iter().map(|(pci, entry)| Tracked {
        state: vendor_attachment(pci, entry),
        vendor: true,
    });
    Ok(ours.chain(theirs).collect())
}

/// Where the device of an attachment is right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "where")]
enum Location {
    Pod {
        netns: String,
        ifname: String,
    },
    Host {
        ifname: String,
    },
    Unknown,
    /// A vendor plugin's NIC that is not on the host: in some pod its record does not name.
    NotOnHost,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Pod { netns, ifname } => write!(f, "pod {netns} as {ifname}"),
            Location::Host { ifname } => write!(f, "host as {ifname}"),
            Location::Unknown => f.write_str("unknown (netns gone, not on the host)"),
            Location::NotOnHost => {
                f.write_str("not on the host (the vendor plugin's record names no pod)")
            }
        }
    }
}

fn locate(kernel: &dyn Kernel, state: &AttachmentState) -> Location {
    if let Ok(Some(link)) = find_on_host(kernel, state) {
        return Location::Host { ifname: link.name };
    }
    if state.netns.is_empty() {
        return Location::NotOnHost;
    }
    let netns = Path::new(&state.netns);
    if kernel.netns_exists(netns) {
        if let Ok(Some(link)) = find_in_pod(kernel, netns, state) {
            return Location::Pod {
                netns: state.netns.clone(),
                ifname: link.name,
            };
        }
    }
    Location::Unknown
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    /// `amd-host-device`, or `vendor` for the vendor plugin's attachments.
    owner: &'static str,
    container_id: &'a str,
    ifname: &'a str,
    pod: String,
    network: &'a str,
    pci_address: Option<String>,
    host_name: &'a str,
    addresses: Vec<String>,
    location: Location,
}

fn list(o: &Options) -> anyhow::Result<()> {
    let store = open_store(&o.policy()?.state_dir)?;
    let states = tracked(&store)?;
    let kernel = LiveKernel::new();
    let rows: Vec<Row> = states
        .iter()
        .map(|t| (&t.state, t.vendor))
        .map(|(s, vendor)| Row {
            owner: if vendor { "vendor" } else { "amd-host-device" },
            container_id: &s.container_id,
            ifname: &s.ifname,
            pod: match (&s.pod.namespace, &s.pod.name) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                (None, Some(n)) => n.clone(),
                _ => "-".into(),
            },
            network: &s.network,
            pci_address: s.pci_address.as_ref().map(ToString::to_string),
            host_name: &s.host.name,
            addresses: s.host.addresses.iter().map(|a| a.cidr()).collect(),
            location: locate(&kernel, s),
        })
        .collect();
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                match r.owner {
                    "vendor" => "(vendor)".to_owned(),
                    _ => r.container_id.chars().take(12).collect(),
                },
                r.ifname.to_owned(),
                r.pod.clone(),
                r.network.to_owned(),
                r.pci_address.clone().unwrap_or_else(|| "-".into()),
                r.host_name.to_owned(),
                if r.addresses.is_empty() {
                    "-".into()
                } else {
                    r.addresses.join(",")
                },
                r.location.to_string(),
            ]
        })
        .collect();
    let header = [
        "CONTAINER",
        "IFNAME",
        "POD",
        "NETWORK",
        "PCI",
        "HOST NAME",
        "ADDRESSES",
        "NOW",
    ];
    print_table(&header, &table);
    Ok(())
}

/// Prints a table. Cells can hold what a tenant wrote (a pod name from `CNI_ARGS`), so their
/// control characters are escaped: a row is always one line.
fn print_table(header: &[&str; 8], rows: &[[String; 8]]) {
    let rows: Vec<[String; 8]> = rows
        .iter()
        .map(|r| r.clone().map(|cell| log::escape_controls(&cell)))
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn matches(state: &AttachmentState, target: &str) -> bool {
    state
        .pci_address
        .as_ref()
        .is_some_and(|p| p.as_str() == target.to_ascii_lowercase())
        || state.host.name == target
        || state.container_id == target
        || (target.len() >= 12 && state.container_id.starts_with(target))
}

fn restore(o: &Options) -> anyhow::Result<()> {
    let [target] = o.positional.as_slice() else {
        bail!("restore needs exactly one PCI address, interface name or container id\n{USAGE}");
    };
    let store = open_store(&o.policy()?.state_dir)?;
    let chosen: Vec<Tracked> = tracked(&store)?
        .into_iter()
        .filter(|t| matches(&t.state, target))
        .collect();
    if chosen.is_empty() {
        println!("nothing to restore: no tracked attachment matches {target}");
        return Ok(());
    }
    log::configure(LogLevel::Info, None, "restore".into());
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
        return Ok(());
    }
    Err(Error::Incomplete(PartialFailure {
        operation: "restore",
        failures,
    })
    .into())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse_options(&args(&["x", "--json", "--state-dir", "/s", "--force"])).unwrap();
        assert!(o.json && o.force);
        assert_eq!(o.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(o.positional, vec!["x"]);
        assert!(parse_options(&args(&["--bogus"])).is_err());
        assert!(parse_options(&args(&["--state-dir"])).is_err());
    }

    #[test]
    fn unknown_commands_and_missing_targets_are_errors() {
        assert!(dispatch(&args(&["frobnicate"])).is_err());
        assert!(dispatch(&[]).is_err());
        assert!(dispatch(&args(&["restore", "--state-dir", "/nonexistent-amd"])).is_err());
    }
}
