//! The names a link carries from one network namespace into another.
//!
//! The kernel refuses to move a link into a namespace where its name or one of its
//! alternative names is already taken (EEXIST), and a rename to a taken name. The host is
//! shared: every pod's first secondary network is `net1`, so on a busy node every NIC in a
//! pod answers to `net1`, and several come home at the same moment. A name free on the host
//! now may be taken the next instant, so nothing here asks first whether a name is free:
//! a name only the pod may carry is taken off while the link is still in the pod (a
//! namespace no other attachment changes), and a move or rename refused with EEXIST is
//! answered by taking the clashing name off, or by the next candidate name.

use crate::error::Error;
use crate::host::netlink::{is_exists, Link, LinkChange, Links};
use crate::log_info;

type Result<T> = std::result::Result<T, Error>;

/// How many temporary names after the first one a rename tries.
const MORE_TEMPORARY_NAMES: u32 = 9;

/// Temporary names for the link of index `ifindex`, most likely free first: `ahd<ifindex>`,
/// then `ahd<ifindex>-1` to `ahd<ifindex>-9` (at most 15 bytes, as a link name must be).
pub fn temporary_names(ifindex: i32) -> impl Iterator<Item = String> {
    std::iter::once(format!("ahd{ifindex}"))
        .chain((1..=MORE_TEMPORARY_NAMES).map(move |n| format!("ahd{ifindex}-{n}")))
}

/// Renames link `index` (down: a rename needs it) to the first of `candidates` its
/// namespace lets it have. The rename itself is the test: a name taken (EEXIST), even a
/// moment ago by another process, only means the next candidate. `before_each` runs before
/// every attempt with the name about to be tried (ADD records it in the state first).
/// Returns the name given.
pub fn rename_to_first_free(
    links: &dyn Links,
    index: i32,
    candidates: impl IntoIterator<Item = String>,
    mut before_each: impl FnMut(&str) -> Result<()>,
) -> Result<String> {
    let mut tried = Vec::new();
    let mut last = None;
    for name in candidates {
        before_each(&name)?;
        let change = LinkChange {
            name: Some(name.clone()),
            ..LinkChange::default()
        };
        match links.set_link(index, &change) {
            Ok(()) => return Ok(name),
            Err(e) if is_exists(&e) => {
                tried.push(name);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let link = links
        .link_by_index(index)
        .ok()
        .flatten()
        .map(|l| l.name)
        .unwrap_or_else(|| format!("the interface with index {index}"));
    let refused = last.unwrap_or_else(|| Error::netlink("renaming", None));
    Err(refused
        .while_doing(format!("renaming {link}"))
        .because(format!("every name tried is taken ({})", tried.join(", "))))
}

/// Moves `link` out of `pod` into the host (`host`, the namespace of `host_fd`), down
/// (a link arrives down anyway, and a rename needs it down).
///
/// The host sees none of the names the pod gave it: every alternative name but its own
/// (`own_altnames`, those it had on the host) is taken off in the pod, in one request (a
/// tenant with `CAP_NET_ADMIN` in its netns may have added any, say a name the node
/// creates later, or another NIC's host name). `pod_only` is the name the pod gave it
/// (`CNI_IFNAME`): as the link's kernel name the link is renamed in the pod to
/// `home_name` (or a temporary name, if the pod has that one).
/// If the host still refuses the link (EEXIST: a link there has one of its names, say one
/// that came home a moment ago), the names the host has are taken off in the pod and the
/// move is tried once more.
pub fn move_to_host(
    pod: &dyn Links,
    host: &dyn Links,
    host_fd: u32,
    link: &Link,
    own_altnames: &[String],
    pod_only: Option<&str>,
    home_name: &str,
) -> Result<()> {
    pod.set_down(link.index)?;
    shed_pod_names(pod, link, own_altnames, pod_only, home_name)?;
    match move_link(pod, link.index, host_fd) {
        Err(e) if is_exists(&e) => {
            let shed = shed_names_the_host_has(pod, host, link.index)?;
            log_info!(
                "the host refused {} ({e}); took {} off it in the pod and moving it again",
                link.name,
                if shed.is_empty() {
                    "nothing".to_owned()
                } else {
                    shed.join(", ")
                }
            );
            move_link(pod, link.index, host_fd)
        }
        moved => moved,
    }
}

fn move_link(links: &dyn Links, index: i32, netns_fd: u32) -> Result<()> {
    links.set_link(
        index,
        &LinkChange {
            netns_fd: Some(netns_fd),
            ..LinkChange::default()
        },
    )
}

/// Takes the names the pod gave `link` (down) off it in the pod: every alternative name
/// not among `own_altnames` goes, a kernel name equal to `pod_only` is replaced by
/// `home_name` or, if the pod has that, a temporary name.
fn shed_pod_names(
    pod: &dyn Links,
    link: &Link,
    own_altnames: &[String],
    pod_only: Option<&str>,
    home_name: &str,
) -> Result<()> {
    let given = altnames_not_in(link, own_altnames);
    if !given.is_empty() {
        pod.del_altnames(link.index, &given)?;
    }
    match pod_only {
        Some(name) if link.name == name && home_name != name => {
            let home = std::iter::once(home_name.to_owned());
            rename_to_first_free(
                pod,
                link.index,
                home.chain(temporary_names(link.index)),
                |_| Ok(()),
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// The alternative names `link` carries that are not among `own`: the ones given to it
/// since it left the host.
pub fn altnames_not_in(link: &Link, own: &[String]) -> Vec<String> {
    link.altnames
        .iter()
        .filter(|a| !own.contains(a))
        .cloned()
        .collect()
}

/// After the host refused link `index`: takes off, in the pod, each of its names the host
/// has (alternative names are removed, a kernel name is replaced by a temporary name the
/// host does not show). Asking the host is only a hint here, the move that follows is
/// the test. Returns the names taken off.
fn shed_names_the_host_has(pod: &dyn Links, host: &dyn Links, index: i32) -> Result<Vec<String>> {
    let Some(link) = pod.link_by_index(index)? else {
        return Ok(Vec::new());
    };
    let mut shed = Vec::new();
    for alt in &link.altnames {
        if host.link_by_name(alt)?.is_some() {
            pod.del_altname(index, alt)?;
            shed.push(alt.clone());
        }
    }
    if host.link_by_name(&link.name)?.is_some() {
        let free_on_host = |n: &String| !matches!(host.link_by_name(n), Ok(Some(_)));
        let candidates = temporary_names(index).filter(free_on_host);
        rename_to_first_free(pod, index, candidates, |_| Ok(()))?;
        shed.push(link.name.clone());
    }
    Ok(shed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::kernel::fake::{FakeKernel, HOST};
    use crate::host::kernel::Kernel;

    const POD: &str = "/pod";

    fn world() -> (tempfile::TempDir, FakeKernel) {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(dir.path());
        kernel.add_netns(POD);
        (dir, kernel)
    }

    /// Moves link `name` home, `own` being the alternative names it had on the host.
    fn move_home(
        kernel: &FakeKernel,
        name: &str,
        own: &[&str],
        pod_only: Option<&str>,
    ) -> Result<()> {
        let pod = kernel.in_netns_for_tests(POD);
        let link = pod.link_by_name(name).unwrap().unwrap();
        let fd = kernel.host_netns_fd().unwrap();
        let own: Vec<String> = own.iter().map(|a| a.to_string()).collect();
        move_to_host(
            &pod,
            kernel.host().unwrap(),
            fd,
            &link,
            &own,
            pod_only,
            "enp1s0",
        )
    }

    #[test]
    fn temporary_names_fit_a_link_name() {
        let names: Vec<String> = temporary_names(i32::MAX).collect();
        assert_eq!(names[0], "ahd2147483647");
        assert_eq!(names.len(), 10);
        assert!(names.iter().all(|n| n.len() <= 15), "{names:?}");
    }

    #[test]
    fn a_rename_to_a_taken_name_takes_the_next_candidate() {
        let (_dir, kernel) = world();
        let index = kernel.add_link(HOST, "enp1s0", "02:00:00:00:00:01", &[], &[]);
        kernel.add_link(HOST, "ahd9", "02:00:00:00:00:02", &[], &[]);
        let mut announced = Vec::new();
        let given = rename_to_first_free(kernel.host().unwrap(), index, temporary_names(9), |n| {
            announced.push(n.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(given, "ahd9-1");
        assert_eq!(
            announced,
            ["ahd9", "ahd9-1"],
            "each name announced before it is tried"
        );
        assert!(kernel.link(HOST, "ahd9-1").is_some());
    }

    #[test]
    fn the_pods_name_goes_inside_the_pod_before_the_move() {
        let (_dir, kernel) = world();
        let index = kernel.add_link(POD, "enp1s0", "02:00:00:00:00:01", &[], &[]);
        kernel
            .in_netns_for_tests(POD)
            .add_altname("enp1s0", "net1")
            .unwrap();
        // Another NIC on the host answers to net1 already.
        let other = kernel.add_link(HOST, "enp2s0", "02:00:00:00:00:02", &[], &[]);
        kernel
            .in_netns_for_tests(HOST)
            .add_altname("enp2s0", "net1")
            .unwrap();
        let before = kernel.journal().len();

        move_home(&kernel, "enp1s0", &[], Some("net1")).unwrap();

        assert_eq!(
            kernel.journal()[before..],
            [
                format!("{POD}: set #{index} down"),
                format!("{POD}: altname #{index} -net1"),
                format!("{POD}: set #{index} netns=host"),
            ]
        );
        let home = kernel.link(HOST, "enp1s0").unwrap().link;
        assert!(home.altnames.is_empty());
        assert_eq!(kernel.link(HOST, "enp2s0").unwrap().link.index, other);
    }

    #[test]
    fn every_alternative_name_the_pod_gave_goes_in_one_request_and_its_own_stay() {
        let (_dir, kernel) = world();
        let index = kernel.add_link(POD, "enp1s0", "02:00:00:00:00:01", &[], &[]);
        let pod = kernel.in_netns_for_tests(POD);
        for alt in ["enp0s1f1np1", "net1", "cni0", "enp2s0"] {
            pod.add_altname("enp1s0", alt).unwrap();
        }
        let before = kernel.journal().len();

        move_home(&kernel, "enp1s0", &["enp0s1f1np1"], Some("net1")).unwrap();

        assert_eq!(
            kernel.journal()[before..],
            [
                format!("{POD}: set #{index} down"),
                format!("{POD}: altname #{index} -net1 -cni0 -enp2s0"),
                format!("{POD}: set #{index} netns=host"),
            ]
        );
        let home = kernel.link(HOST, "enp1s0").unwrap().link;
        assert_eq!(home.altnames, ["enp0s1f1np1"]);
    }

    #[test]
    fn a_kernel_name_only_the_pod_may_have_is_replaced_by_the_home_name_in_the_pod() {
        let (_dir, kernel) = world();
        let index = kernel.add_link(POD, "net1", "02:00:00:00:00:01", &[], &[]);
        // A NIC the kernel handed back from a dead pod is still called net1 on the host.
        kernel.add_link(HOST, "net1", "02:00:00:00:00:02", &[], &[]);

        move_home(&kernel, "net1", &[], Some("net1")).unwrap();

        let home = kernel
            .link(HOST, "enp1s0")
            .expect("home under its home name");
        assert_eq!(home.link.index, index);
        assert!(kernel
            .journal()
            .contains(&format!("{POD}: set #{index} name=enp1s0")));
    }

    #[test]
    fn a_move_refused_for_a_name_the_host_has_sheds_that_name_and_is_tried_once_more() {
        let (_dir, kernel) = world();
        let index = kernel.add_link(POD, "enp1s0", "02:00:00:00:00:01", &[], &[]);
        let pod = kernel.in_netns_for_tests(POD);
        pod.add_altname("enp1s0", "net1").unwrap();
        pod.add_altname("enp1s0", "db0").unwrap();
        // Right before our move, another NIC comes home answering to db0.
        kernel.arrives_before_next_move("enp2s0", "02:00:00:00:00:02", &["db0"]);
        let before = kernel.journal().len();

        // db0 is its own (it had it on the host): it stays until the host refuses it.
        move_home(&kernel, "enp1s0", &["db0"], Some("net1")).unwrap();

        assert_eq!(
            kernel.journal()[before..],
            [
                format!("{POD}: set #{index} down"),
                format!("{POD}: altname #{index} -net1"),
                format!("{POD}: set #{index} netns=host"),
                "host: #1000 enp2s0 arrives".to_owned(),
                format!("{POD}: refused #{index}: db0 is taken on the host"),
                format!("{POD}: altname #{index} -db0"),
                format!("{POD}: set #{index} netns=host"),
            ]
        );
        assert!(kernel
            .link(HOST, "enp1s0")
            .unwrap()
            .link
            .altnames
            .is_empty());
    }

    /// Against the running kernel (root only), two scratch namespaces playing pod and host:
    /// the kernel refuses a link whose alternative name the target has, and the move goes
    /// through once that name is taken off in the pod.
    #[test]
    fn this_kernel_refuses_a_clashing_alternative_name_and_the_retry_moves_the_link() {
        use crate::host::kernel::LiveKernel;
        use std::os::fd::AsRawFd;
        let (Some(pod_ns), Some(host_ns)) = (
            crate::host::testing::ScratchNetns::new("mvpod"),
            crate::host::testing::ScratchNetns::new("mvhost"),
        ) else {
            return;
        };
        assert!(pod_ns.ip(&["link", "add", "a0", "type", "veth", "peer", "name", "a1"]));
        assert!(pod_ns.ip(&["link", "property", "add", "dev", "a0", "altname", "net9"]));
        assert!(host_ns.ip(&["link", "add", "b0", "type", "veth", "peer", "name", "b1"]));
        assert!(host_ns.ip(&["link", "property", "add", "dev", "b0", "altname", "net9"]));
        let kernel = LiveKernel::new();
        let pod = kernel.links_in(&pod_ns.path()).unwrap();
        let host = kernel.links_in(&host_ns.path()).unwrap();
        let host_fd = std::fs::File::open(host_ns.path()).unwrap();
        let a0 = pod.link_by_name("a0").unwrap().unwrap();
        let refused = move_link(&*pod, a0.index, host_fd.as_raw_fd() as u32).unwrap_err();
        assert!(is_exists(&refused), "{refused}");

        // net9 is its own: only the host's refusal takes it off.
        let own = ["net9".to_owned()];
        move_to_host(
            &*pod,
            &*host,
            host_fd.as_raw_fd() as u32,
            &a0,
            &own,
            None,
            "a0",
        )
        .unwrap();

        let home = host.link_by_name("a0").unwrap().expect("a0 moved");
        assert!(home.altnames.is_empty(), "{:?}", home.altnames);
        assert_eq!(host.link_by_name("net9").unwrap().unwrap().name, "b0");
    }

    #[test]
    fn a_second_refusal_is_an_error_not_a_loop() {
        let (_dir, kernel) = world();
        kernel.add_link(POD, "enp1s0", "02:00:00:00:00:01", &[], &[]);
        let pod = kernel.in_netns_for_tests(POD);
        pod.add_altname("enp1s0", "db0").unwrap();
        pod.add_altname("enp1s0", "db1").unwrap();
        kernel.arrives_before_next_move("enp2s0", "02:00:00:00:00:02", &["db0"]);
        kernel.arrives_before_next_move("enp3s0", "02:00:00:00:00:03", &["db1"]);

        let err = move_home(&kernel, "enp1s0", &["db0", "db1"], None).unwrap_err();

        assert!(is_exists(&err), "{err}");
        let attempts = kernel
            .journal()
            .iter()
            .filter(|l| l.ends_with("netns=host"))
            .count();
        assert_eq!(attempts, 2, "{:#?}", kernel.journal());
        assert!(kernel.link(POD, "enp1s0").is_some(), "still in the pod");
    }
}
