//! UDP and TCP checksums of received IPv4 frames, checked before smoltcp
//! sees them, 8 bytes at a time.
//!
//! smoltcp sums 16 bits per step; on QEMU (TCG) that loop was about a
//! third of the instructions a TFTP block costs the loader (measured with
//! `-icount`, docs/network.md "Rate"). So the stack tells smoltcp not to
//! verify UDP and TCP checksums on receive and verifies them here instead,
//! for every unfragmented datagram. A fragment cannot be verified alone: a
//! TCP fragment is dropped (TCP segments fit a frame; their senders set
//! Don't Fragment), a UDP fragment too — except while the stack expects
//! UDP datagrams larger than a frame (a TFTP `blksize` above 1468), when
//! smoltcp verifies UDP itself after reassembly and this check stands
//! aside for UDP.

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to smoltcp.
    Keep,
    /// Its checksum is wrong, or it is a fragment that cannot be verified.
    Drop,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The ones'-complement sum of `data` as big-endian 16-bit words (an odd
/// last byte padded with zero), folded to 16 bits. The 8-byte-aligned
/// middle of `data` is read a word at a time (the target is built for
/// strict alignment: an unaligned `u64` would be read byte by byte).
pub fn sum16(data: &[u8]) -> u16 {
    // SAFETY: every bit pattern is a valid u64.
    let (head, mid, tail) = unsafe { data.align_to::<u64>() };
    let mut acc = bytes_sum(head, 0);
    let mut m = 0u64;
    for &w in mid {
        let (s, carry) = m.overflowing_add(w);
        m = s + u64::from(carry);
    }
    // A native (little-endian) word pairs its bytes the other way round
    // from the big-endian sum, unless the middle starts at an odd index;
    // ones'-complement sums are otherwise order-independent (RFC 1071).
    let m = fold(m);
    let m = if !head.len().is_multiple_of(2) {
        m
    } else {
        m.swap_bytes()
    };
    acc += u64::from(m);
    acc += bytes_sum(tail, head.len() + 8 * mid.len());
    fold(acc)
}

/// The bytes of `b`, found at `start..` of the data, weighted as in
/// big-endian 16-bit words.
fn bytes_sum(b: &[u8], start: usize) -> u64 {
    b.iter()
        .enumerate()
        .map(|(i, &x)| {
            if (start + i).is_multiple_of(2) {
                u64::from(x) << 8
            } else {
                u64::from(x)
            }
        })
        .sum()
}

/// Folds a sum to 16 bits (ones' complement, end-around carry).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Checks an Ethernet frame. Anything that is not a well-formed IPv4
/// packet carrying UDP or TCP is kept (smoltcp judges it); `udp_fragments`
/// says whether UDP fragments may pass unverified here (smoltcp then
/// verifies the reassembled datagram).
pub fn check_frame(frame: &[u8], udp_fragments: bool) -> Verdict {
    if be16(frame, 12) != Some(ETHERTYPE_IPV4) {
        return Verdict::Keep;
    }
    let ip = &frame[14..];
    let Some(&vihl) = ip.first() else {
        return Verdict::Keep;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(total) = be16(ip, 2).map(usize::from) else {
        return Verdict::Keep;
    };
    if vihl >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return Verdict::Keep;
    }
    let proto = ip[9];
    if proto != PROTO_UDP && proto != PROTO_TCP {
        return Verdict::Keep;
    }
    let frag = be16(ip, 6).unwrap_or(0);
    let fragment = frag & 0x2000 != 0 || frag & 0x1fff != 0;
    if fragment {
        return if proto == PROTO_UDP && udp_fragments {
            Verdict::Keep
        } else {
            Verdict::Drop
        };
    }
    if proto == PROTO_UDP && udp_fragments {
        // smoltcp verifies UDP in this mode.
        return Verdict::Keep;
    }
    let payload = &ip[ihl..total];
    if proto == PROTO_UDP {
        if payload.len() < 8 {
            return Verdict::Keep; // malformed: smoltcp refuses it
        }
        if be16(payload, 6) == Some(0) {
            return Verdict::Keep; // no checksum (allowed over IPv4)
        }
    }
    // Pseudo-header: source, destination, protocol, length.
    let acc = u64::from(sum16(&ip[12..20]))
        + u64::from(proto)
        + payload.len() as u64
        + u64::from(sum16(payload));
    if fold(acc) == 0xffff {
        Verdict::Keep
    } else {
        Verdict::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address,
        Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
    };

    const SRC: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
    const DST: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

    fn frame(proto: IpProtocol, payload: &[u8], emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: proto,
            payload_len: payload.len(),
            hop_limit: 64,
        };
        let mut f = vec![0u8; 14 + 20 + payload.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut p = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut p, &ChecksumCapabilities::default());
        emit(p.payload_mut());
        f
    }

    fn udp(data: &[u8]) -> Vec<u8> {
        let repr = UdpRepr {
            src_port: 69,
            dst_port: 4000,
        };
        let len = 8 + data.len();
        frame(IpProtocol::Udp, &vec![0; len], |buf| {
            let mut u = UdpPacket::new_unchecked(buf);
            repr.emit(
                &mut u,
                &SRC.into(),
                &DST.into(),
                data.len(),
                |p| p.copy_from_slice(data),
                &ChecksumCapabilities::default(),
            );
        })
    }

    #[test]
    fn sums_match_the_rfc_1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum16(&d), 0xddf2);
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 131 + 7) as u8).collect();
        // Every start alignment and length, against a 16-bit loop.
        let slow = |d: &[u8]| {
            d.chunks(2)
                .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
                .fold(0u32, |a, w| {
                    let s = a + w;
                    (s & 0xffff) + (s >> 16)
                })
        };
        for start in 0..9 {
            for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 40, 991] {
                let d = &data[start..start + len];
                assert_eq!(u32::from(sum16(d)), slow(d), "{start} {len}");
            }
        }
        assert_eq!(u32::from(sum16(&data)), slow(&data));
    }

    #[test]
    fn good_udp_passes_and_any_flipped_bit_is_dropped() {
        let data: Vec<u8> = (0..1428u32).map(|i| (i * 7) as u8).collect();
        let f = udp(&data);
        assert_eq!(check_frame(&f, false), Verdict::Keep);
        for i in [14 + 12, 14 + 20 + 1, 14 + 20 + 8, f.len() - 1] {
            let mut bad = f.clone();
            bad[i] ^= 0x10;
            assert_eq!(check_frame(&bad, false), Verdict::Drop, "byte {i}");
        }
        // Checksum 0: not computed by the sender, allowed.
        let mut none = f.clone();
        none[14 + 20 + 6] = 0;
        none[14 + 20 + 7] = 0;
        assert_eq!(check_frame(&none, false), Verdict::Keep);
        // While large UDP datagrams are expected, smoltcp checks UDP itself.
        let mut bad = f.clone();
        bad[f.len() - 1] ^= 1;
        assert_eq!(check_frame(&bad, true), Verdict::Keep);
    }

    #[test]
    fn tcp_is_verified_too() {
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 4000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(1),
            ack_number: Some(TcpSeqNumber(1)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: b"HTTP/1.1 200 OK\r\n",
        };
        let f = frame(IpProtocol::Tcp, &vec![0; repr.buffer_len()], |buf| {
            repr.emit(
                &mut TcpPacket::new_unchecked(buf),
                &SRC.into(),
                &DST.into(),
                &ChecksumCapabilities::default(),
            );
        });
        assert_eq!(check_frame(&f, false), Verdict::Keep);
        let mut bad = f.clone();
        bad[f.len() - 3] ^= 0x40;
        assert_eq!(check_frame(&bad, true), Verdict::Drop);
    }

    #[test]
    fn fragments_only_pass_for_udp_when_expected() {
        let mut f = udp(b"0123456789");
        f[14 + 6] = 0x20; // more fragments
                          // (The IPv4 header checksum is not this check's business.)
        assert_eq!(check_frame(&f, false), Verdict::Drop);
        assert_eq!(check_frame(&f, true), Verdict::Keep);
        f[14 + 9] = PROTO_TCP;
        assert_eq!(check_frame(&f, true), Verdict::Drop);
    }

    #[test]
    fn other_frames_are_left_to_smoltcp() {
        let arp = {
            let mut f = vec![0u8; 42];
            f[12] = 0x08;
            f[13] = 0x06;
            f
        };
        assert_eq!(check_frame(&arp, false), Verdict::Keep);
        let mut icmp = udp(b"x");
        icmp[14 + 9] = 1;
        assert_eq!(check_frame(&icmp, false), Verdict::Keep);
        let mut short = udp(b"x");
        short.truncate(14 + 10);
        assert_eq!(check_frame(&short, false), Verdict::Keep);
        assert_eq!(check_frame(&[], false), Verdict::Keep);
        assert_eq!(check_frame(&[0; 14], false), Verdict::Keep);
        let mut lying = udp(b"abc");
        lying[14 + 2] = 0xff; // total length past the frame
        assert_eq!(check_frame(&lying, false), Verdict::Keep);
    }
}
