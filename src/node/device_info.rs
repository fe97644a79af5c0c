//! Device information for the workload (Kubernetes Network Plumbing WG device-info spec,
//! v1.1.0). When Multus passes `runtimeConfig.CNIDeviceInfoFile` (for a delegate declaring the
//! `CNIDeviceInfoFile` capability) and the file does not exist yet, ADD writes which PCI
//! function, RDMA device and physical function the pod got; Multus publishes it in the pod's
//! `network-status` annotation and removes the file on DEL. A file already there is the
//! device plugin's and is left alone. Only the spec's directory is ever written: the config
//! parse refuses any other path (code 7) before ADD does anything, and `publish` checks it
//! again so that no caller can write elsewhere.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use serde_json::{json, Value};

use crate::device_id::PciAddress;
use crate::host::device::Sysfs;
use crate::{log_debug, log_error, log_info};

/// The only directory device-info files are written in.
pub const DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";
/// The same directory where `/var/run` is `/run`, as spelled by runtimes that say `/run`.
const DEVICE_INFO_DIR_UNDER_RUN: &str = "/run/k8s.cni.cncf.io/devinfo/cni";

/// The spec's document for a PCI function.
pub fn document(pci: &PciAddress, rdma_devices: &[String], pf: Option<&PciAddress>) -> Value {
    let mut info = json!({ "pci-address": pci.as_str() });
    if let Some(rdma) = rdma_devices.first() {
        info["rdma-device"] = Value::String(rdma.clone());
    }
    if let Some(pf) = pf {
        info["pf-pci-address"] = Value::String(pf.as_str().to_owned());
    }
    json!({ "type": "pci", "version": "1.1.0", "pci": info })
}

/// Whether `path` is a file directly inside [`DEVICE_INFO_DIR`] (no `..`, no deeper).
pub fn is_allowed(path: &Path) -> bool {
    let dir = path.parent();
    (dir == Some(Path::new(DEVICE_INFO_DIR)) || dir == Some(Path::new(DEVICE_INFO_DIR_UNDER_RUN)))
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Writes the device information for `pci` to `path` unless the file exists. Never fails an
/// ADD: what cannot be written is logged.
pub fn publish(path: &Path, sysfs: &Sysfs, pci: &PciAddress, rdma_devices: &[String]) {
    if !is_allowed(path) {
        log_error!(
            "runtimeConfig.CNIDeviceInfoFile {} is not in {DEVICE_INFO_DIR}; not written",
            path.display()
        );
        return;
    }
    let doc = document(pci, rdma_devices, sysfs.physfn_of(pci).as_ref());
    match write_new(path, &doc) {
        Ok(true) => log_info!("device information for {pci} written to {}", path.display()),
        Ok(false) => log_debug!(
            "{} exists (the device plugin's); left alone",
            path.display()
        ),
        Err(e) => log_error!(
            "could not write device information to {}: {e}",
            path.display()
        ),
    }
}

/// Creates `path` with `doc` unless it exists (`false` then), never through a symlink.
fn write_new(path: &Path, doc: &Value) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path);
    match file {
        Ok(mut f) => {
            f.write_all(doc.to_string().as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(s: &str) -> PciAddress {
        PciAddress::parse(s).unwrap()
    }

    #[test]
    fn the_document_follows_the_spec() {
        let vf = pci("0000:5e:02.1");
        assert_eq!(
            document(&vf, &["ionic_3".into()], Some(&pci("0000:5e:00.0"))),
            json!({"type": "pci", "version": "1.1.0", "pci": {
                "pci-address": "0000:5e:02.1", "rdma-device": "ionic_3",
                "pf-pci-address": "0000:5e:00.0"}})
        );
        assert_eq!(
            document(&vf, &[], None),
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:5e:02.1"}})
        );
    }

    #[test]
    fn only_files_directly_in_the_spec_directory_are_allowed() {
        let ok = format!("{DEVICE_INFO_DIR}/net1-abc.json");
        assert!(is_allowed(Path::new(&ok)));
        assert!(is_allowed(Path::new(
            "/run/k8s.cni.cncf.io/devinfo/cni/x.json"
        )));
        // `.` components are the same file.
        assert!(is_allowed(Path::new(&format!(
            "{DEVICE_INFO_DIR}/./x.json"
        ))));
        for bad in [
            "/etc/cron.d/x".to_owned(),
            format!("{DEVICE_INFO_DIR}/../../../etc/x"),
            format!("{DEVICE_INFO_DIR}/sub/x.json"),
            "relative.json".to_owned(),
        ] {
            assert!(!is_allowed(Path::new(&bad)), "{bad}");
        }
    }
}
