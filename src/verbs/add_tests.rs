//! ADD against an in-memory kernel and a scripted host-device: the order of what it does,
//! and everything it must refuse before doing anything.

use super::*;
use crate::host::kernel::fake::{FakeKernel, HOST};
use crate::host::netlink::LinkChange;
use crate::verbs::testing::{address, route, Sandbox};
use serde_json::json;

const POD: &str = "/pod";
const MAC: &str = "02:00:00:00:00:01";
/// What the scripted host-device prints on a successful ADD.
const RESULT: &str = r#"echo '{"cniVersion":"1.0.0","interfaces":[{"name":"enp1s0"}],"ips":[{"address":"192.0.2.10/24"}]}'"#;

/// A host with NIC `enp1s0` (192.0.2.10/24, and `routes`) and an empty pod netns.
fn world(sb: &Sandbox, routes: &[crate::host::netlink::Route]) -> (FakeKernel, i32) {
    let kernel = FakeKernel::new(sb.path());
    kernel.add_netns(POD);
    let index = kernel.add_link(HOST, "enp1s0", MAC, &[address("192.0.2.10/24")], routes);
    (kernel, index)
}

fn store(sb: &Sandbox) -> StateStore {
    StateStore::open(&sb.state_dir()).unwrap()
}

fn commands(sb: &Sandbox) -> Vec<String> {
    sb.calls().into_iter().map(|(c, _)| c).collect()
}

fn assert_nothing_left(sb: &Sandbox) {
    let store = store(sb);
    assert_eq!(store.attachments().unwrap(), vec![]);
    assert_eq!(store.claim_of(&state::name_key("enp1s0")).unwrap(), None);
}

#[test]
fn a_failed_delegate_is_rolled_back_after_the_state_was_made_durable() {
    let sb = Sandbox::new();
    let seen = sb.path().join("state-files-at-add");
    sb.delegate(
        &format!(
            "ls {} >{}; echo '{{\"code\":999,\"msg\":\"boom\"}}'; exit 1",
            sb.state_dir().display(),
            seen.display()
        ),
        "exit 0",
    );
    let (kernel, index) = world(&sb, &[route("10.9.0.0/16", "192.0.2.1")]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 103, "{err}");
    assert_eq!(
        err.to_string(),
        "moving enp1s0 into the pod: host-device: boom",
        "which NIC, what was being done, then the delegate's own words"
    );
    let at_add = std::fs::read_to_string(&seen).unwrap();
    assert!(
        at_add.contains("c1-net1.json"),
        "state not on disk when the delegate acted: {at_add}"
    );
    assert_eq!(
        commands(&sb),
        ["ADD", "DEL"],
        "rollback asks host-device for DEL"
    );
    assert_nothing_left(&sb);
    let nic = kernel
        .link(HOST, "enp1s0")
        .expect("the NIC stays on the host");
    assert_eq!(nic.link.index, index);
    assert!(nic.link.up);
    assert_eq!(nic.addresses, [address("192.0.2.10/24")]);
}

#[test]
fn a_device_that_never_reaches_the_pod_is_rolled_back_too() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    // Captured routes must be re-added in the pod, where the NIC is not.
    let (kernel, _) = world(&sb, &[route("10.9.0.0/16", "192.0.2.1")]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    let err = add(&ctx, &kernel).unwrap_err();

    assert_eq!(err.code() as u32, 100, "{err}");
    assert_eq!(commands(&sb), ["ADD", "DEL"]);
    assert_nothing_left(&sb);
}

#[test]
fn a_good_add_hands_host_device_the_captured_addresses_and_keeps_the_state() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    let result = add(&ctx, &kernel).unwrap();

    assert_eq!(result["interfaces"][0]["name"], "enp1s0");
    let calls = sb.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1["device"], "enp1s0");
    assert_eq!(
        calls[0].1["ipam"],
        json!({"type": "static", "addresses": [{"address": "192.0.2.10/24"}]})
    );
    let saved = store(&sb).load("c1", "net1").unwrap().expect("state kept");
    assert_eq!(saved.host.addresses, [address("192.0.2.10/24")]);
    assert_eq!(saved.pod_ifname, "enp1s0");
    assert!(
        !kernel.journal().iter().any(|l| l.starts_with("host:")),
        "ADD itself changed nothing on the host"
    );
}

#[test]
fn a_name_taken_in_the_pod_is_staged_under_a_temporary_name_before_host_device_runs() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, index) = world(&sb, &[]);
    kernel.add_link(POD, "enp1s0", "02:00:00:00:00:99", &[], &[]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    add(&ctx, &kernel).unwrap();

    let staging = format!("ahd{index}");
    assert_eq!(
        kernel.journal(),
        [
            format!("host: set #{index} down"),
            format!("host: set #{index} name={staging}")
        ]
    );
    assert_eq!(sb.calls()[0].1["device"], staging.as_str());
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    assert_eq!(saved.staging_name.as_deref(), Some(staging.as_str()));
    assert_eq!(
        saved.pod_ifname, "net1",
        "the pod side falls back to CNI_IFNAME"
    );
}

#[test]
fn a_staging_name_taken_on_the_host_means_the_next_one_recorded_before_it_is_tried() {
    let sb = Sandbox::new();
    let seen = sb.path().join("state-at-add");
    sb.delegate(
        &format!(
            "cp {}/c1-net1.json {}; {RESULT}",
            sb.state_dir().display(),
            seen.display()
        ),
        "exit 0",
    );
    let (kernel, index) = world(&sb, &[]);
    kernel.add_link(POD, "enp1s0", "02:00:00:00:00:99", &[], &[]);
    // Whatever holds it, the host has the first temporary name.
    kernel.add_link(HOST, &format!("ahd{index}"), "02:00:00:00:00:98", &[], &[]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    add(&ctx, &kernel).unwrap();

    let staging = format!("ahd{index}-1");
    assert_eq!(
        kernel.journal(),
        [
            format!("host: set #{index} down"),
            format!("host: set #{index} name=ahd{index}"),
            format!("host: set #{index} name={staging}")
        ]
    );
    assert_eq!(sb.calls()[0].1["device"], staging.as_str());
    let at_add: AttachmentState =
        serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(
        at_add.staging_name.as_deref(),
        Some(staging.as_str()),
        "the state named it before host-device acted"
    );
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    assert_eq!(saved.staging_name.as_deref(), Some(staging.as_str()));
    assert_eq!(
        store(&sb)
            .claim_of(&state::name_key("enp1s0"))
            .unwrap()
            .map(|c| c.container_id),
        Some("c1".to_owned()),
        "the rewritten state still holds its claims"
    );
}

fn moving_world(sb: &Sandbox, routes: &[crate::host::netlink::Route]) -> (FakeKernel, i32) {
    sb.delegate_that_moves();
    let (kernel, index) = world(sb, routes);
    kernel.follow_host_device(&sb.moves_file());
    (kernel, index)
}

#[test]
fn the_nic_keeps_its_host_name_in_the_pod_and_answers_to_cni_ifname_too() {
    let sb = Sandbox::new();
    let (kernel, index) = moving_world(&sb, &[route("10.9.0.0/16", "192.0.2.1")]);
    let ctx = sb.context(POD, json!({"device": "enp1s0"}));

    let result = add(&ctx, &kernel).unwrap();

    assert_eq!(
        result["interfaces"][0]["name"], "net1",
        "what a runtime looks for"
    );
    let nic = kernel
        .link(POD, "enp1s0")
        .expect("the kernel name is the host name");
    assert_eq!(nic.link.altnames, ["net1"]);
    assert_eq!(nic.routes, [route("10.9.0.0/16", "192.0.2.1")]);

    // Back on the host, it no longer answers to net1.
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    let delegate = Delegate::find_for_give_back("host-device", &ctx.env.path);
    give_back(&kernel, &ctx, delegate.as_ref(), &store(&sb), &saved).unwrap();
    let nic = kernel.link(HOST, "enp1s0").expect("back on the host");
    assert_eq!(nic.link.index, index);
    assert!(nic.link.altnames.is_empty(), "the host never keeps net1");
    assert!(nic.link.up && nic.addresses == [address("192.0.2.10/24")]);
    assert_eq!(nic.routes, [route("10.9.0.0/16", "192.0.2.1")]);
}

#[test]
fn a_cni_ifname_taken_in_the_pod_leaves_the_nic_its_one_name() {
    let sb = Sandbox::new();
    let (kernel, _) = moving_world(&sb, &[]);
    kernel.add_link(POD, "net1", "02:00:00:00:00:77", &[], &[]);

    let result = add(&sb.context(POD, json!({"device": "enp1s0"})), &kernel).unwrap();

    assert_eq!(result["interfaces"][0]["name"], "enp1s0");
    assert!(kernel.link(POD, "enp1s0").unwrap().link.altnames.is_empty());
}

#[test]
fn a_1_1_result_tells_the_nics_mtu_and_pci_address_and_older_ones_do_not() {
    let sb = Sandbox::new();
    let (kernel, _) = moving_world(&sb, &[]);
    std::fs::create_dir_all(sb.path().join("bus/pci/devices/0000:5e:00.1/net/enp1s0")).unwrap();
    let conf = |v: &str| json!({"cniVersion": v, "deviceID": "0000:5e:00.1"});

    let result = add(&sb.context(POD, conf("1.1.0")), &kernel).unwrap();

    assert_eq!(result["interfaces"][0]["mtu"], 1500);
    assert_eq!(result["interfaces"][0]["pciID"], "0000:5e:00.1");
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    let ctx = sb.context(POD, conf("1.0.0"));
    let delegate = Delegate::find_for_give_back("host-device", &ctx.env.path);
    give_back(&kernel, &ctx, delegate.as_ref(), &store(&sb), &saved).unwrap();
    let result = add(&ctx, &kernel).unwrap();
    assert!(result["interfaces"][0].get("mtu").is_none(), "{result}");
    assert!(result["interfaces"][0].get("pciID").is_none(), "{result}");
}

/// A PCI function in the sandbox's sysfs, bound to `driver` (if any), with no netdev.
fn function_without_netdev(sb: &Sandbox, pci: &str, driver: Option<&str>) {
    let dev = sb.path().join("bus/pci/devices").join(pci);
    std::fs::create_dir_all(&dev).unwrap();
    if let Some(d) = driver {
        let drv = sb.path().join("bus/pci/drivers").join(d);
        std::fs::create_dir_all(&drv).unwrap();
        std::os::unix::fs::symlink(&drv, dev.join("driver")).unwrap();
    }
}

#[test]
fn a_dpdk_bound_function_is_claimed_for_the_pod_without_moving_anything() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    function_without_netdev(&sb, "0000:5e:00.3", Some("vfio-pci"));
    let ctx = sb.context(
        POD,
        json!({"cniVersion": "1.1.0", "deviceID": "0000:5e:00.3"}),
    );

    let result = add(&ctx, &kernel).unwrap();

    assert_eq!(
        result["interfaces"],
        json!([{"name": "net1", "sandbox": POD, "pciID": "0000:5e:00.3"}])
    );
    assert!(result.get("ips").is_none());
    assert!(
        sb.calls().is_empty() && kernel.journal().is_empty(),
        "nothing moved"
    );
    let saved = store(&sb).load("c1", "net1").unwrap().unwrap();
    assert_eq!(saved.userspace_driver.as_deref(), Some("vfio-pci"));

    let mut second = sb.context(POD, json!({"deviceID": "0000:5e:00.3"}));
    second.env.container_id = "c2".into();
    assert_eq!(
        add(&second, &kernel).unwrap_err().code() as u32,
        101,
        "one device, one pod"
    );

    give_back(&kernel, &ctx, None, &store(&sb), &saved).unwrap();
    assert_eq!(
        store(&sb).attachments().unwrap(),
        vec![],
        "DEL releases the claim"
    );
    assert!(kernel.journal().is_empty());
}

#[test]
fn a_function_bound_to_no_driver_stays_an_error() {
    let sb = Sandbox::new();
    sb.delegate(RESULT, "exit 0");
    let (kernel, _) = world(&sb, &[]);
    function_without_netdev(&sb, "0000:5e:00.4", None);

    let err = add(
        &sb.context(POD, json!({"deviceID": "0000:5e:00.4"})),
        &kernel,
    )
    .unwrap_err();

    assert_eq!(err.code() as u32, 100, "{err}");
    assert!(err.to_string().contains("not bound to any driver"), "{err}");
}

#[path = "add_admission_tests.rs"]
mod admission;
