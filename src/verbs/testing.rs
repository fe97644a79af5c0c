//! Fixtures the unit tests of several modules share: addresses, routes, a scripted delegate
//! plugin and a [`Context`] around them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cni::Environment;
use crate::config::NetConf;
use crate::host::netlink::{Address, Route};
use crate::verbs::context::Context;

/// `"192.0.2.10/24"` as a plain global address.
pub fn address(cidr: &str) -> Address {
    Address::from_cidr(cidr).expect("a CIDR")
}

/// An IPv4 unicast route in the main table, as a person would add it.
pub fn route(dst_cidr: &str, gateway: &str) -> Route {
    let (dst, len) = dst_cidr.split_once('/').expect("a CIDR");
    Route {
        family: 4,
        dst: Some(dst.parse().expect("an IP")),
        dst_len: len.parse().expect("a prefix length"),
        gateway: Some(gateway.parse().expect("an IP")),
        table: crate::host::netlink::consts::RT_TABLE_MAIN,
        protocol: 4,
        scope: 0,
        kind: crate::host::netlink::consts::RTN_UNICAST,
        priority: None,
        prefsrc: None,
        shared: false,
    }
}

/// A temp dir with a state dir and a plugin dir holding a scripted `host-device`, which
/// appends `<command> <config>` to `calls` each time it runs.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir(dir.path().join("plugins")).expect("plugin dir");
        Sandbox { dir }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Installs a `host-device` that logs its call, then runs `on_add` / `on_del` (shell).
    pub fn delegate(&self, on_add: &str, on_del: &str) {
        let script = format!(
            "#!/bin/sh\nconf=$(cat)\nprintf '%s %s\\n' \"$CNI_COMMAND\" \"$conf\" >>{calls}\n\
             case $CNI_COMMAND in\nADD) {on_add} ;;\nDEL) {on_del} ;;\nesac\n",
            calls = self.calls_file().display()
        );
        let path = self.dir.path().join("plugins/host-device");
        fs::write(&path, script).expect("write delegate");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod delegate");
    }

    /// Installs a `host-device` that moves the NIC as the real one would, through a
    /// [`crate::host::kernel::fake::FakeKernel`] following [`Sandbox::moves_file`]: ADD moves it
    /// into the pod as `CNI_IFNAME` and prints a result naming it, DEL moves it back.
    pub fn delegate_that_moves(&self) {
        let record = format!(
            "device=$(printf '%s' \"$conf\" | sed -n 's/.*\"device\":\"\\([^\"]*\\)\".*/\\1/p')\n\
             echo \"$CNI_COMMAND $CNI_NETNS $CNI_IFNAME $device\" >>{moves}",
            moves = self.moves_file().display()
        );
        self.delegate(
            &format!(
                "{record}; printf '{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"%s\",\"sandbox\":\"%s\"}}],\"ips\":[{{\"address\":\"192.0.2.10/24\",\"interface\":0}}]}}' \"$CNI_IFNAME\" \"$CNI_NETNS\""
            ),
            &record,
        );
    }

    /// Where [`Sandbox::delegate_that_moves`]'s host-device writes its moves.
    pub fn moves_file(&self) -> PathBuf {
        self.dir.path().join("moves")
    }

    /// Every delegate call so far: (command, the config it was fed).
    pub fn calls(&self) -> Vec<(String, Value)> {
        fs::read_to_string(self.calls_file())
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (cmd, conf) = l.split_once(' ').expect("command and config");
                (
                    cmd.to_owned(),
                    serde_json::from_str(conf).expect("JSON config"),
                )
            })
            .collect()
    }

    /// The context of attachment `c1`/`net1` in pod netns `netns`, with the config `extra`
    /// merged into a minimal one, on a node whose policy puts the state in this sandbox.
    pub fn context(&self, netns: &str, extra: Value) -> Context {
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": "unit",
            "type": "amd-host-device",
        });
        let node = crate::node::policy::NodePolicy {
            state_dir: self.state_dir(),
            kubelet_checkpoint: self.kubelet_checkpoint(),
            ..Default::default()
        };
        conf.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        Context {
            env: Environment {
                container_id: "c1".into(),
                netns: netns.into(),
                ifname: "net1".into(),
                args: String::new(),
                path: vec![self.plugin_dir().to_string_lossy().into_owned()],
            },
            conf: NetConf::parse(conf.to_string().as_bytes(), &node).expect("a valid config"),
        }
    }

    /// Where this sandbox's node keeps kubelet's device checkpoint (absent until written).
    pub fn kubelet_checkpoint(&self) -> PathBuf {
        self.dir.path().join("kubelet_internal_checkpoint")
    }

    fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn calls_file(&self) -> PathBuf {
        self.dir.path().join("calls")
    }

    /// Where a test can keep files of its own.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The state ADD would have saved for `c1`/`net1` after moving `link` (with `addresses`)
/// into pod netns `netns` under `pod_ifname`.
pub fn attachment(
    link: &crate::host::netlink::Link,
    addresses: &[Address],
    netns: &str,
    pod_ifname: &str,
) -> crate::node::state::AttachmentState {
    crate::node::state::AttachmentState {
        schema: crate::node::state::SCHEMA_VERSION,
        container_id: "c1".into(),
        ifname: "net1".into(),
        network: "unit".into(),
        cni_version: "1.0.0".into(),
        netns: netns.into(),
        selector: crate::host::device::Selector {
            device: Some(link.name.clone()),
            ..Default::default()
        },
        pci_address: None,
        host: crate::host::snapshot::HostInterface {
            name: link.name.clone(),
            ifindex: link.index,
            mac: link.mac.clone(),
            mtu: link.mtu,
            up: link.up,
            alias: None,
            addresses: addresses.to_vec(),
            routes: Vec::new(),
            master: None,
            carries_default_route: false,
            altnames: Vec::new(),
            altnames_complete: true,
            identity: Some(crate::host::identity::LinkIdentity::of(link)),
        },
        pod_ifname: pod_ifname.into(),
        staging_name: None,
        rdma_devices: Vec::new(),
        userspace_driver: None,
        adopted_vendor_entry: false,
        pod: Default::default(),
        created: String::new(),
    }
}
