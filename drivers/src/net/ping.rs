//! `ping`: ICMP echo (U-Boot's "host X is alive"). smoltcp answers other
//! hosts' echo requests by itself while the stack is polled.

use super::stack::NetStack;
use super::{Ctx, Ipv4Addr, NetDevice, NetError};
use alloc::format;
use alloc::vec;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

/// U-Boot's ping timeout.
pub const TIMEOUT_MS: u64 = 10_000;
/// An echo request is repeated this often until the answer comes.
const INTERVAL_MS: u64 = 1000;
const PAYLOAD: &[u8] = b"parkboot ping";

/// Pings `target`, printing `Using … device` and, on success,
/// `host X is alive`. Fails with U-Boot's `ping failed; host X is not
/// alive` after `timeout_ms`.
pub fn ping<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    target: Ipv4Addr,
    timeout_ms: u64,
) -> Result<(), NetError> {
    stack.config().ip.ok_or(NetError::NotSet("ipaddr"))?;
    ctx.print(&format!("Using {} device\n", stack.name()));
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let mut s = icmp::Socket::new(rx, tx);
    let start = ctx.now_us();
    let ident = (stack.random_u32(start) & 0xffff) as u16;
    s.bind(icmp::Endpoint::Ident(ident))
        .map_err(|_| NetError::Stack("cannot bind an ICMP socket"))?;
    let sock = stack.add(s);
    let r = run(stack, ctx, sock, target, ident, start / 1000, timeout_ms);
    stack.remove(sock);
    r?;
    ctx.print(&format!("host {target} is alive\n"));
    Ok(())
}

fn run<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    sock: smoltcp::iface::SocketHandle,
    target: Ipv4Addr,
    ident: u16,
    start: u64,
    timeout_ms: u64,
) -> Result<(), NetError> {
    let caps = ChecksumCapabilities::default();
    let mut seq: u16 = 0;
    let mut next_send = start;
    loop {
        if ctx.interrupted() {
            return Err(NetError::Aborted);
        }
        let now_us = ctx.now_us();
        let now = now_us / 1000;
        if now.saturating_sub(start) >= timeout_ms {
            return Err(NetError::NotAlive(target));
        }
        let s = stack.sockets.get_mut::<icmp::Socket>(sock);
        if now >= next_send && s.can_send() {
            let req = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: PAYLOAD,
            };
            if let Ok(buf) = s.send(req.buffer_len(), IpAddress::Ipv4(target)) {
                req.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                seq = seq.wrapping_add(1);
            }
            next_send = now + INTERVAL_MS;
        }
        while let Ok((data, from)) = s.recv() {
            if from != IpAddress::Ipv4(target) {
                continue;
            }
            let Ok(p) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident: i, .. }) = Icmpv4Repr::parse(&p, &caps) {
                if i == ident {
                    return Ok(());
                }
            }
        }
        stack.poll(now_us);
    }
}
