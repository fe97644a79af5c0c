//! An in-memory kernel for unit tests: named network namespaces holding links with their
//! addresses and routes, and a journal of every change, in order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Kernel, Result};
use crate::device_id::MacAddress;
use crate::error::Error;
use crate::host::device::Sysfs;
use crate::host::netlink::{Address, Link, LinkChange, Links, Route};
use crate::host::rdma::{NetnsMode, RdmaSystem};

mod bound;
use bound::{errno, Bound};

/// The namespace the plugin runs in.
pub const HOST: &str = "host";
/// What [`Kernel::host_netns_fd`] answers: moving a link to it moves it to [`HOST`].
const HOST_NETNS_FD: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct FakeLink {
    pub link: Link,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

pub struct FakeKernel {
    world: Rc<World>,
    host: Bound,
    sysfs: Sysfs,
}

/// Every namespace and the journal, shared by the handles on them.
#[derive(Default)]
struct World {
    namespaces: RefCell<BTreeMap<String, Vec<FakeLink>>>,
    journal: RefCell<Vec<String>>,
    /// A file a scripted host-device writes its moves to, and how many are applied.
    host_device: RefCell<Option<(PathBuf, usize)>>,
    /// Links that come home to the host from elsewhere right before the next attempts to
    /// move a link there, one per attempt: another NIC's DEL racing ours.
    arrivals: RefCell<Vec<FakeLink>>,
}

impl FakeKernel {
    /// A host namespace with no links; `sysfs_root` is the sysfs the plugin reads.
    pub fn new(sysfs_root: &Path) -> FakeKernel {
        let world = Rc::new(World::default());
        world
            .namespaces
            .borrow_mut()
            .insert(HOST.to_owned(), Vec::new());
        FakeKernel {
            host: Bound {
                world: world.clone(),
                ns: HOST.to_owned(),
            },
            world,
            sysfs: Sysfs::new(sysfs_root),
        }
    }

    /// Creates the (empty) network namespace `name`, e.g. a pod's netns path.
    pub fn add_netns(&self, name: &str) {
        self.world
            .namespaces
            .borrow_mut()
            .insert(name.to_owned(), Vec::new());
    }

    /// Removes namespace `name` and every link in it (a pod that is gone).
    pub fn remove_netns(&self, name: &str) {
        self.world.namespaces.borrow_mut().remove(name);
    }

    /// Puts an up link with MTU 1500 into namespace `ns`; its index is unique across
    /// namespaces. Returns the index.
    pub fn add_link(
        &self,
        ns: &str,
        name: &str,
        mac: &str,
        addresses: &[Address],
        routes: &[Route],
    ) -> i32 {
        let mut namespaces = self.world.namespaces.borrow_mut();
        let index = 2 + namespaces.values().map(Vec::len).sum::<usize>() as i32;
        let link = Link {
            index,
            name: name.to_owned(),
            mac: Some(MacAddress::parse(mac).expect("a test MAC")),
            mtu: 1500,
            up: true,
            ..Link::default()
        };
        namespaces
            .get_mut(ns)
            .expect("namespace added")
            .push(FakeLink {
                link,
                addresses: addresses.to_vec(),
                routes: routes.to_vec(),
            });
        index
    }

    /// Plays host-device's part: each `ADD|DEL <netns> <ifname> <device>` line a scripted
    /// host-device appends to `moves` is applied before the next request, as the real one
    /// would have moved the link (ADD: into `<netns>` as `<ifname>`, alias `<device>`, up,
    /// its addresses kept as static IPAM gives them back; DEL: back to the host under its
    /// alias, down, flushed).
    pub fn follow_host_device(&self, moves: &Path) {
        *self.world.host_device.borrow_mut() = Some((moves.to_path_buf(), 0));
    }

    /// Before the next attempt to move a link to the host (ours or host-device's), a down
    /// link `name` with MAC `mac` and alternative names `altnames` arrives there, as another
    /// NIC another DEL is bringing home at that very moment. Queued: one per attempt.
    pub fn arrives_before_next_move(&self, name: &str, mac: &str, altnames: &[&str]) {
        let index = 1000 + self.world.arrivals.borrow().len() as i32;
        let link = Link {
            index,
            name: name.to_owned(),
            mac: Some(MacAddress::parse(mac).expect("a test MAC")),
            mtu: 1500,
            altnames: altnames.iter().map(|a| a.to_string()).collect(),
            ..Link::default()
        };
        self.world.arrivals.borrow_mut().push(FakeLink {
            link,
            addresses: Vec::new(),
            routes: Vec::new(),
        });
    }

    /// Moves link `index` from namespace `from` to `to` as the kernel would (down, without
    /// addresses and routes), outside the journal: what a delegate or the kernel did.
    pub fn move_link(&self, index: i32, from: &str, to: &str) {
        self.world.move_link(from, to, index);
    }

    /// Link `index` of `ns` sits on device `parent` (a PCI address), as the kernel reports
    /// in `IFLA_PARENT_DEV_NAME`.
    pub fn set_parent_device(&self, ns: &str, index: i32, parent: &str) {
        self.world
            .with_link(ns, index, |l| {
                l.link.parent_device = Some(parent.to_owned())
            })
            .expect("link exists");
    }

    /// Changes what the kernel says of link `index` of `ns` beyond what a request sets (its
    /// kind, parent device, where its other end is), as creating it that way would have.
    pub fn edit_link(&self, ns: &str, index: i32, edit: impl FnOnce(&mut Link)) {
        self.world
            .with_link(ns, index, |l| edit(&mut l.link))
            .expect("the link exists");
    }

    /// The link of `ns` called `name`.
    pub fn link(&self, ns: &str, name: &str) -> Option<FakeLink> {
        self.links_in(ns).into_iter().find(|l| l.link.name == name)
    }

    /// A handle on the links of namespace `ns`, outside any operation under test.
    pub fn in_netns_for_tests(&self, ns: &str) -> impl Links {
        Bound {
            world: self.world.clone(),
            ns: ns.to_owned(),
        }
    }

    /// The links of `ns` now.
    pub fn links_in(&self, ns: &str) -> Vec<FakeLink> {
        self.world.links_in(ns)
    }

    /// Every change made so far, as `"<ns>: <what>"` lines, oldest first.
    pub fn journal(&self) -> Vec<String> {
        self.world.journal.borrow().clone()
    }
}

impl Kernel for FakeKernel {
    fn host(&self) -> Result<&dyn Links> {
        self.world.settle();
        Ok(&self.host)
    }

    fn links_in(&self, netns: &Path) -> Result<Box<dyn Links>> {
        // As the live kernel, never the host's own namespace under a pod's name.
        self.check_pod_netns(netns)?;
        let ns = netns.to_string_lossy().into_owned();
        Ok(Box::new(Bound {
            world: self.world.clone(),
            ns,
        }))
    }

    fn netns_exists(&self, netns: &Path) -> bool {
        let ns = netns.to_string_lossy();
        ns != HOST && self.world.namespaces.borrow().contains_key(ns.as_ref())
    }

    fn check_pod_netns(&self, netns: &Path) -> Result<()> {
        if self.netns_exists(netns) {
            return Ok(());
        }
        Err(Error::invalid_env(
            "CNI_NETNS",
            format!("{} is not a pod's network namespace", netns.display()),
        ))
    }

    fn host_netns_fd(&self) -> Result<u32> {
        Ok(HOST_NETNS_FD)
    }

    fn sysfs(&self) -> &Sysfs {
        &self.sysfs
    }

    fn rdma(&self) -> &dyn RdmaSystem {
        &NoRdma
    }
}

/// A kernel without an RDMA subsystem.
struct NoRdma;

impl RdmaSystem for NoRdma {
    fn netns_mode(&self) -> Result<Option<NetnsMode>> {
        Ok(None)
    }
    fn move_device(&self, name: &str, _netns_fd: std::os::fd::RawFd) -> Result<()> {
        panic!("no RDMA subsystem, yet asked to move {name}")
    }
}

impl World {
    /// Applies the moves a scripted host-device made since the last request.
    fn settle(&self) {
        let Some((path, done)) = self.host_device.borrow().clone() else {
            return;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().skip(done).collect();
        for line in &lines {
            let [command, netns, ifname, device] = line.split(' ').collect::<Vec<_>>()[..] else {
                panic!("a host-device move is <command> <netns> <ifname> <device>: {line}");
            };
            self.record("host-device", line.to_string());
            match command {
                "ADD" => self.host_device_add(netns, ifname, device),
                "DEL" => self.host_device_del(netns, ifname),
                other => panic!("host-device does not {other}"),
            }
        }
        *self.host_device.borrow_mut() = Some((path, done + lines.len()));
    }

    fn host_device_add(&self, netns: &str, ifname: &str, device: &str) {
        let Some(link) = self.find(HOST, |l| l.name == device) else {
            return;
        };
        let mut namespaces = self.namespaces.borrow_mut();
        let links = namespaces.get_mut(HOST).expect("the host namespace");
        let at = links
            .iter()
            .position(|l| l.link.index == link.index)
            .expect("found");
        let mut moved = links.remove(at);
        moved.link.name = ifname.to_owned();
        moved.link.alias = Some(device.to_owned());
        moved.link.up = true;
        moved.routes.clear();
        namespaces
            .get_mut(netns)
            .expect("the pod namespace")
            .push(moved);
    }

    /// host-device's DEL: the link goes home under its alias. If the host has that name or
    /// one of the link's alternative names, the kernel refuses the move and host-device
    /// leaves the link in the pod as it was (and fails).
    fn host_device_del(&self, netns: &str, ifname: &str) {
        let Some(link) = self.find(netns, |l| {
            l.name == ifname || l.altnames.iter().any(|a| a == ifname)
        }) else {
            return;
        };
        let alias = link.alias.clone().unwrap_or(link.name.clone());
        if let Some(taken) = self.taken_on_host(&alias, &link) {
            self.record(
                "host-device",
                format!("refused: {taken} is taken on the host"),
            );
            return;
        }
        self.move_link(netns, HOST, link.index);
        self.with_link(HOST, link.index, |l| l.link.name = alias)
            .expect("moved");
    }

    /// The first of `name` and `link`'s alternative names another link of the host has
    /// (after the next arrival, if one is queued): the kernel then refuses the move.
    fn taken_on_host(&self, name: &str, link: &Link) -> Option<String> {
        self.arrive();
        let names = std::iter::once(name).chain(link.altnames.iter().map(String::as_str));
        for n in names {
            let holder = self.find(HOST, |l| {
                l.index != link.index && (l.name == n || l.altnames.iter().any(|a| a == n))
            });
            if holder.is_some() {
                return Some(n.to_owned());
            }
        }
        None
    }

    /// The next queued arrival comes home.
    fn arrive(&self) {
        let mut arrivals = self.arrivals.borrow_mut();
        if arrivals.is_empty() {
            return;
        }
        let link = arrivals.remove(0);
        self.record(
            HOST,
            format!("#{} {} arrives", link.link.index, link.link.name),
        );
        self.namespaces
            .borrow_mut()
            .get_mut(HOST)
            .expect("the host namespace")
            .push(link);
    }

    fn links_in(&self, ns: &str) -> Vec<FakeLink> {
        self.namespaces
            .borrow()
            .get(ns)
            .cloned()
            .unwrap_or_default()
    }

    fn record(&self, ns: &str, what: String) {
        self.journal.borrow_mut().push(format!("{ns}: {what}"));
    }

    fn find(&self, ns: &str, matches: impl Fn(&Link) -> bool) -> Option<Link> {
        self.namespaces
            .borrow()
            .get(ns)?
            .iter()
            .map(|l| &l.link)
            .find(|l| matches(l))
            .cloned()
    }

    fn with_link<T>(&self, ns: &str, index: i32, f: impl FnOnce(&mut FakeLink) -> T) -> Result<T> {
        let mut namespaces = self.namespaces.borrow_mut();
        let link = namespaces
            .get_mut(ns)
            .and_then(|links| links.iter_mut().find(|l| l.link.index == index))
            .ok_or_else(|| {
                errno(
                    nix::libc::ENODEV,
                    &format!("the interface with index {index}"),
                )
            })?;
        Ok(f(link))
    }

    fn set_link(&self, ns: &str, index: i32, change: &LinkChange) -> Result<()> {
        self.record(ns, describe(index, change));
        self.refusal(ns, index, change).map_err(|e| {
            let name_of = |i| match self.find(ns, |l| l.index == i) {
                Some(l) => l.name,
                None => format!("the interface with index {i}"),
            };
            change.failed(e, &name_of(index), &name_of)
        })?;
        self.with_link(ns, index, |l| apply(&mut l.link, change))?;
        if change.netns_fd == Some(HOST_NETNS_FD) {
            self.move_link(ns, HOST, index);
        }
        Ok(())
    }

    /// What the kernel would refuse of `change` to link `index` of `ns`: a name another link
    /// has, there or (a move to the host) on the host.
    fn refusal(&self, ns: &str, index: i32, change: &LinkChange) -> Result<()> {
        let taken_in = |ns: &str, name: &str| {
            self.find(ns, |l| {
                l.index != index && (l.name == name || l.altnames.iter().any(|a| a == name))
            })
            .is_some()
        };
        if let Some(name) = &change.name {
            if taken_in(ns, name) {
                return Err(errno(nix::libc::EEXIST, "RTM_SETLINK"));
            }
        }
        if change.netns_fd == Some(HOST_NETNS_FD) && ns != HOST {
            // The kernel moves first (a name given with the move is only a fallback for the
            // kernel name), and refuses a link whose name or alternative names the host has.
            let link = self
                .find(ns, |l| l.index == index)
                .ok_or_else(|| errno(nix::libc::ENODEV, "RTM_SETLINK"))?;
            if let Some(taken) = self.taken_on_host(&link.name, &link) {
                self.record(
                    ns,
                    format!("refused #{index}: {taken} is taken on the host"),
                );
                return Err(errno(nix::libc::EEXIST, "RTM_SETLINK"));
            }
        }
        Ok(())
    }

    /// Moves a link as the kernel does: down, without its addresses and routes.
    fn move_link(&self, from: &str, to: &str, index: i32) {
        let mut namespaces = self.namespaces.borrow_mut();
        let links = namespaces.get_mut(from).expect("namespace exists");
        let at = links
            .iter()
            .position(|l| l.link.index == index)
            .expect("link exists");
        let mut moved = links.remove(at);
        moved.link.up = false;
        moved.addresses.clear();
        moved.routes.clear();
        namespaces
            .get_mut(to)
            .expect("namespace exists")
            .push(moved);
    }
}

fn apply(link: &mut Link, change: &LinkChange) {
    if let Some(name) = &change.name {
        link.name = name.clone();
    }
    if let Some(mtu) = change.mtu {
        link.mtu = mtu;
    }
    if let Some(mac) = &change.mac {
        link.mac = Some(mac.clone());
    }
    if let Some(up) = change.up {
        link.up = up;
    }
    if let Some(alias) = &change.alias {
        link.alias = (!alias.is_empty()).then(|| alias.clone());
    }
    if let Some(master) = change.master {
        link.master = (master != 0).then_some(master);
    }
}

/// `set #3 name=enp1 mtu=9000 down alias="" netns=host`: only what the change sets.
fn describe(index: i32, change: &LinkChange) -> String {
    let mut parts = vec![format!("set #{index}")];
    parts.extend(change.name.as_ref().map(|n| format!("name={n}")));
    parts.extend(change.mtu.map(|m| format!("mtu={m}")));
    parts.extend(change.mac.as_ref().map(|m| format!("mac={m}")));
    parts.extend(
        change
            .up
            .map(|up| if up { "up" } else { "down" }.to_owned()),
    );
    parts.extend(change.alias.as_ref().map(|a| format!("alias={a:?}")));
    parts.extend(change.master.map(|m| format!("master=#{m}")));
    if change.netns_fd == Some(HOST_NETNS_FD) {
        parts.push("netns=host".to_owned());
    }
    parts.join(" ")
}
