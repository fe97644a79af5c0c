//! The plugin's typed errors, and the one place that maps each of them to a CNI error code.
//!
//! Concerns keep their own error types ([`DeviceError`] with the device identities,
//! [`ProtocolError`] with the protocol) and this module wraps them, so `code()` below is
//! the whole code table and its test covers every variant. [`KvpError`] is defined here,
//! not beside the KVP pool in `node`, because `node` imports this table, never the reverse.

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

    const EEXIST: i32 = nix::libc::EEXIST;
    const NIC: &str = "enp94s0f1";

    /// One error of every variant, nested ones included, as the plugin builds it.
    struct Case {
        error: Error,
        code: u32,
        /// The NIC its message must name, for an error about one.
        nic: Option<&'static str>,
    }

    fn case(error: Error, code: u32) -> Case {
        Case {
            error,
            code,
            nic: None,
        }
    }

    fn about_nic(error: Error, code: u32) -> Case {
        Case {
            error,
            code,
            nic: Some(NIC),
        }
    }

    /// A move the kernel refused, told the way the netlink layer and then DEL tell it.
    fn refused_move_back() -> Error {
        Error::netlink("changing interface #69", Some(EEXIST))
            .while_doing("moving net1 to another network namespace")
            .because("an interface with one of its names already exists there")
            .while_doing(format!("moving {NIC} (0000:5e:00.1) back to the host"))
            .because("an interface with the name net1 already exists there")
    }

    fn every_variant() -> Vec<Case> {
        let denied = || std::io::Error::from_raw_os_error(nix::libc::EACCES);
        vec![
            case(
                Error::IncompatibleVersion("cniVersion 9.9.9 is not supported".into()),
                1,
            ),
            case(
                Error::UnknownContainer("no attachment c1/net1 is known".into()),
                3,
            ),
            case(Error::invalid_env("CNI_IFNAME", "must be set"), 4),
            case(ProtocolError::Decode("stdin is not JSON".into()).into(), 6),
            case(
                ProtocolError::InvalidEnvironment {
                    var: "CNI_NETNS",
                    reason: "must be set".into(),
                }
                .into(),
                4,
            ),
            case(ProtocolError::ReadStdin(denied()).into(), 5),
            case(
                Error::io(
                    "writing /var/lib/cni/amd-host-device/c1-net1.json",
                    denied(),
                ),
                5,
            ),
            case(Error::Decode("prevResult is not JSON".into()), 6),
            case(
                Error::CorruptState {
                    path: "/s/c1-net1.json".into(),
                    reason: "EOF while parsing".into(),
                },
                6,
            ),
            case(Error::InvalidConfig("\"mtu\" must be a number".into()), 7),
            case(
                Error::NodePolicy("the node policy cannot be read".into()),
                7,
            ),
            case(
                Error::Busy("another operation holds attachment c1/net1".into()),
                11,
            ),
            case(
                Error::Incomplete(PartialFailure {
                    operation: "GC",
                    failures: vec![
                        failure("c1", Error::Busy("locked".into())),
                        failure("c2", refused_move_back()),
                    ],
                }),
                11,
            ),
            case(
                Error::PluginNotAvailable("delegate plugin host-device not found".into()),
                50,
            ),
            about_nic(
                DeviceError::NotFound(format!("{NIC} is not on the host")).into(),
                100,
            ),
            about_nic(
                DeviceError::Claimed(format!("{NIC} is claimed by container c1")).into(),
                101,
            ),
            about_nic(refused_move_back(), 102),
            about_nic(
                Error::netlink(format!("renaming {NIC} to net1"), Some(EEXIST)),
                102,
            ),
            about_nic(
                Error::netlink(format!("re-adding the captured routes of {NIC}"), None),
                102,
            ),
            about_nic(
                Error::Delegate {
                    code: Some(999),
                    msg: format!("host-device: failed to move {NIC}"),
                    details: String::new(),
                }
                .during(format!("moving {NIC} into the pod")),
                103,
            ),
            about_nic(
                Error::Delegate {
                    code: None,
                    msg: format!("host-device failed on {NIC} without a CNI error"),
                    details: "panic: runtime error".into(),
                },
                103,
            ),
            about_nic(
                DeviceError::CarriesDefaultRoute(format!("{NIC} carries the default route")).into(),
                104,
            ),
            about_nic(Error::CheckFailed(format!("{NIC} is down in the pod")), 105),
            about_nic(
                DeviceError::NotAllocated(format!("{NIC} is not allocated to this pod")).into(),
                106,
            ),
            about_nic(
                DeviceError::InUseByHost(format!("{NIC} is a port of br0")).into(),
                107,
            ),
            case(
                KvpError::PoolUnavailable("cannot read the KVP pool".into()).into(),
                110,
            ),
            case(
                KvpError::NoRecord("no IPoIB_Data record".into()).into(),
                111,
            ),
            case(
                KvpError::Malformed("NUMPAIRS is not a number".into()).into(),
                112,
            ),
            case(
                KvpError::NoEntry("no address for 02:00:00:00:00:01".into()).into(),
                113,
            ),
            case(KvpError::Busy("the KVP pool is locked".into()).into(), 11),
        ]
    }

    /// How many kinds of error there are, and which one `e` is: an exhaustive match, so a
    /// new variant does not compile until it has a number here, and
    /// `every_variant_is_covered` fails until `every_variant` has one of it.
    const KINDS: usize = 24;
    fn kind_of(e: &Error) -> usize {
        match e {
            Error::IncompatibleVersion(_) => 0,
            Error::UnknownContainer(_) => 1,
            Error::InvalidEnvironment { .. } => 2,
            Error::Decode(_) => 3,
            Error::CorruptState { .. } => 4,
            Error::InvalidConfig(_) => 5,
            Error::NodePolicy(_) => 6,
            Error::Io { .. } => 7,
            Error::Busy(_) => 8,
            Error::Incomplete(_) => 9,
            Error::PluginNotAvailable(_) => 10,
            Error::Device(d) => match d {
                DeviceError::NotFound(_) => 11,
                DeviceError::Claimed(_) => 12,
                DeviceError::CarriesDefaultRoute(_) => 13,
                DeviceError::NotAllocated(_) => 14,
                DeviceError::InUseByHost(_) => 15,
            },
            Error::Netlink { .. } => 16,
            Error::Delegate { .. } => 17,
            Error::CheckFailed(_) => 18,
            Error::Kvp(k) => match k {
                KvpError::PoolUnavailable(_) => 19,
                KvpError::NoRecord(_) => 20,
                KvpError::Malformed(_) => 21,
                KvpError::NoEntry(_) => 22,
                KvpError::Busy(_) => 23,
            },
        }
    }

    #[test]
    fn every_variant_is_covered() {
        let mut seen = [false; KINDS];
        for c in every_variant() {
            seen[kind_of(&c.error)] = true;
        }
        let missing: Vec<usize> = (0..KINDS).filter(|k| !seen[*k]).collect();
        assert!(missing.is_empty(), "every_variant lacks kinds {missing:?}");
    }

    #[test]
    fn every_variant_maps_to_its_cni_code() {
        for Case { error, code, .. } in every_variant() {
            assert_eq!(error.code() as u32, code, "{error}");
            assert_eq!(parsed(&error)["code"], code, "{error}");
        }
    }

    /// What Rust's Debug output, or an OS error's own text, leaves in a string. The errno
    /// belongs in `details`. (No IPv6 address in the cases above, so `::` is a Rust path.)
    const DEBUG_ARTIFACTS: &[&str] = &[
        "{",
        "}",
        "Some(",
        "None",
        "Ok(",
        "Err(",
        "LinkChange",
        "::",
        "\\\"",
        "os error",
    ];

    fn debug_artifacts(text: &str) -> Vec<&'static str> {
        DEBUG_ARTIFACTS
            .iter()
            .copied()
            .filter(|a| text.contains(a))
            .collect()
    }

    /// A word first: a letter, or a config key in quotes.
    fn starts_with_a_word(msg: &str) -> bool {
        let mut chars = msg.trim_start_matches('"').chars();
        chars.next().is_some_and(char::is_alphabetic)
    }

    #[test]
    fn every_message_is_words_about_its_nic_and_the_errno_is_in_the_details() {
        for Case { error, nic, .. } in every_variant() {
            let reply = parsed(&error);
            let msg = reply["msg"].as_str().unwrap();
            assert!(!msg.trim().is_empty(), "an empty message ({error:?})");
            assert!(starts_with_a_word(msg), "{msg}");
            assert_eq!(debug_artifacts(msg), Vec::<&str>::new(), "{msg}");
            let details = reply["details"].as_str().unwrap_or("");
            assert_eq!(debug_artifacts(details), Vec::<&str>::new(), "{details}");
            if let Some(nic) = nic {
                assert!(msg.contains(nic), "{msg} does not name {nic}");
            }
            if let Some(errno) = error.errno() {
                let number = format!("errno {errno} ");
                assert!(details.contains(&number), "{msg}: no {number} in {details}");
                assert!(!msg.contains(&errno.to_string()), "{msg}");
            }
        }
    }

    #[test]
    fn error_json_has_version_message_and_details() {
        let e = Error::invalid_env("CNI_IFNAME", "contains '/'");
        let v = parsed(&e);
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["msg"], "invalid CNI_IFNAME: contains '/'");
        assert!(v.get("details").is_none(), "empty details are omitted");

        let e = Error::netlink("looking up interface eth9", Some(19));
        let v = parsed(&e);
        assert_eq!(v["msg"], "looking up interface eth9: no such device");
        assert_eq!(v["details"], "errno 19 (ENODEV: No such device)");
    }

    #[test]
    fn a_caller_retells_a_failed_request_and_the_lower_account_goes_to_the_details() {
        let v = parsed(&refused_move_back());
        assert_eq!(
            v["msg"],
            "moving enp94s0f1 (0000:5e:00.1) back to the host: an interface with the name \
             net1 already exists there"
        );
        assert_eq!(
            v["details"],
            "moving net1 to another network namespace; changing interface #69; \
             errno 17 (EEXIST: File exists)"
        );
        let e = Error::io(
            "opening the pod's network namespace",
            std::io::Error::other("x"),
        )
        .during("moving enp1s0 back to the host");
        assert_eq!(
            e.to_string(),
            "moving enp1s0 back to the host: opening the pod's network namespace: x"
        );
        let busy = Error::Busy("locked".into()).while_doing("moving enp1s0");
        assert_eq!(
            busy.to_string(),
            "locked",
            "an error that says what it is stays"
        );
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
    fn a_partial_failure_lists_every_attachment_and_their_details() {
        let e = Error::Incomplete(PartialFailure {
            operation: "GC",
            failures: vec![
                failure("c1", Error::Busy("locked".into())),
                failure("c2", DeviceError::NotFound("gone".into()).into()),
                failure("c3", Error::netlink("renaming x to y", Some(EEXIST))),
            ],
        });
        assert_eq!(
            e.to_string(),
            "GC could not release 3 attachment(s): c1/net1: locked; c2/net1: gone; \
             c3/net1: renaming x to y: file exists"
        );
        assert_eq!(e.details(), "c3/net1: errno 17 (EEXIST: File exists)");
    }
}
