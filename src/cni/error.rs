//! Typed errors, each mapped to exactly one CNI error code.
//!
//! Everything that can fail returns [`Error`]; `main` turns it into the
//! `{"cniVersion","code","msg","details"}` JSON the runtime reads.

use std::fmt;

use serde::Serialize;

use super::CniVersion;

/// CNI error codes (spec §"Error") plus our plugin-specific ones (100+).
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
    /// stdin is not the JSON we expect.
    Decode(String),
    /// A state file exists but does not parse (DEL salvages what it can of it).
    CorruptState {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The JSON parsed but its content is unusable.
    InvalidConfig(String),
    /// A file or directory operation failed.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Another operation holds the device; the runtime may retry.
    Busy(String),
    /// The delegate binary could not be found or started.
    PluginNotAvailable(String),
    /// The selected device does not exist on the host (or has no netdev).
    DeviceNotFound(String),
    /// Another attachment's state already owns this device.
    DeviceClaimed(String),
    /// A netlink request failed.
    Netlink { context: String, errno: Option<i32> },
    /// The delegate ran and reported an error (its code and text are kept).
    Delegate {
        code: u32,
        msg: String,
        details: String,
    },
    /// The device carries the host's default route and the config did not allow moving it.
    DefaultRouteDevice(String),
    /// CHECK found the attachment not as ADD left it.
    CheckFailed(String),
    /// The Hyper-V KVP pool file is missing or unreadable.
    KvpPoolUnavailable(String),
    /// The KVP pool has no `IPoIB_Data` record.
    KvpNoRecord(String),
    /// The `IPoIB_Data` record does not parse.
    KvpMalformed(String),
    /// The record lists no address for this interface's MAC.
    KvpNoEntry(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::IncompatibleVersion(_) => ErrorCode::IncompatibleVersion,
            Error::UnknownContainer(_) => ErrorCode::UnknownContainer,
            Error::InvalidEnvironment { .. } => ErrorCode::InvalidEnvironment,
            Error::Decode(_) => ErrorCode::Decode,
            Error::CorruptState { .. } => ErrorCode::Decode,
            Error::InvalidConfig(_) => ErrorCode::InvalidConfig,
            Error::Io { .. } => ErrorCode::Io,
            Error::Busy(_) => ErrorCode::TryAgainLater,
            Error::PluginNotAvailable(_) => ErrorCode::PluginNotAvailable,
            Error::DeviceNotFound(_) => ErrorCode::DeviceNotFound,
            Error::DeviceClaimed(_) => ErrorCode::DeviceClaimed,
            Error::Netlink { .. } => ErrorCode::Netlink,
            Error::Delegate { .. } => ErrorCode::DelegateFailed,
            Error::DefaultRouteDevice(_) => ErrorCode::DefaultRouteDevice,
            Error::CheckFailed(_) => ErrorCode::CheckFailed,
            Error::KvpPoolUnavailable(_) => ErrorCode::KvpPoolUnavailable,
            Error::KvpNoRecord(_) => ErrorCode::KvpNoRecord,
            Error::KvpMalformed(_) => ErrorCode::KvpMalformed,
            Error::KvpNoEntry(_) => ErrorCode::KvpNoEntry,
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

    /// Extra text for the `details` field: the delegate's own details, an errno, ...
    pub fn details(&self) -> String {
        match self {
            Error::Io { source, .. } => source.to_string(),
            Error::Netlink {
                errno: Some(errno), ..
            } => format!("errno {errno}"),
            Error::Delegate { code, details, .. } => {
                if details.is_empty() {
                    format!("delegate error code {code}")
                } else {
                    format!("delegate error code {code}: {details}")
                }
            }
            _ => String::new(),
        }
    }

    /// The CNI error JSON for this error.
    pub fn to_json(&self, version: CniVersion) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: String,
            #[serde(skip_serializing_if = "String::is_empty")]
            details: String,
        }
        let wire = Wire {
            cni_version: version.as_str(),
            code: self.code() as u32,
            msg: self.to_string(),
            details: self.details(),
        };
        serde_json::to_string(&wire).expect("error JSON always serialises")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IncompatibleVersion(m)
            | Error::UnknownContainer(m)
            | Error::Decode(m)
            | Error::InvalidConfig(m)
            | Error::Busy(m)
            | Error::PluginNotAvailable(m)
            | Error::DeviceNotFound(m)
            | Error::DeviceClaimed(m)
            | Error::DefaultRouteDevice(m)
            | Error::CheckFailed(m)
            | Error::KvpPoolUnavailable(m)
            | Error::KvpNoRecord(m)
            | Error::KvpMalformed(m)
            | Error::KvpNoEntry(m) => f.write_str(m),
            Error::InvalidEnvironment { var, reason } => write!(f, "invalid {var}: {reason}"),
            Error::CorruptState { path, reason } => {
                write!(f, "state file {} is corrupt: {reason}", path.display())
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
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
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(e: &Error) -> serde_json::Value {
        serde_json::from_str(&e.to_json(CniVersion::V0_3_1)).unwrap()
    }

    #[test]
    fn every_variant_maps_to_its_cni_code() {
        let cases: Vec<(Error, u32)> = vec![
            (Error::IncompatibleVersion("v".into()), 1),
            (Error::UnknownContainer("c".into()), 3),
            (Error::invalid_env("CNI_IFNAME", "empty"), 4),
            (Error::io("write", std::io::Error::other("x")), 5),
            (Error::Decode("d".into()), 6),
            (
                Error::CorruptState {
                    path: "/run/s/c-net1.json".into(),
                    reason: "EOF".into(),
                },
                6,
            ),
            (Error::InvalidConfig("c".into()), 7),
            (Error::Busy("b".into()), 11),
            (Error::PluginNotAvailable("p".into()), 50),
            (Error::DeviceNotFound("n".into()), 100),
            (Error::DeviceClaimed("c".into()), 101),
            (
                Error::Netlink {
                    context: "n".into(),
                    errno: Some(19),
                },
                102,
            ),
            (
                Error::Delegate {
                    code: 999,
                    msg: "m".into(),
                    details: String::new(),
                },
                103,
            ),
            (Error::DefaultRouteDevice("d".into()), 104),
            (Error::CheckFailed("c".into()), 105),
            (Error::KvpPoolUnavailable("k".into()), 110),
            (Error::KvpNoRecord("k".into()), 111),
            (Error::KvpMalformed("k".into()), 112),
            (Error::KvpNoEntry("k".into()), 113),
        ];
        for (err, code) in cases {
            assert_eq!(err.code() as u32, code, "{err:?}");
            assert_eq!(parsed(&err)["code"], code, "{err:?}");
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
    fn delegate_error_keeps_the_delegates_own_code_in_details() {
        let e = Error::Delegate {
            code: 999,
            msg: "host-device: failed to find host device: Link not found".into(),
            details: String::new(),
        };
        assert_eq!(parsed(&e)["details"], "delegate error code 999");
    }
}
