//! The attachments an admin command works on (ours from the state store, the vendor
//! plugin's from its mapping file) and where each one's NIC is now.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::host::kernel::Kernel;
use crate::node::state::{AttachmentState, StateStore};
use crate::verbs::give_back::{find_in_pod, find_on_host};
use crate::verbs::recovery::vendor_attachment;

pub(super) fn open_store(dir: &Path) -> anyhow::Result<StateStore> {
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
pub(super) struct Tracked {
    pub(super) state: AttachmentState,
    pub(super) vendor: bool,
}

pub(super) fn tracked(store: &StateStore) -> anyhow::Result<Vec<Tracked>> {
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
pub(in crate::admin) enum Location {
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

pub(in crate::admin) fn locate(kernel: &dyn Kernel, state: &AttachmentState) -> Location {
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
