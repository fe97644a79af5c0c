//! The fake kernel's netlink side: the links of one namespace, answering every request of
//! [`Links`] as the kernel would (and refusing as it would, with the same errno).

use super::*;

/// The links of one namespace.
pub(super) struct Bound {
    pub(super) world: Rc<World>,
    pub(super) ns: String,
}

/// A request the kernel refused with `errno`, `what` saying which.
pub(super) fn errno(errno: i32, what: &str) -> Error {
    Error::netlink(what, Some(errno))
}

impl Bound {
    fn del_altname_quietly(&self, index: i32, altname: &str) -> Result<()> {
        self.world.with_link(&self.ns, index, |l| {
            l.link.altnames.retain(|a| a != altname)
        })
    }
}

impl Links for Bound {
    fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        self.world.settle();
        Ok(self.world.find(&self.ns, |l| {
            l.name == name || l.altnames.iter().any(|a| a == name)
        }))
    }
    fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        Ok(self.world.find(&self.ns, |l| l.index == index))
    }
    fn links(&self) -> Result<Vec<Link>> {
        self.world.settle();
        Ok(self
            .world
            .links_in(&self.ns)
            .into_iter()
            .map(|l| l.link)
            .collect())
    }
    fn set_link(&self, index: i32, change: &LinkChange) -> Result<()> {
        self.world.settle();
        self.world.set_link(&self.ns, index, change)
    }
    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        self.world
            .with_link(&self.ns, index, |l| l.addresses.clone())
    }
    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        self.world
            .record(&self.ns, format!("add #{index} address {}", a.cidr()));
        self.world.with_link(&self.ns, index, |l| {
            if !l.addresses.contains(a) {
                l.addresses.push(a.clone());
            }
        })
    }
    fn routes(&self, index: i32) -> Result<Vec<Route>> {
        self.world.with_link(&self.ns, index, |l| l.routes.clone())
    }
    fn add_altname(&self, link_name: &str, altname: &str) -> Result<()> {
        self.world
            .record(&self.ns, format!("altname {link_name} +{altname}"));
        if self.link_by_name(altname)?.is_some() {
            return Err(errno(nix::libc::EEXIST, "RTM_NEWLINKPROP")
                .while_doing(format!("giving {link_name} the alternative name {altname}"))
                .because(format!("the name {altname} is taken")));
        }
        let index = self
            .link_by_name(link_name)?
            .ok_or_else(|| errno(nix::libc::ENODEV, link_name))?
            .index;
        self.world.with_link(&self.ns, index, |l| {
            l.link.altnames.push(altname.to_owned())
        })
    }
    fn del_altname(&self, index: i32, altname: &str) -> Result<()> {
        self.del_altnames(index, &[altname.to_owned()])
    }
    /// One request, journalled `altname #3 -a -b`; like the kernel, it stops at the first
    /// name the link does not carry (ENOENT).
    fn del_altnames(&self, index: i32, altnames: &[String]) -> Result<()> {
        let names: Vec<String> = altnames.iter().map(|a| format!("-{a}")).collect();
        self.world
            .record(&self.ns, format!("altname #{index} {}", names.join(" ")));
        for altname in altnames {
            let carried = self
                .world
                .with_link(&self.ns, index, |l| l.link.altnames.contains(altname))?;
            if !carried {
                return Err(errno(nix::libc::ENOENT, "RTM_DELLINKPROP"));
            }
            self.del_altname_quietly(index, altname)?;
        }
        Ok(())
    }
    fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()> {
        self.world
            .record(&self.ns, format!("altname {link_name} -{altname}"));
        let link = self
            .link_by_name(link_name)?
            .ok_or_else(|| errno(nix::libc::ENODEV, link_name))?;
        if !link.altnames.iter().any(|a| a == altname) {
            let someone_elses = self.link_by_name(altname)?.is_some();
            let e = if someone_elses {
                nix::libc::EINVAL
            } else {
                nix::libc::ENOENT
            };
            return Err(errno(e, "remove altname"));
        }
        self.del_altname_quietly(link.index, altname)
    }
    fn add_route(&self, index: i32, r: &Route) -> Result<()> {
        self.world
            .record(&self.ns, format!("add #{index} route {}", r.dst_cidr()));
        self.world.with_link(&self.ns, index, |l| {
            if !l.routes.contains(r) {
                l.routes.push(r.clone());
            }
        })
    }
}
