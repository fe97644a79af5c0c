//! The store itself: where the state of each attachment lives, and its load, save and
//! remove.

use std::fs;
use std::path::{Path, PathBuf};

/// The vendor plugin's file name in the state directory (it shares ours when a node
/// switched plugins): never one of our attachments, read by `vendor`.
pub const VENDOR_MAPPINGS_FILE: &str = "ip-interface-mappings.json";

use super::fs::{
    ensure_private_dir, inode_of, io_error, read_no_follow, remove_if_present, sync_dir,
    write_atomically,
};
use super::record::{state_file_name, AttachmentState, Ids, SCHEMA_VERSION};
use super::salvage::format_of;
use super::{Error, Result};
use crate::fault;

pub struct StateStore {
    dir: PathBuf,
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

    /// The state dir as it is, for reading only: nothing is created or changed. `None` if
    /// there is no such directory yet; a symlink or non-directory there is refused as
    /// [`StateStore::open`] refuses it.
    pub fn open_existing(dir: &Path) -> Result<Option<StateStore>> {
        match dir.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("state dir", dir, e)),
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => Err(io_error(
                "state dir",
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "exists and is not a directory",
                ),
            )),
            Ok(_) => Ok(Some(StateStore {
                dir: dir.to_path_buf(),
            })),
        }
    }

    /// Temporary files left in the state dir (`.tmp-*` of a save, `.probe-*` of STATUS)
    /// with their modification times: a process killed while writing leaves one. One of a
    /// save under way is there too, for a moment.
    pub fn temporary_files(&self) -> Result<Vec<(String, std::time::SystemTime)>> {
        let mut found: Vec<_> = self
            .entries()?
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let temporary = name.starts_with(".tmp-") || name.starts_with(".probe-");
                let modified = entry.metadata().ok()?.modified().ok()?;
                temporary.then_some((name, modified))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<cid>-<ifname>.json` (a container id too long for a file name is shortened,
    /// see `record::state_file_name`). Both parts were validated (no '/', no "..") by
    /// `cni::env`.
    pub fn path_of(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(state_file_name(container_id, ifname))
    }

    /// The state of one attachment, `None` if there is none. A file in a newer format than
    /// this binary reads is [`Error::NewerState`], whole or damaged; one that exists but does
    /// not parse is [`Error::CorruptState`]; both code 6, naming the file.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<AttachmentState>> {
        let path = self.path_of(container_id, ifname);
        let Some(bytes) = read_no_follow(&path)? else {
            return Ok(None);
        };
        // Before anything else reads it: what a newer format means is not ours to guess, and
        // a salvage would act on that guess.
        if let Some(found) = format_of(&bytes).filter(|f| *f > u64::from(SCHEMA_VERSION)) {
            return Err(Error::NewerState {
                path,
                found,
                supported: SCHEMA_VERSION,
                nic: super::salvage::host_name_of(&bytes),
            });
        }
        let state: AttachmentState =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState {
                path,
                reason: e.to_string(),
            })?;
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
        let (tmp, file) = self
            .temp_file()
            .map_err(|e| io_error("create temp file for", &path, e))?;
        write_atomically(&tmp, &file, &path, &bytes)?;
        for key in state.claim_keys() {
            self.set_claim(&key, &path)?;
        }
        sync_dir(&self.dir)
    }

    /// Removes the state of an attachment, then the claims that are names of it. The state
    /// goes first: a claim names its owner only while the owner's state file exists, so from
    /// that instant its claims name nobody, and a crash before they are gone leaves inert
    /// names (overwritten by the next ADD of the device, removed by the next DEL, GC or
    /// `restore` that meets them), never a state without the claims that lead to it.
    /// Not fsynced: if a power loss brings the file back, the next DEL or GC restores a device
    /// that is already restored, which changes nothing; if the next ADD had already rewritten
    /// it as a spare, its ids no longer match its name and it is ignored (see `load`).
    pub fn remove(&self, state: &AttachmentState) -> Result<()> {
        let path = self.path_of(&state.container_id, &state.ifname);
        let Some(file) = inode_of(&path) else {
            remove_if_present(&path)?;
            fault::step("after-state-removed");
            return self.remove_claims(state, None);
        };
        // A salvaged state may have lost a key: claims under it are found by inode.
        let strays = file.nlink > 1 + self.claims_on(state, file);
        self.retire(&path)?;
        fault::step("after-state-removed");
        self.remove_claims(state, Some(file))?;
        match strays {
            true => self.remove_stray_claims(file),
            false => Ok(()),
        }
    }

    /// Every attachment with a state file, as (container id, ifname), from the file names.
    pub fn attachments(&self) -> Result<Vec<(String, String)>> {
        let mut found: Vec<_> = self
            .entries()?
            .filter_map(|entry| self.attachment_of(&entry))
            .collect();
        found.sort();
        Ok(found)
    }

    /// `*.json` files of the state dir that are no attachment's readable state (a state
    /// file cut short, or one named for other ids), by name: `attachments` skips them.
    /// The vendor plugin's mapping file is not one of them.
    pub fn unreadable_state_files(&self) -> Result<Vec<String>> {
        let mut found: Vec<String> = self
            .entries()?
            .filter(|entry| self.attachment_of(entry).is_none())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.ends_with(".json") && !name.starts_with('.') && name != VENDOR_MAPPINGS_FILE
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The attachment whose state file `entry` is, if it is one.
    fn attachment_of(&self, entry: &fs::DirEntry) -> Option<(String, String)> {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".json")?;
        if stem.starts_with('.') {
            return None;
        }
        // Container ids and ifnames may both contain '-': read the ids from the file
        // rather than splitting its name.
        let ids = read_no_follow(&entry.path())
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Ids>(&b).ok())?;
        (self.path_of(&ids.container_id, &ids.ifname) == entry.path())
            .then_some((ids.container_id, ids.ifname))
    }

    /// Proves the state dir takes writes (STATUS).
    pub fn probe_writable(&self) -> Result<()> {
        tempfile::Builder::new()
            .prefix(".probe-")
            .tempfile_in(&self.dir)
            .map(drop)
            .map_err(|e| io_error("write in", &self.dir, e))
    }

    /// The entries of the state dir (those that can be read).
    pub(super) fn entries(&self) -> Result<impl Iterator<Item = fs::DirEntry>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error("list", &self.dir, e))?;
        Ok(entries.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::testing::{empty_store, mode, sample_state};

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
    fn an_existing_dir_is_opened_as_it_is_and_a_missing_one_is_not_made() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        assert!(StateStore::open_existing(&dir).unwrap().is_none());
        assert!(!dir.exists(), "nothing created");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let store = StateStore::open_existing(&dir).unwrap().unwrap();
        assert_eq!(mode(&dir), 0o755, "not made private");
        assert!(!dir.join("locks").exists(), "no locks dir");
        fs::write(dir.join(".tmp-1-00ff"), b"").unwrap();
        fs::write(dir.join(".probe-x"), b"").unwrap();
        fs::write(dir.join(".spare-0"), b"").unwrap();
        let names: Vec<String> = store
            .temporary_files()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, [".probe-x", ".tmp-1-00ff"]);
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        assert_eq!(
            StateStore::open_existing(&file).err().unwrap().code() as u32,
            5
        );
    }

    #[test]
    fn a_container_id_too_long_for_a_file_name_round_trips() {
        let (_tmp, store) = empty_store();
        let long = "f".repeat(300);
        assert_eq!(store.load(&long, "net1").unwrap(), None, "never added");
        let s = sample_state(&long, "net1");
        store.save(&s).unwrap();
        assert_eq!(store.load(&long, "net1").unwrap(), Some(s.clone()));
        assert_eq!(
            store.attachments().unwrap(),
            [(long.clone(), "net1".to_owned())]
        );
        // Another long id with the same readable prefix is another attachment.
        let other = format!("{}g", "f".repeat(299));
        assert_eq!(store.load(&other, "net1").unwrap(), None);
        store.remove(&s).unwrap();
        assert_eq!(store.load(&long, "net1").unwrap(), None);
    }

    #[test]
    fn a_symlinked_state_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        assert_eq!(StateStore::open(&link).err().unwrap().code() as u32, 5);
    }

    #[test]
    fn save_replaces_whole_files_and_leaves_no_temp_files() {
        let (tmp, store) = empty_store();
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

    #[test]
    fn corrupt_state_is_a_clear_decode_error() {
        let (_tmp, store) = empty_store();
        fs::write(store.path_of("c1", "net1"), b"{\"schema\":1,").unwrap();
        let err = store.load("c1", "net1").unwrap_err();
        assert_eq!(err.code() as u32, 6);
        assert!(err.to_string().contains("c1-net1.json is corrupt"), "{err}");
        assert!(
            matches!(&err, Error::CorruptState { path, .. } if *path == store.path_of("c1", "net1")),
            "{err:?}"
        );
    }

    #[test]
    fn a_newer_format_is_refused_by_name_and_version_whole_or_damaged() {
        let (_tmp, store) = empty_store();
        let path = store.path_of("c1", "net1");
        let mut newer = sample_state("c1", "net1");
        newer.schema = SCHEMA_VERSION + 1;
        // As written: the format first, so that a cut file still tells it.
        let whole = serde_json::to_vec(&newer).unwrap();
        let cut = &whole[..whole.len() / 2];
        for bytes in [&whole[..], cut] {
            fs::write(&path, bytes).unwrap();
            let err = store.load("c1", "net1").unwrap_err();
            assert!(
                matches!(&err, Error::NewerState { path: p, found, .. }
                    if *p == path && *found == u64::from(SCHEMA_VERSION + 1)),
                "{err:?}"
            );
            assert_eq!(err.code() as u32, 6);
            let msg = err.to_string();
            assert!(
                msg.contains(&path.display().to_string())
                    && msg.contains(&format!("format {}", SCHEMA_VERSION + 1)),
                "{msg}"
            );
            if bytes.len() == whole.len() {
                assert!(msg.contains("attached enp94s0f1"), "names the NIC: {msg}");
            }
        }
        assert_eq!(fs::read(&path).unwrap(), cut, "left alone");
    }

    #[test]
    fn a_state_file_holding_another_attachments_ids_is_not_loaded() {
        let (_tmp, store) = empty_store();
        let other = serde_json::to_vec(&sample_state("c2", "net1")).unwrap();
        fs::write(store.path_of("c1", "net1"), other).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), None);
    }

    #[test]
    fn planted_symlinks_are_not_followed() {
        let (tmp, store) = empty_store();
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
    fn only_state_files_named_for_their_own_ids_are_attachments() {
        let (_tmp, store) = empty_store();
        store.save(&sample_state("c-1", "net-1")).unwrap();
        let misnamed = serde_json::to_vec(&sample_state("c2", "net1")).unwrap();
        fs::write(store.path_of("c3", "net1"), misnamed).unwrap();
        let hidden = serde_json::to_vec(&sample_state(".hidden", "net1")).unwrap();
        fs::write(store.path_of(".hidden", "net1"), hidden).unwrap();
        fs::write(store.path_of("c4", "net1"), b"{\"schema\": 1, \"contai").unwrap();
        let expected = [("c-1".to_owned(), "net-1".to_owned())];
        assert_eq!(store.attachments().unwrap(), expected);
        fs::write(_tmp.path().join(super::super::VENDOR_MAPPINGS_FILE), b"{}").unwrap();
        assert_eq!(
            store.unreadable_state_files().unwrap(),
            ["c3-net1.json", "c4-net1.json"],
            "the hidden file and the vendor's are not state files"
        );
    }
}
