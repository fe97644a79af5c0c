//! The node as doctor sees it: a [`Kernel`] that only reads. The host's links and routes
//! are dumped once, up front (one request for the links, one per routing table), and every
//! question about them is answered from that copy, so the cost does not grow with the
//! number of NICs or attachments. Every change (a link set, an address or route added, a
//! move, an RDMA move) is refused: whatever code doctor reuses, it cannot change the node.

use std::os::fd::RawFd;
use std::path::Path;

use crate::device_id::MacAddress;
use crate::error::Error;
use crate::host::device::Sysfs;
use crate::host::kernel::Kernel;
use crate::host::netlink::{Address, Link, LinkChange, Links, Route, RouteVia};
use crate::host::rdma::{NetnsMode, RdmaSystem};

type Result<T> = std::result::Result<T, Error>;

/// What every change asked of the view answers.
fn refused(what: &str) -> Error {
    Error::netlink(what, None).because("doctor changes nothing on the node")
}

pub(super) struct NodeView<'a> {
    kernel: &'a dyn Kernel,
    host: HostCopy<'a>,
    rdma: ReadOnlyRdma<'a>,
}

impl<'a> NodeView<'a> {
    /// Dumps the host's links and routes of `kernel` once.
    pub(super) fn new(kernel: &'a dyn Kernel) -> Result<NodeView<'a>> {
        let live = kernel.host()?;
        let links = live.links()?;
        let routes = live.all_routes()?;
        // Routes that name only a nexthop object do not say which links they go through:
        // then the links are asked one by one, as ADD asks.
        let attributed = routes.iter().all(|r| !r.links.is_empty());
        Ok(NodeView {
            kernel,
            host: HostCopy {
                links,
                routes,
                live: (!attributed).then_some(live),
            },
            rdma: ReadOnlyRdma(kernel.rdma()),
        })
    }
}

impl Kernel for NodeView<'_> {
    fn host(&self) -> Result<&dyn Links> {
        Ok(&self.host)
    }

    fn links_in(&self, netns: &Path) -> Result<Box<dyn Links>> {
        Ok(Box::new(ReadOnly(self.kernel.links_in(netns)?)))
    }

    fn netns_exists(&self, netns: &Path) -> bool {
        self.kernel.netns_exists(netns)
    }

    fn check_pod_netns(&self, netns: &Path) -> Result<()> {
        self.kernel.check_pod_netns(netns)
    }

    fn host_netns_fd(&self) -> Result<u32> {
        Err(refused("open the host's netns to move a link into it"))
    }

    fn sysfs(&self) -> &Sysfs {
        self.kernel.sysfs()
    }

    fn rdma(&self) -> &dyn RdmaSystem {
        &self.rdma
    }
}

/// The host's links and routes as dumped once.
struct HostCopy<'a> {
    links: Vec<Link>,
    routes: Vec<RouteVia>,
    /// The live host, when some routes could not be tied to their links from the dump.
    live: Option<&'a dyn Links>,
}

impl Links for HostCopy<'_> {
    fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        Ok(self
            .links
            .iter()
            .find(|l| l.name == name || l.altnames.iter().any(|a| a == name))
            .cloned())
    }

    fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        Ok(self.links.iter().find(|l| l.index == index).cloned())
    }

    fn links(&self) -> Result<Vec<Link>> {
        Ok(self.links.clone())
    }

    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        Err(
            Error::netlink(format!("reading the addresses of interface #{index}"), None)
                .because("doctor reads no addresses"),
        )
    }

    /// The routes through link `index`; one that goes through other links too is shared,
    /// as the kernel's filtered dump reports it.
    fn routes(&self, index: i32) -> Result<Vec<Route>> {
        if let Some(live) = self.live {
            return live.routes(index);
        }
        Ok(self
            .routes
            .iter()
            .filter(|r| r.links.contains(&index))
            .map(|r| Route {
                shared: r.route.shared || r.links.len() > 1,
                ..r.route.clone()
            })
            .collect())
    }

    fn all_routes(&self) -> Result<Vec<RouteVia>> {
        Ok(self.routes.clone())
    }

    fn link_by_mac(&self, mac: &MacAddress) -> Result<Option<Link>> {
        // The trait's rule (a port before its bridge), over the copy.
        let with_mac: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| l.mac.as_ref() == Some(mac))
            .collect();
        let is_master = |l: &Link| with_mac.iter().any(|o| o.master == Some(l.index));
        Ok(with_mac
            .iter()
            .find(|l| l.parent_device.is_some() && !is_master(l))
            .or_else(|| with_mac.iter().find(|l| !is_master(l)))
            .or_else(|| with_mac.first())
            .map(|l| (*l).clone()))
    }

    fn set_link(&self, index: i32, _: &LinkChange) -> Result<()> {
        Err(refused(&format!("changing interface #{index}")))
    }
    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        Err(refused(&format!(
            "adding {} to interface #{index}",
            a.cidr()
        )))
    }
    fn add_route(&self, index: i32, r: &Route) -> Result<()> {
        Err(refused(&format!(
            "add route {} via link #{index}",
            r.dst_cidr()
        )))
    }
    fn add_altname(&self, link_name: &str, altname: &str) -> Result<()> {
        Err(refused(&format!("name {link_name} {altname}")))
    }
    fn del_altname(&self, index: i32, altname: &str) -> Result<()> {
        Err(refused(&format!("take {altname} off link #{index}")))
    }
    fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()> {
        Err(refused(&format!("take {altname} off {link_name}")))
    }
}

/// A pod's links, read live (one handle per pod asked about), never changed.
struct ReadOnly(Box<dyn Links>);

impl Links for ReadOnly {
    fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        self.0.link_by_name(name)
    }
    fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        self.0.link_by_index(index)
    }
    fn links(&self) -> Result<Vec<Link>> {
        self.0.links()
    }
    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        self.0.addresses(index)
    }
    fn routes(&self, index: i32) -> Result<Vec<Route>> {
        self.0.routes(index)
    }
    fn set_link(&self, index: i32, _: &LinkChange) -> Result<()> {
        Err(refused(&format!("change link #{index} in a pod")))
    }
    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        Err(refused(&format!(
            "add {} to link #{index} in a pod",
            a.cidr()
        )))
    }
    fn add_route(&self, index: i32, r: &Route) -> Result<()> {
        Err(refused(&format!(
            "add route {} via link #{index} in a pod",
            r.dst_cidr()
        )))
    }
    fn add_altname(&self, link_name: &str, altname: &str) -> Result<()> {
        Err(refused(&format!("name {link_name} {altname} in a pod")))
    }
    fn del_altname(&self, index: i32, altname: &str) -> Result<()> {
        Err(refused(&format!(
            "take {altname} off link #{index} in a pod"
        )))
    }
    fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()> {
        Err(refused(&format!("take {altname} off {link_name} in a pod")))
    }
}

struct ReadOnlyRdma<'a>(&'a dyn RdmaSystem);

impl RdmaSystem for ReadOnlyRdma<'_> {
    fn netns_mode(&self) -> Result<Option<NetnsMode>> {
        self.0.netns_mode()
    }
    fn move_device(&self, name: &str, _: RawFd) -> Result<()> {
        Err(refused(&format!("move RDMA device {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::kernel::fake::{FakeKernel, HOST};
    use crate::host::netlink::consts::RT_TABLE_MAIN;

    fn default_route() -> Route {
        Route {
            family: 4,
            dst: None,
            dst_len: 0,
            gateway: Some("192.0.2.1".parse().unwrap()),
            table: RT_TABLE_MAIN,
            protocol: 4,
            scope: 0,
            kind: 1,
            priority: None,
            prefsrc: None,
            shared: false,
        }
    }

    #[test]
    fn answers_from_one_dump_and_refuses_every_change() {
        let sysfs = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(sysfs.path());
        let uplink = kernel.add_link(HOST, "eth0", "02:00:00:00:00:01", &[], &[default_route()]);
        let nic = kernel.add_link(HOST, "enp1s0", "02:00:00:00:00:02", &[], &[]);
        kernel.add_netns("pod");
        let view = NodeView::new(&kernel).unwrap();
        let host = view.host().unwrap();
        assert_eq!(host.link_by_name("enp1s0").unwrap().unwrap().index, nic);
        assert!(host.link_by_name("nope").unwrap().is_none());
        assert_eq!(host.routes(uplink).unwrap(), [default_route()]);
        assert!(host.routes(nic).unwrap().is_empty());
        let mac = MacAddress::parse("02:00:00:00:00:02").unwrap();
        assert_eq!(host.link_by_mac(&mac).unwrap().unwrap().index, nic);

        let down = LinkChange {
            up: Some(false),
            ..LinkChange::default()
        };
        assert!(host.set_link(nic, &down).is_err());
        assert!(host.add_route(nic, &default_route()).is_err());
        assert!(view.host_netns_fd().is_err());
        assert!(view.rdma().move_device("mlx5_0", 3).is_err());
        let pod = view.links_in(Path::new("pod")).unwrap();
        assert!(pod.set_down(1).is_err());
        assert!(kernel.journal().is_empty(), "{:?}", kernel.journal());
    }

    #[test]
    fn a_route_through_several_links_is_shared_by_each() {
        let copy = HostCopy {
            links: Vec::new(),
            routes: vec![RouteVia {
                route: default_route(),
                links: vec![3, 4],
            }],
            live: None,
        };
        let through_3 = copy.routes(3).unwrap();
        assert!(through_3[0].shared && through_3[0].is_default());
        assert_eq!(copy.routes(4).unwrap().len(), 1);
        assert!(copy.routes(5).unwrap().is_empty());
    }
}
