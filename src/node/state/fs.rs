//! File-system primitives of the store. Nothing here follows a symlink planted in the state
//! dir: every open is `O_NOFOLLOW`, every check an `lstat`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{Error, Result};

/// Flags of every open in the state dir: a planted symlink is an error, not a way out, and
/// no descriptor leaks into the delegate.
const NO_FOLLOW: i32 = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;

/// The store's error for a failed `what` on `path`, e.g. "remove <path>: <why>".
pub(super) fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}

/// Makes `dir` a directory only its owner can enter, creating it (and its parents) if need
/// be. Refuses a symlink or non-directory there.
pub(super) fn ensure_private_dir(dir: &Path) -> Result<()> {
    match dir.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => Err(io_error(
            "state dir",
            dir,
            std::io::Error::new(ErrorKind::InvalidInput, "exists and is not a directory"),
        )),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error("chmod 0700", dir, e))
        }
        Ok(_) => Ok(()),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error("create state dir", dir, e)),
    }
}

/// The most a state, claim or mapping file is read: a state file is a few KiB, so anything
/// larger was not written by us (and must not fill a plugin's memory).
const MAX_READ_BYTES: u64 = 1 << 20;

/// Reads a regular file without following a symlink planted in its place; `None` if absent.
/// The open never blocks (a FIFO planted in the state dir would hang every verb and the
/// admin commands in `open`), and anything but a regular file is an error.
pub(super) fn read_no_follow(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(NO_FOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error("stat", path, e))?;
    if !meta.is_file() {
        return Err(io_error(
            "read",
            path,
            std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    // Sized by the fstat, plus one byte of room for the end-of-file read: two reads (the
    // data, then end of file), where growing from nothing took six for a state file.
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_READ_BYTES) as usize + 1);
    file.take(MAX_READ_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    Ok(Some(bytes))
}

/// Opens read-write without following a symlink; `create` makes a new 0600 file (O_EXCL).
pub(super) fn open_private(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .mode(0o600)
        .custom_flags(NO_FOLLOW)
        .open(path)
}

/// Opens (creating, 0600) a file that is only ever locked, never read or written.
pub(super) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(NO_FOLLOW)
        .open(path)
        .map_err(|e| io_error("open lock", path, e))
}

/// Writes `bytes` into `file`, a fresh temp file at `tmp` in the same dir as `path`, fsyncs
/// it and renames it over `path`: a crash leaves the old file or the new one. `tmp` is
/// removed if any step fails.
pub(super) fn write_atomically(tmp: &Path, file: &File, path: &Path, bytes: &[u8]) -> Result<()> {
    let written = file
        .write_all_at(bytes, 0)
        .and_then(|()| file.set_len(bytes.len() as u64))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", path, e))
        .and_then(|()| fs::rename(tmp, path).map_err(|e| io_error("rename into", path, e)));
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`: the renameat2 system
/// call, made directly because neither nix nor the musl that Rust bundles (our deployable
/// build) wrap it.
pub(super) fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::from);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory, that
    // outlive the call; renameat2 reads them and keeps no pointer.
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

/// Makes the entries of `dir` (creations, renames, links) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync", dir, e))
}

/// Removes a file; one already gone is no error.
pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

/// Which file a path names, without following a symlink; `None` for a symlink or nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inode {
    dev: u64,
    ino: u64,
    /// How many names the file has.
    pub(super) nlink: u64,
}

impl Inode {
    /// The inode of a plain file; `None` for anything else (a symlink, a dir, a fifo).
    pub(super) fn of_file(m: &fs::Metadata) -> Option<Inode> {
        m.is_file().then(|| Inode {
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        })
    }

    /// Whether `other` is this very file (under any of its names).
    pub(super) fn same_file(&self, other: Option<Inode>) -> bool {
        other.is_some_and(|o| (o.dev, o.ino) == (self.dev, self.ino))
    }
}

/// The plain file `path` names, if it names one (see [`Inode`]).
pub(super) fn inode_of(path: &Path) -> Option<Inode> {
    Inode::of_file(&path.symlink_metadata().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::state::testing::mode;

    #[test]
    fn a_state_dir_others_can_enter_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(tmp.path()).unwrap();
        assert_eq!(mode(tmp.path()), 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ensure_private_dir(&file).is_err(), "a file is no state dir");
    }

    #[test]
    fn rename_no_replace_never_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"a");
        let gone = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(gone.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn reads_and_inodes_never_follow_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, link) = (tmp.path().join("target"), tmp.path().join("link"));
        assert_eq!(read_no_follow(&target).unwrap(), None, "absent is no error");
        fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_no_follow(&link).is_err());
        let fifo = tmp.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(
            read_no_follow(&fifo).is_err(),
            "a FIFO is refused, not waited on"
        );
        assert!(open_private(&link, false).is_err());
        assert!(inode_of(&link).is_none());
        let file = inode_of(&target).unwrap();
        assert!(file.same_file(inode_of(&target)) && !file.same_file(None));
        remove_if_present(&link).unwrap();
        remove_if_present(&link).unwrap();
        assert_eq!(
            fs::read(&target).unwrap(),
            b"x",
            "removing a link spares its target"
        );
    }
}
