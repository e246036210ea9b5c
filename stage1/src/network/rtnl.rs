//! The rtnetlink requests pod teardown makes itself, rather than deleting a built-in network's
//! veth (which waits for RCU grace periods): take the host end down, and delete its host
//! routes, which a down link keeps when they are `scope host` as ptp's are.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::Socket;

/// Index of host interface `dev`, `None` when it does not exist.
pub fn ifindex(dev: &str) -> Option<u32> {
    let p = Path::new("/sys/class/net").join(dev).join("ifindex");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Take interface `index` down.
pub fn link_down(index: u32) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.change_mask = LinkFlags::Up;
    request(RouteNetlinkMessage::SetLink(link))
}

/// The route message for `dst`/32 through interface `index` in the main table.
fn host_route(dst: Ipv4Addr, index: u32) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet;
    r.header.destination_prefix_length = 32;
    r.header.table = RouteHeader::RT_TABLE_MAIN;
    // RTM_DELROUTE matches only the fields given: any protocol, scope and type
    r.header.protocol = RouteProtocol::Unspec;
    r.header.scope = RouteScope::NoWhere;
    r.header.kind = RouteType::Unspec;
    r.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    r.attributes.push(RouteAttribute::Oif(index));
    r
}

/// Delete the route to `dst`/32 through interface `index`; fine when there is none.
pub fn del_host_route(dst: Ipv4Addr, index: u32) -> io::Result<()> {
    match request(RouteNetlinkMessage::DelRoute(host_route(dst, index))) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// Send one request to the kernel and wait for its acknowledgement.
fn request(msg: RouteNetlinkMessage) -> io::Result<()> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    req.header.sequence_number = 1;
    req.finalize();
    let mut out = vec![0; req.header.length as usize];
    req.serialize(&mut out);
    sock.send(&out, 0)?;
    let mut buf = vec![0u8; 8192];
    let n = sock.recv(&mut &mut buf[..], 0)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n])
        .map_err(|e| io::Error::other(format!("rtnetlink reply: {e}")))?;
    match reply.payload {
        NetlinkPayload::Error(e) if e.code.is_some() => Err(e.to_io()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn host_route_names_destination_interface_and_main_table() {
        let r = host_route(Ipv4Addr::new(172, 16, 28, 9), 7);
        assert_eq!(r.header.destination_prefix_length, 32);
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(r
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                Ipv4Addr::new(172, 16, 28, 9)
            ))));
        assert!(r.attributes.contains(&RouteAttribute::Oif(7)));
        // rtmsg (12 bytes) + RTA_DST (8) + RTA_OIF (8)
        assert_eq!(r.buffer_len(), 28);
    }

    #[test]
    fn missing_interface_has_no_index() {
        assert_eq!(ifindex("rkt-no-such-if"), None);
        assert!(ifindex("lo").is_some());
    }
}
