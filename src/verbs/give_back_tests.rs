//! Giving a NIC back, against the fake kernel: where it is found, in what order things are
//! done, and which names it sheds on the way.

use super::*;
use crate::host::kernel::fake::{FakeKernel, HOST};
use crate::host::netlink::LinkChange;
use crate::verbs::testing::{address, attachment, Sandbox};
use serde_json::json;

const POD: &str = "/pod";
const MAC: &str = "02:00:00:00:00:01";

/// A NIC `enp1s0` (192.0.2.10/24) as ADD captured it, the attachment's state saved, and
/// the NIC where `place` puts it.
struct Attached {
    sb: Sandbox,
    kernel: FakeKernel,
    index: i32,
    store: StateStore,
    state: AttachmentState,
}

fn attached(pod_ifname: &str, place: impl FnOnce(&FakeKernel, i32)) -> Attached {
    attached_with(pod_ifname, |_| {}, place)
}

/// [`attached`], with the state ADD saved changed by `edit` first.
fn attached_with(
    pod_ifname: &str,
    edit: impl FnOnce(&mut AttachmentState),
    place: impl FnOnce(&FakeKernel, i32),
) -> Attached {
    let sb = Sandbox::new();
    let kernel = FakeKernel::new(sb.path());
    kernel.add_netns(POD);
    let index = kernel.add_link(HOST, "enp1s0", MAC, &[address("192.0.2.10/24")], &[]);
    let link = kernel.link(HOST, "enp1s0").unwrap().link;
    let mut state = attachment(&link, &[address("192.0.2.10/24")], POD, pod_ifname);
    edit(&mut state);
    let store = StateStore::open(&sb.state_dir()).unwrap();
    store.save(&state).unwrap();
    place(&kernel, index);
    Attached {
        sb,
        kernel,
        index,
        store,
        state,
    }
}

impl Attached {
    fn give_back(&self) -> Result<()> {
        let ctx = self.sb.context(POD, json!({}));
        let delegate = Delegate::find_for_give_back("host-device", &ctx.env.path);
        give_back(
            &self.kernel,
            &ctx,
            delegate.as_ref(),
            &self.store,
            &self.state,
        )
    }

    fn assert_restored(&self) {
        let nic = self
            .kernel
            .link(HOST, "enp1s0")
            .expect("enp1s0 back on the host");
        assert_eq!(nic.link.index, self.index);
        assert!(nic.link.up, "enp1s0 is up again");
        assert_eq!(nic.addresses, [address("192.0.2.10/24")]);
        assert!(
            self.kernel.links_in(POD).is_empty(),
            "nothing left in the pod"
        );
        assert_eq!(self.store.attachments().unwrap(), vec![], "state removed");
    }
}

fn rename(kernel: &FakeKernel, index: i32, name: &str) {
    let change = LinkChange {
        name: Some(name.into()),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &change).unwrap();
}

#[test]
fn when_host_device_cannot_move_it_back_we_move_it_out_of_the_pod_ourselves() {
    let a = attached("enp1s0", |k, i| k.move_link(i, HOST, POD));
    a.sb.delegate("exit 0", r#"echo '{"code":999,"msg":"cannot"}'; exit 1"#);

    a.give_back().unwrap();

    let i = a.index;
    assert_eq!(
        a.kernel.journal(),
        [
            // One request in the pod, whatever the host looks like (here: it was
            // never given net1).
            format!("{POD}: altname enp1s0 -net1"),
            format!("{POD}: set #{i} down"),
            format!("{POD}: set #{i} netns=host"),
            format!("host: set #{i} up"),
            format!("host: add #{i} address 192.0.2.10/24"),
        ],
        "moved out while down, then restored on the host"
    );
    let calls: Vec<String> = a.sb.calls().into_iter().map(|(c, _)| c).collect();
    assert_eq!(calls, ["DEL"], "host-device was asked first");
    a.assert_restored();
}

/// The NIC in the pod as host-device and ADD left it: `enp1s0`, alias `enp1s0`,
/// answering to `net1`; host-device DEL moves it (through the fake kernel).
fn in_the_pod_answering_to_net1() -> Attached {
    in_the_pod_answering_to_net1_with(|_| {})
}

/// [`in_the_pod_answering_to_net1`], with the saved state changed by `edit`.
fn in_the_pod_answering_to_net1_with(edit: impl FnOnce(&mut AttachmentState)) -> Attached {
    let a = attached_with("enp1s0", edit, |k, i| {
        k.move_link(i, HOST, POD);
        let pod = k.in_netns_for_tests(POD);
        let alias = LinkChange {
            alias: Some("enp1s0".into()),
            ..LinkChange::default()
        };
        pod.set_link(i, &alias).unwrap();
        pod.add_altname("enp1s0", "net1").unwrap();
    });
    a.sb.delegate_that_moves();
    a.kernel.follow_host_device(&a.sb.moves_file());
    a
}

fn journal_from(a: &Attached, start: usize) -> Vec<String> {
    a.kernel.journal()[start..].to_vec()
}

#[test]
fn cni_ifname_goes_inside_the_pod_before_host_device_moves_the_nic_though_the_host_has_none() {
    let a = in_the_pod_answering_to_net1();
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let journal = journal_from(&a, start);
    assert_eq!(
        journal[..2],
        [
            format!("{POD}: altname enp1s0 -net1"),
            format!("host-device: DEL {POD} enp1s0 enp1s0"),
        ],
        "no look at the host first: {journal:#?}"
    );
    a.assert_restored();
    let nic = a.kernel.link(HOST, "enp1s0").unwrap();
    assert!(nic.link.altnames.is_empty() && nic.link.alias.is_none());
}

#[test]
fn a_nic_coming_home_with_net1_right_before_ours_does_not_stop_ours() {
    let a = in_the_pod_answering_to_net1();
    // Another pod's DEL brings its NIC home, answering to net1, at the very moment
    // host-device moves ours: no check made before could have seen it.
    a.kernel
        .arrives_before_next_move("enp2s0", "02:00:00:00:00:02", &["net1"]);

    a.give_back().unwrap();

    a.assert_restored();
    assert!(a
        .kernel
        .link(HOST, "enp1s0")
        .unwrap()
        .link
        .altnames
        .is_empty());
    let other = a
        .kernel
        .link(HOST, "enp2s0")
        .expect("the other NIC is home");
    assert_eq!(
        other.link.altnames,
        ["net1"],
        "its net1 is its DEL's to drop"
    );
}

#[test]
fn a_move_refused_for_a_name_the_host_has_sheds_it_in_the_pod_and_is_tried_once_more() {
    // db0 is one of the NIC's own names on the host, which the host gave another link
    // while the NIC was away: the kernel refuses host-device's move, and ours at first.
    let a = in_the_pod_answering_to_net1_with(|s| s.host.altnames = vec!["db0".into()]);
    a.kernel
        .in_netns_for_tests(POD)
        .add_altname("enp1s0", "db0")
        .unwrap();
    let other = a
        .kernel
        .add_link(HOST, "db0", "02:00:00:00:00:02", &[], &[]);
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let i = a.index;
    let journal = journal_from(&a, start);
    let from = journal
        .iter()
        .position(|l| l.starts_with("host-device: refused"))
        .unwrap_or_else(|| panic!("host-device was not refused: {journal:#?}"));
    assert_eq!(
        journal[from..from + 6],
        [
            "host-device: refused: db0 is taken on the host".to_owned(),
            format!("{POD}: set #{i} down"),
            format!("{POD}: set #{i} netns=host"),
            format!("{POD}: refused #{i}: db0 is taken on the host"),
            format!("{POD}: altname #{i} -db0"),
            format!("{POD}: set #{i} netns=host"),
        ]
    );
    a.assert_restored();
    assert!(a
        .kernel
        .link(HOST, "enp1s0")
        .unwrap()
        .link
        .altnames
        .is_empty());
    assert_eq!(a.kernel.link(HOST, "db0").unwrap().link.index, other);
}

#[test]
fn a_nic_back_under_its_pod_name_is_found_and_renamed_while_down() {
    // host-device gave it back, but under the pod-side name.
    let a = attached("net1", |k, i| rename(k, i, "net1"));
    a.sb.delegate("exit 0", "exit 0");
    let before = a.kernel.journal().len();

    a.give_back().unwrap();

    let i = a.index;
    assert_eq!(
        a.kernel.journal()[before..],
        [
            format!("host: set #{i} down"),
            format!("host: set #{i} name=enp1s0 up"),
            format!("host: add #{i} address 192.0.2.10/24"),
        ]
    );
    a.assert_restored();
}

#[test]
fn a_name_counts_only_with_the_captured_mac_and_the_host_name_is_tried_first() {
    let a = attached("net1", |k, i| rename(k, i, "net1"));
    // Somebody else's NIC now has our host name.
    a.kernel
        .add_link(HOST, "enp1s0", "02:00:00:00:00:99", &[], &[]);

    let found = find_on_host(&a.kernel, &a.state).unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.index), ("net1", a.index));

    let mut staged = a.state.clone();
    staged.staging_name = Some("ahd7".into());
    assert_eq!(candidate_names(&staged), ["enp1s0", "ahd7", "net1"]);
}

#[test]
fn a_nic_found_by_mac_alone_is_ours_whatever_its_name() {
    let a = attached("net1", |k, i| rename(k, i, "eth7"));
    let found = find_on_host(&a.kernel, &a.state).unwrap().unwrap();
    assert_eq!(found.index, a.index);
    let mut no_mac = a.state.clone();
    no_mac.host.mac = None;
    assert_eq!(find_on_host(&a.kernel, &no_mac).unwrap(), None);
}

#[test]
fn a_netns_the_kernel_no_longer_has_is_skipped_and_the_nic_restored_where_it_is() {
    let a = attached("enp1s0", |k, _| k.remove_netns(POD));
    a.sb.delegate("exit 0", "exit 0");

    a.give_back().unwrap();

    assert!(
        a.sb.calls().is_empty(),
        "no host-device DEL without a pod netns"
    );
    let nic = a.kernel.link(HOST, "enp1s0").unwrap();
    assert!(nic.link.up && nic.addresses == [address("192.0.2.10/24")]);
    assert_eq!(a.store.attachments().unwrap(), vec![]);
}

/// What a tenant with CAP_NET_ADMIN in its netns did to the NIC it was given: names it
/// added (a name the node creates later, another NIC's host name), one of its own it
/// removed, and another NIC's MAC.
fn changed_by_the_tenant() -> Attached {
    let a = in_the_pod_answering_to_net1_with(|s| {
        with_pci(s);
        s.host.altnames = vec!["enp0s1f0np0".into()];
    });
    listed_under(&a, PCI_OURS, "enp1s0");
    let pod = a.kernel.in_netns_for_tests(POD);
    pod.add_altname("enp1s0", "cni0").unwrap();
    pod.add_altname("enp1s0", "enp9s0").unwrap();
    let mac = LinkChange {
        mac: Some(crate::device_id::MacAddress::parse("02:00:00:00:00:99").unwrap()),
        ..LinkChange::default()
    };
    pod.set_link(a.index, &mac).unwrap();
    a
}

#[test]
fn names_the_pod_gave_the_nic_go_in_the_pod_in_one_more_request_before_it_moves() {
    let a = changed_by_the_tenant();
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let i = a.index;
    let journal = journal_from(&a, start);
    assert_eq!(
        journal[..3],
        [
            format!("{POD}: altname enp1s0 -net1"),
            format!("{POD}: altname #{i} -cni0 -enp9s0"),
            format!("host-device: DEL {POD} enp1s0 enp1s0"),
        ],
        "{journal:#?}"
    );
    a.assert_restored();
    let nic = a.kernel.link(HOST, "enp1s0").unwrap().link;
    assert_eq!(nic.altnames, ["enp0s1f0np0"], "exactly its own names again");
    assert!(journal.contains(&"host: altname enp1s0 +enp0s1f0np0".to_owned()));
}

#[test]
fn a_nic_answering_to_cni_ifname_only_costs_one_change_in_the_pod() {
    let a = in_the_pod_answering_to_net1();
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let in_pod: Vec<String> = journal_from(&a, start)
        .into_iter()
        .filter(|l| l.starts_with(POD))
        .collect();
    assert_eq!(in_pod, [format!("{POD}: altname enp1s0 -net1")]);
}

#[test]
fn the_mac_the_pod_gave_the_nic_is_replaced_by_the_captured_one_while_it_is_down() {
    let a = changed_by_the_tenant();
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let i = a.index;
    let nic = a.kernel.link(HOST, "enp1s0").unwrap().link;
    assert_eq!(nic.mac.unwrap().to_string(), MAC);
    let host: Vec<String> = journal_from(&a, start)
        .into_iter()
        .filter(|l| l.starts_with("host:"))
        .collect();
    let set_mac = host
        .iter()
        .position(|l| *l == format!("host: set #{i} mac={MAC}"))
        .unwrap_or_else(|| panic!("MAC not restored: {host:#?}"));
    let up = host
        .iter()
        .position(|l| l.starts_with(&format!("host: set #{i}")) && l.contains(" up"))
        .unwrap_or_else(|| panic!("never brought up: {host:#?}"));
    assert!(
        set_mac < up,
        "the MAC is set while the NIC is down: {host:#?}"
    );
}

#[test]
fn names_a_nic_brought_home_from_a_dead_pod_are_made_its_captured_ones_first() {
    let a = attached_with(
        "enp1s0",
        |s| s.host.altnames = vec!["enp0s1f0np0".into()],
        |k, _| {
            // The kernel handed it back from a dead pod, with what the tenant gave it.
            let host = k.in_netns_for_tests(HOST);
            host.add_altname("enp1s0", "net1").unwrap();
            host.add_altname("enp1s0", "cni0").unwrap();
            k.remove_netns(POD);
        },
    );
    let start = a.kernel.journal().len();

    a.give_back().unwrap();

    let i = a.index;
    let journal = journal_from(&a, start);
    assert_eq!(
        journal[0],
        format!("host: altname #{i} -net1 -cni0"),
        "{journal:#?}"
    );
    let nic = a.kernel.link(HOST, "enp1s0").unwrap().link;
    assert_eq!(nic.altnames, ["enp0s1f0np0"]);
}

const PCI_OURS: &str = "0000:5e:00.1";
const PCI_OTHER: &str = "0000:5e:00.2";

/// The host's sysfs lists `netdev` under PCI function `pci`.
fn listed_under(a: &Attached, pci: &str, netdev: &str) {
    let dir = a.sb.path().join("bus/pci/devices").join(pci).join("net");
    std::fs::create_dir_all(dir.join(netdev)).unwrap();
}

fn with_pci(s: &mut AttachmentState) {
    s.pci_address = Some(PciAddress::parse(PCI_OURS).unwrap());
}

#[test]
fn another_tenants_nic_with_our_mac_is_not_ours_when_it_sits_on_another_function() {
    // Our NIC is gone (hot-unplugged, say); another tenant's NIC came home with our MAC.
    let a = attached_with("net1", with_pci, |k, i| {
        k.move_link(i, HOST, POD);
        k.remove_netns(POD);
        k.add_link(HOST, "enp2s0", MAC, &[], &[]);
    });
    listed_under(&a, PCI_OTHER, "enp2s0");

    assert_eq!(find_on_host(&a.kernel, &a.state).unwrap(), None);

    // Found by MAC alone only where the host lists it under our function.
    listed_under(&a, PCI_OURS, "enp2s0");
    let found = find_on_host(&a.kernel, &a.state).unwrap().unwrap();
    assert_eq!(found.name, "enp2s0");
}

#[test]
fn a_netdev_sysfs_lists_under_our_function_counts_only_on_that_function() {
    // Ours is back as eth7 with a MAC the tenant gave it.
    let a = attached_with("net1", with_pci, |k, i| {
        rename(k, i, "eth7");
        k.set_parent_device(HOST, i, PCI_OURS);
        let mac = LinkChange {
            mac: Some(crate::device_id::MacAddress::parse("02:00:00:00:00:99").unwrap()),
            ..LinkChange::default()
        };
        k.host().unwrap().set_link(i, &mac).unwrap();
    });
    // A stale listing: the name sysfs gave is another function's link now.
    listed_under(&a, PCI_OURS, "enp3s0");
    let other = a.kernel.add_link(HOST, "enp3s0", MAC, &[], &[]);
    a.kernel.set_parent_device(HOST, other, PCI_OTHER);

    let found = find_on_host(&a.kernel, &a.state).unwrap();
    assert_eq!(
        found.map(|l| l.name),
        None,
        "eth7 is not listed under our function"
    );

    listed_under(&a, PCI_OURS, "eth7");
    let found = find_on_host(&a.kernel, &a.state).unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.index), ("eth7", a.index));
}

#[test]
fn without_a_mac_the_pods_interface_name_is_never_the_hosts_own_nic() {
    // A salvaged state without MAC; the pod's annotation chose eno1 as CNI_IFNAME, the
    // host's own NIC's name. Its netns is dead: the NIC is nowhere to be seen.
    let a = attached_with(
        "eno1",
        |s| {
            with_pci(s);
            s.ifname = "eno1".into();
            s.host.mac = None;
        },
        |k, i| {
            k.move_link(i, HOST, POD);
            k.remove_netns(POD);
            k.add_link(HOST, "eno1", "02:00:00:00:00:42", &[], &[]);
        },
    );
    listed_under(&a, PCI_OTHER, "eno1");

    assert_eq!(find_on_host(&a.kernel, &a.state).unwrap(), None);

    let mut no_pci = a.state.clone();
    no_pci.pci_address = None;
    assert_eq!(
        find_on_host(&a.kernel, &no_pci).unwrap(),
        None,
        "nor without a PCI address"
    );
}

fn nic_swapped_for_a_veth_in_the_pod() -> (Attached, i32) {
    let mut a = in_the_pod_answering_to_net1();
    let pci = "0000:5e:00.1";
    a.kernel
        .edit_link(POD, a.index, |l| l.parent_device = Some(pci.into()));
    a.state.host.identity = Some(crate::host::identity::LinkIdentity {
        parent_device: Some(pci.into()),
        ..Default::default()
    });
    a.store.save(&a.state).unwrap();
    let pod = a.kernel.in_netns_for_tests(POD);
    rename_in(&pod, a.index, "real0");
    let veth = a.kernel.add_link(POD, "enp1s0", MAC, &[], &[]);
    a.kernel.edit_link(POD, veth, |l| {
        l.kind = Some("veth".into());
        l.other_end_elsewhere = true;
        l.alias = Some("enp1s0".into());
    });
    (a, veth)
}

fn rename_in(links: &dyn Links, index: i32, name: &str) {
    let change = LinkChange {
        name: Some(name.into()),
        ..LinkChange::default()
    };
    links.set_link(index, &change).unwrap();
}

#[test]
fn a_veth_the_pod_made_in_the_nics_place_gets_nothing_and_the_nic_itself_is_given_back() {
    let (a, veth) = nic_swapped_for_a_veth_in_the_pod();

    a.give_back().unwrap();

    a.assert_restored();
    let impostor = a
        .kernel
        .links_in(HOST)
        .into_iter()
        .find(|l| l.link.index == veth)
        .expect("host-device brought the veth home");
    assert_eq!(impostor.link.name, format!("ahd{veth}"), "renamed aside");
    assert!(
        impostor.addresses.is_empty(),
        "none of the host's addresses"
    );
    assert!(!impostor.link.up);
    let journal = a.kernel.journal();
    assert!(
        !journal
            .iter()
            .any(|j| j.contains(&format!("add #{veth} address"))),
        "{journal:?}"
    );
}

#[test]
fn when_the_nic_itself_cannot_be_found_the_give_back_fails_and_keeps_the_state() {
    let (a, veth) = nic_swapped_for_a_veth_in_the_pod();
    // The tenant hid the NIC better: another MAC, and no net1.
    let pod = a.kernel.in_netns_for_tests(POD);
    pod.del_altname(a.index, "net1").unwrap();
    a.kernel.edit_link(POD, a.index, |l| {
        l.mac = Some(crate::device_id::MacAddress::parse("02:00:00:00:00:99").unwrap())
    });

    let err = a.give_back().unwrap_err();

    assert_eq!(err.code() as u32, 100, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("is not the NIC") && msg.contains("state is kept"),
        "{msg}"
    );
    assert_eq!(a.store.attachments().unwrap().len(), 1, "state kept");
    let impostor = a.kernel.links_in(HOST);
    assert_eq!(impostor.len(), 1, "only the veth came home: {impostor:?}");
    assert_eq!(impostor[0].link.index, veth);
    assert!(
        impostor[0].addresses.is_empty(),
        "none of the host's addresses"
    );
    assert!(
        a.kernel.link(POD, "real0").is_some(),
        "the NIC is left in the pod"
    );
}
