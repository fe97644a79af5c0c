//! How the verbs name a NIC to a person, and tell what went wrong with it. A CNI error's
//! `msg` is read in `kubectl describe pod`: it names the NIC the way its admin knows it (host
//! name and PCI address), not by the name it happens to have in the pod or by an ifindex.

use crate::device_id::PciAddress;
use crate::error::Error;
use crate::host::kernel::Kernel;
use crate::host::netlink::{Link, Links};
use crate::node::state::AttachmentState;

/// `enp94s0f1 (0000:5e:00.1)`: the host name and PCI address, whichever are known.
pub fn nic(host_name: &str, pci: Option<&PciAddress>) -> String {
    match (host_name.is_empty(), pci) {
        (false, Some(pci)) => format!("{host_name} ({pci})"),
        (false, None) => host_name.to_owned(),
        (true, Some(pci)) => format!("the NIC at {pci}"),
        (true, None) => "the NIC".to_owned(),
    }
}

/// The NIC of an attachment, as [`nic`] says it.
pub fn nic_of(state: &AttachmentState) -> String {
    if state.host.name.is_empty() && state.pci_address.is_none() {
        if let Some(mac) = &state.host.mac {
            return format!("the NIC with MAC {mac}");
        }
    }
    nic(&state.host.name, state.pci_address.as_ref())
}

/// The failure `e` of moving `in_pod` (the NIC, as the pod has it) back to the host, told
/// in words: a move the host refuses with "file exists" names the name that clashes, which
/// the host is asked for once the move has failed.
pub fn moving_back_failed(kernel: &dyn Kernel, nic: &str, in_pod: &Link, e: Error) -> Error {
    let clash = match (e.errno(), kernel.host()) {
        (Some(nix::libc::EEXIST), Ok(host)) => name_taken_on_host(host, in_pod),
        _ => None,
    };
    let e = e.while_doing(format!("moving {nic} back to the host"));
    match clash {
        Some(name) => e.because(format!(
            "an interface with the name {name} already exists there"
        )),
        None => e,
    }
}

/// The first name of `in_pod` (its name, then its alternative names) that another link of
/// the host answers to.
fn name_taken_on_host(host: &dyn Links, in_pod: &Link) -> Option<String> {
    std::iter::once(&in_pod.name)
        .chain(&in_pod.altnames)
        .find(|name| matches!(host.link_by_name(name), Ok(Some(l)) if l.index != in_pod.index))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::kernel::fake::{FakeKernel, HOST};
    use crate::host::netlink::LinkChange;

    const POD: &str = "/pod";

    fn pci() -> PciAddress {
        PciAddress::parse("0000:5e:00.1").unwrap()
    }

    #[test]
    fn a_nic_is_named_by_what_is_known_of_it() {
        assert_eq!(nic("enp94s0f1", Some(&pci())), "enp94s0f1 (0000:5e:00.1)");
        assert_eq!(nic("enp94s0f1", None), "enp94s0f1");
        assert_eq!(nic("", Some(&pci())), "the NIC at 0000:5e:00.1");
        assert_eq!(nic("", None), "the NIC");
    }

    /// The NIC is `net1` in the pod and the host has a `net1` of its own: the kernel refuses
    /// the move, and the message says so in words, the errno left to the details.
    fn refused_move(altname_clash: bool) -> Error {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(dir.path());
        kernel.add_netns(POD);
        let nic = kernel.add_link(POD, "net1", "02:00:00:00:00:01", &[], &[]);
        let other = if altname_clash { "enp1s0" } else { "net1" };
        kernel.add_link(HOST, other, "02:00:00:00:00:99", &[], &[]);
        let pod = kernel.in_netns_for_tests(POD);
        if altname_clash {
            pod.add_altname("net1", "enp1s0").unwrap();
        }
        let in_pod = pod.link_by_index(nic).unwrap().unwrap();
        let move_out = LinkChange {
            netns_fd: Some(kernel.host_netns_fd().unwrap()),
            ..LinkChange::default()
        };
        let e = pod.set_link(nic, &move_out).unwrap_err();
        moving_back_failed(&kernel, "enp94s0f1 (0000:5e:00.1)", &in_pod, e)
    }

    #[test]
    fn a_refused_move_back_names_the_name_the_host_already_has() {
        let e = refused_move(false);
        assert_eq!(
            e.to_string(),
            "moving enp94s0f1 (0000:5e:00.1) back to the host: an interface with the name \
             net1 already exists there"
        );
        assert_eq!(e.code() as u32, 102);
        let details = e.details();
        assert!(
            details.contains("moving net1 to another network namespace"),
            "{details}"
        );
        assert!(
            details.contains("errno 17 (EEXIST: File exists)"),
            "{details}"
        );

        let e = refused_move(true);
        assert!(
            e.to_string()
                .ends_with("an interface with the name enp1s0 already exists there"),
            "{e}"
        );
    }

    #[test]
    fn a_move_back_refused_for_another_reason_keeps_the_kernels_words() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(dir.path());
        let in_pod = Link {
            index: 7,
            name: "net1".into(),
            ..Link::default()
        };
        let e = Error::netlink("changing interface #7", Some(nix::libc::EPERM));
        let e = moving_back_failed(&kernel, "enp1s0", &in_pod, e);
        assert_eq!(
            e.to_string(),
            "moving enp1s0 back to the host: operation not permitted"
        );
    }
}
