//! Claims: which attachment owns which device. A claim `claim-<key>` is a hard link to the
//! owner's state file, so it costs no inode, and it goes stale by itself once that file is
//! gone or replaced. Earlier versions made symlink claims instead; those still count, and a
//! filesystem without hard links still gets them.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fs::{inode_of, io_error, read_no_follow, remove_if_present, Inode};
use super::record::{AttachmentState, Ids};
use super::store::StateStore;
use super::Result;

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

impl Claim {
    /// An owner whose state file exists but does not say who it is.
    fn unknown() -> Claim {
        Claim {
            container_id: "?".into(),
            ifname: "?".into(),
        }
    }
}

impl StateStore {
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
        self.hard_link_claim_owner(inode, &bytes)
    }

    /// Owner of a hard-link claim, the file `inode` holding `bytes`, if it is still a name
    /// of its owner's state file.
    fn hard_link_claim_owner(&self, inode: Inode, bytes: &[u8]) -> Result<Option<Claim>> {
        // The ids come from the owner's state file itself: both may contain '-'. Only the
        // first JSON value counts: a file cut short or with a stale tail still names them.
        let ids = serde_json::Deserializer::from_slice(bytes)
            .into_iter::<Ids>()
            .next()
            .and_then(|r| r.ok());
        let owner = match ids {
            Some(ids) => inode
                .same_file(inode_of(&self.path_of(&ids.container_id, &ids.ifname)))
                .then(|| Claim::from(ids)),
            // Unreadable ids: held while a state file is another name of it.
            None => self.has_state_file_name(inode)?.then(Claim::unknown),
        };
        Ok(owner)
    }

    /// Whether one of the names of `file` is a state file's.
    fn has_state_file_name(&self, file: Inode) -> Result<bool> {
        Ok(file.nlink > 1
            && self
                .names_of(file)?
                .iter()
                .any(|name| name.ends_with(".json")))
    }

    /// Owner of a symlink claim (earlier versions made those), if its state file exists.
    fn symlink_claim_owner(&self, target: &str) -> Result<Option<Claim>> {
        let owner = read_no_follow(&self.dir().join(target))?.map(|bytes| {
            serde_json::from_slice::<Ids>(&bytes)
                .map(Claim::from)
                .unwrap_or_else(|_| Claim {
                    container_id: target.trim_end_matches(".json").to_owned(),
                    ifname: "?".into(),
                })
        });
        Ok(owner)
    }

    /// Removes the claim files under `keys` that name nobody: left by a removal cut short
    /// between a state and its claims. The caller holds the lock of the device they are keys
    /// of, which an ADD claiming them again would hold too.
    pub fn remove_stale_claims(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let claim = self.claim_path(key);
            if claim.symlink_metadata().is_ok() && self.claim_of(key)?.is_none() {
                remove_if_present(&claim)?;
            }
        }
        Ok(())
    }

    /// Removes every claim file of the state dir that names nobody, each under the lock of
    /// the device its former owner's state names (a claim is a name of that state's file,
    /// so it still holds it).
    pub fn remove_all_stale_claims(&self) -> Result<()> {
        let names: Vec<String> = self
            .entries()?
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for key in names.iter().filter_map(|n| n.strip_prefix("claim-")) {
            if self.claim_of(key)?.is_some() {
                continue;
            }
            let Some(device) = self.former_owners_device(key) else {
                continue;
            };
            let _lock = self.lock_device(&device)?;
            self.remove_stale_claims(&[key.to_owned()])?;
        }
        Ok(())
    }

    /// The device key of the state a hard-link claim is still a name of, if it reads.
    fn former_owners_device(&self, key: &str) -> Option<String> {
        let bytes = read_no_follow(&self.claim_path(key)).ok()??;
        let state: AttachmentState = serde_json::from_slice(&bytes).ok()?;
        Some(state.device_key())
    }

    /// Claims device `key` for the attachment whose state file is `state_file`.
    pub(super) fn set_claim(&self, key: &str, state_file: &Path) -> Result<()> {
        let path = self.claim_path(key);
        // Only stale claims can be here: the caller holds the device lock and checked.
        remove_if_present(&path)?;
        // A filesystem without hard links gets the symlink claim earlier versions made.
        fs::hard_link(state_file, &path)
            .or_else(|_| {
                let name = state_file.file_name().expect("state files have a name");
                std::os::unix::fs::symlink(name, &path)
            })
            .map_err(|e| io_error("create claim", &path, e))
    }

    /// How many of the claims `state` holds under its keys are names of `file`, its state file.
    pub(super) fn claims_on(&self, state: &AttachmentState, file: Inode) -> u64 {
        let on_file = |key: &String| file.same_file(inode_of(&self.claim_path(key)));
        state.claim_keys().iter().filter(|k| on_file(k)).count() as u64
    }

    /// Removes the claims `state` holds under its keys on `file`, its state file (gone or
    /// going): the hard links to it, and symlinks to it from earlier versions.
    pub(super) fn remove_claims(&self, state: &AttachmentState, file: Option<Inode>) -> Result<()> {
        for key in state.claim_keys() {
            let claim = self.claim_path(&key);
            let ours = match inode_of(&claim) {
                Some(inode) => inode.same_file(file),
                // A symlink claim of an earlier version: ours if it names our file.
                None => read_symlink_claim(&claim).as_deref() == Some(state.file_name().as_str()),
            };
            if ours {
                remove_if_present(&claim)?;
            }
        }
        Ok(())
    }

    /// Removes every `claim-*` that is a name of `file`.
    pub(super) fn remove_stray_claims(&self, file: Inode) -> Result<()> {
        for name in self.names_of(file)? {
            if name.starts_with("claim-") {
                remove_if_present(&self.dir().join(name))?;
            }
        }
        Ok(())
    }

    /// Every name `file` has in the state dir (a scan: only for the rare cases that need it).
    fn names_of(&self, file: Inode) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .filter(|e| file.same_file(inode_of(&e.path())))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn claim_path(&self, key: &str) -> PathBuf {
        self.dir().join(format!("claim-{key}"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_id::PciAddress;
    use crate::node::state::name_key;
    use crate::node::state::testing::{dir_names, empty_store, sample_state, saved_c1_net1};

    #[test]
    fn claims_name_their_owner_until_its_state_is_gone() {
        let (tmp, store) = empty_store();
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
        assert_eq!(store.claim_of(&key).unwrap(), Some(Claim::unknown()));
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
    fn claims_a_removal_cut_short_left_name_nobody_and_are_removed_and_no_live_one() {
        let (tmp, store, s) = saved_c1_net1();
        let mut other = sample_state("c2", "net1");
        other.pci_address = PciAddress::parse("0000:5e:00.2").ok();
        other.host.name = "enp94s0f2".into();
        store.save(&other).unwrap();
        // The state went first, then the process died: its claims are left, naming nobody.
        fs::rename(store.path_of("c1", "net1"), store.spare_path(0)).unwrap();
        for key in s.claim_keys() {
            assert!(store.claim_path(&key).symlink_metadata().is_ok());
            assert_eq!(store.claim_of(&key).unwrap(), None, "{key} names nobody");
        }
        store.remove_stale_claims(&s.claim_keys()[..1]).unwrap();
        assert!(store
            .claim_path(&s.device_key())
            .symlink_metadata()
            .is_err());
        store.remove_all_stale_claims().unwrap();
        let mut left = dir_names(tmp.path());
        left.retain(|n| n.starts_with("claim-"));
        let mut live = other.claim_keys();
        live.iter_mut().for_each(|k| *k = format!("claim-{k}"));
        live.sort();
        assert_eq!(left, live, "only the live claims are left");
        assert_eq!(inode_of(&store.spare_path(0)).unwrap().nlink, 1);
    }

    #[test]
    fn planted_claims_are_never_followed() {
        let (tmp, store) = empty_store();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("claim-pci-0000:5e:00.1"))
            .unwrap();
        assert_eq!(store.claim_of("pci-0000:5e:00.1").unwrap(), None);
    }

    #[test]
    fn a_symlink_claim_names_only_a_state_file_in_the_state_dir() {
        let (_tmp, store, s) = saved_c1_net1();
        let claim = store.claim_path("x");
        for target in ["../c1-net1.json", ".spare-0.json", "c1-net1.txt"] {
            std::os::unix::fs::symlink(target, &claim).unwrap();
            assert_eq!(read_symlink_claim(&claim), None, "{target}");
            fs::remove_file(&claim).unwrap();
        }
        std::os::unix::fs::symlink(s.file_name(), &claim).unwrap();
        assert_eq!(read_symlink_claim(&claim), Some(s.file_name()));
        fs::remove_file(store.path_of("c1", "net1")).unwrap();
        assert_eq!(store.claim_of("x").unwrap(), None, "gone with its target");
    }
}
