//! `drivers::net::dhcp`: the BOOTP/DHCP reply parser and the client state
//! machine fed with arbitrary replies and ticks.
//!
//! Input: [0] flags (bit 0: take the transaction id from the reply itself,
//! so the parser gets past the "is it ours" checks; bit 1: also match the
//! client MAC), then replies until the input ends: len u16 LE, len bytes,
//! and a tick of (next byte * 50 ms).
//!
//! Properties: no panic; a parsed reply's addresses and strings are what
//! the parser promises (unicast or 0 address, contiguous mask, printable
//! single-line text); the lease's env values are single-line; malformed
//! reasons are one line; the client's own packets are well-formed requests.
#![no_main]

use drivers::net::dhcp::{self, DhcpClient, DhcpOptions, Output, ReplyError, Status};
use drivers::net::{mask_prefix, Ipv4Addr};
use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn fix(mut r: Vec<u8>, flags: u8, xid: u32) -> Vec<u8> {
    if flags & 1 != 0 && r.len() >= 8 {
        r[4..8].copy_from_slice(&xid.to_be_bytes());
        r[0] = 2;
    }
    if flags & 2 != 0 && r.len() >= 34 {
        r[28..34].copy_from_slice(&MAC);
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let xid = 0x1234_5678;
    let mut c = DhcpClient::new(MAC, &DhcpOptions::default());
    let mut out = Output::default();
    c.start(0, xid, &mut out);
    let mut now = 0;
    let mut bound = false;
    let mut n = 0;
    while !b.is_empty() && n < 256 {
        n += 1;
        let len = b.u16() as usize;
        let reply = fix(b.take(len).to_vec(), flags, xid);
        match dhcp::parse_reply(&reply, &MAC, &[xid]) {
            Ok(r) => {
                let ip = r.your_ip;
                assert!(ip.is_unspecified() || (!ip.is_broadcast() && !ip.is_multicast()));
                if let Some(m) = r.netmask {
                    assert!(mask_prefix(m).is_some());
                }
                for s in [
                    &r.file,
                    &r.bootfile_opt,
                    &r.hostname,
                    &r.root_path,
                    &r.domain,
                ]
                .into_iter()
                .flatten()
                {
                    assert!(s.bytes().all(|c| (0x20..0x7f).contains(&c)));
                }
            }
            Err(ReplyError::Malformed(m)) => assert!(!m.contains('\n')),
            Err(ReplyError::NotOurs) => {}
        }
        let mut out = Output::default();
        let st = c.on_reply(Ipv4Addr::new(10, 0, 2, 2), &reply, now, &mut out);
        now += b.u8() as u64 * 50;
        let st2 = c.on_tick(now, &mut out);
        for p in &out.send {
            assert!(p.len() >= 300 && p[0] == 1 && p[28..34] == MAC);
        }
        for st in [st, st2] {
            match st {
                Status::Bound(l) => {
                    assert!(!bound);
                    bound = true;
                    for (k, v) in l.env() {
                        assert!(!v.contains('\n') && !v.is_empty(), "{k}={v:?}");
                    }
                }
                Status::Failed(e) => assert!(!e.to_string().contains('\n')),
                Status::Running => {}
            }
        }
    }
});
