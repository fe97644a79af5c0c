//! doctor over a whole fake node: an in-memory kernel, a sysfs, a policy, a state dir and
//! a kubelet checkpoint in a temp dir, each check's verdict asserted, and nothing changed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::report::{Report, Status};
use super::*;
use crate::device_id::{MacAddress, PciAddress};
use crate::host::device::Sysfs;
use crate::host::kernel::fake::{FakeKernel, HOST};
use crate::host::netlink::consts::{RTN_UNICAST, RT_TABLE_MAIN};
use crate::host::netlink::{Links, Route};
use crate::host::rdma::{NetnsMode, RdmaSystem};
use crate::host::snapshot::HostInterface;
use crate::node::state::{AttachmentState, PodRef, StateStore, SCHEMA_VERSION};

const POD: &str = "pod-a";

struct Node {
    dir: tempfile::TempDir,
    kernel: FakeKernel,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let kernel = FakeKernel::new(&dir.path().join("sys"));
        Node { dir, kernel }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A network function `pci` with netdev `name` (if any) and a driver.
    fn function(&self, pci: &str, name: Option<&str>, driver: &str) {
        let dev = self.path("sys/bus/pci/devices").join(pci);
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("class"), "0x020000\n").unwrap();
        if let Some(n) = name {
            std::fs::create_dir_all(dev.join("net").join(n)).unwrap();
        }
        let drv = self.path("sys/bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drv).unwrap();
        std::os::unix::fs::symlink(&drv, dev.join("driver")).unwrap();
    }

    /// A NIC on the host at `pci`; returns its ifindex.
    fn nic(&self, pci: &str, name: &str, mac: &str, routes: &[Route]) -> i32 {
        self.function(pci, Some(name), "fakenic");
        std::fs::create_dir_all(self.path("sys/class/net").join(name)).unwrap();
        self.kernel.add_link(HOST, name, mac, &[], routes)
    }

    fn policy(&self, extra: serde_json::Value) -> PathBuf {
        let mut policy = json!({
            "stateDir": self.path("state"),
            "kubeletCheckpoint": self.path("checkpoint"),
            "delegates": ["doctor-unit-delegate"],
        });
        policy
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let path = self.path("node.json");
        std::fs::write(&path, policy.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// `doctor-unit-delegate` and `static`, answering VERSION as the reference plugins do.
    fn plugins(&self) -> String {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["doctor-unit-delegate", "static"] {
            let p = bin.join(name);
            std::fs::write(
                &p,
                "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}'\n",
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        bin.to_string_lossy().into_owned()
    }

    fn inputs(&self, policy: PathBuf, cni_path: String) -> Inputs {
        Inputs {
            policy_path: Ok(policy),
            state_dir: None,
            cni_path: vec![cni_path],
            now: SystemTime::now(),
        }
    }
}

fn default_route() -> Route {
    Route {
        family: 4,
        dst: None,
        dst_len: 0,
        gateway: Some("192.0.2.1".parse().unwrap()),
        table: RT_TABLE_MAIN,
        protocol: 4,
        scope: 0,
        kind: RTN_UNICAST,
        priority: None,
        prefsrc: None,
        shared: false,
    }
}

/// What ADD saves for container `cid` moving NIC `name` (at `pci`) into `netns`.
fn state(cid: &str, name: &str, mac: &str, pci: &str, netns: &str) -> AttachmentState {
    AttachmentState {
        schema: SCHEMA_VERSION,
        container_id: cid.into(),
        ifname: "net1".into(),
        network: "net-a".into(),
        cni_version: "1.0.0".into(),
        netns: netns.into(),
        selector: Default::default(),
        pci_address: Some(PciAddress::parse(pci).unwrap()),
        host: HostInterface {
            name: name.into(),
            mac: Some(MacAddress::parse(mac).unwrap()),
            mtu: 1500,
            up: true,
            ..HostInterface::default()
        },
        pod_ifname: name.into(),
        staging_name: None,
        rdma_devices: Vec::new(),
        userspace_driver: None,
        adopted_vendor_entry: false,
        pod: PodRef {
            namespace: Some("testns".into()),
            name: Some(format!("pod-{cid}")),
            uid: Some(format!("uid-{cid}")),
        },
        created: String::new(),
    }
}

fn verdicts(report: &Report) -> Vec<(String, Status)> {
    report
        .checks
        .iter()
        .map(|c| (c.name.clone(), c.status))
        .collect()
}

fn check<'a>(report: &'a Report, name: &str) -> &'a report::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {:#?}", report.checks))
}

/// Every file of `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut all: Vec<_> = walk(dir);
    all.sort();
    all
}

fn walk(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        out.push((
            e.path().display().to_string(),
            m.len(),
            m.modified().unwrap(),
        ));
        if m.is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn a_whole_node_gets_a_verdict_per_check_and_nothing_changes() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the policy file must be root's");
        return;
    }
    let node = Node::new();
    let k = &node.kernel;
    node.nic(
        "0000:5e:00.0",
        "up0",
        "02:00:00:00:00:10",
        &[default_route()],
    );
    node.nic("0000:5e:00.1", "n1", "02:00:00:00:00:11", &[]);
    node.nic("0000:5e:00.2", "n2", "02:00:00:00:00:12", &[]);
    std::fs::write(node.path("sys/class/net/n2/upper_macvlan0"), "").unwrap();
    // c1's NIC is in its live pod; c2's pod is gone and its NIC back on the host.
    node.function("0000:5e:00.3", Some("n3"), "fakenic");
    k.add_netns(POD);
    k.add_link(POD, "n3", "02:00:00:00:00:13", &[], &[]);
    node.nic("0000:5e:00.4", "n4", "02:00:00:00:00:14", &[]);
    node.function("0000:5e:00.5", None, "vfio-pci");
    let store = StateStore::open(&node.path("state")).unwrap();
    store
        .save(&state("c1", "n3", "02:00:00:00:00:13", "0000:5e:00.3", POD))
        .unwrap();
    store
        .save(&state(
            "c2",
            "n4",
            "02:00:00:00:00:14",
            "0000:5e:00.4",
            "gone",
        ))
        .unwrap();
    std::fs::write(
        node.path("checkpoint"),
        json!({"Data": {
            "PodDeviceEntries": [{"PodUID": "uid-c1", "ContainerName": "c",
                "ResourceName": "amd.com/nic", "DeviceIDs": {"0": ["0000:5e:00.3"]}}],
            "RegisteredDevices": {"amd.com/nic": ["0000:5e:00.0", "0000:5e:00.1",
                "0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4"]}}})
        .to_string(),
    )
    .unwrap();
    let inputs = node.inputs(node.policy(json!({})), node.plugins());
    let before = listing(node.dir.path());

    let report = examine(k, &inputs);

    let expected: Vec<(String, Status)> = [
        ("policy", Status::Ok),
        ("plugin doctor-unit-delegate", Status::Ok),
        ("plugin static", Status::Ok),
        ("state-dir", Status::Ok),
        ("state-dir writable", Status::Ok),
        ("state-dir space", Status::Ok),
        ("state-dir temporary files", Status::Ok),
        ("attachment c1/net1", Status::Ok),
        ("attachment c2/net1", Status::Warn),
        ("kubelet checkpoint", Status::Ok),
        ("allocation 0000:5e:00.3", Status::Ok),
        ("nic 0000:5e:00.0", Status::Fail),
        ("nic 0000:5e:00.1", Status::Ok),
        ("nic 0000:5e:00.2", Status::Fail),
        ("nic 0000:5e:00.3", Status::Ok),
        ("nic 0000:5e:00.4", Status::Ok),
        ("nic 0000:5e:00.5", Status::Ok),
        ("rdma", Status::Ok),
        ("log-file", Status::Ok),
    ]
    .map(|(n, s)| (n.to_owned(), s))
    .to_vec();
    assert_eq!(verdicts(&report), expected, "{}", report.text());
    assert!(check(&report, "attachment c1/net1").detail.contains(
        "pod testns/pod-c1, network net-a: n3 (PCI 0000:5e:00.3) in pod netns pod-a as n3"
    ));
    let stale = check(&report, "attachment c2/net1");
    assert!(
        stale
            .detail
            .contains("stale, its pod's netns gone is gone; the NIC is on the host as n4"),
        "{}",
        stale.detail
    );
    assert_eq!(stale.fix.as_deref(), Some("amd-host-device restore c2"));
    let uplink = check(&report, "nic 0000:5e:00.0");
    assert!(
        uplink.detail.contains("code 104")
            && uplink.detail.contains("offered to pods as amd.com/nic"),
        "{}",
        uplink.detail
    );
    assert!(check(&report, "nic 0000:5e:00.2")
        .detail
        .contains("carries macvlan0"));
    assert!(check(&report, "nic 0000:5e:00.1")
        .detail
        .contains("ADD would accept it"));
    assert!(check(&report, "nic 0000:5e:00.5")
        .detail
        .contains("vfio-pci"));
    assert!(check(&report, "allocation 0000:5e:00.3")
        .detail
        .contains("in its pod (netns pod-a as n3)"));
    assert!(report.has_failures());

    assert!(
        k.journal().is_empty(),
        "doctor changed the kernel: {:?}",
        k.journal()
    );
    assert_eq!(listing(node.dir.path()), before, "doctor changed files");
}

#[test]
fn the_policy_decides_what_add_would_accept() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the policy file must be root's");
        return;
    }
    let node = Node::new();
    node.nic(
        "0000:5e:00.0",
        "up0",
        "02:00:00:00:00:10",
        &[default_route()],
    );
    let cni_path = node.plugins();
    // No checkpoint: nothing says which NICs pods get, so a refusal only warns.
    let report = examine(
        &node.kernel,
        &node.inputs(node.policy(json!({})), cni_path.clone()),
    );
    assert_eq!(check(&report, "nic 0000:5e:00.0").status, Status::Warn);
    assert_eq!(
        check(&report, "state-dir").status,
        Status::Ok,
        "a state dir yet to be made"
    );
    assert!(!node.path("state").exists(), "doctor made the state dir");
    assert!(!report.has_failures(), "{}", report.text());

    let allowed = node.policy(json!({"allowDefaultRouteDevice": true}));
    let report = examine(&node.kernel, &node.inputs(allowed, cni_path));
    let c = check(&report, "nic 0000:5e:00.0");
    assert_eq!(c.status, Status::Ok);
    assert!(c.detail.contains("ADD would accept it"), "{}", c.detail);
}

#[test]
fn a_broken_node_fails_where_pods_would() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the policy file must be root's");
        return;
    }
    let node = Node::new();
    node.nic("0000:5e:00.1", "n1", "02:00:00:00:00:11", &[]);
    std::fs::write(node.path("checkpoint"), "{not json").unwrap();
    std::fs::create_dir(node.path("state")).unwrap();
    std::fs::set_permissions(node.path("state"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(node.path("state/c9-net1.json"), b"{\"schema\": 1, \"contai").unwrap();
    let old = node.path("state/.tmp-1-0000");
    std::fs::write(&old, b"").unwrap();
    let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    // A policy whose delegate is nowhere.
    let policy =
        node.policy(json!({"delegates": ["doctor-unit-missing"], "logFile": node.path("state")}));
    let report = examine(&node.kernel, &node.inputs(policy, node.plugins()));
    for (name, status) in [
        ("plugin doctor-unit-missing", Status::Fail),
        ("kubelet checkpoint", Status::Fail),
        ("state-dir temporary files", Status::Warn),
        ("state file c9-net1.json", Status::Warn),
        ("log-file", Status::Fail),
    ] {
        assert_eq!(
            check(&report, name).status,
            status,
            "{name}: {}",
            report.text()
        );
    }
    assert!(check(&report, "kubelet checkpoint")
        .detail
        .contains("cannot be parsed"));
    assert!(check(&report, "state-dir temporary files")
        .detail
        .contains(".tmp-1-0000"));
}

/// The fake kernel with an RDMA subsystem in exclusive mode.
struct WithRdma<'a>(&'a FakeKernel);

impl RdmaSystem for WithRdma<'_> {
    fn netns_mode(&self) -> crate::error::Result<Option<NetnsMode>> {
        Ok(Some(NetnsMode::Exclusive))
    }
    fn move_device(&self, name: &str, _: std::os::fd::RawFd) -> crate::error::Result<()> {
        panic!("doctor moved {name}")
    }
}

impl Kernel for WithRdma<'_> {
    fn host(&self) -> crate::error::Result<&dyn Links> {
        self.0.host()
    }
    fn links_in(&self, netns: &Path) -> crate::error::Result<Box<dyn Links>> {
        Kernel::links_in(self.0, netns)
    }
    fn netns_exists(&self, netns: &Path) -> bool {
        self.0.netns_exists(netns)
    }
    fn check_pod_netns(&self, netns: &Path) -> crate::error::Result<()> {
        self.0.check_pod_netns(netns)
    }
    fn host_netns_fd(&self) -> crate::error::Result<u32> {
        self.0.host_netns_fd()
    }
    fn sysfs(&self) -> &Sysfs {
        self.0.sysfs()
    }
    fn rdma(&self) -> &dyn RdmaSystem {
        self
    }
}

#[test]
fn rdma_devices_are_shown_on_their_nics() {
    let node = Node::new();
    node.nic("0000:5e:00.0", "enp94s0f0", "02:00:00:00:00:10", &[]);
    let ib = node.path("sys/class/infiniband/mlx5_0");
    std::fs::create_dir_all(&ib).unwrap();
    std::os::unix::fs::symlink(
        node.path("sys/bus/pci/devices/0000:5e:00.0"),
        ib.join("device"),
    )
    .unwrap();
    let mut report = Report::default();
    rdma::check(&mut report, &WithRdma(&node.kernel));
    assert_eq!(report.checks[0].status, Status::Ok);
    assert_eq!(
        report.checks[0].detail,
        "netns mode exclusive: ADD moves a NIC's RDMA devices with it; devices: mlx5_0 on \
         0000:5e:00.0 (enp94s0f0)"
    );
    let mut none = Report::default();
    rdma::check(&mut none, &Node::new().kernel);
    assert_eq!(
        none.checks[0].detail,
        "no RDMA subsystem: nothing moves with a NIC"
    );
}
