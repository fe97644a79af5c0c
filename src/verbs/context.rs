//! What every per-attachment operation works from: the runtime's environment and the
//! parsed network config.

use crate::cni::{CniVersion, Environment};
use crate::config::NetConf;
use crate::device_id::PciAddress;
use crate::host::delegate::Delegate;
use crate::host::snapshot::HostInterface;
use crate::node::state::{AttachmentState, PodRef, SCHEMA_VERSION};

pub struct Context {
    pub env: Environment,
    pub conf: NetConf,
}

impl Context {
    /// The spec version the config asked for (results and errors are written in it).
    pub fn version(&self) -> CniVersion {
        self.conf.cni_version
    }

    /// The delegate for giving a device back (DEL, GC, a stale claim's repair, `restore`):
    /// without host-device a device that is already on the host still comes back.
    pub fn give_back_delegate(&self) -> Option<Delegate> {
        Delegate::find_for_give_back(&self.conf.delegate, &self.env.path)
    }

    /// The state of this attachment, now, for `host` (as captured) at `pci_address`: the
    /// pod side under `CNI_IFNAME` until the caller says otherwise.
    pub fn new_attachment(
        &self,
        host: HostInterface,
        pci_address: Option<PciAddress>,
    ) -> AttachmentState {
        let (env, conf) = (&self.env, &self.conf);
        AttachmentState {
            schema: SCHEMA_VERSION,
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            network: conf.name.clone(),
            cni_version: conf.cni_version.as_str().to_owned(),
            netns: env.netns.clone(),
            selector: conf.selector.clone(),
            pci_address,
            host,
            pod_ifname: env.ifname.clone(),
            staging_name: None,
            rdma_devices: Vec::new(),
            userspace_driver: None,
            adopted_vendor_entry: false,
            pod: PodRef {
                namespace: env.arg("K8S_POD_NAMESPACE").map(str::to_owned),
                name: env.arg("K8S_POD_NAME").map(str::to_owned),
                uid: env.arg("K8S_POD_UID").map(str::to_owned),
            },
            created: crate::log::timestamp(),
        }
    }
}
