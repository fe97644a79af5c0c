//! Fixtures shared by the tests of every part of the store.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{AttachmentState, PodRef, StateStore, SCHEMA_VERSION};
use crate::device_id::{MacAddress, PciAddress};
use crate::host::device::Selector;
use crate::host::netlink::{Address, Route};
use crate::host::snapshot::HostInterface;

/// The state of attachment `cid`/`ifname` of device 0000:5e:00.1 (`enp94s0f1`), with an
/// address and a route.
pub(super) fn sample_state(cid: &str, ifname: &str) -> AttachmentState {
    AttachmentState {
        schema: SCHEMA_VERSION,
        container_id: cid.into(),
        ifname: ifname.into(),
        network: "amd-host-device-nad".into(),
        cni_version: "0.3.1".into(),
        netns: "/var/run/netns/p".into(),
        selector: Selector {
            pci: Some(PciAddress::parse("0000:5e:00.1").unwrap()),
            ..Selector::default()
        },
        pci_address: Some(PciAddress::parse("0000:5e:00.1").unwrap()),
        host: HostInterface {
            name: "enp94s0f1".into(),
            ifindex: 7,
            mac: Some(MacAddress::parse("02:00:00:00:00:01").unwrap()),
            mtu: 1400,
            up: true,
            alias: None,
            addresses: vec![Address {
                flags: 0x02,
                ..Address::global("2001:db8::10".parse().unwrap(), 64)
            }],
            routes: vec![Route {
                family: 4,
                dst: Some("10.9.0.0".parse().unwrap()),
                dst_len: 16,
                gateway: Some("192.0.2.1".parse().unwrap()),
                table: 254,
                protocol: 4,
                scope: 0,
                kind: 1,
                priority: Some(100),
                prefsrc: None,
                shared: false,
            }],
            master: None,
            carries_default_route: false,
            altnames: Vec::new(),
            altnames_complete: true,
            identity: None,
        },
        pod_ifname: "enp94s0f1".into(),
        staging_name: None,
        rdma_devices: Vec::new(),
        userspace_driver: None,
        adopted_vendor_entry: false,
        pod: PodRef::default(),
        created: "2026-11-23T00:00:00.000Z".into(),
    }
}

/// A store in a fresh temp dir, with the dir (which goes when dropped).
pub(super) fn empty_store() -> (tempfile::TempDir, StateStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = StateStore::open(tmp.path()).unwrap();
    (tmp, store)
}

/// A store in a fresh temp dir holding the saved state of attachment c1/net1.
pub(super) fn saved_c1_net1() -> (tempfile::TempDir, StateStore, AttachmentState) {
    let (tmp, store) = empty_store();
    let s = sample_state("c1", "net1");
    store.save(&s).unwrap();
    (tmp, store, s)
}

/// The names in a state dir other than `locks`, sorted.
pub(super) fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "locks")
        .collect();
    names.sort();
    names
}

/// The parked spares in a state dir, sorted.
pub(super) fn spares(dir: &Path) -> Vec<String> {
    let mut names = dir_names(dir);
    names.retain(|n| n.starts_with(".spare-"));
    names
}

/// The permission bits of `p`.
pub(super) fn mode(p: &Path) -> u32 {
    p.metadata().unwrap().permissions().mode() & 0o777
}
