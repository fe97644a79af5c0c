//! The state directory (there or makeable, root's and private, writable, room left, no
//! leftovers), every attachment in it with where its NIC is and whether its pod still
//! exists, and the vendor plugin's mapping file. Writability and room are asked of the
//! kernel (access(2), statvfs(3)), never tried: doctor writes nothing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{access, AccessFlags};

use crate::admin::tracked::{locate, Location};
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::node::state::{AttachmentState, StateStore, VENDOR_MAPPINGS_FILE};
use crate::verbs::recovery::vendor_attachment;

use super::report::{Report, Status};
use super::Inputs;

/// A temporary file younger than this may be a save under way, not a leftover.
const TEMP_FILE_GRACE: Duration = Duration::from_secs(60);
/// Below this much room an ADD's state write (one small file) may fail.
const FULL_BYTES: u64 = 64 * 1024;
const LOW_BYTES: u64 = 1024 * 1024;
const FULL_INODES: u64 = 8;
const LOW_INODES: u64 = 100;

/// Where a NIC is, as a sentence part: `on the host as dev3`.
pub(super) fn where_is(location: &Location) -> String {
    match location {
        Location::Pod { netns, ifname } => format!("in pod netns {netns} as {ifname}"),
        Location::Host { ifname } => format!("on the host as {ifname}"),
        Location::Unknown => {
            "neither in a pod nor on the host (a virtual NIC dies with its netns)".into()
        }
        Location::NotOnHost => "not on the host (in a pod the vendor's record names not)".into(),
    }
}

/// An attachment this node knows of and where its NIC is now.
pub(super) struct Seen {
    pub(super) state: AttachmentState,
    /// The vendor plugin's, from its mapping file.
    pub(super) vendor: bool,
    pub(super) location: Location,
}

/// Checks the state dir of `policy_state_dir` and returns the attachments in it.
pub(super) fn check(
    report: &mut Report,
    kernel: &dyn Kernel,
    state_dir: &Path,
    inputs: &Inputs,
) -> Vec<Seen> {
    let store = match StateStore::open_existing(state_dir) {
        Ok(Some(store)) => store,
        Ok(None) => {
            check_makeable(report, state_dir);
            return Vec::new();
        }
        Err(e) => {
            report.fail(
                "state-dir",
                format!("{e}: every ADD fails (code 5)"),
                format!(
                    "make {} a directory (not a symlink), or point the policy's stateDir at one",
                    state_dir.display()
                ),
            );
            return Vec::new();
        }
    };
    check_owner_and_mode(report, state_dir);
    check_writable(report, state_dir);
    check_room(report, state_dir);
    check_temporary_files(report, &store, inputs.now);
    let mut seen = attachments(report, kernel, &store, inputs);
    seen.extend(vendor_attachments(report, kernel, &store, inputs));
    seen
}

/// A state dir that does not exist yet: the first ADD makes it under its nearest existing
/// parent, which must take it.
fn check_makeable(report: &mut Report, dir: &Path) {
    let parent = dir.ancestors().skip(1).find(|p| p.exists());
    let Some(parent) = parent else {
        report.fail(
            "state-dir",
            format!("{} has no existing parent directory", dir.display()),
            "point the policy's stateDir at an absolute path",
        );
        return;
    };
    match access(parent, AccessFlags::W_OK | AccessFlags::X_OK) {
        Ok(()) => {
            report.ok(
                "state-dir",
                format!(
                    "{} does not exist yet; the first ADD makes it (0700) in {}",
                    dir.display(),
                    parent.display()
                ),
            );
            check_room(report, parent);
        }
        Err(e) => report.fail(
            "state-dir",
            format!(
                "{} does not exist and cannot be made in {}: {}; every ADD fails (code 5)",
                dir.display(),
                parent.display(),
                e.desc()
            ),
            format!(
                "create it (mkdir -m 0700 {}) on a writable file system",
                dir.display()
            ),
        ),
    }
}

fn check_owner_and_mode(report: &mut Report, dir: &Path) {
    let Ok(meta) = dir.symlink_metadata() else {
        return;
    };
    let what = format!(
        "{} (uid {}, mode {:04o})",
        dir.display(),
        meta.uid(),
        meta.mode() & 0o7777
    );
    if meta.uid() != 0 {
        report.fail(
            "state-dir",
            format!("{what} is not root's: whoever owns it can change what DEL restores"),
            format!("chown root:root {0}; chmod 0700 {0}", dir.display()),
        );
    } else if meta.mode() & 0o077 != 0 {
        report.warn(
            "state-dir",
            format!("{what} is open to others; the next ADD makes it 0700"),
            format!("chmod 0700 {}", dir.display()),
        );
    } else {
        report.ok("state-dir", what);
    }
}

fn check_writable(report: &mut Report, dir: &Path) {
    let read_only = statvfs(dir).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY));
    match access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        Ok(()) if !read_only => report.ok("state-dir writable", dir.display().to_string()),
        result => report.fail(
            "state-dir writable",
            format!(
                "{}: {}; every ADD fails (code 5) and DEL cannot forget what it gave back",
                dir.display(),
                match result {
                    Err(e) => e.desc(),
                    Ok(()) => "on a read-only file system",
                }
            ),
            format!(
                "mount the file system of {} read-write, or point the policy's stateDir \
                 at a writable directory",
                dir.display()
            ),
        ),
    }
}

/// How full a file system is, from statvfs: free bytes, and free and total inodes (a
/// file system without an inode limit says 0 total).
pub(super) fn room_verdict(free_bytes: u64, free_inodes: u64, total_inodes: u64) -> Status {
    let counted = total_inodes > 0;
    if free_bytes < FULL_BYTES || (counted && free_inodes < FULL_INODES) {
        Status::Fail
    } else if free_bytes < LOW_BYTES || (counted && free_inodes < LOW_INODES) {
        Status::Warn
    } else {
        Status::Ok
    }
}

fn check_room(report: &mut Report, dir: &Path) {
    let stat = match statvfs(dir) {
        Ok(s) => s,
        Err(e) => {
            report.warn(
                "state-dir space",
                format!("statvfs {}: {}", dir.display(), e.desc()),
                "check the file system",
            );
            return;
        }
    };
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let (free_inodes, inodes) = (stat.files_available() as u64, stat.files() as u64);
    let detail = format!(
        "{}: {} free{}",
        dir.display(),
        human_bytes(free),
        if inodes > 0 {
            format!(", {free_inodes} of {inodes} inodes free")
        } else {
            String::new()
        }
    );
    let fix = format!("free space on the file system of {}", dir.display());
    match room_verdict(free, free_inodes, inodes) {
        Status::Ok => report.ok("state-dir space", detail),
        Status::Warn => report.warn("state-dir space", format!("{detail}: nearly full"), fix),
        Status::Fail => report.fail(
            "state-dir space",
            format!("{detail}: full, ADD cannot write its state (code 5)"),
            fix,
        ),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

fn check_temporary_files(report: &mut Report, store: &StateStore, now: SystemTime) {
    let left: Vec<String> = match store.temporary_files() {
        Ok(files) => files
            .into_iter()
            .filter(|(_, modified)| {
                now.duration_since(*modified)
                    .is_ok_and(|age| age > TEMP_FILE_GRACE)
            })
            .map(|(name, _)| name)
            .collect(),
        Err(e) => {
            report.warn(
                "state-dir temporary files",
                e.to_string(),
                "check the directory",
            );
            return;
        }
    };
    if left.is_empty() {
        report.ok("state-dir temporary files", "none left over");
        return;
    }
    let dir = store.dir().display();
    report.warn(
        "state-dir temporary files",
        format!(
            "{} left by a process killed while writing: {}",
            left.len(),
            left.join(", ")
        ),
        format!(
            "remove them when no CNI call is running (they hold nothing the plugin reads): \
             rm {}",
            left.iter()
                .map(|n| format!("{dir}/{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
}

/// `amd-host-device restore <target>`, with the `--state-dir` doctor was given.
fn restore_command(target: &str, inputs: &Inputs) -> String {
    match &inputs.state_dir {
        Some(dir) => format!(
            "amd-host-device restore {target} --state-dir {}",
            dir.display()
        ),
        None => format!("amd-host-device restore {target}"),
    }
}

fn attachments(
    report: &mut Report,
    kernel: &dyn Kernel,
    store: &StateStore,
    inputs: &Inputs,
) -> Vec<Seen> {
    let ids = match store.attachments() {
        Ok(ids) => ids,
        Err(e) => {
            report.fail("attachments", e.to_string(), "check the state dir");
            return Vec::new();
        }
    };
    let mut seen = Vec::new();
    for (cid, ifname) in ids {
        let name = format!("attachment {cid}/{ifname}");
        match store.load(&cid, &ifname) {
            Ok(Some(state)) => {
                let location = locate(kernel, &state);
                let (status, detail, fix) = verdict(kernel, &state, &location, inputs);
                report.push(name, status, detail, fix);
                seen.push(Seen {
                    state,
                    vendor: false,
                    location,
                });
            }
            Ok(None) => {} // removed since it was listed
            Err(e @ Error::NewerState { .. }) => report.warn(name, e.to_string(), newer_fix()),
            Err(e) => report.warn(name, e.to_string(), corrupt_fix()),
        }
    }
    for file in store.unreadable_state_files().unwrap_or_default() {
        report.warn(
            format!("state file {file}"),
            format!(
                "{}/{file} is no attachment's readable state (cut short, or named for \
                 other ids)",
                store.dir().display()
            ),
            corrupt_fix(),
        );
    }
    seen
}

fn newer_fix() -> String {
    "a newer amd-host-device attached this NIC: give it back with that version (its pod's \
     DEL, or its restore), or run that version on this node again"
        .into()
}

fn corrupt_fix() -> String {
    "leave it to its pod's DEL, which salvages what it can; if the pod is gone, give its \
     NIC back by hand, then remove the file"
        .into()
}

/// Who an attachment is for, in words: `pod testns/web, network net-a`.
fn owner(state: &AttachmentState) -> String {
    let pod = match (&state.pod.namespace, &state.pod.name) {
        (Some(ns), Some(n)) => format!("pod {ns}/{n}"),
        (None, Some(n)) => format!("pod {n}"),
        _ => "no pod name".into(),
    };
    format!("{pod}, network {}", state.network)
}

/// The NIC of an attachment: `n1 (PCI 0000:5e:00.1)`.
fn nic(state: &AttachmentState) -> String {
    match &state.pci_address {
        Some(pci) if state.host.name.is_empty() => format!("PCI {pci}"),
        Some(pci) => format!("{} (PCI {pci})", state.host.name),
        None => state.host.name.clone(),
    }
}

/// An attachment of ours: fine while its pod lives and holds its NIC; stale (its netns
/// is gone) or astray (the NIC is not in the live pod) otherwise.
fn verdict(
    kernel: &dyn Kernel,
    state: &AttachmentState,
    location: &Location,
    inputs: &Inputs,
) -> (Status, String, Option<String>) {
    let restore = Some(restore_command(&state.container_id, inputs));
    let netns = &state.netns;
    let alive = !netns.is_empty() && kernel.netns_exists(Path::new(netns));
    if let Some(driver) = &state.userspace_driver {
        let what = format!(
            "{}: {} (bound to {driver}, nothing moved)",
            owner(state),
            nic(state)
        );
        return match alive {
            true => (Status::Ok, format!("{what}, pod netns {netns} lives"), None),
            false => (
                Status::Warn,
                format!("{what}: stale, its pod's netns {netns} is gone; the claim stays"),
                restore,
            ),
        };
    }
    let what = format!("{}: {}", owner(state), nic(state));
    match (alive, location) {
        (true, Location::Pod { ifname, .. }) => (
            Status::Ok,
            format!("{what} in pod netns {netns} as {ifname}"),
            None,
        ),
        (true, Location::Host { ifname }) => (
            Status::Warn,
            format!("{what} is on the host as {ifname}, though its pod netns {netns} lives"),
            restore,
        ),
        (true, _) => (
            Status::Warn,
            format!("{what} is neither in its live pod netns {netns} nor on the host"),
            Some("look for it (ip -d link, in every netns); its pod's DEL forgets it".into()),
        ),
        (false, location) => (
            Status::Warn,
            format!(
                "{what}: stale, its pod's netns {netns} is gone; the NIC is {}",
                where_is(location)
            ),
            restore,
        ),
    }
}

/// The vendor plugin's mapping file, if there is one, and each of its attachments.
fn vendor_attachments(
    report: &mut Report,
    kernel: &dyn Kernel,
    store: &StateStore,
    inputs: &Inputs,
) -> Vec<Seen> {
    let path: PathBuf = store.dir().join(VENDOR_MAPPINGS_FILE);
    if path.symlink_metadata().is_err() {
        return Vec::new();
    }
    let entries = match store.vendor_entries() {
        Ok(entries) => entries,
        Err(e) => {
            report.warn(
                "vendor mappings",
                format!("{e}: DEL leaves it alone, so its NICs come back only by hand"),
                format!("repair or move away {}", path.display()),
            );
            return Vec::new();
        }
    };
    report.ok(
        "vendor mappings",
        format!(
            "{}: {} entries of the vendor plugin's, each given back by its pod's DEL",
            path.display(),
            entries.len()
        ),
    );
    let mut seen = Vec::new();
    for (pci, entry) in &entries {
        let state = vendor_attachment(pci, entry);
        let location = locate(kernel, &state);
        let what = format!(
            "{} (PCI {pci}, {}, {})",
            entry.host_interface_name,
            entry
                .host_interface_ips
                .as_deref()
                .filter(|ips| !ips.is_empty())
                .map(|ips| ips.join(", "))
                .unwrap_or_else(|| "no addresses".into()),
            if entry.was_up() { "UP" } else { "DOWN" }
        );
        let name = format!("vendor {pci}");
        match &location {
            Location::Host { ifname } => report.warn(
                name,
                format!("{what} is back on the host as {ifname}, its entry still there"),
                restore_command(pci.as_str(), inputs),
            ),
            _ => report.ok(name, format!("{what}: in a pod; its DEL gives it back")),
        }
        seen.push(Seen {
            state,
            vendor: true,
            location,
        });
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_is_full_before_it_has_no_byte_left() {
        assert_eq!(room_verdict(10 << 30, 1_000_000, 2_000_000), Status::Ok);
        assert_eq!(room_verdict(10 << 30, 0, 0), Status::Ok, "no inode limit");
        assert_eq!(room_verdict(512 * 1024, 1_000, 2_000), Status::Warn);
        assert_eq!(room_verdict(10 << 30, 50, 2_000), Status::Warn);
        assert_eq!(room_verdict(4096, 1_000, 2_000), Status::Fail);
        assert_eq!(room_verdict(10 << 30, 0, 2_000), Status::Fail);
    }

    #[test]
    fn sizes_read_as_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 * 1024), "64.0 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
