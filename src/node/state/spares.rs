//! The pool of spare state files, `.spare-<n>`: a DEL parks its state file in a free slot
//! instead of deleting it, and the next save writes into a parked one, so that neither
//! frees nor allocates a data block (see the module doc of `state`).

use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fs::{open_private, remove_if_present, rename_no_replace};
use super::store::StateStore;
use super::Result;

/// How many finished state files are kept for reuse; with every slot taken, a DEL deletes.
const SPARE_SLOTS: usize = 8;

impl StateStore {
    /// Takes a state file out of use: parked in a free spare slot, else deleted. Its claims
    /// may still be names of it for a moment (they go next); a spare with another name is
    /// never written into (see `claim_spare`).
    pub(super) fn retire(&self, path: &Path) -> Result<()> {
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

    pub(super) fn spare_path(&self, slot: usize) -> PathBuf {
        self.dir().join(format!(".spare-{slot}"))
    }

    /// A private file under a fresh random name in the state dir: a spare when one is
    /// parked, else a new file.
    pub(super) fn temp_file(&self) -> std::io::Result<(PathBuf, File)> {
        let tmp = self.temp_path();
        let file = match self.claim_spare(&tmp)? {
            Some(spare) => spare,
            None => open_private(&tmp, true)?,
        };
        Ok((tmp, file))
    }

    /// A name in the state dir that nothing else uses.
    fn temp_path(&self) -> PathBuf {
        // pid and 64 random bits; a clash would only fail (O_EXCL, RENAME_NOREPLACE).
        self.dir().join(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            RandomState::new().hash_one(Instant::now())
        ))
    }

    /// Moves a parked spare fit to be written into to `tmp` and opens it; `None` if no slot
    /// holds one.
    fn claim_spare(&self, tmp: &Path) -> std::io::Result<Option<File>> {
        for slot in 0..SPARE_SLOTS {
            // Renaming claims a spare atomically: two ADDs never write the same one.
            if rename_no_replace(&self.spare_path(slot), tmp).is_err() {
                continue;
            }
            // Only a plain file that no other name shares is written into; anything else
            // found in a slot (a link, a fifo, a hard link) is dropped.
            match open_private(tmp, false) {
                Ok(file) if file.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1) => {
                    return Ok(Some(file))
                }
                _ => fs::remove_file(tmp)?,
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::fs::inode_of;
    use crate::node::state::testing::{dir_names, empty_store, mode, sample_state, spares};

    #[test]
    fn a_removed_state_file_is_parked_and_rewritten_whole_by_the_next_save() {
        let (tmp, store) = empty_store();
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
        let (tmp, store) = empty_store();
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
        let (tmp, store) = empty_store();
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
    fn a_temp_file_is_a_parked_spare_taken_out_of_its_slot() {
        let (tmp, store) = empty_store();
        let parked = store.spare_path(3);
        fs::write(&parked, b"old").unwrap();
        let inode = inode_of(&parked).unwrap();
        let (path, _file) = store.temp_file().unwrap();
        assert!(inode.same_file(inode_of(&path)), "the spare is reused");
        assert!(spares(tmp.path()).is_empty(), "and no longer parked");
        let (fresh, _file) = store.temp_file().unwrap();
        assert_ne!(fresh, path, "with no spare left, a new file");
        assert_eq!(mode(&fresh), 0o600);
    }
}
