//! Per-attachment state on disk: one JSON file per (container, ifname), written atomically
//! before anything moves, plus flock-based locks and device claims.
//!
//! Layout under the state dir (0700):
//!   `<containerID>-<ifname>.json`   the captured host configuration (0600)
//!   `claim-<device key>`            hard link to the state file that owns a device (a
//!                                   second name, so no inode of its own to create or free)
//!   `locks/attachments.lock`        one byte-range lock per attachment, all in one file
//!   `locks/dev-<device key>.lock`   flock target, one per device
//!   `.spare-<n>`                    state files of finished attachments, kept for reuse
//!
//! An ADD costs one file fsync and one directory fsync; a DEL none (see `remove`).
//! A DEL parks its state file as a spare rather than deleting it, and the next ADD writes
//! into a spare: deleting a file frees its data block, which was the slowest step of a DEL
//! on ext4 (≈ 0.3 ms on the benchmark VM, mounted with `discard`), and a reused block needs
//! no allocation at ADD either.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cni::Error;
use crate::config::Selector;
use crate::device::{MacAddress, PciAddress};
use crate::snapshot::HostInterface;

type Result<T> = std::result::Result<T, Error>;

pub const SCHEMA_VERSION: u32 = 1;

/// How long an operation waits for another one on the same attachment or device before
/// telling the runtime to try again later (code 11).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How many finished state files are kept for reuse; with every slot taken, a DEL deletes.
const SPARE_SLOTS: usize = 8;

/// Kubernetes identity from CNI_ARGS, for humans reading the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentState {
    pub schema: u32,
    pub container_id: String,
    /// CNI_IFNAME the runtime used (the key of this attachment, e.g. `net1`).
    pub ifname: String,
    pub network: String,
    pub cni_version: String,
    pub netns: String,
    pub selector: Selector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddress>,
    /// The device as it was on the host before ADD.
    pub host: HostInterface,
    /// The name the device has inside the pod.
    pub pod_ifname: String,
    /// Temporary host name given before the move when the host name was taken in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_name: Option<String>,
    /// RDMA devices bound to the netdev (moved with it in exclusive netns mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rdma_devices: Vec<String>,
    #[serde(default)]
    pub pod: PodRef,
    pub created: String,
}

impl AttachmentState {
    /// Best-effort reconstruction from a corrupt or truncated state file: every field that can
    /// still be read is used, the rest gets a safe default (the device comes back up, MTU and
    /// routes untouched). Returns the state and the names of what was lost.
    pub fn salvage(
        container_id: &str,
        ifname: &str,
        bytes: &[u8],
    ) -> (AttachmentState, Vec<&'static str>) {
        let text = String::from_utf8_lossy(bytes);
        // Only look inside the "host" object for its fields: "pod" has a "name" too.
        let host_part = text.find("\"host\"").map(|i| &text[i..]).unwrap_or("");
        let mut lost = Vec::new();
        let mut note = |what: &'static str, present: bool| {
            if !present {
                lost.push(what);
            }
        };
        let name = salvage_value(host_part, "name").and_then(|v| v.as_str().map(str::to_owned));
        note("host name", name.is_some());
        let mac = salvage_value(host_part, "mac").and_then(|v| {
            v.as_str()
                .and_then(|m| crate::device::MacAddress::parse(m).ok())
        });
        note("MAC", mac.is_some());
        let mtu = salvage_value(host_part, "mtu")
            .and_then(|v| v.as_u64())
            .map(|m| m as u32);
        note("MTU", mtu.is_some());
        let up = salvage_value(host_part, "up").and_then(|v| v.as_bool());
        note("admin state", up.is_some());
        let addresses: Vec<crate::netlink::Address> = salvage_value(host_part, "addresses")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| salvage_addresses(host_part));
        let routes: Option<Vec<crate::netlink::Route>> =
            salvage_value(host_part, "routes").and_then(|v| serde_json::from_value(v).ok());
        note("routes", routes.is_some());
        let string = |key| salvage_value(&text, key).and_then(|v| v.as_str().map(str::to_owned));
        let state = AttachmentState {
            schema: SCHEMA_VERSION,
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
            network: string("network").unwrap_or_default(),
            cni_version: string("cniVersion").unwrap_or_default(),
            netns: string("netns").unwrap_or_default(),
            selector: Selector::default(),
            pci_address: string("pciAddress").and_then(|p| PciAddress::parse(&p).ok()),
            host: HostInterface {
                name: name.unwrap_or_default(),
                ifindex: 0,
                mac,
                mtu: mtu.unwrap_or(0),
                up: up.unwrap_or(true),
                alias: None,
                addresses,
                routes: routes.unwrap_or_default(),
            },
            pod_ifname: string("podIfname").unwrap_or_else(|| ifname.to_owned()),
            staging_name: string("stagingName"),
            rdma_devices: salvage_value(&text, "rdmaDevices")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            pod: PodRef::default(),
            created: String::new(),
        };
        (state, lost)
    }

    /// The key that names the physical device in locks and claims: its PCI address when
    /// known, else its MAC, else its host name.
    pub fn device_key(&self) -> String {
        device_key(
            self.pci_address.as_ref(),
            self.host.mac.as_ref(),
            &self.host.name,
        )
    }

    /// Every key this attachment claims its device under: the device key, and the host name
    /// so that a second pod selecting the device by `device` hears who has it.
    pub fn claim_keys(&self) -> Vec<String> {
        let mut keys = vec![self.device_key()];
        let by_name = name_key(&self.host.name);
        if !keys.contains(&by_name) && !self.host.name.is_empty() {
            keys.push(by_name);
        }
        keys
    }

    /// The state file's name (what the symlink claims of earlier versions point at).
    pub fn file_name(&self) -> String {
        state_file_name(&self.container_id, &self.ifname)
    }
}

pub fn pci_key(pci: &PciAddress) -> String {
    format!("pci-{pci}")
}

pub fn device_key(pci: Option<&PciAddress>, mac: Option<&MacAddress>, name: &str) -> String {
    match (pci, mac) {
        (Some(p), _) => pci_key(p),
        (None, Some(m)) => format!("mac-{}", m.to_string().replace(':', "")),
        (None, None) => name_key(name),
    }
}

pub fn name_key(ifname: &str) -> String {
    format!("name-{ifname}")
}

fn state_file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}.json")
}

/// The identity fields of a state file, readable even from a newer schema.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ids {
    container_id: String,
    ifname: String,
}

/// Who holds a device (content of a claim file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub container_id: String,
    pub ifname: String,
}

impl From<Ids> for Claim {
    fn from(ids: Ids) -> Claim {
        Claim {
            container_id: ids.container_id,
            ifname: ids.ifname,
        }
    }
}

pub struct StateStore {
    dir: PathBuf,
}

/// An exclusive lock; released when dropped (closing the file releases either kind).
pub struct Lock {
    _held: Held,
}

/// Held only to be dropped.
enum Held {
    Whole {
        _flock: Flock<File>,
    },
    /// An open-file-description byte-range lock: owned by this open file, like a flock.
    Range {
        _file: File,
    },
}

/// FNV-1a of the attachment's identity: its byte in the attachment lock file.
fn attachment_slot(container_id: &str, ifname: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

impl StateStore {
    /// Opens (creating, 0700) the state dir. Refuses a symlink or non-directory there.
    pub fn open(dir: &Path) -> Result<StateStore> {
        let store = StateStore {
            dir: dir.to_path_buf(),
        };
        for d in [dir.to_path_buf(), dir.join("locks")] {
            ensure_private_dir(&d)?;
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<cid>-<ifname>.json`. Both parts were validated (no '/', no "..") by `cni::env`.
    pub fn path_of(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(state_file_name(container_id, ifname))
    }

    /// The state of one attachment, `None` if there is none. A file that exists but does not
    /// parse is an error (code 6) naming the file.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<AttachmentState>> {
        let path = self.path_of(container_id, ifname);
        let Some(bytes) = read_no_follow(&path)? else {
            return Ok(None);
        };
        let state: AttachmentState = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Decode(format!("state file {} is corrupt: {e}", path.display())))?;
        // Another attachment's state under this name is no state of ours. Only a power loss
        // can make one: a DEL's unsynced parking of its file undone after the next ADD
        // rewrote the spare.
        Ok((state.container_id == container_id && state.ifname == ifname).then_some(state))
    }

    /// Writes `state` atomically (temp file in the same dir, fsync, rename) and links its
    /// claims to it, then makes all of it durable with one fsync of the dir.
    /// A crash leaves either no state or a whole one, never a torn one.
    pub fn save(&self, state: &AttachmentState) -> Result<()> {
        let path = self.path_of(&state.container_id, &state.ifname);
        let mut bytes = serde_json::to_vec_pretty(state).expect("state always serialises");
        bytes.push(b'\n');
        self.write_atomically(&path, &bytes)?;
        for key in state.claim_keys() {
            self.set_claim(&key, &path)?;
        }
        sync_dir(&self.dir)
    }

    /// Removes the state of an attachment and the claims it still holds.
    /// Not fsynced: if a power loss brings the file back, the next DEL or GC restores a device
    /// that is already restored, which changes nothing; if the next ADD had already rewritten
    /// it as a spare, its ids no longer match its name and it is ignored (see `load`).
    pub fn remove(&self, state: &AttachmentState) -> Result<()> {
        let path = self.path_of(&state.container_id, &state.ifname);
        let file = inode_of(&path);
        // Names of the file removed here, to know whether it has others left.
        let mut unlinked = 0;
        for key in state.claim_keys() {
            let claim = self.claim_path(&key);
            match inode_of(&claim) {
                Some(inode) if inode.same_file(file) => {
                    remove_if_present(&claim)?;
                    unlinked += 1;
                }
                Some(_) => {}
                // A symlink claim of an earlier version: ours if it names our file.
                None if read_symlink_claim(&claim).as_deref()
                    == Some(state.file_name().as_str()) =>
                {
                    remove_if_present(&claim)?
                }
                None => {}
            }
        }
        let Some(file) = file else {
            return remove_if_present(&path);
        };
        // Claims under keys this state no longer names (a salvaged state lost its PCI
        // address, say) are found by inode; only a file with no other name is parked.
        if file.nlink > 1 + unlinked && !self.remove_claims_of(file)? {
            return remove_if_present(&path);
        }
        self.retire(&path)
    }

    /// Removes every `claim-*` that is a name of `file`; whether the file is left with one.
    fn remove_claims_of(&self, file: Inode) -> Result<bool> {
        let (claims, others): (Vec<_>, Vec<_>) = self
            .names_of(file)?
            .into_iter()
            .partition(|name| name.starts_with("claim-"));
        for claim in claims {
            remove_if_present(&self.dir.join(claim))?;
        }
        Ok(others.len() == 1)
    }

    /// Every name `file` has in the state dir (a scan: only for the rare cases that need it).
    fn names_of(&self, file: Inode) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("list {}", self.dir.display()), e))?;
        Ok(entries
            .flatten()
            .filter(|e| file.same_file(inode_of(&e.path())))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    /// Takes a state file with no other name out of use: parked in a free spare slot, else
    /// deleted.
    fn retire(&self, path: &Path) -> Result<()> {
        for slot in 0..SPARE_SLOTS {
            match rename_no_replace(path, &self.spare_path(slot)) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // A filesystem without RENAME_NOREPLACE: plain delete.
                Err(_) => break,
            }
        }
        remove_if_present(path)
    }

    fn spare_path(&self, slot: usize) -> PathBuf {
        self.dir.join(format!(".spare-{slot}"))
    }

    /// Serialises every operation on one attachment (ADD vs DEL of the same pod interface):
    /// one byte of a shared lock file, chosen by hash. A single file created once, because
    /// creating a file was up to 0.7 ms of an ADD on a busy ext4 journal; two attachments
    /// that hash alike (one in 2^32) merely take turns.
    pub fn lock_attachment(&self, container_id: &str, ifname: &str) -> Result<Lock> {
        let slot = attachment_slot(container_id, ifname);
        self.lock("attachments", |file| {
            match nix::fcntl::fcntl(
                file.as_raw_fd(),
                FcntlArg::F_OFD_SETLK(&write_lock_of(slot)),
            ) {
                Ok(_) => Ok(Held::Range { _file: file }),
                Err(e) => Err((file, e)),
            }
        })
    }

    /// Serialises every operation on one physical device, whichever pod asks.
    pub fn lock_device(&self, key: &str) -> Result<Lock> {
        self.lock(&format!("dev-{key}"), |file| {
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map(|f| Held::Whole { _flock: f })
        })
    }

    /// Opens `locks/<name>.lock` and retries `try_lock` (non-blocking) until it succeeds or
    /// `LOCK_TIMEOUT` has passed.
    fn lock(
        &self,
        name: &str,
        try_lock: impl Fn(File) -> std::result::Result<Held, (File, nix::errno::Errno)>,
    ) -> Result<Lock> {
        let path = self.dir.join("locks").join(format!("{name}.lock"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io(format!("open lock {}", path.display()), e))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match try_lock(file) {
                Ok(held) => return Ok(Lock { _held: held }),
                Err((f, e)) if is_contended(e) && Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, e)) if is_contended(e) => {
                    return Err(Error::Busy(format!(
                        "{name} is locked by another operation for more than {}s; try again later",
                        LOCK_TIMEOUT.as_secs()
                    )))
                }
                Err((_, e)) => {
                    return Err(Error::io(
                        format!("lock {}", path.display()),
                        std::io::Error::from(e),
                    ))
                }
            }
        }
    }

    /// The attachment that claims device `key`, if its state still exists. A claim is a hard
    /// link to the owner's state file; once that file is gone or replaced the claim is
    /// stale and ignored.
    pub fn claim_of(&self, key: &str) -> Result<Option<Claim>> {
        let claim = self.claim_path(key);
        let Ok(meta) = claim.symlink_metadata() else {
            return Ok(None);
        };
        if meta.file_type().is_symlink() {
            return match read_symlink_claim(&claim) {
                Some(target) => self.symlink_claim_owner(&target),
                None => Ok(None),
            };
        }
        let Some(inode) = Inode::of_file(&meta) else {
            return Ok(None);
        };
        let Some(bytes) = read_no_follow(&claim)? else {
            return Ok(None);
        };
        // The ids come from the owner's state file itself: both may contain '-'. Only the
        // first JSON value counts: a file cut short or with a stale tail still names them.
        let ids = serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Ids>()
            .next()
            .ok_or(())
            .and_then(|r| r.map_err(drop));
        let owner = match ids {
            Ok(ids) => inode
                .same_file(inode_of(&self.path_of(&ids.container_id, &ids.ifname)))
                .then(|| Claim::from(ids)),
            // Unreadable ids: held while a state file is another name of it.
            Err(()) => (inode.nlink > 1
                && self
                    .names_of(inode)?
                    .iter()
                    .any(|name| name.ends_with(".json")))
            .then(|| Claim {
                container_id: "?".into(),
                ifname: "?".into(),
            }),
        };
        Ok(owner)
    }

    /// Owner of a symlink claim (earlier versions made those), if its state file exists.
    fn symlink_claim_owner(&self, target: &str) -> Result<Option<Claim>> {
        let owner = read_no_follow(&self.dir.join(target))?.map(|bytes| {
            serde_json::from_slice::<Ids>(&bytes)
                .map(Claim::from)
                .unwrap_or_else(|_| Claim {
                    container_id: target.trim_end_matches(".json").to_owned(),
                    ifname: "?".into(),
                })
        });
        Ok(owner)
    }

    fn set_claim(&self, key: &str, state_file: &Path) -> Result<()> {
        let path = self.claim_path(key);
        // Only stale claims can be here: the caller holds the device lock and checked.
        remove_if_present(&path)?;
        // A filesystem without hard links gets the symlink claim earlier versions made.
        fs::hard_link(state_file, &path)
            .or_else(|_| {
                let name = state_file.file_name().expect("state files have a name");
                std::os::unix::fs::symlink(name, &path)
            })
            .map_err(|e| Error::io(format!("create claim {}", path.display()), e))
    }

    /// Every attachment with a state file, as (container id, ifname), from the file names.
    pub fn attachments(&self) -> Result<Vec<(String, String)>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("list {}", self.dir.display()), e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.starts_with('.') {
                continue;
            }
            // Container ids and ifnames may both contain '-': read the ids from the file
            // rather than splitting its name.
            if let Some(ids) = read_no_follow(&entry.path())
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<Ids>(&b).ok())
            {
                if self.path_of(&ids.container_id, &ids.ifname) == entry.path() {
                    found.push((ids.container_id, ids.ifname));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Proves the state dir takes writes (STATUS).
    pub fn probe_writable(&self) -> Result<()> {
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&self.dir)
            .map(drop)
            .map_err(|e| Error::io(format!("write in {}", self.dir.display()), e))
    }

    fn claim_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("claim-{key}"))
    }

    /// Temp file, write, fsync, rename: a crash leaves the old file or the new one.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let (tmp, file) = self
            .temp_file()
            .map_err(|e| io("create temp file for", e))?;
        let written = file
            .write_all_at(bytes, 0)
            .and_then(|()| file.set_len(bytes.len() as u64))
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))
            .and_then(|()| fs::rename(&tmp, path).map_err(|e| io("rename into", e)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// A private file under a fresh random name in the state dir: a spare when one is
    /// parked, else a new file.
    fn temp_file(&self) -> std::io::Result<(PathBuf, File)> {
        // pid and 64 random bits; a clash would only fail (O_EXCL, RENAME_NOREPLACE).
        let tmp = self.dir.join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            RandomState::new().hash_one(Instant::now())
        ));
        for slot in 0..SPARE_SLOTS {
            // Renaming claims a spare atomically: two ADDs never write the same one.
            if rename_no_replace(&self.spare_path(slot), &tmp).is_err() {
                continue;
            }
            // Only a plain file that no other name shares is written into; anything else
            // found in a slot (a link, a fifo, a hard link) is dropped.
            match open_private(&tmp, false) {
                Ok(file) if file.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1) => {
                    return Ok((tmp, file))
                }
                _ => fs::remove_file(&tmp)?,
            }
        }
        open_private(&tmp, true).map(|file| (tmp, file))
    }
}

/// The JSON value after the first `"key":` in `text`, if it is complete.
fn salvage_value(text: &str, key: &str) -> Option<serde_json::Value> {
    let needle = format!("\"{key}\"");
    let rest = &text[text.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?;
    serde_json::Deserializer::from_str(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()
}

/// The addresses of a truncated list: each complete `{"ip":..,"prefixLen":..}` object.
fn salvage_addresses(host_part: &str) -> Vec<crate::netlink::Address> {
    let Some(start) = host_part.find("\"addresses\"") else {
        return Vec::new();
    };
    host_part[start..]
        .match_indices('{')
        .map_while(|(i, _)| {
            serde_json::Deserializer::from_str(&host_part[start + i..])
                .into_iter::<crate::netlink::Address>()
                .next()?
                .ok()
        })
        .collect()
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    match dir.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => Err(Error::io(
            format!("state dir {}", dir.display()),
            std::io::Error::new(ErrorKind::InvalidInput, "exists and is not a directory"),
        )),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("chmod 0700 {}", dir.display()), e))
        }
        Ok(_) => Ok(()),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("create state dir {}", dir.display()), e)),
    }
}

/// Reads a file without following a symlink planted in its place; `None` if absent.
fn read_no_follow(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(Some(bytes))
}

/// Opens read-write without following a symlink; `create` makes a new 0600 file (O_EXCL).
fn open_private(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`: the renameat2 system
/// call, made directly because neither nix nor the musl that Rust bundles (our deployable
/// build) wrap it.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::from);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_renameat2,
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            nix::libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A write lock on byte `slot` of a file.
fn write_lock_of(slot: u32) -> nix::libc::flock {
    // SAFETY: flock is a plain C struct; all-zero is a valid value to fill in.
    let mut range: nix::libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = nix::libc::F_WRLCK as i16;
    range.l_whence = nix::libc::SEEK_SET as i16;
    range.l_start = i64::from(slot);
    range.l_len = 1;
    range
}

/// A non-blocking lock attempt that failed because someone else holds the lock.
fn is_contended(e: nix::errno::Errno) -> bool {
    matches!(
        e,
        nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EACCES
    )
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

/// Which file a path names, without following a symlink; `None` for a symlink or nothing.
#[derive(Debug, Clone, Copy)]
struct Inode {
    dev: u64,
    ino: u64,
    nlink: u64,
}

impl Inode {
    fn of_file(m: &fs::Metadata) -> Option<Inode> {
        m.is_file().then(|| Inode {
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        })
    }

    fn same_file(&self, other: Option<Inode>) -> bool {
        other.is_some_and(|o| (o.dev, o.ino) == (self.dev, self.ino))
    }
}

fn inode_of(path: &Path) -> Option<Inode> {
    Inode::of_file(&path.symlink_metadata().ok()?)
}

/// The state file name a symlink claim (earlier versions) points at; never follows it.
/// Anything that is not a plain file name (a planted `../x`, say) is no claim of ours.
fn read_symlink_claim(path: &Path) -> Option<String> {
    let target = fs::read_link(path)
        .ok()?
        .into_os_string()
        .into_string()
        .ok()?;
    (target.ends_with(".json") && !target.contains('/') && !target.starts_with('.'))
        .then_some(target)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{Address, Route};

    pub fn sample_state(cid: &str, ifname: &str) -> AttachmentState {
        AttachmentState {
            schema: SCHEMA_VERSION,
            container_id: cid.into(),
            ifname: ifname.into(),
            network: "amd-host-device-nad".into(),
            cni_version: "0.3.1".into(),
            netns: "/var/run/netns/p".into(),
            selector: Selector {
                pci: Some(PciAddress::parse("0000:5e:00.1").unwrap()),
                ..Selector::default()
            },
            pci_address: Some(PciAddress::parse("0000:5e:00.1").unwrap()),
            host: HostInterface {
                name: "enp94s0f1".into(),
                ifindex: 7,
                mac: Some(crate::device::MacAddress::parse("02:00:00:00:00:01").unwrap()),
                mtu: 1400,
                up: true,
                alias: None,
                addresses: vec![Address {
                    ip: "2001:db8::10".parse().unwrap(),
                    prefix_len: 64,
                    flags: 0x02,
                    scope: 0,
                    broadcast: None,
                }],
                routes: vec![Route {
                    family: 4,
                    dst: Some("10.9.0.0".parse().unwrap()),
                    dst_len: 16,
                    gateway: Some("192.0.2.1".parse().unwrap()),
                    table: 254,
                    protocol: 4,
                    scope: 0,
                    kind: 1,
                    priority: Some(100),
                    prefsrc: None,
                }],
            },
            pod_ifname: "enp94s0f1".into(),
            staging_name: None,
            rdma_devices: Vec::new(),
            pod: PodRef::default(),
            created: "2026-11-23T00:00:00.000Z".into(),
        }
    }

    fn mode(p: &Path) -> u32 {
        p.metadata().unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trips_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = StateStore::open(&dir).unwrap();
        let s = sample_state("c1", "net1");
        assert_eq!(store.load("c1", "net1").unwrap(), None);
        store.save(&s).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), Some(s.clone()));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.path_of("c1", "net1")), 0o600);
        store.remove(&s).unwrap();
        store.remove(&s).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), None);
    }

    #[test]
    fn save_replaces_whole_files_and_leaves_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let mut s = sample_state("c1", "net1");
        for mtu in [1400, 9000] {
            s.host.mtu = mtu;
            store.save(&s).unwrap();
            assert_eq!(store.load("c1", "net1").unwrap().unwrap().host.mtu, mtu);
        }
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// A store in a fresh temp dir holding the saved state of attachment c1/net1.
    fn saved_c1_net1() -> (tempfile::TempDir, StateStore, AttachmentState) {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let s = sample_state("c1", "net1");
        store.save(&s).unwrap();
        (tmp, store, s)
    }

    /// The names in a state dir other than `locks`, sorted.
    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "locks")
            .collect();
        names.sort();
        names
    }

    fn spares(dir: &Path) -> Vec<String> {
        let mut names = dir_names(dir);
        names.retain(|n| n.starts_with(".spare-"));
        names
    }

    #[test]
    fn a_removed_state_file_is_parked_and_rewritten_whole_by_the_next_save() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let mut big = sample_state("c1", "net1");
        big.host.alias = Some("x".repeat(3000));
        store.save(&big).unwrap();
        let inode = store.path_of("c1", "net1").metadata().unwrap().ino();
        store.remove(&big).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), None);
        assert_eq!(spares(tmp.path()), [".spare-0"]);
        assert_eq!(store.attachments().unwrap(), vec![]);
        // A shorter state lands in the same file, with nothing of the old one left over.
        let small = sample_state("c2", "net1");
        store.save(&small).unwrap();
        let path = store.path_of("c2", "net1");
        assert_eq!(path.metadata().unwrap().ino(), inode);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(store.load("c2", "net1").unwrap(), Some(small));
        assert!(spares(tmp.path()).is_empty());
    }

    #[test]
    fn spares_are_bounded_and_never_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let states: Vec<_> = (0..SPARE_SLOTS + 3)
            .map(|i| {
                let mut s = sample_state(&format!("c{i}"), "net1");
                s.selector.pci = None;
                s.pci_address = None;
                s.host.mac = None;
                s.host.name = format!("eth{i}");
                s
            })
            .collect();
        for s in &states {
            store.save(s).unwrap();
        }
        for s in &states {
            store.remove(s).unwrap();
        }
        assert_eq!(spares(tmp.path()).len(), SPARE_SLOTS);
        for spare in spares(tmp.path()) {
            let inode = inode_of(&tmp.path().join(spare)).unwrap();
            assert_eq!(inode.nlink, 1, "a parked file has no other name");
        }
        let mut left = dir_names(tmp.path());
        left.retain(|n| !n.starts_with(".spare-"));
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(store.attachments().unwrap(), vec![]);
    }

    #[test]
    fn a_planted_spare_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, "precious").unwrap();
        std::os::unix::fs::symlink(&outside, store.spare_path(0)).unwrap();
        fs::hard_link(&outside, store.spare_path(1)).unwrap();
        nix::unistd::mkfifo(&store.spare_path(2), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let s = sample_state("c1", "net1");
        store.save(&s).unwrap();
        assert_eq!(fs::read_to_string(&outside).unwrap(), "precious");
        assert_eq!(store.load("c1", "net1").unwrap(), Some(s));
        assert!(spares(tmp.path()).is_empty(), "planted spares are dropped");
    }

    #[test]
    fn corrupt_state_is_a_clear_decode_error() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        fs::write(store.path_of("c1", "net1"), b"{\"schema\":1,").unwrap();
        let err = store.load("c1", "net1").unwrap_err();
        assert_eq!(err.code() as u32, 6);
        assert!(err.to_string().contains("c1-net1.json is corrupt"), "{err}");
    }

    #[test]
    fn salvage_recovers_what_a_truncated_file_still_holds() {
        let full = serde_json::to_string_pretty(&sample_state("c1", "net1")).unwrap();
        // Cut inside the routes list: everything before it survives.
        let cut = &full[..full.find("\"gateway\"").unwrap()];
        let (s, lost) = AttachmentState::salvage("c1", "net1", cut.as_bytes());
        assert_eq!(s.host.name, "enp94s0f1");
        assert_eq!(s.host.mtu, 1400);
        assert_eq!(s.host.addresses, sample_state("c1", "net1").host.addresses);
        assert_eq!(s.pci_address.unwrap().as_str(), "0000:5e:00.1");
        assert_eq!(lost, vec!["routes"]);
        assert_eq!(
            s.pod_ifname, "net1",
            "podIfname was cut off: CNI_IFNAME is the guess"
        );

        // Cut inside the second address: the first complete one is kept.
        let mut two = sample_state("c1", "net1");
        two.host.addresses.push(two.host.addresses[0].clone());
        two.host.addresses[1].ip = "192.0.2.7".parse().unwrap();
        let full = serde_json::to_string(&two).unwrap();
        let cut = &full[..full.find("192.0.2.7").unwrap()];
        let (s, _) = AttachmentState::salvage("c1", "net1", cut.as_bytes());
        assert_eq!(s.host.addresses, sample_state("c1", "net1").host.addresses);

        let (s, lost) = AttachmentState::salvage("c1", "net1", b"\x00garbage");
        assert!(s.host.up, "an unknown admin state comes back up");
        assert!(lost.contains(&"host name") && lost.contains(&"MAC"));
    }

    #[test]
    fn planted_symlinks_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let target = tmp.path().join("secret");
        fs::write(&target, b"{}").unwrap();
        std::os::unix::fs::symlink(&target, store.path_of("c1", "net1")).unwrap();
        assert!(store.load("c1", "net1").is_err());
        // Saving replaces the link itself; the target is untouched.
        let s = sample_state("c1", "net1");
        store.save(&s).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        assert!(!store
            .path_of("c1", "net1")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_symlinked_state_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        assert_eq!(StateStore::open(&link).err().unwrap().code() as u32, 5);
    }

    #[test]
    fn claims_name_their_owner_until_its_state_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let s = sample_state("c-1", "net-1");
        let key = s.device_key();
        assert_eq!(store.claim_of(&key).unwrap(), None);
        store.save(&s).unwrap();
        let owner = Claim {
            container_id: "c-1".into(),
            ifname: "net-1".into(),
        };
        assert_eq!(store.claim_of(&key).unwrap(), Some(owner));
        // A claim is a second name of the state file, not a file of its own.
        let claim = tmp.path().join(format!("claim-{key}"));
        assert!(inode_of(&claim)
            .unwrap()
            .same_file(inode_of(&store.path_of("c-1", "net-1"))));
        // The host name is claimed too, for `device` selectors.
        assert_eq!(
            store
                .claim_of("name-enp94s0f1")
                .unwrap()
                .unwrap()
                .container_id,
            "c-1"
        );
        // Another attachment's removal leaves the claim alone.
        let other = sample_state("c2", "net1");
        store.remove(&other).unwrap();
        assert!(store.claim_of(&key).unwrap().is_some());
        // The owner's state gone by other means: the claim is stale.
        fs::remove_file(store.path_of("c-1", "net-1")).unwrap();
        assert_eq!(store.claim_of(&key).unwrap(), None);
        // A stale claim is replaced by the next save.
        store.save(&other).unwrap();
        assert_eq!(store.claim_of(&key).unwrap().unwrap().container_id, "c2");
        store.remove(&other).unwrap();
        assert!(tmp
            .path()
            .join(format!("claim-{key}"))
            .symlink_metadata()
            .is_err());
    }

    #[test]
    fn symlink_claims_of_earlier_versions_still_count_and_go_with_their_state() {
        let (_tmp, store, s) = saved_c1_net1();
        let key = s.device_key();
        let claim = store.claim_path(&key);
        fs::remove_file(&claim).unwrap();
        std::os::unix::fs::symlink(s.file_name(), &claim).unwrap();
        assert_eq!(
            store.claim_of(&key).unwrap().unwrap().container_id,
            "c1",
            "an old symlink claim still names its owner"
        );
        store.remove(&s).unwrap();
        assert!(claim.symlink_metadata().is_err(), "removed with its state");
    }

    #[test]
    fn a_claim_whose_state_is_unreadable_holds_only_while_the_state_file_exists() {
        let (_tmp, store, s) = saved_c1_net1();
        let key = s.device_key();
        fs::write(store.path_of("c1", "net1"), b"{\"schema\": 1, \"contai").unwrap();
        let unknown = Claim {
            container_id: "?".into(),
            ifname: "?".into(),
        };
        assert_eq!(store.claim_of(&key).unwrap(), Some(unknown));
        // Gone by other means: the two claims are still names of each other, yet stale.
        fs::remove_file(store.path_of("c1", "net1")).unwrap();
        assert_eq!(store.claim_of(&key).unwrap(), None);
    }

    #[test]
    fn claims_under_keys_a_salvaged_state_lost_go_with_it() {
        let (tmp, store, s) = saved_c1_net1();
        let key = s.device_key();
        // What DEL makes of a corrupt file: the PCI address (the device key) is lost.
        fs::write(store.path_of("c1", "net1"), b"{\"schema\": 1, \"contai").unwrap();
        let mut salvaged = s.clone();
        salvaged.pci_address = None;
        salvaged.selector.pci = None;
        assert!(!salvaged.claim_keys().contains(&key));
        store.remove(&salvaged).unwrap();
        assert_eq!(store.claim_of(&key).unwrap(), None);
        assert_eq!(
            dir_names(tmp.path()),
            [".spare-0"],
            "only the parked file is left"
        );
        assert_eq!(inode_of(&store.spare_path(0)).unwrap().nlink, 1);
    }

    #[test]
    fn an_old_symlink_claim_does_not_hide_a_stray_hard_link() {
        let (_tmp, store, s) = saved_c1_net1();
        // The name claim as an earlier version made it, and a link under a key this state
        // does not name.
        let by_name = store.claim_path(&name_key("enp94s0f1"));
        fs::remove_file(&by_name).unwrap();
        std::os::unix::fs::symlink(s.file_name(), &by_name).unwrap();
        let stray = store.claim_path("mac-020000000001");
        fs::hard_link(store.path_of("c1", "net1"), &stray).unwrap();
        store.remove(&s).unwrap();
        assert!(stray.symlink_metadata().is_err(), "stray link removed");
        assert!(
            by_name.symlink_metadata().is_err(),
            "old symlink claim removed"
        );
        assert_eq!(inode_of(&store.spare_path(0)).unwrap().nlink, 1);
    }

    #[test]
    fn a_state_file_holding_another_attachments_ids_is_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let other = serde_json::to_vec(&sample_state("c2", "net1")).unwrap();
        fs::write(store.path_of("c1", "net1"), other).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), None);
    }

    #[test]
    fn planted_claims_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("claim-pci-0000:5e:00.1"))
            .unwrap();
        assert_eq!(store.claim_of("pci-0000:5e:00.1").unwrap(), None);
    }

    #[test]
    fn device_keys_prefer_pci_then_mac() {
        let mut s = sample_state("c1", "net1");
        assert_eq!(s.device_key(), "pci-0000:5e:00.1");
        s.pci_address = None;
        assert_eq!(s.device_key(), "mac-020000000001");
        s.host.mac = None;
        assert_eq!(s.device_key(), "name-enp94s0f1");
    }

    #[test]
    fn attachments_share_one_lock_file_and_exclude_only_themselves() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        for i in 0..200 {
            drop(store.lock_attachment(&format!("c{i}"), "net1").unwrap());
        }
        let files = fs::read_dir(tmp.path().join("locks")).unwrap().count();
        assert_eq!(files, 1, "one lock file for every attachment");
        assert_ne!(attachment_slot("c1", "net1"), attachment_slot("c1", "net2"));
        // Another open of the file (as another plugin process has) finds this attachment's
        // byte taken and any other free: OFD locks conflict across open file descriptions.
        let held = store.lock_attachment("c1", "net1").unwrap();
        let other_byte = store.lock_attachment("c1", "net2").unwrap();
        let path = tmp.path().join("locks/attachments.lock");
        let file = OpenOptions::new().write(true).open(path).unwrap();
        let try_slot = |slot: u32| {
            nix::fcntl::fcntl(
                file.as_raw_fd(),
                FcntlArg::F_OFD_SETLK(&write_lock_of(slot)),
            )
        };
        assert!(try_slot(attachment_slot("c1", "net1")).is_err_and(is_contended));
        assert!(try_slot(attachment_slot("c2", "net1")).is_ok());
        drop((held, other_byte));
    }

    #[test]
    fn a_held_lock_makes_others_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let held = store.lock_device("k").unwrap();
        let dir = tmp.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let store = StateStore::open(&dir).unwrap();
            let start = Instant::now();
            let _l = store.lock_device("k").unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        assert!(waiter.join().unwrap() >= Duration::from_millis(150));
    }
}
