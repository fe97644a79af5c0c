//! The plugin's typed errors, and the one place that maps each of them to a CNI error code.
//!
//! Concerns keep their own error types ([`DeviceError`] with the device identities,
//! [`ProtocolError`] with the protocol) and this module wraps them, so `code()` below is
//! the whole code table and its test covers every variant. [`KvpError`] is defined here,
//! not beside the KVP pool in `node`, because `node` imports this table, never the reverse.

use std::fmt;
use std::path::PathBuf;

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
    /// A netlink request failed.
    Netlink { context: String, errno: Option<i32> },
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
            Error::Decode(_) | Error::CorruptState { .. } => ErrorCode::Decode,
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

    /// Extra text for the `details` field: the delegate's own details, an errno, ...
    pub fn details(&self) -> String {
        match self {
            Error::Io { source, .. } => source.to_string(),
            Error::Netlink {
                errno: Some(errno), ..
            } => format!("errno {errno}"),
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
            _ => String::new(),
        }
    }
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
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Incomplete(partial) => partial.fmt(f),
            Error::Device(e) => e.fmt(f),
            Error::Netlink {
                context,
                errno: Some(errno),
            } => write!(
                f,
                "{context}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Error::Netlink {
                context,
                errno: None,
            } => f.write_str(context),
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
mod tests {
    use super::*;
    use crate::cni::{error_reply, CniVersion};

    fn parsed(e: &Error) -> serde_json::Value {
        serde_json::from_str(&error_reply(e, CniVersion::V0_3_1)).unwrap()
    }

    fn failure(cid: &str, error: Error) -> AttachmentFailure {
        AttachmentFailure {
            container_id: cid.into(),
            ifname: "net1".into(),
            error,
        }
    }

    /// One of every variant, nested ones included, with the code it must get.
    fn every_variant() -> Vec<(Error, u32)> {
        let netlink = |errno| Error::Netlink {
            context: "n".into(),
            errno,
        };
        let delegate = |code| Error::Delegate {
            code,
            msg: "m".into(),
            details: String::new(),
        };
        vec![
            (Error::IncompatibleVersion("v".into()), 1),
            (Error::UnknownContainer("c".into()), 3),
            (Error::invalid_env("CNI_IFNAME", "empty"), 4),
            (ProtocolError::Decode("d".into()).into(), 6),
            (
                ProtocolError::InvalidEnvironment {
                    var: "CNI_NETNS",
                    reason: "r".into(),
                }
                .into(),
                4,
            ),
            (
                ProtocolError::ReadStdin(std::io::Error::other("x")).into(),
                5,
            ),
            (Error::io("write", std::io::Error::other("x")), 5),
            (Error::Decode("d".into()), 6),
            (
                Error::CorruptState {
                    path: "/s/c1-net1.json".into(),
                    reason: "EOF".into(),
                },
                6,
            ),
            (Error::InvalidConfig("c".into()), 7),
            (Error::NodePolicy("p".into()), 7),
            (Error::Busy("b".into()), 11),
            (
                Error::Incomplete(PartialFailure {
                    operation: "GC",
                    failures: vec![failure("c1", Error::Busy("b".into()))],
                }),
                11,
            ),
            (Error::PluginNotAvailable("p".into()), 50),
            (DeviceError::NotFound("n".into()).into(), 100),
            (DeviceError::Claimed("c".into()).into(), 101),
            (netlink(Some(19)), 102),
            (netlink(None), 102),
            (delegate(Some(999)), 103),
            (delegate(None), 103),
            (DeviceError::CarriesDefaultRoute("d".into()).into(), 104),
            (Error::CheckFailed("c".into()), 105),
            (DeviceError::NotAllocated("a".into()).into(), 106),
            (DeviceError::InUseByHost("u".into()).into(), 107),
            (KvpError::PoolUnavailable("k".into()).into(), 110),
            (KvpError::NoRecord("k".into()).into(), 111),
            (KvpError::Malformed("k".into()).into(), 112),
            (KvpError::NoEntry("k".into()).into(), 113),
            (KvpError::Busy("k".into()).into(), 11),
        ]
    }

    #[test]
    fn every_variant_maps_to_its_cni_code() {
        for (err, code) in every_variant() {
            assert_eq!(err.code() as u32, code, "{err:?}");
            assert_eq!(parsed(&err)["code"], code, "{err:?}");
            assert!(!err.to_string().is_empty(), "{err:?} has a message");
        }
    }

    #[test]
    fn error_json_has_version_message_and_details() {
        let e = Error::invalid_env("CNI_IFNAME", "contains '/'");
        let v = parsed(&e);
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["msg"], "invalid CNI_IFNAME: contains '/'");
        assert!(v.get("details").is_none(), "empty details are omitted");

        let e = Error::Netlink {
            context: "get link eth9".into(),
            errno: Some(19),
        };
        let v = parsed(&e);
        assert_eq!(v["msg"], "get link eth9: No such device (os error 19)");
        assert_eq!(v["details"], "errno 19");
    }

    #[test]
    fn delegate_errors_keep_the_delegates_own_code_only_when_it_gave_one() {
        let with_code = Error::Delegate {
            code: Some(999),
            msg: "host-device: failed to find host device: Link not found".into(),
            details: String::new(),
        };
        assert_eq!(parsed(&with_code)["details"], "delegate error code 999");
        let without = Error::Delegate {
            code: None,
            msg: "host-device printed an unusable result".into(),
            details: String::new(),
        };
        assert!(parsed(&without).get("details").is_none());
    }

    #[test]
    fn a_partial_failure_lists_every_attachment() {
        let e = Error::Incomplete(PartialFailure {
            operation: "GC",
            failures: vec![
                failure("c1", Error::Busy("locked".into())),
                failure("c2", DeviceError::NotFound("gone".into()).into()),
            ],
        });
        assert_eq!(
            e.to_string(),
            "GC could not release 2 attachment(s): c1/net1: locked; c2/net1: gone"
        );
    }
}
