//! The plugin's typed errors, and the one place that maps each of them to a CNI error code.
//!
//! Concerns keep their own error types ([`DeviceError`] with the device identities,
//! [`ProtocolError`] with the protocol) and this module wraps them, so `code()` below is
//! the whole code table and its test covers every variant. [`KvpError`] is defined here,
//! not beside the KVP pool in `node`, because `node` imports this table, never the reverse.
//! Imports only the leaves (`cni`, `device_id`); everything above imports it.

use std::fmt;
use std::path::PathBuf;

use crate::cni::error::{errno_details, errno_in_words, io_error_details, io_error_in_words};
use crate::cni::{CniError, ProtocolError};
use crate::device_id::DeviceError;

/// Why the pool gave no address. Mapped to CNI codes (110–113, 11) below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvpError {
    /// The pool file is missing or unreadable.
    PoolUnavailable(String),
    /// The pool has no `IPoIB_Data` record.
    NoRecord(String),
    /// The `IPoIB_Data` record (or the pool) does not parse.
    Malformed(String),
    /// The record lists no address for this interface's MAC.
    NoEntry(String),
    /// hv_kvp_daemon kept the pool write-locked too long; try again later.
    Busy(String),
}

impl std::fmt::Display for KvpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvpError::PoolUnavailable(m)
            | KvpError::NoRecord(m)
            | KvpError::Malformed(m)
            | KvpError::NoEntry(m)
            | KvpError::Busy(m) => f.write_str(m),
        }
    }
}

/// CNI error codes: 1–99 are the spec's, 100 and up this plugin's (docs/configuration.md, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    PluginNotAvailable = 50,
    DeviceNotFound = 100,
    DeviceClaimed = 101,
    Netlink = 102,
    DelegateFailed = 103,
    DefaultRouteDevice = 104,
    CheckFailed = 105,
    NotAllocated = 106,
    InUseByHost = 107,
    KvpPoolUnavailable = 110,
    KvpNoRecord = 111,
    KvpMalformed = 112,
    KvpNoEntry = 113,
}

#[derive(Debug)]
pub enum Error {
    /// The runtime asked for a spec version we do not speak.
    IncompatibleVersion(String),
    /// CHECK/GC asked about an attachment we know nothing of.
    UnknownContainer(String),
    /// A `CNI_*` variable is missing or malformed.
    InvalidEnvironment { var: &'static str, reason: String },
    /// stdin (or a plugin's reply) is not the JSON we expect.
    Decode(String),
    /// A state file exists but does not parse (the spec's "failed to decode content", 6).
    CorruptState { path: PathBuf, reason: String },
    /// A state file in a newer format than this binary reads (`found` > `supported`): it is
    /// neither salvaged nor acted on, so its NIC (`nic`, if the file still tells it the way
    /// this binary's format does) stays where it is.
    NewerState {
        path: PathBuf,
        found: u64,
        supported: u32,
        nic: Option<String>,
    },
    /// The JSON parsed but its content is unusable, or not allowed on this node.
    InvalidConfig(String),
    /// The node policy file exists but cannot be trusted or read.
    NodePolicy(String),
    /// A file or directory operation failed.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Another operation holds the attachment or device; the runtime may retry.
    Busy(String),
    /// Some attachments of a many-attachment operation (GC, admin restore) could not be
    /// released; the others were. Retrying is the remedy, hence code 11.
    Incomplete(PartialFailure),
    /// The delegate binary could not be found or started, or the state dir is unusable.
    PluginNotAvailable(String),
    /// The selected device cannot be attached.
    Device(DeviceError),
    /// A netlink request failed. The message is `doing: why`, for a person; `detail` and the
    /// errno go to `details`.
    Netlink {
        /// What was being done, in words: `renaming net1 to enp1s0`.
        doing: String,
        /// Why it failed, in words, when the errno's own words would not say it (`an
        /// interface named enp1s0 already exists`); the kernel's extended ack otherwise.
        why: Option<String>,
        errno: Option<i32>,
        /// The low-level account: the request and its ids, a library's own error.
        detail: String,
    },
    /// The delegate ran and failed; `code` is its CNI code when it printed a CNI error.
    Delegate {
        code: Option<u32>,
        msg: String,
        details: String,
    },
    /// CHECK found the attachment not as ADD left it.
    CheckFailed(String),
    /// The Hyper-V KVP pool could not give an address.
    Kvp(KvpError),
}

/// What a many-attachment operation could not do, one entry per attachment.
#[derive(Debug)]
pub struct PartialFailure {
    /// `"GC"`, `"restore"`: the operation, for the message.
    pub operation: &'static str,
    pub failures: Vec<AttachmentFailure>,
}

#[derive(Debug)]
pub struct AttachmentFailure {
    pub container_id: String,
    pub ifname: String,
    pub error: Error,
}

impl Error {
    /// The CNI code of this error: the whole table.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::IncompatibleVersion(_) => ErrorCode::IncompatibleVersion,
            Error::UnknownContainer(_) => ErrorCode::UnknownContainer,
            Error::InvalidEnvironment { .. } => ErrorCode::InvalidEnvironment,
            Error::Decode(_) | Error::CorruptState { .. } | Error::NewerState { .. } => {
                ErrorCode::Decode
            }
            Error::InvalidConfig(_) | Error::NodePolicy(_) => ErrorCode::InvalidConfig,
            Error::Io { .. } => ErrorCode::Io,
            Error::Busy(_) | Error::Incomplete(_) | Error::Kvp(KvpError::Busy(_)) => {
                ErrorCode::TryAgainLater
            }
            Error::PluginNotAvailable(_) => ErrorCode::PluginNotAvailable,
            Error::Device(DeviceError::NotFound(_)) => ErrorCode::DeviceNotFound,
            Error::Device(DeviceError::Claimed(_)) => ErrorCode::DeviceClaimed,
            Error::Device(DeviceError::CarriesDefaultRoute(_)) => ErrorCode::DefaultRouteDevice,
            Error::Netlink { .. } => ErrorCode::Netlink,
            Error::Delegate { .. } => ErrorCode::DelegateFailed,
            Error::CheckFailed(_) => ErrorCode::CheckFailed,
            Error::Device(DeviceError::NotAllocated(_)) => ErrorCode::NotAllocated,
            Error::Device(DeviceError::InUseByHost(_)) => ErrorCode::InUseByHost,
            Error::Kvp(KvpError::PoolUnavailable(_)) => ErrorCode::KvpPoolUnavailable,
            Error::Kvp(KvpError::NoRecord(_)) => ErrorCode::KvpNoRecord,
            Error::Kvp(KvpError::Malformed(_)) => ErrorCode::KvpMalformed,
            Error::Kvp(KvpError::NoEntry(_)) => ErrorCode::KvpNoEntry,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn invalid_env(var: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidEnvironment {
            var,
            reason: reason.into(),
        }
    }

    pub fn device_not_found(msg: impl Into<String>) -> Error {
        Error::Device(DeviceError::NotFound(msg.into()))
    }

    /// A failed netlink request: `doing` in words, the errno if the kernel gave one.
    pub fn netlink(doing: impl Into<String>, errno: Option<i32>) -> Error {
        Error::Netlink {
            doing: doing.into(),
            why: None,
            errno,
            detail: String::new(),
        }
    }

    /// The errno of a failed netlink request or I/O operation.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => *errno,
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Says what was being done, for a person, where the caller knows better than the layer
    /// that failed: which NIC it is, which way it was moving. A netlink error's own account
    /// is the same step told with less knowledge, so it moves to `details`; an I/O or
    /// delegate failure was a step of it, so it follows. Any other error already says what
    /// it is about and is returned as it is.
    pub fn while_doing(self, doing: impl Into<String>) -> Error {
        let doing = doing.into();
        match self {
            Error::Netlink {
                doing: lower,
                why,
                errno,
                detail,
            } => Error::Netlink {
                doing,
                why,
                errno,
                detail: join_nonempty(&[&lower, &detail], "; "),
            },
            other => other.during(doing),
        }
    }

    /// Puts `step` in front of the message of a failed request, an I/O error or a failed
    /// delegate: what the plugin was at when it happened (`giving back enp1s0: renaming
    /// net1 to enp1s0: ...`). Any other error is returned as it is.
    pub fn during(self, step: impl fmt::Display) -> Error {
        match self {
            Error::Netlink {
                doing,
                why,
                errno,
                detail,
            } => Error::Netlink {
                doing: format!("{step}: {doing}"),
                why,
                errno,
                detail,
            },
            Error::Io { context, source } => Error::Io {
                context: format!("{step}: {context}"),
                source,
            },
            Error::Delegate { code, msg, details } => Error::Delegate {
                code,
                msg: format!("{step}: {msg}"),
                details,
            },
            other => other,
        }
    }

    /// Says why a netlink request failed, where the errno's own words would not.
    pub fn because(self, reason: impl Into<String>) -> Error {
        match self {
            Error::Netlink {
                doing,
                errno,
                detail,
                ..
            } => Error::Netlink {
                doing,
                why: Some(reason.into()),
                errno,
                detail,
            },
            other => other,
        }
    }

    /// Extra text for the `details` field: the errno, the low-level account of a request,
    /// the delegate's own details, ...
    pub fn details(&self) -> String {
        match self {
            Error::Io { source, .. } => io_error_details(source),
            Error::Netlink { errno, detail, .. } => {
                let errno = errno.map(errno_details).unwrap_or_default();
                join_nonempty(&[detail, &errno], "; ")
            }
            Error::Delegate {
                code: Some(code),
                details,
                ..
            } if details.is_empty() => format!("delegate error code {code}"),
            Error::Delegate {
                code: Some(code),
                details,
                ..
            } => format!("delegate error code {code}: {details}"),
            Error::Delegate { details, .. } => details.clone(),
            Error::Incomplete(partial) => partial.details(),
            _ => String::new(),
        }
    }
}

fn join_nonempty(parts: &[&str], separator: &str) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    parts.join(separator)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IncompatibleVersion(m)
            | Error::UnknownContainer(m)
            | Error::Decode(m)
            | Error::InvalidConfig(m)
            | Error::NodePolicy(m)
            | Error::Busy(m)
            | Error::PluginNotAvailable(m)
            | Error::CheckFailed(m) => f.write_str(m),
            Error::InvalidEnvironment { var, reason } => write!(f, "invalid {var}: {reason}"),
            Error::CorruptState { path, reason } => {
                write!(f, "state file {} is corrupt: {reason}", path.display())
            }
            Error::NewerState {
                path,
                found,
                supported,
                nic,
            } => write!(
                f,
                "state file {} is in format {found}, newer than this amd-host-device reads \
                 (formats up to {supported}): a newer version attached {}, and it is left \
                 where it is; give it back with that version, or upgrade this node again",
                path.display(),
                nic.as_deref().unwrap_or("its NIC"),
            ),
            Error::Io { context, source } => {
                write!(f, "{context}: {}", io_error_in_words(source))
            }
            Error::Incomplete(partial) => partial.fmt(f),
            Error::Device(e) => e.fmt(f),
            Error::Netlink {
                doing,
                why: Some(why),
                ..
            } => write!(f, "{doing}: {why}"),
            Error::Netlink {
                doing,
                errno: Some(errno),
                ..
            } => write!(f, "{doing}: {}", errno_in_words(*errno)),
            Error::Netlink { doing, .. } => write!(f, "{doing} failed"),
            Error::Delegate { msg, .. } => f.write_str(msg),
            Error::Kvp(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} could not release {} attachment(s): ",
            self.operation,
            self.failures.len()
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            failure.fmt(f)?;
        }
        Ok(())
    }
}

impl PartialFailure {
    /// The details of each failure that has some, by attachment.
    fn details(&self) -> String {
        let each: Vec<String> = self
            .failures
            .iter()
            .filter_map(|failure| {
                let details = failure.error.details();
                (!details.is_empty())
                    .then(|| format!("{}/{}: {details}", failure.container_id, failure.ifname))
            })
            .collect();
        each.join("; ")
    }
}

impl fmt::Display for AttachmentFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: {}", self.container_id, self.ifname, self.error)
    }
}

impl std::error::Error for Error {}

impl CniError for Error {
    fn code(&self) -> u32 {
        Error::code(self) as u32
    }

    fn details(&self) -> String {
        Error::details(self)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        match e {
            ProtocolError::InvalidEnvironment { var, reason } => {
                Error::InvalidEnvironment { var, reason }
            }
            ProtocolError::Decode(m) => Error::Decode(m),
            ProtocolError::ReadStdin(source) => Error::io("read stdin", source),
        }
    }
}

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Error {
        Error::Device(e)
    }
}

impl From<KvpError> for Error {
    fn from(e: KvpError) -> Error {
        Error::Kvp(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;
