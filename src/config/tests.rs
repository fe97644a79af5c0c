//! The config parser: what it accepts, what it refuses and with which code.

use super::*;
use serde_json::json;

/// Parsed under a node without a policy file (the secure defaults).
fn parse(v: Value) -> Result<NetConf> {
    NetConf::parse(v.to_string().as_bytes(), &NodePolicy::default())
}

/// Parsed on a node that lets a config decide every key the policy governs.
fn parse_on_open_node(v: Value) -> Result<NetConf> {
    let open = NodePolicy {
        nad_may_override: crate::node::policy::OVERRIDABLE_KEYS
            .map(str::to_owned)
            .to_vec(),
        allow_default_route_device: false,
        ..NodePolicy::default()
    };
    NetConf::parse(v.to_string().as_bytes(), &open)
}

fn code_of(v: Value) -> u32 {
    parse(v).unwrap_err().code() as u32
}

#[test]
fn parses_what_multus_sends() {
    let c = parse(json!({
        "cniVersion": "0.3.1", "name": "amd-host-device-nad", "type": "amd-host-device",
        "deviceID": "0000:5E:00.1", "pciBusID": "0000:5e:00.1"
    }))
    .unwrap();
    assert_eq!(c.cni_version, CniVersion::V0_3_1);
    assert_eq!(c.selector.pci.unwrap().to_string(), "0000:5e:00.1");
    assert_eq!(c.pod_interface_name, PodInterfaceName::Host);
    assert_eq!(
        c.state_dir,
        PathBuf::from(crate::node::policy::DEFAULT_STATE_DIR)
    );
    assert_eq!(c.delegate, "host-device");
    assert_eq!(c.log_level, LogLevel::Info);
    assert!(!c.allow_default_route_device);
    assert!(c.ipam.is_none());
}

#[test]
fn accepts_runtime_config_device_id_and_name_selectors() {
    let c = parse(json!({"cniVersion": "1.1.0", "name": "n",
        "runtimeConfig": {"deviceID": "0000:01:00.0"}}))
    .unwrap();
    assert!(c.selector.pci.is_some());
    let c = parse_on_open_node(
        json!({"cniVersion": "1.0.0", "name": "n", "device": "enp1s0",
        "hwaddr": "AA:bb:cc:dd:ee:ff", "podInterfaceName": "cni",
        "ipam": {"type": "static", "addresses": []}, "stateDir": "/tmp/s",
        "logLevel": "debug", "logFile": "/tmp/l", "allowDefaultRouteDevice": true}),
    )
    .unwrap();
    assert_eq!(c.selector.device.as_deref(), Some("enp1s0"));
    assert_eq!(c.selector.hwaddr.unwrap().to_string(), "aa:bb:cc:dd:ee:ff");
    assert_eq!(c.pod_interface_name, PodInterfaceName::Cni);
    assert_eq!(c.ipam.unwrap()["type"], "static");
    assert_eq!(c.log_level, LogLevel::Debug);
    assert!(c.allow_default_route_device);
}

#[test]
fn rejects_bad_configs_with_the_right_code() {
    let base = || json!({"cniVersion": "0.3.1", "name": "n", "deviceID": "0000:01:00.0"});
    let with = |k: &str, v: Value| {
        let mut c = base();
        c[k] = v;
        c
    };
    let cases: Vec<(Value, u32)> = vec![
        (with("cniVersion", json!("0.2.0")), 1),
        (with("cniVersion", json!("9.9.9")), 1),
        (json!({"name": "n", "deviceID": "0000:01:00.0"}), 7),
        (
            json!({"cniVersion": "0.3.1", "deviceID": "0000:01:00.0"}),
            7,
        ),
        (with("deviceID", json!("../../etc")), 7),
        (with("deviceID", json!("0000:01:00.0/../x")), 7),
        (with("deviceID", json!("eth0")), 7),
        (with("deviceID", json!(5)), 7),
        (with("pciBusID", json!("0000:02:00.0")), 7),
        (with("hwaddr", json!("zz:zz")), 7),
        (with("device", json!("a/b")), 7),
        (with("podInterfaceName", json!("pod")), 7),
        (with("logLevel", json!("loud")), 7),
        (with("stateDir", json!("relative")), 7),
        (with("stateDir", json!("/var/../etc")), 7),
        (with("delegate", json!("../bin/sh")), 7),
        (with("ipam", json!("static")), 7),
        (with("ipam", json!({"addresses": []})), 7),
    ];
    for (conf, code) in cases {
        assert_eq!(code_of(conf.clone()), code, "{conf}");
    }
}

#[test]
fn type_errors_name_their_field() {
    let msg = |v: Value| parse(v).unwrap_err().to_string();
    let base = json!({"cniVersion": "0.3.1", "name": "n"});
    for (field, value, expected) in [
        ("deviceID", json!(5), "\"deviceID\" must be a string"),
        (
            "allowDefaultRouteDevice",
            json!("yes"),
            "\"allowDefaultRouteDevice\" must be true or false",
        ),
        (
            "runtimeConfig",
            json!({"deviceID": []}),
            "\"runtimeConfig.deviceID\" must be a string",
        ),
        (
            "podInterfaceName",
            json!("pod"),
            "\"podInterfaceName\" \"pod\" must be \"host\" or \"cni\"",
        ),
        ("logLevel", json!("loud"), "\"logLevel\" \"loud\" must be"),
        (
            "cni.dev/valid-attachments",
            json!([1]),
            "\"cni.dev/valid-attachments\" must be a list",
        ),
    ] {
        let mut c = base.clone();
        c[field] = value;
        let m = msg(c);
        assert!(m.starts_with(expected), "{field}: {m}");
    }
}

#[test]
fn address_source_and_kvp_keys() {
    let c = parse(json!({"cniVersion": "1.0.0", "name": "n"})).unwrap();
    assert_eq!(c.address_source, AddressSource::Interface);
    assert_eq!(
        c.kvp_pool_file,
        PathBuf::from("/var/lib/hyperv/.kvp_pool_0")
    );
    assert_eq!(c.kvp_prefix_length, 16);
    let c = parse_on_open_node(
        json!({"cniVersion": "1.0.0", "name": "n", "addressSource": "auto",
        "kvpPoolFile": "/tmp/pool", "kvpPrefixLength": 24}),
    )
    .unwrap();
    assert_eq!(c.address_source, AddressSource::Auto);
    assert_eq!(c.kvp_prefix_length, 24);
    for bad in [
        json!({"addressSource": "dhcp"}),
        json!({"kvpPrefixLength": 33}),
        json!({"kvpPrefixLength": "16"}),
        json!({"kvpPoolFile": "pool"}),
        json!({"addressSource": "kvp", "ipam": {"type": "static"}}),
    ] {
        let mut c = json!({"cniVersion": "1.0.0", "name": "n"});
        c.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        assert_eq!(code_of(c.clone()), 7, "{c}");
    }
}

#[test]
fn only_add_needs_a_selector() {
    let c = parse(json!({"cniVersion": "1.1.0", "name": "n"})).unwrap();
    assert_eq!(c.selector.require_some().unwrap_err().code() as u32, 7);
    assert!(
        parse(json!({"cniVersion": "1.1.0", "name": "n", "hwaddr": "02:00:00:00:00:01"}))
            .unwrap()
            .selector
            .require_some()
            .is_ok()
    );
}

#[test]
fn malformed_input_is_a_decode_error() {
    for input in [
        &b""[..],
        b"   \n",
        b"{",
        b"[1,2]",
        b"\"str\"",
        b"{\"a\":}",
        b"\xff\xfe",
    ] {
        let err = NetConf::parse(input, &NodePolicy::default()).unwrap_err();
        assert_eq!(err.code() as u32, 6, "{input:?}: {err}");
    }
}

#[test]
fn valid_attachments_are_read_for_gc() {
    let c = parse(json!({"cniVersion": "1.1.0", "name": "n", "device": "x",
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "net1"}]}))
    .unwrap();
    assert_eq!(
        c.valid_attachments.unwrap(),
        vec![ValidAttachment {
            container_id: "c1".into(),
            ifname: "net1".into()
        }]
    );
}

#[test]
fn network_names_follow_the_spec() {
    for good in ["n", "amd-host-device-nad", "net_1.v2", "0"] {
        assert!(
            parse(json!({"cniVersion": "1.0.0", "name": good})).is_ok(),
            "{good}"
        );
    }
    for bad in [
        "x\n* * * * * root sh",
        "-n",
        ".n",
        "a b",
        "a/b",
        "n\u{1b}[31m",
        "é",
    ] {
        let e = parse(json!({"cniVersion": "1.0.0", "name": bad})).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{bad:?}");
        assert!(e.to_string().contains("\"name\""), "{e}");
    }
}

#[test]
fn keys_that_touch_the_node_are_the_policys() {
    let nad = |k: &str, v: Value| {
        let mut c = json!({"cniVersion": "1.0.0", "name": "n"});
        c[k] = v;
        c
    };
    for (key, value) in [
        ("stateDir", json!("/etc")),
        ("logFile", json!("/etc/cron.d/x")),
        ("kvpPoolFile", json!("/etc/shadow")),
        ("allowDefaultRouteDevice", json!(true)),
    ] {
        let e = parse(nad(key, value)).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{key}");
        assert!(
            e.to_string().contains(&format!("\"{key}\" may not be set"))
                && e.to_string()
                    .contains(crate::node::policy::DEFAULT_POLICY_FILE),
            "{e}"
        );
    }
    let e = parse(nad("delegate", json!("bridge"))).unwrap_err();
    assert!(
        e.to_string().contains("not allowed by the node policy"),
        "{e}"
    );
    // The node's own values, a guard kept on and the keys a NAD may decide all pass.
    for (key, value) in [
        ("stateDir", json!(crate::node::policy::DEFAULT_STATE_DIR)),
        ("allowDefaultRouteDevice", json!(false)),
        ("logLevel", json!("debug")),
        ("podInterfaceName", json!("cni")),
        ("delegate", json!("host-device")),
    ] {
        assert!(parse(nad(key, value)).is_ok(), "{key}");
    }
}

#[test]
fn the_policy_gives_the_node_keys_their_values() {
    let node = NodePolicy {
        state_dir: "/srv/state".into(),
        log_file: Some("/var/log/ahd.log".into()),
        log_level: LogLevel::Debug,
        delegates: vec!["my-host-device".into()],
        allow_default_route_device: true,
        ..NodePolicy::default()
    };
    let c = NetConf::parse(br#"{"cniVersion": "1.0.0", "name": "n"}"#, &node).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/srv/state"));
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/ahd.log")));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.delegate, "my-host-device", "the first allowed delegate");
    assert!(c.allow_default_route_device);
    let c = NetConf::parse(
        br#"{"cniVersion": "1.0.0", "name": "n", "allowDefaultRouteDevice": false}"#,
        &node,
    )
    .unwrap();
    assert!(!c.allow_default_route_device, "a NAD may keep the guard on");
}

/// Parsed on a node whose `ipamTypes` is `types` and whose `nadMayOverride` adds `keys`
/// to the default ones.
fn parse_with_ipam(types: &[&str], keys: &[&str], v: Value) -> Result<NetConf> {
    let mut node = NodePolicy {
        ipam_types: types.iter().map(|t| t.to_string()).collect(),
        ..NodePolicy::default()
    };
    node.nad_may_override
        .extend(keys.iter().map(|k| k.to_string()));
    NetConf::parse(v.to_string().as_bytes(), &node)
}

fn with_ipam(ipam: Value) -> Value {
    json!({"cniVersion": "1.0.0", "name": "n", "ipam": ipam})
}

#[test]
fn kvp_ipoib_ipams_pool_is_the_policys_too() {
    let nad = |pool: &str| with_ipam(json!({"type": "kvp-ipoib-ipam", "poolFile": pool}));
    let kvp_node = |v| parse_with_ipam(&["static", "kvp-ipoib-ipam", "host-local"], &[], v);
    let e = kvp_node(nad("/etc/shadow")).unwrap_err();
    assert_eq!(e.code() as u32, 7);
    assert!(
        e.to_string().contains("\"ipam.poolFile\" may not be set"),
        "{e}"
    );
    assert!(
        kvp_node(nad(crate::node::kvp::DEFAULT_POOL)).is_ok(),
        "the node's own pool"
    );
    assert!(kvp_node(nad("relative")).is_err());
    // Other IPAM plugins' keys are theirs.
    let other = with_ipam(json!({"type": "host-local", "poolFile": "/etc/shadow"}));
    assert!(kvp_node(other).is_ok());
}

#[test]
fn only_the_ipam_types_the_policy_lists_may_run() {
    let static_ipam = with_ipam(json!({"type": "static", "addresses": []}));
    assert!(parse(static_ipam.clone()).is_ok(), "static by default");
    for refused in ["host-local", "kvp-ipoib-ipam", "dhcp", "../../bin/sh"] {
        let e = parse(with_ipam(json!({"type": refused}))).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{refused}");
        assert!(
            e.to_string()
                .contains(&format!("\"ipam\" type {refused:?} is not allowed"))
                && e.to_string().contains("(allowed: static)")
                && e.to_string()
                    .contains(crate::node::policy::DEFAULT_POLICY_FILE),
            "{e}"
        );
    }
    let kvp = with_ipam(json!({"type": "kvp-ipoib-ipam"}));
    assert!(parse_with_ipam(&["static", "kvp-ipoib-ipam"], &[], kvp).is_ok());
    let e = parse_with_ipam(&[], &[], static_ipam).unwrap_err();
    assert!(e.to_string().contains("(allowed: none)"), "{e}");
    // Go matches "Type" to the field "type": every spelling of it is checked.
    let spelled = with_ipam(json!({"type": "static", "TYPE": "host-local"}));
    assert_eq!(parse(spelled).unwrap_err().code() as u32, 7);
    let not_a_string = with_ipam(json!({"type": "static", "Type": 1}));
    assert_eq!(parse(not_a_string).unwrap_err().code() as u32, 7);
}

#[test]
fn ipam_keys_that_name_node_paths_need_the_policy_in_any_spelling() {
    let host_local = |extra: Value| {
        let mut ipam = json!({"type": "host-local", "subnet": "10.1.0.0/16"});
        ipam.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        with_ipam(ipam)
    };
    let node = |keys: &[&str], v| parse_with_ipam(&["host-local", "dhcp"], keys, v);
    assert!(node(&[], host_local(json!({}))).is_ok());
    for (key, shown) in [
        ("dataDir", "ipam.dataDir"),
        ("resolvConf", "ipam.resolvConf"),
        ("daemonSocketPath", "ipam.daemonSocketPath"),
        ("DataDir", "ipam.DataDir"),
        ("DATADIR", "ipam.DATADIR"),
        // Go's encoding/json also takes the long s for "s" and the Kelvin sign for "k".
        ("daemon\u{17f}ocketPath", "ipam.daemon\u{17f}ocketPath"),
        ("daemonSoc\u{212a}etPath", "ipam.daemonSoc\u{212a}etPath"),
        ("re\u{17f}olvConf", "ipam.re\u{17f}olvConf"),
    ] {
        let e = node(&[], host_local(json!({key: "/etc"}))).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{key}");
        assert!(
            e.to_string()
                .contains(&format!("\"{shown}\" may not be set by a network config")),
            "{e}"
        );
    }
    assert!(node(
        &["ipam.dataDir"],
        host_local(json!({"DataDir": "/srv/leases"}))
    )
    .is_ok());
    let still_refused = node(
        &["ipam.dataDir"],
        host_local(json!({"resolvConf": "/etc/x"})),
    );
    assert_eq!(still_refused.unwrap_err().code() as u32, 7);
    assert!(node(
        &["ipam.daemonSocketPath"],
        with_ipam(json!({"type": "dhcp", "daemonSocketPath": "/run/cni/dhcp.sock"}))
    )
    .is_ok());
}

#[test]
fn a_device_info_file_outside_the_spec_directory_is_refused() {
    let with_file = |file: &str| {
        json!({"cniVersion": "1.0.0", "name": "n", "deviceID": "0000:01:00.0",
               "capabilities": {"CNIDeviceInfoFile": true},
               "runtimeConfig": {"CNIDeviceInfoFile": file}})
    };
    let inside = format!(
        "{}/net1-abc.json",
        crate::node::device_info::DEVICE_INFO_DIR
    );
    assert_eq!(
        parse(with_file(&inside)).unwrap().device_info_file,
        Some(PathBuf::from(&inside))
    );
    for bad in [
        "/etc/cron.d/x".to_owned(),
        format!("{}/../x.json", crate::node::device_info::DEVICE_INFO_DIR),
        format!("{}/sub/x.json", crate::node::device_info::DEVICE_INFO_DIR),
        "relative.json".to_owned(),
    ] {
        let e = parse(with_file(&bad)).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{bad}");
        assert!(
            e.to_string().contains("CNIDeviceInfoFile") && e.to_string().contains(&bad),
            "{e}"
        );
    }
}

/// Parsed as DEL and GC parse: under the secure defaults (but for `kvp-ipoib-ipam`, which
/// the node lets NADs use), what was ignored.
fn parse_for_give_back(v: Value) -> Result<(NetConf, Vec<String>)> {
    let node = NodePolicy {
        ipam_types: vec!["static".into(), "kvp-ipoib-ipam".into()],
        ..NodePolicy::default()
    };
    NetConf::parse_for_give_back(v.to_string().as_bytes(), &node)
}

#[test]
fn a_give_back_uses_the_nodes_value_for_what_the_config_may_not_choose_and_says_so() {
    let refused = json!({"cniVersion": "1.0.0", "name": "n", "deviceID": "0000:01:00.0",
        "stateDir": "/srv/nad-state", "logFile": "/tmp/nad.log", "kvpPoolFile": "/etc/shadow",
        "allowDefaultRouteDevice": true, "allowEnslavedDevice": true, "delegate": "bridge",
        "ipam": {"type": "kvp-ipoib-ipam", "poolFile": "/etc/passwd"},
        "runtimeConfig": {"CNIDeviceInfoFile": "/etc/cron.d/x"}});
    assert_eq!(parse(refused.clone()).unwrap_err().code() as u32, 7);
    let (c, notes) = parse_for_give_back(refused).unwrap();
    let node = NodePolicy::default();
    assert_eq!(c.state_dir, node.state_dir);
    assert_eq!(c.log_file, node.log_file);
    assert_eq!(c.kvp_pool_file, node.kvp_pool_file);
    assert!(!c.allow_default_route_device && !c.allow_enslaved_device);
    assert_eq!(c.delegate, "host-device");
    assert_eq!(
        c.ipam.unwrap()["poolFile"],
        json!(node.kvp_pool_file.to_string_lossy()),
        "the IPAM reads the node's pool"
    );
    assert_eq!(c.device_info_file, None);
    for key in [
        "\"stateDir\"",
        "\"logFile\"",
        "\"kvpPoolFile\"",
        "\"allowDefaultRouteDevice\"",
        "\"allowEnslavedDevice\"",
        "\"delegate\" \"bridge\"",
        "\"ipam.poolFile\"",
        "\"runtimeConfig.CNIDeviceInfoFile\" \"/etc/cron.d/x\"",
    ] {
        assert_eq!(
            notes.iter().filter(|n| n.contains(key)).count(),
            1,
            "{key}: {notes:?}"
        );
    }
    assert_eq!(notes.len(), 8, "{notes:?}");

    // What the config may choose passes as it is, with nothing to say.
    let (c, notes) = parse_for_give_back(json!({"cniVersion": "1.0.0", "name": "n",
        "logLevel": "debug", "podInterfaceName": "cni",
        "stateDir": crate::node::policy::DEFAULT_STATE_DIR}))
    .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(c.log_level, LogLevel::Debug);
    // Anything else wrong is still an error.
    for bad in [
        json!({"cniVersion": "1.0.0", "name": "n", "stateDir": "relative"}),
        json!({"cniVersion": "1.0.0", "name": "n", "delegate": "/bin/sh"}),
        json!({"cniVersion": "9.9.9", "name": "n"}),
        json!({"cniVersion": "1.0.0", "name": ""}),
    ] {
        assert!(parse_for_give_back(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn a_network_name_an_earlier_release_took_is_made_safe_for_a_give_back_and_refused_by_add() {
    let v = json!({"cniVersion": "1.0.0", "name": "my net\nFAKE LOG"});
    assert!(parse(v.clone()).is_err());
    let (c, notes) = parse_for_give_back(v).unwrap();
    assert_eq!(c.name, "my_net_FAKE_LOG");
    assert!(c.name_made_safe);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (c, _) = parse_for_give_back(json!({"cniVersion": "1.0.0", "name": "-n"})).unwrap();
    assert_eq!(c.name, "x-n");
}

#[test]
fn a_give_back_runs_no_ipam_of_a_type_the_policy_refuses_and_drops_refused_path_keys() {
    let host_local = with_ipam(json!({"type": "host-local", "subnet": "10.1.0.0/16"}));
    let (c, notes) = parse_for_give_back(host_local.clone()).unwrap();
    assert_eq!(c.ipam, None, "host-local is not run");
    assert!(
        notes.len() == 1 && notes[0].contains("\"ipam\" type \"host-local\" is not allowed"),
        "{notes:?}"
    );
    let node = NodePolicy {
        ipam_types: vec!["host-local".into()],
        ..NodePolicy::default()
    };
    let paths = with_ipam(json!({"type": "host-local", "subnet": "10.1.0.0/16",
        "DataDir": "/etc", "resolvConf": "/etc/shadow"}));
    let (c, notes) = NetConf::parse_for_give_back(paths.to_string().as_bytes(), &node).unwrap();
    assert_eq!(
        c.ipam,
        Some(json!({"type": "host-local", "subnet": "10.1.0.0/16"})),
        "the refused keys are left out"
    );
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("\"ipam.DataDir\"")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("\"ipam.resolvConf\"")),
        "{notes:?}"
    );
    // ADD and CHECK still refuse both.
    assert_eq!(parse(host_local).unwrap_err().code() as u32, 7);
    let e = NetConf::parse(paths.to_string().as_bytes(), &node).unwrap_err();
    assert_eq!(e.code() as u32, 7);
}

#[test]
fn device_ids_may_name_auxiliary_devices_and_kernelpath_is_a_sys_devices_path() {
    let c =
        parse(json!({"cniVersion": "1.0.0", "name": "n", "deviceID": "mlx5_core.sf.2"})).unwrap();
    assert_eq!(c.selector.auxiliary.as_deref(), Some("mlx5_core.sf.2"));
    assert!(c.selector.pci.is_none());
    for bad in [
        "../x",
        "a/b.c",
        "..",
        ".x",
        "0000:5e:00.8",
        "not-a-pci-address",
    ] {
        let e = parse(json!({"cniVersion": "1.0.0", "name": "n", "deviceID": bad})).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{bad}");
    }
    let both = json!({"cniVersion": "1.0.0", "name": "n",
                      "deviceID": "mlx5_core.sf.2", "pciBusID": "mlx5_core.sf.2"});
    assert_eq!(
        parse(both).unwrap().selector.auxiliary.as_deref(),
        Some("mlx5_core.sf.2")
    );
    let differ = json!({"cniVersion": "1.0.0", "name": "n",
                        "deviceID": "mlx5_core.sf.2", "pciBusID": "mlx5_core.sf.3"});
    assert!(parse(differ)
        .unwrap_err()
        .to_string()
        .contains("conflicting selectors"));
    let c = parse(json!({"cniVersion": "1.0.0", "name": "n",
                         "kernelpath": "/sys/devices/pci0000:00/0000:00:1f.6"}))
    .unwrap();
    assert_eq!(
        c.selector.kernel_path.as_deref(),
        Some("/sys/devices/pci0000:00/0000:00:1f.6")
    );
    for bad in ["/etc/passwd", "/sys/devices/../../etc", "sys/devices/x"] {
        let e = parse(json!({"cniVersion": "1.0.0", "name": "n", "kernelpath": bad})).unwrap_err();
        assert_eq!(e.code() as u32, 7, "{bad}");
    }
}
