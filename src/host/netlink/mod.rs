//! rtnetlink requests (neli 0.7, plain synchronous sockets): links, addresses, routes.
//!
//! One [`Netlink`] handle talks to the network namespace the calling thread was in when it
//! was created. Every request asks for an ACK and every reply is drained, so a handle is
//! never left with stale replies: a request that fails half way must not leave its error for
//! the next request to read as its own answer. neli builds and parses the messages; the
//! socket is its plain `NlSocket` with one reusable receive buffer.
//!
//! The rest of the plugin talks to links through the [`Links`] trait, so the logic above it
//! can be unit-tested against a fake namespace.

mod addr;
mod link;
mod route;

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::io::Cursor;
use std::net::IpAddr;

use neli::consts::nl::{NlmF, NlmsgerrAttr};
use neli::consts::rtnl::Rtm;
use neli::consts::socket::{Msg, NlFamily};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::socket::NlSocket;
use neli::utils::Groups;
use neli::{FromBytes, FromBytesWithInput, Size, ToBytes};

pub use addr::Address;

/// Kernel constants the capture policy needs (from linux/rtnetlink.h and if_addr.h).
pub mod consts {
    pub use super::route::{RTN_UNICAST, RTPROT_KERNEL, RT_TABLE_LOCAL, RT_TABLE_MAIN};
    pub const RT_SCOPE_HOST: u8 = 254;
    pub const IFA_F_TEMPORARY: u32 = 0x01;
}

pub use link::{Link, LinkChange};
pub use route::{Route, RouteVia};

use crate::device_id::MacAddress;
use crate::error::Error;

type Result<T> = std::result::Result<T, Error>;

/// The link, address and route requests the plugin makes of one network namespace.
/// [`Netlink`] is the real one; unit tests use a fake.
pub trait Links {
    /// The link called `name` (kernel name or alternative name), `None` if there is none.
    fn link_by_name(&self, name: &str) -> Result<Option<Link>>;
    fn link_by_index(&self, index: i32) -> Result<Option<Link>>;
    /// Every link of the namespace.
    fn links(&self) -> Result<Vec<Link>>;
    /// Applies `change` to link `index` in one request.
    fn set_link(&self, index: i32, change: &LinkChange) -> Result<()>;
    /// The addresses of link `index`.
    fn addresses(&self, index: i32) -> Result<Vec<Address>>;
    /// Adds an address; one that is already there counts as added.
    fn add_address(&self, index: i32, a: &Address) -> Result<()>;
    /// The routes through link `index`, in every table the host routes by.
    fn routes(&self, index: i32) -> Result<Vec<Route>>;
    /// Adds a route through link `index`; one that is already there counts as added.
    fn add_route(&self, index: i32, r: &Route) -> Result<()>;
    /// Gives the link called `link_name` the alternative name `altname` (EEXIST if taken).
    fn add_altname(&self, link_name: &str, altname: &str) -> Result<()>;

    /// Every route of the namespace, in the tables [`Links::routes`] reads, with the links
    /// each goes through. This default asks link by link; [`Netlink`] dumps each table once.
    fn all_routes(&self) -> Result<Vec<RouteVia>> {
        let mut all = Vec::new();
        for link in self.links()? {
            all.extend(self.routes(link.index)?.into_iter().map(|route| RouteVia {
                route,
                links: vec![link.index],
            }));
        }
        Ok(all)
    }
    /// Takes the alternative name `altname` off link `index`.
    fn del_altname(&self, index: i32, altname: &str) -> Result<()>;
    /// Takes every one of `altnames` off link `index`; [`Netlink`] in one request (the
    /// kernel stops at the first it refuses).
    fn del_altnames(&self, index: i32, altnames: &[String]) -> Result<()> {
        altnames.iter().try_for_each(|a| self.del_altname(index, a))
    }
    /// [`Links::del_altname_of`], then the link called `link_name` as it is afterwards
    /// (`None`: no such link): the outcome of each. [`Netlink`] sends both in one datagram,
    /// one round trip.
    fn del_altname_of_then_read(
        &self,
        link_name: &str,
        altname: &str,
    ) -> (Result<()>, Result<Option<Link>>) {
        (
            self.del_altname_of(link_name, altname),
            self.link_by_name(link_name),
        )
    }
    /// Takes the alternative name `altname` off the link called `link_name` in one request
    /// (no lookup first). Only that link loses it: EINVAL if `altname` is another link's
    /// name, ENOENT if nobody has it, ENODEV if there is no `link_name`.
    fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()>;

    /// The link with hardware address `mac` (a dump: the kernel has no filter for it). A
    /// bridge or bond takes its port's address, so a link that is the master of another
    /// one with that address is the stack, not the NIC: the port is the answer.
    fn link_by_mac(&self, mac: &MacAddress) -> Result<Option<Link>> {
        let with_mac: Vec<Link> = self
            .links()?
            .into_iter()
            .filter(|l| l.mac.as_ref() == Some(mac))
            .collect();
        let is_master = |l: &Link| with_mac.iter().any(|o| o.master == Some(l.index));
        let nic = with_mac
            .iter()
            .find(|l| l.parent_device.is_some() && !is_master(l))
            .or_else(|| with_mac.iter().find(|l| !is_master(l)))
            .or_else(|| with_mac.first());
        Ok(nic.cloned())
    }

    /// Moves link `index` into the namespace of `netns_fd`, down first (a link arrives down
    /// anyway, and its addresses do not follow).
    fn move_down_to(&self, index: i32, netns_fd: u32) -> Result<()> {
        self.set_down(index)?;
        self.set_link(
            index,
            &LinkChange {
                netns_fd: Some(netns_fd),
                ..LinkChange::default()
            },
        )
    }

    /// Sets link `index` administratively down.
    fn set_down(&self, index: i32) -> Result<()> {
        self.set_link(
            index,
            &LinkChange {
                up: Some(false),
                ..LinkChange::default()
            },
        )
    }
}

impl Links for Netlink {
    fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        Netlink::link_by_name(self, name)
    }
    fn link_by_index(&self, index: i32) -> Result<Option<Link>> {
        Netlink::link_by_index(self, index)
    }
    fn links(&self) -> Result<Vec<Link>> {
        Netlink::links(self)
    }
    fn set_link(&self, index: i32, change: &LinkChange) -> Result<()> {
        Netlink::set_link(self, index, change)
    }
    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        Netlink::addresses(self, index)
    }
    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        Netlink::add_address(self, index, a)
    }
    fn routes(&self, index: i32) -> Result<Vec<Route>> {
        Netlink::routes(self, index)
    }
    fn add_route(&self, index: i32, r: &Route) -> Result<()> {
        Netlink::add_route(self, index, r)
    }
    fn add_altname(&self, link_name: &str, altname: &str) -> Result<()> {
        Netlink::add_altname(self, link_name, altname)
    }
    fn all_routes(&self) -> Result<Vec<RouteVia>> {
        Netlink::all_routes(self)
    }
    fn del_altname(&self, index: i32, altname: &str) -> Result<()> {
        Netlink::del_altname(self, index, altname)
    }
    fn del_altname_of(&self, link_name: &str, altname: &str) -> Result<()> {
        Netlink::del_altname_of(self, link_name, altname)
    }
    fn del_altnames(&self, index: i32, altnames: &[String]) -> Result<()> {
        Netlink::del_altnames(self, index, altnames)
    }
    fn del_altname_of_then_read(
        &self,
        link_name: &str,
        altname: &str,
    ) -> (Result<()>, Result<Option<Link>>) {
        Netlink::del_altname_of_then_read(self, link_name, altname)
    }
}

/// Receive buffer size: the kernel sizes a dump's datagrams to the reader's buffer, up to
/// 32 KiB.
const RECV_BUFFER: usize = 32 * 1024;

pub struct Netlink {
    socket: NlSocket,
    seq: Cell<u32>,
    /// One receive buffer, reused. neli's `NlSocketHandle` zeroed 32 KiB per datagram read.
    buffer: RefCell<Vec<u8>>,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's current network namespace.
    /// A plain blocking socket: no background thread, no hand-offs, one request at a time.
    pub fn connect() -> Result<Netlink> {
        let socket = NlSocket::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| io_error("opening a netlink socket", e))?;
        // Strict checking makes the kernel honour the ifindex/oif filters of our dumps, so a
        // capture costs the same with 5 or 5,000 links on the host.
        socket
            .enable_strict_checking(true)
            .map_err(|e| io_error("enabling strict checking on the netlink socket", e))?;
        socket
            .enable_ext_ack(true)
            .map_err(|e| io_error("enabling extended acks on the netlink socket", e))?;
        Ok(Netlink {
            socket,
            seq: Cell::new(0),
            buffer: RefCell::new(vec![0; RECV_BUFFER]),
        })
    }

    /// Sends one request and collects every payload of the reply (none for a plain ACK).
    /// `what` says in words what the request does, for the error if it fails.
    fn exchange<P>(&self, ty: Rtm, flags: NlmF, payload: P, what: &str) -> Result<Vec<P>>
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + Debug + Clone,
    {
        let mut payloads = Vec::new();
        self.exchange_with(ty, flags, payload, what, |p: &P| payloads.push(p.clone()))?;
        Ok(payloads)
    }

    /// Sends two requests in one datagram (one round trip: the kernel handles them in
    /// order, the second even if the first fails) and returns each one's outcome and
    /// payloads. Neither may be a dump.
    fn exchange_two<P>(&self, first: Request<P>, second: Request<P>) -> [Result<Vec<P>>; 2]
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + Debug + Clone,
    {
        let requests = [first, second];
        let seqs = [self.next_seq(), self.next_seq()];
        let mut bytes = Vec::new();
        for (r, seq) in requests.iter().zip(seqs) {
            match r.to_bytes(seq) {
                Ok(b) => bytes.extend(b),
                Err(e) => return [Err(e), Err(r.not_sent())],
            }
        }
        if let Err(e) = self.socket.send(&bytes, Msg::empty()) {
            let first = socket_error(&requests[0].what, requests[0].ty, e);
            return [Err(first), Err(requests[1].not_sent())];
        }
        let mut outcomes: [Option<Result<Vec<P>>>; 2] = [None, None];
        let mut payloads: [Vec<P>; 2] = [Vec::new(), Vec::new()];
        let mut buffer = self.buffer.borrow_mut();
        while outcomes.iter().any(Option::is_none) {
            let pending = outcomes.iter().position(Option::is_none).unwrap_or(0);
            let r = &requests[pending];
            let len = match self.socket.recv(&mut buffer[..], Msg::TRUNC) {
                Ok((len, _)) if len <= RECV_BUFFER => len,
                Ok((len, _)) => {
                    let e = malformed(
                        &r.what,
                        r.ty,
                        "the kernel's reply did not fit the receive buffer",
                        &format!("a {len}-byte reply, a {RECV_BUFFER}-byte buffer"),
                    );
                    outcomes[pending] = Some(Err(e));
                    continue;
                }
                Err(e) => {
                    outcomes[pending] = Some(Err(socket_error(&r.what, r.ty, e)));
                    continue;
                }
            };
            let mut replies = Cursor::new(&buffer[..len]);
            while (replies.position() as usize) < replies.get_ref().len() {
                let reply = match Nlmsghdr::<Rtm, P>::from_bytes(&mut replies) {
                    Ok(reply) => reply,
                    Err(e) => {
                        let why = "the kernel's reply could not be read";
                        outcomes[pending] = Some(Err(malformed(&r.what, r.ty, why, &e)));
                        break;
                    }
                };
                let Some(i) = seqs.iter().position(|s| s == reply.nl_seq()) else {
                    continue; // a late reply to an earlier request
                };
                if outcomes[i].is_some() {
                    continue;
                }
                let r = &requests[i];
                match reply.nl_payload() {
                    NlPayload::Payload(p) => payloads[i].push(p.clone()),
                    NlPayload::Err(e) => {
                        let errno = -*e.error();
                        let refusal = refused(&r.what, r.ty, errno, kernel_message(e.ext_ack()));
                        outcomes[i] = Some(Err(refusal));
                    }
                    NlPayload::Ack(_) => {
                        outcomes[i] = Some(Ok(std::mem::take(&mut payloads[i])));
                    }
                    _ => {}
                }
            }
        }
        outcomes.map(|o| o.expect("every outcome is set before the loop ends"))
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        seq
    }

    /// Sends one request and hands every payload of the reply to `each`.
    /// Always asks for an ACK and reads until the reply is complete, so the socket never
    /// holds stale replies for the next request.
    fn exchange_with<P>(
        &self,
        ty: Rtm,
        flags: NlmF,
        payload: P,
        what: &str,
        mut each: impl FnMut(&P),
    ) -> Result<()>
    where
        P: Size + ToBytes + FromBytesWithInput<Input = usize> + Debug,
    {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let dump = flags.contains(NlmF::DUMP);
        let request_failed = |why: &str, e: &dyn std::fmt::Display| malformed(what, ty, why, e);
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags | NlmF::REQUEST | NlmF::ACK)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(|e| request_failed(UNBUILDABLE, &e))?;
        let mut request = Cursor::new(vec![0; msg.padded_size()]);
        msg.to_bytes(&mut request)
            .map_err(|e| request_failed(UNBUILDABLE, &e))?;
        self.socket
            .send(request.get_ref(), Msg::empty())
            .map_err(|e| socket_error(what, ty, e))?;
        let mut buffer = self.buffer.borrow_mut();
        loop {
            // MSG_TRUNC: the datagram's real length, so a reply cut short is an error rather
            // than a misparse.
            let (len, _) = self
                .socket
                .recv(&mut buffer[..], Msg::TRUNC)
                .map_err(|e| socket_error(what, ty, e))?;
            if len > RECV_BUFFER {
                return Err(request_failed(
                    "the kernel's reply did not fit the receive buffer",
                    &format!("a {len}-byte reply, a {RECV_BUFFER}-byte buffer"),
                ));
            }
            let mut replies = Cursor::new(&buffer[..len]);
            while (replies.position() as usize) < replies.get_ref().len() {
                let reply = Nlmsghdr::<Rtm, P>::from_bytes(&mut replies)
                    .map_err(|e| request_failed("the kernel's reply could not be read", &e))?;
                if *reply.nl_seq() != seq {
                    continue; // a late reply to an earlier request
                }
                match reply.nl_payload() {
                    NlPayload::Payload(p) => each(p),
                    NlPayload::Err(e) => {
                        return Err(refused(what, ty, -*e.error(), kernel_message(e.ext_ack())))
                    }
                    // A failed dump ends with a negative error in its DONE message.
                    NlPayload::DumpExtAck(ack) if *ack.error() < 0 => {
                        return Err(refused(what, ty, -*ack.error(), None))
                    }
                    NlPayload::DumpExtAck(_) | NlPayload::Empty if dump => return Ok(()),
                    NlPayload::Ack(_) if !dump => return Ok(()),
                    _ => {}
                }
            }
        }
    }

    /// `e`, a failed request about link `index`, told by `tell` with the link's name.
    fn about_link(&self, index: i32, e: Error, tell: impl FnOnce(Error, &str) -> Error) -> Error {
        tell(e, &self.name_of(index))
    }

    /// The name of link `index` for a message, looked up after a request about it failed:
    /// its name, or `the interface with index 7` when it has none to look up any more.
    fn name_of(&self, index: i32) -> String {
        match self.link_by_index(index) {
            Ok(Some(link)) => link.name,
            _ => format!("the interface with index {index}"),
        }
    }
}

const UNBUILDABLE: &str = "the netlink request could not be built";

/// One request of [`Netlink::exchange_two`]: its type, payload and what it does in words.
struct Request<P> {
    ty: Rtm,
    payload: P,
    what: String,
}

impl<P: Size + ToBytes + Debug + Clone> Request<P> {
    /// The request as sequence number `seq`, asking for an ACK.
    fn to_bytes(&self, seq: u32) -> Result<Vec<u8>> {
        let unbuildable =
            |e: &dyn std::fmt::Display| malformed(&self.what, self.ty, UNBUILDABLE, e);
        let msg = NlmsghdrBuilder::default()
            .nl_type(self.ty)
            .nl_flags(NlmF::REQUEST | NlmF::ACK)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(self.payload.clone()))
            .build()
            .map_err(|e| unbuildable(&e))?;
        let mut bytes = Cursor::new(vec![0; msg.padded_size()]);
        msg.to_bytes(&mut bytes).map_err(|e| unbuildable(&e))?;
        Ok(bytes.into_inner())
    }

    /// This request was never sent, because the one before it could not be.
    fn not_sent(&self) -> Error {
        let why = "the request sent with it failed first";
        malformed(&self.what, self.ty, why, &"not sent")
    }
}

/// The kernel refused the request with `errno`, maybe saying why in its extended ack.
fn refused(what: &str, ty: Rtm, errno: i32, kernel_says: Option<String>) -> Error {
    let mut detail = request_name(ty);
    if let Some(text) = &kernel_says {
        detail.push_str(&format!("; the kernel says: {text}"));
    }
    Error::Netlink {
        doing: what.to_owned(),
        why: kernel_says,
        errno: Some(errno),
        detail,
    }
}

/// The socket itself failed (send, receive).
fn socket_error(what: &str, ty: Rtm, e: std::io::Error) -> Error {
    Error::Netlink {
        doing: what.to_owned(),
        why: e.raw_os_error().is_none().then(|| e.to_string()),
        errno: e.raw_os_error(),
        detail: format!("{} over the netlink socket", request_name(ty)),
    }
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::Netlink {
        doing: what.to_owned(),
        why: e.raw_os_error().is_none().then(|| e.to_string()),
        errno: e.raw_os_error(),
        detail: String::new(),
    }
}

/// A request that could not be built, or a reply that could not be read: `why` in words,
/// the library's error `e` for the details.
fn malformed(what: &str, ty: Rtm, why: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Netlink {
        doing: what.to_owned(),
        why: Some(why.to_owned()),
        errno: None,
        detail: format!("{}: {e}", request_name(ty)),
    }
}

/// The text of the kernel's extended ack (`NLMSGERR_ATTR_MSG`), if it gave one.
fn kernel_message(
    ext_ack: &neli::types::GenlBuffer<NlmsgerrAttr, neli::types::Buffer>,
) -> Option<String> {
    ext_ack
        .iter()
        .find(|a| *a.nla_type().nla_type() == NlmsgerrAttr::Msg)
        .and_then(|a| neli::attr::Attribute::get_payload_as_with_len::<String>(a).ok())
        .map(|text| text.trim_end_matches('\0').trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The request's name in the kernel's terms, for `details`: `RTM_SETLINK`.
fn request_name(ty: Rtm) -> String {
    let name = match ty {
        Rtm::Getlink => "RTM_GETLINK",
        Rtm::Setlink => "RTM_SETLINK",
        Rtm::Getaddr => "RTM_GETADDR",
        Rtm::Newaddr => "RTM_NEWADDR",
        Rtm::Getroute => "RTM_GETROUTE",
        Rtm::Newroute => "RTM_NEWROUTE",
        Rtm::Getrule => "RTM_GETRULE",
        Rtm::UnrecognizedConst(link::RTM_NEWLINKPROP) => "RTM_NEWLINKPROP",
        Rtm::UnrecognizedConst(link::RTM_DELLINKPROP) => "RTM_DELLINKPROP",
        other => return format!("rtnetlink request {}", u16::from(other)),
    };
    name.to_owned()
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
        .map_err(|e| build_error("building a netlink attribute", e))
}

/// A request whose message could not be put together: `what` in words, the library's error
/// for the details.
fn build_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Netlink {
        doing: what.to_owned(),
        why: Some(UNBUILDABLE.to_owned()),
        errno: None,
        detail: e.to_string(),
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
