//! Entering a pod's network namespace on the current thread, and getting back out.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::cni::error::{errno_in_words, io_error_in_words};
use crate::error::Error;

/// While alive, the current thread is in another network namespace; dropping it goes back
/// to the host's ([`home`]). Netlink sockets opened meanwhile stay bound to that namespace.
/// Guards do not nest: each one is entered from the host and goes back there.
pub struct NetnsGuard {
    original: &'static File,
}

impl NetnsGuard {
    pub fn enter(path: &Path) -> Result<NetnsGuard, Error> {
        let original = home()?;
        let target = open(path)?;
        setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::invalid_env(
                "CNI_NETNS",
                format!(
                    "{} is not a network namespace: {}",
                    path.display(),
                    errno_in_words(e as i32)
                ),
            )
        })?;
        Ok(NetnsGuard { original })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original, CloneFlags::CLONE_NEWNET) {
            // Carrying on would apply host changes inside a pod: stop right here.
            crate::log_error!("cannot return to the host network namespace: {e}; aborting");
            std::process::abort();
        }
    }
}

/// The network namespace the calling thread is in now (`thread-self`, not `self`: setns
/// only moves the calling thread).
fn current() -> Result<File, Error> {
    File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("open the current network namespace", e))
}

/// The host's network namespace: the one this process runs in, opened once, the first time
/// it is asked for, which is always from the host (before any [`NetnsGuard`] is entered:
/// entering one asks for it first). Every guard goes back to it, the pod checks compare
/// against it, and a NIC moved home is moved into it, without a walk through `/proc` each
/// time (a few µs each, several per call).
pub fn home() -> Result<&'static File, Error> {
    static HOME: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    if let Some(file) = HOME.get() {
        return Ok(file);
    }
    let file = current()?;
    Ok(HOME.get_or_init(|| file))
}

/// Why a path given as a pod's network namespace is not one we may act on.
#[derive(Debug)]
pub enum NotAPod {
    /// Nothing is there, or something that is not a network namespace: a file left behind
    /// after `ip netns del`, a FIFO, a directory, a device, another kind of namespace.
    NotANetns(String),
    /// The namespace the plugin itself runs in (the host's): a NIC "moved" there would stay
    /// on the host, renamed in place.
    Own,
    /// It could not even be looked at (a security module, no descriptors left): this says
    /// nothing about whether a pod is there.
    Unopenable(std::io::Error),
}

/// Opens `path` as a pod's network namespace, without ever blocking or touching what is
/// not one: the path is first opened `O_PATH` (which runs no driver's open, so a FIFO or a
/// device file is never really opened), and only a file of the namespace file system that
/// is not our own namespace is opened for real, through the descriptor already held, so
/// that the path cannot be swapped in between.
pub fn open_pod(path: &Path) -> Result<File, NotAPod> {
    if let Some(file) = already_opened(path) {
        return Ok(file);
    }
    let file = open_pod_afresh(path)?;
    remember_opened(path, &file);
    Ok(file)
}

/// Pods' namespaces this process already opened and checked, by path. A verb asks for its
/// pod's namespace more than once (is it alive, then enter it, maybe again to move the NIC
/// out); the checks cost eight system calls each time, and a descriptor held from the first
/// time is also the same namespace every time, whatever happens to the path meanwhile.
static OPENED: std::sync::Mutex<Vec<(std::path::PathBuf, File)>> =
    std::sync::Mutex::new(Vec::new());

fn already_opened(path: &Path) -> Option<File> {
    let opened = OPENED.lock().ok()?;
    let (_, file) = opened.iter().find(|(p, _)| p == path)?;
    file.try_clone().ok()
}

fn remember_opened(path: &Path, file: &File) {
    if let (Ok(mut opened), Ok(copy)) = (OPENED.lock(), file.try_clone()) {
        opened.push((path.to_owned(), copy));
    }
}

fn open_pod_afresh(path: &Path) -> Result<File, NotAPod> {
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::NotADirectory => {
                NotAPod::NotANetns("nothing is there".into())
            }
            _ => NotAPod::Unopenable(e),
        })?;
    let meta = handle.metadata().map_err(NotAPod::Unopenable)?;
    let on_nsfs = nix::sys::statfs::fstatfs(&handle)
        .map_err(|e| NotAPod::Unopenable(e.into()))?
        .filesystem_type()
        == nix::sys::statfs::NSFS_MAGIC;
    if !on_nsfs {
        return Err(NotAPod::NotANetns(describe(&meta).into()));
    }
    if is_own(&meta) {
        return Err(NotAPod::Own);
    }
    let file =
        File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())).map_err(NotAPod::Unopenable)?;
    match namespace_type(&file) {
        Some(kind) if kind != CloneFlags::CLONE_NEWNET.bits() => Err(NotAPod::NotANetns(
            "a namespace of another kind (not a network namespace)".into(),
        )),
        _ => Ok(file),
    }
}

/// What a file that is not on the namespace file system is, for the runtime's error.
fn describe(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file (a namespace's mount point left behind after it was deleted?)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device file"
    } else {
        "not a namespace file"
    }
}

/// Whether `meta` is the plugin's own (the host's) network namespace (same nsfs inode).
fn is_own(meta: &std::fs::Metadata) -> bool {
    home()
        .ok()
        .and_then(|home| home.metadata().ok())
        .is_some_and(|own| (own.dev(), own.ino()) == (meta.dev(), meta.ino()))
}

/// The `CLONE_NEW*` kind of a namespace file; `None` where the kernel cannot tell (before
/// Linux 4.11), which leaves the check to `setns`.
fn namespace_type(file: &File) -> Option<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which `file`
    // keeps open for the call.
    let kind = unsafe { nix::libc::ioctl(file.as_raw_fd(), nix::libc::NS_GET_NSTYPE) };
    (kind >= 0).then_some(kind)
}

/// Opens a pod's network namespace file (e.g. `/var/run/netns/x`, `/proc/<pid>/ns/net`);
/// anything else is the runtime's error (code 4), see [`open_pod`].
pub fn open(path: &Path) -> Result<File, Error> {
    open_pod(path).map_err(|why| refusal(path, why))
}

/// The runtime's error for a `CNI_NETNS` that is not a pod's network namespace.
pub fn refusal(path: &Path, why: NotAPod) -> Error {
    let path = path.display();
    Error::invalid_env(
        "CNI_NETNS",
        match why {
            NotAPod::NotANetns(what) => format!("{path} is not a network namespace: {what}"),
            NotAPod::Own => format!(
                "{path} is the network namespace amd-host-device runs in (the host's), not a \
                 pod's; nothing was moved"
            ),
            NotAPod::Unopenable(e) => format!(
                "cannot open network namespace {path}: {}",
                io_error_in_words(&e)
            ),
        },
    )
}

/// Whether `path` still names a live pod network namespace. Only a path that does not
/// exist, or no longer holds a network namespace (a bind-mount target left behind after `ip
/// netns del` is a plain empty file), counts as gone, and so does our own namespace, which
/// is never a pod's: a namespace we merely cannot open now (a security module, no file
/// descriptors left) is not proof that its pod is gone.
pub fn exists(path: &Path) -> bool {
    match open_pod(path) {
        Ok(_) | Err(NotAPod::Unopenable(_)) => true,
        Err(NotAPod::NotANetns(_) | NotAPod::Own) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn not_a_netns(path: &Path) -> String {
        match open_pod(path) {
            Err(NotAPod::NotANetns(what)) => what,
            other => panic!("{}: expected not a netns, got {other:?}", path.display()),
        }
    }

    #[test]
    fn our_own_namespace_is_no_pod_under_any_of_its_names() {
        for own in ["/proc/self/ns/net", "/proc/thread-self/ns/net"] {
            assert!(
                matches!(open_pod(Path::new(own)), Err(NotAPod::Own)),
                "{own}"
            );
            assert!(!exists(Path::new(own)), "{own}");
            let e = open(Path::new(own)).unwrap_err();
            assert_eq!(e.code() as u32, 4, "{e}");
            assert!(e.to_string().contains("runs in (the host's)"), "{e}");
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let start = Instant::now();
        assert_eq!(not_a_netns(&fifo), "a FIFO");
        assert!(!exists(&fifo));
        assert!(NetnsGuard::enter(&fifo).is_err());
        assert!(start.elapsed() < Duration::from_secs(2), "a FIFO blocked");
    }

    #[test]
    fn files_dirs_absent_paths_and_other_namespaces_are_not_network_namespaces() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("left-behind");
        std::fs::write(&file, b"").unwrap();
        assert!(not_a_netns(&file).starts_with("a regular file"));
        assert_eq!(not_a_netns(tmp.path()), "a directory");
        assert_eq!(not_a_netns(&tmp.path().join("none")), "nothing is there");
        assert_eq!(not_a_netns(&file.join("below-a-file")), "nothing is there");
        assert!(!exists(&file) && !exists(tmp.path()));
        // A namespace file, but of the mount namespace.
        assert!(not_a_netns(Path::new("/proc/self/ns/mnt")).contains("another kind"));
    }

    #[test]
    fn a_pods_namespace_opens_and_exists() {
        let Some(pod) = crate::host::testing::ScratchNetns::new("netns") else {
            return;
        };
        assert!(open_pod(&pod.path()).is_ok());
        assert!(exists(&pod.path()));
        drop(NetnsGuard::enter(&pod.path()).unwrap());
        assert!(
            matches!(
                open_pod(Path::new("/proc/thread-self/ns/net")),
                Err(NotAPod::Own)
            ),
            "back home"
        );
    }
}
