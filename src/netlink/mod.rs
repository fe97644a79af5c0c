//! rtnetlink requests (neli 0.7): links, addresses, routes.
//!
//! One [`Netlink`] handle talks to the network namespace the calling thread was in when it
//! was created. Every request asks for an ACK and every reply is drained, so a handle is
//! never left with stale replies (see DESIGN.md §9).

mod addr;
mod link;
mod route;

use std::fmt::Debug;
use std::net::IpAddr;

use neli::consts::nl::NlmF;
use neli::consts::rtnl::Rtm;
use neli::consts::socket::NlFamily;
use neli::err::RouterError;
use neli::nl::NlPayload;
use neli::router::synchronous::NlRouter;
use neli::utils::Groups;
use neli::{FromBytesWithInput, Size, ToBytes};

pub use addr::Address;

/// Kernel constants the capture policy needs (from linux/rtnetlink.h and if_addr.h).
pub mod consts {
    pub use super::route::{RTN_UNICAST, RTPROT_KERNEL, RT_TABLE_LOCAL, RT_TABLE_MAIN};
    pub const RT_SCOPE_HOST: u8 = 254;
    pub const IFA_F_TEMPORARY: u32 = 0x01;
}

pub use link::{Link, LinkChange};
pub use route::Route;

use crate::cni::Error;

type Result<T> = std::result::Result<T, Error>;

pub struct Netlink {
    router: NlRouter,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's current network namespace.
    pub fn connect() -> Result<Netlink> {
        let (router, _) = NlRouter::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| nl_error("open netlink socket", e))?;
        // Strict checking makes the kernel honour the ifindex/oif filters of our dumps, so a
        // capture costs the same with 5 or 5,000 links on the host.
        router
            .enable_strict_checking(true)
            .map_err(|e| nl_error("enable netlink strict checking", e))?;
        router
            .enable_ext_ack(true)
            .map_err(|e| nl_error("enable netlink extended ack", e))?;
        Ok(Netlink { router })
    }

    /// Sends one request and collects every payload of the reply (none for a plain ACK).
    fn exchange<P>(&self, ty: Rtm, flags: NlmF, payload: P, what: &str) -> Result<Vec<P>>
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + Debug + Clone,
    {
        let replies = self
            .router
            .send::<Rtm, P, Rtm, P>(ty, flags | NlmF::ACK, NlPayload::Payload(payload))
            .map_err(|e| nl_error(what, e))?;
        let mut payloads = Vec::new();
        let mut failure = None;
        for reply in replies {
            match reply {
                Ok(msg) => match msg.nl_payload() {
                    NlPayload::Payload(p) => payloads.push(p.clone()),
                    // A failed dump is not an Err: it ends with a negative error here.
                    NlPayload::DumpExtAck(ack) if *ack.error() < 0 => {
                        failure.get_or_insert_with(|| errno_error(what, -*ack.error()));
                    }
                    _ => {}
                },
                Err(e) => {
                    failure.get_or_insert_with(|| nl_error(what, e));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(payloads),
        }
    }
}

fn errno_error(what: &str, errno: i32) -> Error {
    Error::Netlink {
        context: what.to_owned(),
        errno: Some(errno),
    }
}

fn nl_error<T: Debug, P: Debug>(what: &str, e: RouterError<T, P>) -> Error {
    match e {
        RouterError::Nlmsgerr(m) => errno_error(what, -*m.error()),
        other => Error::Netlink {
            context: format!("{what}: {other}"),
            errno: None,
        },
    }
}

/// True for "no such device/address/route" errors, which callers often treat as "absent".
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Netlink { errno: Some(n), .. } if *n == nix::libc::ENODEV || *n == nix::libc::ESRCH || *n == nix::libc::EADDRNOTAVAIL || *n == nix::libc::ENOENT)
}

/// True for "already exists", which re-adding an address or route treats as success.
pub fn is_exists(e: &Error) -> bool {
    matches!(e, Error::Netlink { errno: Some(n), .. } if *n == nix::libc::EEXIST)
}

/// IPv4 or IPv6 address from the raw bytes of an attribute (network byte order).
fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

fn ip_to_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// One route-netlink attribute.
fn attr<T, P>(ty: T, payload: P) -> Result<neli::rtnl::Rtattr<T, neli::types::Buffer>>
where
    T: neli::consts::rtnl::RtaType,
    P: Size + ToBytes,
{
    neli::rtnl::RtattrBuilder::default()
        .rta_type(ty)
        .rta_payload(payload)
        .build()
        .map_err(|e| build_error("build netlink attribute", e))
}

fn build_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Netlink {
        context: format!("{what}: {e}"),
        errno: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_bytes_round_trip() {
        for s in ["192.0.2.1", "2001:db8::1", "::", "255.255.255.255"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(ip_from_bytes(&ip_to_bytes(&ip)), Some(ip));
        }
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }
}
