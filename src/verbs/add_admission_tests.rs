//! ADD refusing what it must not take, against the fake kernel: a claimed NIC, the host's
//! own (its uplink, a bridge port, a VLAN's parent), one kubelet gave to another pod, the
//! host's own namespace; and a claim whose pod is gone, given back first.

use super::*;

#[test]
fn a_claimed_device_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap();
    let mut second = sb.context(POD, json!({"device": "enp1s0"}));
    second.env.container_id = "c2".into();

    let err = add(&second, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 101, "{err}");
    assert!(err.to_string().contains("claimed by container c1"), "{err}");
    assert_eq!(
        commands(&sb),
        ["ADD"],
        "host-device never ran for the second pod"
    );
}

#[test]
fn the_hosts_default_route_device_stays_unless_allowed() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[route("0.0.0.0/0", "192.0.2.1")]);

    let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 104, "{err}");
    assert!(sb.calls().is_empty());
    assert_nothing_left(&sb);
    assert!(kernel.journal().is_empty());
}

#[test]
fn a_nic_kubelet_gave_to_another_pod_is_refused_before_anything_is_created() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    std::fs::write(
        sb.kubelet_checkpoint(),
        json!({"Data": {
            "PodDeviceEntries": [{"PodUID": "uid-a", "ContainerName": "c",
                "ResourceName": "amd.com/nic", "DeviceIDs": {"0": ["0000:5e:00.1"]}}],
            "RegisteredDevices": {"amd.com/nic": ["0000:5e:00.1"]}}})
        .to_string(),
    )
    .unwrap();
    let mut ctx = sb.context(POD, json!({"deviceID": "0000:5e:00.1"}));
    ctx.env.args = "K8S_POD_UID=uid-b".into();

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 106, "{err}");
    assert!(
        !sb.state_dir().exists(),
        "not even the state dir was created"
    );
    assert!(sb.calls().is_empty() && kernel.journal().is_empty());
    // A name selector cannot be tied to an allocation either.
    let by_name = sb.context(POD, json!({"device": "enp1s0"}));
    assert_eq!(add(&by_name, &kernel).unwrap_err().code() as u32, 106);
}

#[test]
fn a_bridge_port_stays_unless_the_node_allows_it_and_then_comes_back_a_port() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, index) = world(&sb, &[]);
    let bridge = kernel.add_link(HOST, "br0", "02:00:00:00:00:b0", &[], &[]);
    let enslave = LinkChange {
        master: Some(bridge),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &enslave).unwrap();
    let sysfs_nic = sb.path().join("class/net/enp1s0");
    std::fs::create_dir_all(&sysfs_nic).unwrap();
    std::os::unix::fs::symlink("../br0", sysfs_nic.join("upper_br0")).unwrap();
    let before = kernel.journal().len();

    let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();
    assert_eq!(err.code() as u32, 107, "{err}");
    assert!(err.to_string().contains("enp1s0 is a port of br0"), "{err}");
    assert!(sb.calls().is_empty() && kernel.journal().len() == before);

    let mut allowed = sb.context(POD, json!({"device": "enp1s0"}));
    allowed.conf.allow_enslaved_device = true;
    add(&allowed, &kernel).unwrap();
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    assert_eq!(saved.host.master.as_deref(), Some("br0"));

    // The NIC comes back released (as a move out of the host leaves it): DEL enslaves it.
    let release = LinkChange {
        master: Some(0),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &release).unwrap();
    let delegate = Delegate::find_for_give_back("host-device", &allowed.env.path);
    give_back(&kernel, &allowed, delegate.as_ref(), &store(&sb), &saved).unwrap();
    assert_eq!(
        kernel.link(HOST, "enp1s0").unwrap().link.master,
        Some(bridge)
    );
    let journal = kernel.journal();
    let enslaved = journal
        .iter()
        .position(|l| l.ends_with(&format!("master=#{bridge}")));
    let up = journal
        .iter()
        .rposition(|l| l.ends_with(&format!("set #{index} up")));
    assert!(
        enslaved < up && enslaved.is_some(),
        "enslaved before it goes up: {journal:?}"
    );
}

#[test]
fn vlan_children_keep_their_nic_on_the_host() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    let sysfs_nic = sb.path().join("class/net/enp1s0");
    std::fs::create_dir_all(&sysfs_nic).unwrap();
    std::os::unix::fs::symlink("../enp1s0.100", sysfs_nic.join("upper_enp1s0.100")).unwrap();

    let err = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 107, "{err}");
    assert!(err.to_string().contains("carries enp1s0.100"), "{err}");
}

/// The state an earlier pod's ADD left for the NIC, the pod since gone or not.
fn earlier_attachment(sb: &Sandbox, kernel: &FakeKernel, netns: &str) -> AttachmentState {
    let link = kernel.link(HOST, "enp1s0").unwrap().link;
    let earlier =
        crate::verbs::testing::attachment(&link, &[address("192.0.2.10/24")], netns, "net1");
    store(sb).save(&earlier).unwrap();
    earlier
}

#[test]
fn a_claim_whose_pod_is_gone_is_given_back_first_and_the_nic_attached_as_it_was() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, index) = world(&sb, &[]);
    earlier_attachment(&sb, &kernel, "/gone");
    // The kernel handed the NIC back when that netns died: renamed, down, flushed.
    kernel.move_link(index, HOST, "/pod");
    kernel.move_link(index, "/pod", HOST);
    let rename = LinkChange {
        name: Some("net1".into()),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &rename).unwrap();
    let mut ctx = sb.context(POD, json!({"hwaddr": MAC}));
    ctx.env.container_id = "c2".into();

    add(&ctx, &kernel).unwrap();

    let store = store(&sb);
    assert_eq!(store.attachments().unwrap(), [("c2".into(), "net1".into())]);
    let saved = store.load("c2", "net1").unwrap().unwrap();
    assert_eq!(
        saved.host.name, "enp1s0",
        "captured under its own name again"
    );
    assert_eq!(saved.host.addresses, [address("192.0.2.10/24")]);
    assert!(saved.host.up, "captured up, as it was before the first pod");
    assert_eq!(
        store
            .claim_of(&state::name_key("enp1s0"))
            .unwrap()
            .unwrap()
            .container_id,
        "c2"
    );
}

#[test]
fn a_claim_whose_pod_still_lives_is_refused() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    earlier_attachment(&sb, &kernel, POD);
    let mut ctx = sb.context(POD, json!({"hwaddr": MAC}));
    ctx.env.container_id = "c2".into();

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 101, "{err}");
    assert!(
        err.to_string().contains("container c1 interface net1"),
        "{err}"
    );
    assert!(kernel.journal().is_empty());
}

/// A world whose host-device really moves the NIC (through the fake kernel).

#[test]
fn a_mac_names_the_bridge_port_not_the_bridge_that_took_its_address() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, index) = world(&sb, &[]);
    // A bridge takes its first port's MAC.
    let bridge = kernel.add_link(HOST, "br0", MAC, &[], &[]);
    let enslave = LinkChange {
        master: Some(bridge),
        ..LinkChange::default()
    };
    kernel.host().unwrap().set_link(index, &enslave).unwrap();

    let err = add(&sb.context(POD, json!({"hwaddr": MAC})), &kernel).unwrap_err();

    assert_eq!(
        err.code() as u32,
        107,
        "the port was found, and is the host's: {err}"
    );
    assert!(err.to_string().contains("enp1s0 is a port of br0"), "{err}");
}

#[test]
fn a_live_owner_keeps_its_nic_when_kubelet_gave_it_to_a_third_pod() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    let mut owner = earlier_attachment(&sb, &kernel, POD);
    owner.pci_address = Some(PciAddress::parse("0000:5e:00.1").unwrap());
    owner.pod.uid = Some("uid-owner".into());
    store(&sb).save(&owner).unwrap();
    std::fs::write(
        sb.kubelet_checkpoint(),
        json!({"Data": {
            "PodDeviceEntries": [{"PodUID": "uid-third", "ContainerName": "c",
                "ResourceName": "amd.com/nic", "DeviceIDs": ["0000:5e:00.1"]}],
            "RegisteredDevices": {"amd.com/nic": ["0000:5e:00.1"]}}})
        .to_string(),
    )
    .unwrap();
    let mut ctx = sb.context(POD, json!({"device": "enp1s0"}));
    ctx.conf.allow_unverified_selection = true;
    ctx.env.container_id = "c2".into();
    ctx.env.args = "K8S_POD_UID=uid-asker".into();

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 101, "{err}");
    assert!(
        kernel.journal().is_empty(),
        "the owner's NIC was not touched"
    );
}

#[test]
fn the_hosts_own_namespace_as_cni_netns_is_refused_before_anything_is_touched() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, index) = world(&sb, &[]);
    let ctx = sb.context(HOST, json!({"device": "enp1s0"}));

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 4, "{err}");
    assert!(commands(&sb).is_empty(), "host-device ran");
    assert!(kernel.journal().is_empty(), "{:?}", kernel.journal());
    assert!(!sb.state_dir().exists(), "the state dir was created");
    assert_eq!(kernel.link(HOST, "enp1s0").unwrap().link.index, index);
}
