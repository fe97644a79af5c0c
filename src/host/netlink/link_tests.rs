//! Link requests: their words when they fail, and what the running kernel does with them
//! (root only; skipped without).

use super::*;
use neli::FromBytesWithInput;
use std::io::Cursor;

/// An RTM_NEWLINK payload as the kernel sends it for a bond slave on a PCI function:
/// ifinfomsg, then IFLA_IFNAME "eth1", IFLA_MTU 9000, IFLA_MASTER 7 and
/// IFLA_PARENT_DEV_NAME "0000:5e:00.1".
const BOND_SLAVE: &[u8] = &[
    0, 0, 1, 0, 3, 0, 0, 0, 0x03, 0x18, 0x01, 0x00, 0, 0, 0,
    0, // family, type, index 3, flags UP|...
    9, 0, 3, 0, b'e', b't', b'h', b'1', 0, 0, 0, 0, // IFLA_IFNAME
    8, 0, 4, 0, 0x28, 0x23, 0, 0, // IFLA_MTU 9000
    8, 0, 10, 0, 7, 0, 0, 0, // IFLA_MASTER 7
    17, 0, 56, 0, b'0', b'0', b'0', b'0', b':', b'5', b'e', b':', b'0', b'0', b'.', b'1', 0, 0, 0,
    0, // IFLA_PARENT_DEV_NAME
];

#[test]
fn reads_master_and_parent_device_from_the_kernels_reply() {
    let msg =
        Ifinfomsg::from_bytes_with_input(&mut Cursor::new(BOND_SLAVE), BOND_SLAVE.len()).unwrap();
    let link = parse_link(&msg).unwrap();
    assert_eq!(
        (link.index, link.name.as_str(), link.mtu),
        (3, "eth1", 9000)
    );
    assert!(link.up);
    assert_eq!(link.master, Some(7));
    assert_eq!(link.parent_device.as_deref(), Some("0000:5e:00.1"));
}

/// Against the running kernel, in a network namespace of the test's own with a veth
/// pair (root only; skipped otherwise).
#[test]
fn alternative_names_are_added_found_and_removed_on_this_kernel() {
    use crate::host::kernel::{Kernel, LiveKernel};
    let Some(scratch) = crate::host::testing::ScratchNetns::new("alt") else {
        return;
    };
    assert!(scratch.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b0"]));
    let kernel = LiveKernel::new();
    let pod = kernel.links_in(&scratch.path()).unwrap();
    pod.add_altname("a0", "net9").unwrap();
    let a0 = pod
        .link_by_name("net9")
        .unwrap()
        .expect("found by its alternative name");
    assert_eq!(
        (a0.name.as_str(), a0.altnames.as_slice()),
        ("a0", &["net9".to_owned()][..])
    );
    let taken = pod.add_altname("b0", "net9").unwrap_err();
    assert!(
        matches!(
            taken,
            crate::error::Error::Netlink {
                errno: Some(17),
                ..
            }
        ),
        "{taken}"
    );
    pod.del_altname(a0.index, "net9").unwrap();
    assert_eq!(pod.link_by_name("net9").unwrap(), None);
    assert!(pod.link_by_name("a0").unwrap().unwrap().altnames.is_empty());
}

fn described(change: LinkChange) -> String {
    change.describe("net1", &|i| format!("link{i}"))
}

#[test]
fn a_change_is_told_in_words_naming_the_link_once() {
    assert_eq!(
        described(LinkChange {
            name: Some("enp1s0".into()),
            mtu: Some(9000),
            alias: Some(String::new()),
            up: Some(true),
            ..LinkChange::default()
        }),
        "renaming net1 to enp1s0, setting its MTU to 9000, clearing its alias and \
         bringing it up"
    );
    assert_eq!(
        described(LinkChange {
            mtu: Some(1400),
            ..LinkChange::default()
        }),
        "setting the MTU of net1 to 1400"
    );
    assert_eq!(
        described(LinkChange {
            netns_fd: Some(6),
            ..LinkChange::default()
        }),
        "moving net1 to another network namespace"
    );
    assert_eq!(
        described(LinkChange {
            master: Some(3),
            up: Some(false),
            ..LinkChange::default()
        }),
        "making net1 a port of link3 and taking it down"
    );
    assert_eq!(
        described(LinkChange {
            alias: Some("uplink".into()),
            master: Some(0),
            ..LinkChange::default()
        }),
        "setting the alias of net1 to uplink and releasing it from its master"
    );
    assert_eq!(described(LinkChange::default()), "changing net1");
}

/// Against the running kernel, in two network namespaces of the test's own (root only):
/// what the kernel refuses is told in words, its errno and the request in the details.
#[test]
fn refused_changes_are_told_in_words_on_this_kernel() {
    use crate::host::kernel::{Kernel, LiveKernel};
    use std::os::fd::AsRawFd;
    let (Some(a), Some(b)) = (
        crate::host::testing::ScratchNetns::new("msg-a"),
        crate::host::testing::ScratchNetns::new("msg-b"),
    ) else {
        return;
    };
    assert!(a.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "a1"]));
    assert!(b.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b1"]));
    let kernel = LiveKernel::new();
    let pod = kernel.links_in(&a.path()).unwrap();
    let a0 = pod.link_by_name("a0").unwrap().unwrap();

    let rename = LinkChange {
        name: Some("a1".into()),
        ..LinkChange::default()
    };
    let e = pod.set_link(a0.index, &rename).unwrap_err();
    assert_eq!(
        e.to_string(),
        "renaming a0 to a1: an interface named a1 already exists"
    );
    let details = e.details();
    assert!(details.contains("RTM_SETLINK"), "{details}");
    assert!(details.contains("errno 17 (EEXIST"), "{details}");

    let other_ns = std::fs::File::open(b.path()).unwrap();
    let e = pod
        .move_down_to(a0.index, other_ns.as_raw_fd() as u32)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "moving a0 to another network namespace: an interface with one of its names \
         already exists there"
    );
    assert!(e.details().contains("errno 17 (EEXIST"), "{}", e.details());

    let too_big = LinkChange {
        mtu: Some(70_000),
        ..LinkChange::default()
    };
    let e = pod.set_link(a0.index, &too_big).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("setting the MTU of a0 to 70000: "), "{msg}");
    assert!(!msg.contains("os error") && !msg.contains("errno"), "{msg}");
    assert!(e.details().contains("errno 22 (EINVAL"), "{}", e.details());
}

/// Against the running kernel (root only): a removal and a read sent in one datagram
/// each get their own answer, the read seeing the removal done; several names go in
/// one request.
#[test]
fn a_removal_and_a_read_in_one_round_trip_and_several_names_in_one_request() {
    use crate::host::kernel::{Kernel, LiveKernel};
    let Some(scratch) = crate::host::testing::ScratchNetns::new("altbatch") else {
        return;
    };
    assert!(scratch.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b0"]));
    let kernel = LiveKernel::new();
    let pod = kernel.links_in(&scratch.path()).unwrap();
    for alt in ["net9", "cni9", "x9"] {
        pod.add_altname("a0", alt).unwrap();
    }

    let (removed, read) = pod.del_altname_of_then_read("a0", "net9");
    removed.unwrap();
    let a0 = read.unwrap().expect("a0 read back");
    assert_eq!(a0.altnames, ["cni9", "x9"]);

    let (removed, read) = pod.del_altname_of_then_read("a0", "net9");
    assert_eq!(removed.unwrap_err().errno(), Some(nix::libc::ENOENT));
    assert_eq!(
        read.unwrap().unwrap().index,
        a0.index,
        "read despite the refusal"
    );
    let (removed, read) = pod.del_altname_of_then_read("c0", "net9");
    assert_eq!(removed.unwrap_err().errno(), Some(nix::libc::ENODEV));
    assert_eq!(read.unwrap(), None);

    pod.del_altnames(a0.index, &["cni9".into(), "x9".into()])
        .unwrap();
    assert!(pod.link_by_name("a0").unwrap().unwrap().altnames.is_empty());
    // The socket is left with no stale reply: the next request reads its own answer.
    assert_eq!(pod.link_by_name("b0").unwrap().unwrap().name, "b0");
}

/// Against the running kernel (root only): an alternative name is taken off the link
/// a name finds, in one request, and only off that link.
#[test]
fn an_alternative_name_is_removed_by_the_links_name_and_only_from_it() {
    use crate::host::kernel::{Kernel, LiveKernel};
    let Some(scratch) = crate::host::testing::ScratchNetns::new("altdel") else {
        return;
    };
    assert!(scratch.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "b0"]));
    let kernel = LiveKernel::new();
    let pod = kernel.links_in(&scratch.path()).unwrap();
    pod.add_altname("a0", "net9").unwrap();
    let errno = |r: Result<()>| r.unwrap_err().errno();
    assert_eq!(
        errno(pod.del_altname_of("b0", "net9")),
        Some(nix::libc::EINVAL),
        "another link's name stays where it is"
    );
    assert_eq!(
        errno(pod.del_altname_of("a0", "net8")),
        Some(nix::libc::ENOENT)
    );
    assert_eq!(
        errno(pod.del_altname_of("c0", "net9")),
        Some(nix::libc::ENODEV)
    );
    assert!(pod.link_by_name("net9").unwrap().is_some());
    pod.del_altname_of("a0", "net9").unwrap();
    assert_eq!(pod.link_by_name("net9").unwrap(), None);
}

const VETH_PEER_ELSEWHERE: &[u8] = &[
    0, 0, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // family, type, index 4, flags
    9, 0, 3, 0, b'e', b't', b'h', b'1', 0, 0, 0, 0, // IFLA_IFNAME
    16, 0, 18, 0, 9, 0, 1, 0, b'v', b'e', b't', b'h', 0, 0, 0, 0, // IFLA_LINKINFO
    8, 0, 37, 0, 0, 0, 0, 0, // IFLA_LINK_NETNSID 0
];

#[test]
fn reads_the_kind_and_whether_the_other_end_is_elsewhere() {
    let parse = |bytes: &[u8]| {
        let msg = Ifinfomsg::from_bytes_with_input(&mut Cursor::new(bytes), bytes.len()).unwrap();
        parse_link(&msg).unwrap()
    };
    let veth = parse(VETH_PEER_ELSEWHERE);
    assert_eq!(veth.kind.as_deref(), Some("veth"));
    assert!(veth.other_end_elsewhere);
    let nic = parse(BOND_SLAVE);
    assert_eq!(nic.kind, None, "a PCI function's netdev has no kind");
    assert!(!nic.other_end_elsewhere);
}
