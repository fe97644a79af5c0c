//! Locks that serialise operations: a byte-range OFD lock per attachment, all in one file,
//! and an flock per physical device.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, Flock, FlockArg};

use super::fs::{io_error, open_lock_file};
use super::store::StateStore;
use super::{Error, Result};
use crate::node::lock_wait::{byte_range, poll_lock, Waited};

/// How long an operation waits for another one on the same attachment or device before
/// telling the runtime to try again later (code 11).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

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

/// One non-blocking attempt at a lock on an open file: the lock, or the file back with why
/// it failed.
type TryLock = std::result::Result<Held, (File, Errno)>;

impl StateStore {
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

    /// The attachment's lock if nobody holds it now; `None` if someone does. For taking a
    /// second attachment's lock while holding locks of one's own, where waiting could
    /// deadlock against that attachment's own DEL.
    pub fn try_lock_attachment(&self, container_id: &str, ifname: &str) -> Result<Option<Lock>> {
        let path = self.dir().join("locks/attachments.lock");
        let file = open_lock_file(&path)?;
        let range = write_lock_of(attachment_slot(container_id, ifname));
        match nix::fcntl::fcntl(file.as_raw_fd(), FcntlArg::F_OFD_SETLK(&range)) {
            Ok(_) => Ok(Some(Lock {
                _held: Held::Range { _file: file },
            })),
            Err(e) if crate::node::lock_wait::is_contended(e) => Ok(None),
            Err(e) => Err(io_error("lock", &path, std::io::Error::from(e))),
        }
    }

    /// Serialises rewrites of the vendor plugin's mapping file.
    pub fn lock_vendor_mappings(&self) -> Result<Lock> {
        self.lock("vendor-mappings", |file| {
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map(|f| Held::Whole { _flock: f })
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
    fn lock(&self, name: &str, try_lock: impl Fn(File) -> TryLock) -> Result<Lock> {
        let path = self.dir().join("locks").join(format!("{name}.lock"));
        // The attempt takes the file and hands it back when the lock is taken.
        let mut file = Some(open_lock_file(&path)?);
        let waited = poll_lock(LOCK_TIMEOUT, || {
            match try_lock(file.take().expect("the file is back after each attempt")) {
                Ok(held) => Ok(held),
                Err((f, e)) => {
                    file = Some(f);
                    Err(e)
                }
            }
        });
        match waited {
            Waited::Acquired(held) => Ok(Lock { _held: held }),
            Waited::TimedOut => Err(timed_out(name)),
            Waited::Failed(e) => Err(io_error("lock", &path, std::io::Error::from(e))),
        }
    }
}

/// What the runtime hears when a lock stayed taken for all of `LOCK_TIMEOUT`.
fn timed_out(name: &str) -> Error {
    Error::Busy(format!(
        "{name} is locked by another operation for more than {}s; try again later",
        LOCK_TIMEOUT.as_secs()
    ))
}

/// FNV-1a of the attachment's identity: its byte in the attachment lock file.
fn attachment_slot(container_id: &str, ifname: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// A write lock on byte `slot` of a file.
fn write_lock_of(slot: u32) -> nix::libc::flock {
    byte_range(nix::libc::F_WRLCK, i64::from(slot), 1)
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};

    use super::*;
    use crate::node::lock_wait::is_contended;
    use crate::node::state::testing::empty_store;
    use std::time::Instant;

    #[test]
    fn attachments_share_one_lock_file_and_exclude_only_themselves() {
        let (tmp, store) = empty_store();
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
        let (tmp, store) = empty_store();
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

    #[test]
    fn devices_lock_each_other_out_but_not_other_devices() {
        let (tmp, store) = empty_store();
        let _held = store.lock_device("pci-0000:5e:00.1").unwrap();
        let _other = store.lock_device("pci-0000:5e:00.0").unwrap();
        let path = tmp.path().join("locks/dev-pci-0000:5e:00.1.lock");
        let file = OpenOptions::new().write(true).open(path).unwrap();
        let again = Flock::lock(file, FlockArg::LockExclusiveNonblock);
        assert!(again.is_err_and(|(_, e)| is_contended(e)));
    }
}
