//! The code table and the words of every error variant.

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
        about_nic(
            Error::NewerState {
                path: "/var/lib/cni/amd-host-device/c1-net1.json".into(),
                found: 2,
                supported: 1,
                nic: Some(NIC.into()),
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
const KINDS: usize = 25;
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
        Error::NewerState { .. } => 24,
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
