//! Recovery without state against an in-memory kernel: what is proof enough to touch a
//! link, and what comes back.

use super::*;
use crate::host::kernel::fake::{FakeKernel, HOST};
use crate::host::netlink::{LinkChange, Links};
use crate::node::state::VENDOR_MAPPINGS_FILE;
use crate::verbs::testing::{address, Sandbox};
use serde_json::json;

const POD: &str = "/pod";
const MAC: &str = "02:00:00:00:00:01";

/// A NIC host-device moved into the pod as `pod_name` (its alias the host name
/// `enp1s0`, the captured address on it), and no state of ours.
fn nic_in_pod(pod_name: &str, alias: Option<&str>) -> (Sandbox, FakeKernel, i32) {
    let sb = Sandbox::new();
    sb.delegate("exit 0", "exit 0");
    let kernel = FakeKernel::new(sb.path());
    kernel.add_netns(POD);
    let index = kernel.add_link(POD, pod_name, MAC, &[address("192.0.2.10/24")], &[]);
    let mark = LinkChange {
        alias: alias.map(str::to_owned),
        ..LinkChange::default()
    };
    kernel
        .in_netns_for_tests(POD)
        .set_link(index, &mark)
        .unwrap();
    (sb, kernel, index)
}

fn del(sb: &Sandbox, kernel: &FakeKernel, conf: serde_json::Value) {
    let ctx = sb.context(POD, conf);
    let store = StateStore::open(&sb.state_dir()).unwrap();
    recover_without_state(&ctx, kernel, &store).unwrap();
}

fn assert_back_on_the_host(kernel: &FakeKernel, index: i32) {
    let nic = kernel
        .link(HOST, "enp1s0")
        .expect("enp1s0 back on the host");
    assert_eq!(nic.link.index, index);
    assert!(nic.link.up);
    assert_eq!(nic.addresses, [address("192.0.2.10/24")]);
    assert_eq!(
        nic.link.alias, None,
        "host-device's alias is not left behind"
    );
    assert!(kernel.links_in(POD).is_empty());
}

#[test]
fn a_nic_under_its_host_name_comes_back_with_what_it_carried() {
    let (sb, kernel, index) = nic_in_pod("enp1s0", Some("enp1s0"));
    del(&sb, &kernel, json!({"device": "enp1s0"}));
    assert_back_on_the_host(&kernel, index);
    assert!(
        sb.calls().is_empty(),
        "moved out by its index, not by a name"
    );
    let in_pod: Vec<String> = kernel
        .journal()
        .into_iter()
        .filter(|l| l.starts_with(POD))
        .collect();
    let moved = [
        format!("{POD}: set #{index} down"),
        format!("{POD}: set #{index} netns=host"),
    ];
    assert!(
        in_pod.windows(2).any(|w| w == moved),
        "moved out down, by its index: {in_pod:?}"
    );
}

#[test]
fn a_nic_under_cni_ifname_is_known_by_host_devices_alias() {
    let (sb, kernel, index) = nic_in_pod("net1", Some("enp1s0"));
    del(&sb, &kernel, json!({"device": "enp1s0"}));
    assert_back_on_the_host(&kernel, index);
}

#[test]
fn a_nic_under_cni_ifname_leaves_that_name_in_the_pod_while_the_host_has_a_net1() {
    let (sb, kernel, index) = nic_in_pod("net1", Some("enp1s0"));
    // Another NIC the kernel handed back from a dead pod is still called net1 on the host:
    // a link called net1 could not come in.
    kernel.add_link(HOST, "net1", "02:00:00:00:00:02", &[], &[]);

    del(&sb, &kernel, json!({"device": "enp1s0"}));

    assert_back_on_the_host(&kernel, index);
    let pod_side: Vec<String> = kernel
        .journal()
        .into_iter()
        .filter(|l| l.starts_with(POD))
        .collect();
    assert_eq!(
        pod_side[pod_side.len() - 3..],
        [
            format!("{POD}: set #{index} down"),
            format!("{POD}: set #{index} name=enp1s0"),
            format!("{POD}: set #{index} netns=host"),
        ],
        "renamed in the pod, then moved"
    );
    assert!(
        kernel.link(HOST, "net1").is_some(),
        "the other NIC is untouched"
    );
}

#[test]
fn a_nic_answering_to_cni_ifname_leaves_it_in_the_pod_before_the_move() {
    let (sb, kernel, index) = nic_in_pod("enp1s0", Some("enp1s0"));
    kernel
        .in_netns_for_tests(POD)
        .add_altname("enp1s0", "net1")
        .unwrap();
    let other = kernel.add_link(HOST, "enp2s0", "02:00:00:00:00:02", &[], &[]);
    kernel
        .in_netns_for_tests(HOST)
        .add_altname("enp2s0", "net1")
        .unwrap();

    del(&sb, &kernel, json!({"device": "enp1s0"}));

    assert_back_on_the_host(&kernel, index);
    assert!(kernel
        .link(HOST, "enp1s0")
        .unwrap()
        .link
        .altnames
        .is_empty());
    assert_eq!(kernel.link(HOST, "enp2s0").unwrap().link.index, other);
    assert!(kernel
        .journal()
        .contains(&format!("{POD}: altname #{index} -net1")));
}

#[test]
fn a_link_that_is_not_provably_the_nic_is_never_touched() {
    // CNI_IFNAME alone proves nothing: another plugin may have made this net1.
    let (sb, kernel, _) = nic_in_pod("net1", None);
    del(&sb, &kernel, json!({"device": "enp1s0"}));
    assert_eq!(kernel.links_in(POD).len(), 1);
    assert!(
        kernel.journal().len() == 1 && sb.calls().is_empty(),
        "{:?}",
        kernel.journal()
    );
    // Two links that both match: neither is touched.
    let (sb, kernel, _) = nic_in_pod("net1", Some("enp1s0"));
    let decoy = kernel.add_link(POD, "net2", "02:00:00:00:00:99", &[], &[]);
    let alias = LinkChange {
        alias: Some("enp1s0".into()),
        ..LinkChange::default()
    };
    kernel
        .in_netns_for_tests(POD)
        .set_link(decoy, &alias)
        .unwrap();
    del(&sb, &kernel, json!({"device": "enp1s0"}));
    assert_eq!(kernel.links_in(POD).len(), 2);
}

#[test]
fn the_vendors_attachment_comes_back_from_its_entry_and_only_that_entry_goes() {
    let (sb, kernel, index) = nic_in_pod("net1", Some("enp1s0"));
    let state_dir = sb.state_dir();
    std::fs::create_dir_all(&state_dir).unwrap();
    let vendor = json!({
        "0000:5e:00.1": {"hostInterfaceName": "enp1s0", "hostInterfaceIPs": ["192.0.2.10/24"], "state": "UP"},
        "0000:5e:00.2": {"hostInterfaceName": "enp1s1", "hostInterfaceIPs": null, "state": "DOWN"}
    });
    std::fs::write(state_dir.join(VENDOR_MAPPINGS_FILE), vendor.to_string()).unwrap();

    del(&sb, &kernel, json!({"deviceID": "0000:5e:00.1"}));

    assert_back_on_the_host(&kernel, index);
    let left: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join(VENDOR_MAPPINGS_FILE)).unwrap())
            .unwrap();
    assert_eq!(left, json!({"0000:5e:00.2": vendor["0000:5e:00.2"]}));
}

#[test]
fn a_nic_another_attachment_of_ours_owns_is_left_to_it() {
    let (sb, kernel, _) = nic_in_pod("enp1s0", Some("enp1s0"));
    let link = kernel.link(POD, "enp1s0").unwrap().link;
    let mut owner = crate::verbs::testing::attachment(&link, &[], POD, "enp1s0");
    owner.container_id = "c9".into();
    StateStore::open(&sb.state_dir())
        .unwrap()
        .save(&owner)
        .unwrap();
    del(&sb, &kernel, json!({"device": "enp1s0"}));
    assert_eq!(kernel.links_in(POD).len(), 1);
    assert!(sb.calls().is_empty());
}

#[test]
fn vendor_addresses_are_its_cidrs() {
    let entry = VendorEntry {
        host_interface_name: "e".into(),
        host_interface_ips: Some(vec![
            "198.51.100.7/24".into(),
            "2001:db8::7/64".into(),
            "junk".into(),
        ]),
        state: "UP".into(),
    };
    assert_eq!(
        vendor_addresses(&entry),
        [address("198.51.100.7/24"), address("2001:db8::7/64")]
    );
}

#[test]
fn a_nad_naming_the_pods_own_interface_moves_nothing() {
    // The pod's primary interface, named like the NAD's "device": a name proves nothing.
    let (sb, kernel, _) = nic_in_pod("eth0", None);
    del(&sb, &kernel, json!({"device": "eth0"}));
    assert_eq!(kernel.links_in(POD).len(), 1);
    assert!(kernel.links_in(HOST).is_empty(), "nothing came to the host");
}

#[test]
fn a_nic_that_is_on_the_host_is_never_reconfigured_from_a_pod() {
    // The NAD names the node's uplink by PCI address; the pod has a link claiming its name.
    let (sb, kernel, _) = nic_in_pod("eth0", Some("uplink0"));
    let uplink = kernel.add_link(
        HOST,
        "uplink0",
        "02:00:00:00:00:aa",
        &[address("198.51.100.2/24")],
        &[],
    );
    std::fs::create_dir_all(sb.path().join("bus/pci/devices/0000:5e:00.1/net/uplink0")).unwrap();
    let before = kernel.journal().len();

    del(&sb, &kernel, json!({"deviceID": "0000:5e:00.1"}));

    assert_eq!(
        kernel.journal().len(),
        before,
        "nothing changed: {:?}",
        kernel.journal()
    );
    let nic = kernel.link(HOST, "uplink0").unwrap();
    assert_eq!(nic.link.index, uplink);
    assert_eq!(nic.addresses, [address("198.51.100.2/24")]);
}

#[test]
fn a_vendor_nic_the_host_took_back_into_use_is_left_alone() {
    let sb = Sandbox::new();
    let kernel = FakeKernel::new(sb.path());
    // Not in any pod: on the host, up, with an address of the host's own.
    kernel.add_link(HOST, "enp1s0", MAC, &[address("203.0.113.9/24")], &[]);
    std::fs::create_dir_all(sb.path().join("bus/pci/devices/0000:5e:00.1/net/enp1s0")).unwrap();
    let state_dir = sb.state_dir();
    std::fs::create_dir_all(&state_dir).unwrap();
    let vendor = json!({"0000:5e:00.1": {"hostInterfaceName": "enp1s0",
        "hostInterfaceIPs": ["192.0.2.10/24"], "state": "UP"}});
    let file = state_dir.join(VENDOR_MAPPINGS_FILE);
    std::fs::write(&file, vendor.to_string()).unwrap();

    let ctx = sb.context("", json!({"deviceID": "0000:5e:00.1"}));
    let store = StateStore::open(&state_dir).unwrap();
    recover_without_state(&ctx, &kernel, &store).unwrap();

    assert!(kernel.journal().is_empty(), "{:?}", kernel.journal());
    assert_eq!(
        kernel.link(HOST, "enp1s0").unwrap().addresses,
        [address("203.0.113.9/24")]
    );
    assert!(file.exists(), "the entry stays");
}

#[test]
fn a_del_finishes_the_repair_of_a_gone_owners_claim_its_add_died_in() {
    // An earlier pod's attachment whose netns is gone; the kernel handed the NIC back as
    // net1, down, flushed. This attachment's ADD died repairing that claim.
    let sb = Sandbox::new();
    let kernel = FakeKernel::new(sb.path());
    kernel.add_netns(POD);
    let index = kernel.add_link(HOST, "enp1s0", MAC, &[address("192.0.2.10/24")], &[]);
    let link = kernel.link(HOST, "enp1s0").unwrap().link;
    let earlier =
        crate::verbs::testing::attachment(&link, &[address("192.0.2.10/24")], "/gone", "enp1s0");
    let store = StateStore::open(&sb.state_dir()).unwrap();
    store.save(&earlier).unwrap();
    kernel.move_link(index, HOST, POD);
    kernel.move_link(index, POD, HOST);
    let rename = LinkChange {
        name: Some("net1".into()),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &rename).unwrap();
    let mut ctx = sb.context(POD, json!({"device": "enp1s0"}));
    ctx.env.container_id = "c2".into();

    recover_without_state(&ctx, &kernel, &store).unwrap();

    let nic = kernel
        .link(HOST, "enp1s0")
        .expect("enp1s0 back under its name");
    assert_eq!(nic.link.index, index);
    assert!(nic.link.up);
    assert_eq!(nic.addresses, [address("192.0.2.10/24")]);
    assert_eq!(
        store.attachments().unwrap(),
        vec![],
        "the gone owner's state went"
    );
    assert_eq!(store.claim_of(&name_key("enp1s0")).unwrap(), None);
}

#[test]
fn the_vendors_entry_goes_with_the_state_of_ours_that_adopted_it() {
    // What a DEL that died right after writing the state it built from the vendor's entry
    // left: that state, the entry (beside another one), the NIC still in the pod.
    let (sb, kernel, index) = nic_in_pod("net1", Some("enp1s0"));
    let state_dir = sb.state_dir();
    std::fs::create_dir_all(&state_dir).unwrap();
    let vendor = json!({
        "0000:5e:00.1": {"hostInterfaceName": "enp1s0", "hostInterfaceIPs": ["192.0.2.10/24"], "state": "UP"},
        "0000:5e:00.2": {"hostInterfaceName": "enp1s1", "hostInterfaceIPs": null, "state": "DOWN"}
    });
    let file = state_dir.join(VENDOR_MAPPINGS_FILE);
    std::fs::write(&file, vendor.to_string()).unwrap();
    let link = kernel.link(POD, "net1").unwrap().link;
    let mut adopted =
        crate::verbs::testing::attachment(&link, &[address("192.0.2.10/24")], POD, "net1");
    adopted.host.name = "enp1s0".into();
    adopted.pci_address = Some(PciAddress::parse("0000:5e:00.1").unwrap());
    adopted.adopted_vendor_entry = true;
    let store = StateStore::open(&state_dir).unwrap();
    store.save(&adopted).unwrap();
    let ctx = sb.context(POD, json!({"deviceID": "0000:5e:00.1"}));

    give_back(&kernel, &ctx, None, &store, &adopted).unwrap();

    assert_back_on_the_host(&kernel, index);
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(left, json!({"0000:5e:00.2": vendor["0000:5e:00.2"]}));
    assert_eq!(store.attachments().unwrap(), vec![]);
}

#[test]
fn the_name_comes_from_the_selection_not_from_an_alias_the_pod_can_set() {
    // The pod set the alias to a name of the host's own.
    let (sb, kernel, index) = nic_in_pod("net1", Some("eth0"));
    del(&sb, &kernel, json!({"device": "enp1s0", "hwaddr": MAC}));
    assert_back_on_the_host(&kernel, index);
    assert!(kernel.link(HOST, "eth0").is_none());
}

#[test]
fn a_link_on_another_pci_function_is_not_proven_by_its_mac() {
    let (sb, kernel, index) = nic_in_pod("net1", None);
    kernel.edit_link(POD, index, |l| {
        l.parent_device = Some("0000:5e:00.2".into())
    });
    del(
        &sb,
        &kernel,
        json!({"deviceID": "0000:5e:00.1", "hwaddr": MAC}),
    );
    assert!(kernel.link(POD, "net1").is_some(), "left in the pod");
    assert!(kernel.links_in(HOST).is_empty());
}
