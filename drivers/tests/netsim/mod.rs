//! An in-memory network for the network client tests: a fake NIC whose far
//! end is a peer host with its own smoltcp stack running small DHCP, TFTP
//! and HTTP servers written for the tests (RFC-conforming unless told to
//! misbehave), a virtual clock, and a wire that can drop, duplicate or hold
//! frames. Nothing leaves the process.
#![allow(dead_code)]

use drivers::net::{Ctx, DeviceError, Mac, NetDevice};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, IpAddress, IpCidr,
    IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet, UdpPacket,
};
use std::any::Any;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::rc::Rc;

pub const CLIENT_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub const SERVER_MAC: Mac = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

// ---------------------------------------------------------------- clock, ctx

/// Virtual time in microseconds, shared by the client's Ctx and the peer.
#[derive(Clone, Default)]
pub struct Clock(Rc<Cell<u64>>);

impl Clock {
    pub fn now_us(&self) -> u64 {
        self.0.get()
    }
    pub fn advance(&self, us: u64) {
        self.0.set(self.0.get() + us);
    }
}

/// The command's context: every `now_us` advances the clock by `step_us`;
/// console output is collected; ctrl-C after `interrupt_after` polls.
pub struct TestCtx {
    pub clock: Clock,
    pub step_us: u64,
    pub out: String,
    pub polls: u64,
    pub interrupt_after: Option<u64>,
}

impl TestCtx {
    pub fn new(clock: &Clock) -> TestCtx {
        TestCtx {
            clock: clock.clone(),
            step_us: 200,
            out: String::new(),
            polls: 0,
            interrupt_after: None,
        }
    }
}

impl Ctx for TestCtx {
    fn now_us(&mut self) -> u64 {
        self.clock.advance(self.step_us);
        self.clock.now_us()
    }
    fn interrupted(&mut self) -> bool {
        self.polls += 1;
        // A command that never ends fails the test instead of hanging it.
        assert!(self.polls < 20_000_000, "command did not end");
        self.interrupt_after.is_some_and(|n| self.polls > n)
    }
    fn print(&mut self, s: &str) {
        self.out.push_str(s);
    }
}

// ---------------------------------------------------------------- wire faults

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    Duplicate,
}

pub type Fault = Box<dyn FnMut(Dir, &[u8]) -> Verdict>;

/// The UDP payload of an Ethernet/IPv4/UDP frame (unfragmented).
pub fn udp_payload(frame: &[u8]) -> Option<(u16, u16, &[u8])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[14..]).ok()?;
    if ip.next_header() != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let hl = ip.header_len() as usize;
    let udp = UdpPacket::new_checked(&frame[14 + hl..]).ok()?;
    let (s, d) = (udp.src_port(), udp.dst_port());
    Some((s, d, &frame[14 + hl + 8..14 + hl + udp.len() as usize]))
}

/// The TFTP DATA block number in a frame, if it carries one.
pub fn tftp_data_block(frame: &[u8]) -> Option<u16> {
    let (_, _, p) = udp_payload(frame)?;
    (p.len() >= 4 && p[0] == 0 && p[1] == 3).then(|| u16::from_be_bytes([p[2], p[3]]))
}

// ---------------------------------------------------------------- the peer

/// A server program on the peer.
pub trait App: Any {
    fn as_any(&mut self) -> &mut dyn Any;
    fn setup(&mut self, sockets: &mut SocketSet<'static>);
    fn poll(&mut self, sockets: &mut SocketSet<'static>, iface: &mut Interface, now_ms: u64);
    /// Still has datagrams to hand to its sockets.
    fn busy(&self) -> bool {
        false
    }
}

struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct QRx(Vec<u8>);
struct QTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for QRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for QTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl phy::Device for Queues {
    type RxToken<'a> = QRx;
    type TxToken<'a> = QTx<'a>;
    fn receive(&mut self, _t: Instant) -> Option<(QRx, QTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((QRx(f), QTx(&mut self.tx)))
    }
    fn transmit(&mut self, _t: Instant) -> Option<QTx<'_>> {
        Some(QTx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// The host at the far end of the wire.
pub struct Peer {
    iface: Interface,
    pub sockets: SocketSet<'static>,
    q: Queues,
    pub apps: Vec<Box<dyn App>>,
    clock: Clock,
    /// Frames on their way to the client.
    to_client: VecDeque<Vec<u8>>,
    pub fault: Option<Fault>,
    /// Every frame the client sent (after the fault filter).
    pub from_client: Vec<Vec<u8>>,
    pub silent: bool,
}

impl Peer {
    pub fn new(clock: &Clock, apps: Vec<Box<dyn App>>) -> Peer {
        let mut q = Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
        };
        let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(SERVER_MAC)));
        let mut iface = Interface::new(cfg, &mut q, Instant::from_micros(clock.now_us() as i64));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(SERVER_IP), 24)).unwrap();
        });
        let mut sockets = SocketSet::new(vec![]);
        let mut apps = apps;
        for a in apps.iter_mut() {
            a.setup(&mut sockets);
        }
        Peer {
            iface,
            sockets,
            q,
            apps,
            clock: clock.clone(),
            to_client: VecDeque::new(),
            fault: None,
            from_client: Vec::new(),
            silent: false,
        }
    }

    fn filter(&mut self, dir: Dir, frame: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        let v = match &mut self.fault {
            Some(f) => f(dir, &frame),
            None => Verdict::Pass,
        };
        match v {
            Verdict::Pass => out.push(frame),
            Verdict::Drop => {}
            Verdict::Duplicate => {
                out.push(frame.clone());
                out.push(frame);
            }
        }
    }

    fn deliver(&mut self, frame: &[u8]) {
        let mut v = Vec::new();
        self.filter(Dir::ToServer, frame.to_vec(), &mut v);
        for f in v {
            self.from_client.push(f.clone());
            if !self.silent {
                self.q.rx.push_back(f);
            }
        }
    }

    /// Lets the peer process what it has received and answer.
    ///
    /// smoltcp's sender has one fragmentation buffer and starts the next
    /// large datagram in it before the last one's fragments are all out, so
    /// apps hand over one large datagram per round and each round sends all
    /// of its fragments first.
    pub fn run(&mut self) {
        let now_us = self.clock.now_us();
        let t = Instant::from_micros(now_us as i64);
        self.iface.poll(t, &mut self.q, &mut self.sockets);
        for round in 0.. {
            for a in self.apps.iter_mut() {
                a.poll(&mut self.sockets, &mut self.iface, now_us / 1000);
            }
            self.iface.poll(t, &mut self.q, &mut self.sockets);
            let mut n = 0;
            while self.iface.poll_at(t, &self.sockets) == Some(Instant::ZERO) && n < 64 {
                self.iface.poll(t, &mut self.q, &mut self.sockets);
                n += 1;
            }
            if round >= 256 || !self.apps.iter().any(|a| a.busy()) {
                break;
            }
        }
        let frames: Vec<Vec<u8>> = self.q.tx.drain(..).collect();
        for f in frames {
            let mut v = Vec::new();
            self.filter(Dir::ToClient, f, &mut v);
            self.to_client.extend(v);
        }
    }

    pub fn app<T: 'static>(&mut self, i: usize) -> &mut T {
        self.apps[i].as_any().downcast_mut().expect("app type")
    }
}

/// The client's NIC: frames go straight to the peer.
pub struct FakeNic {
    pub peer: Peer,
    pub mac: Mac,
}

impl FakeNic {
    pub fn new(peer: Peer) -> FakeNic {
        FakeNic {
            peer,
            mac: CLIENT_MAC,
        }
    }
}

impl NetDevice for FakeNic {
    fn mac(&self) -> Mac {
        self.mac
    }
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DeviceError> {
        if self.peer.to_client.is_empty() {
            self.peer.run();
        }
        match self.peer.to_client.pop_front() {
            Some(f) => {
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                Ok(Some(n))
            }
            None => Ok(None),
        }
    }
    fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError> {
        self.peer.deliver(frame);
        Ok(())
    }
}

// ---------------------------------------------------------------- DHCP server

/// Changes a reply (message type, bytes) before it is sent.
pub type Mangle = Box<dyn FnMut(u8, &mut Vec<u8>)>;

/// A DHCP server handing out CLIENT_IP, in QEMU's style (siaddr = itself,
/// boot file in the `file` field). `mangle` may break its replies.
pub struct DhcpServer {
    sock: Option<SocketHandle>,
    pub bootfile: String,
    pub bootp_only: bool,
    pub mangle: Option<Mangle>,
    pub silent_ack: bool,
    pub seen: Vec<u8>,
}

impl DhcpServer {
    pub fn new(bootfile: &str) -> DhcpServer {
        DhcpServer {
            sock: None,
            bootfile: bootfile.into(),
            bootp_only: false,
            mangle: None,
            silent_ack: false,
            seen: Vec::new(),
        }
    }

    fn reply(&self, req: &[u8], kind: u8) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&req[4..8]);
        p[16..20].copy_from_slice(&CLIENT_IP.octets());
        p[20..24].copy_from_slice(&SERVER_IP.octets());
        p[28..44].copy_from_slice(&req[28..44]);
        let f = self.bootfile.as_bytes();
        p[108..108 + f.len()].copy_from_slice(f);
        p.extend_from_slice(&[99, 130, 83, 99]);
        if !self.bootp_only {
            p.extend_from_slice(&[53, 1, kind]);
            p.extend_from_slice(&[54, 4, 10, 0, 2, 2]);
            p.extend_from_slice(&[51, 4, 0, 1, 0x51, 0x80]);
        }
        p.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
        p.extend_from_slice(&[3, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[6, 4, 10, 0, 2, 3]);
        p.push(255);
        p
    }
}

fn dhcp_type(p: &[u8]) -> Option<u8> {
    let mut o = p.get(240..)?;
    while o.len() >= 2 {
        match o[0] {
            0 => o = &o[1..],
            255 => return None,
            53 => return o.get(2).copied(),
            _ => o = o.get(2 + o[1] as usize..)?,
        }
    }
    None
}

impl App for DhcpServer {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn setup(&mut self, sockets: &mut SocketSet<'static>) {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
        );
        s.bind(67).unwrap();
        self.sock = Some(sockets.add(s));
    }

    fn poll(&mut self, sockets: &mut SocketSet<'static>, _iface: &mut Interface, _now: u64) {
        let h = self.sock.unwrap();
        let mut replies = Vec::new();
        {
            let s = sockets.get_mut::<udp::Socket>(h);
            while let Ok((req, _)) = s.recv() {
                let kind = match dhcp_type(req) {
                    Some(1) => 2,
                    Some(3) => 5,
                    _ => continue,
                };
                self.seen.push(kind);
                if kind == 5 && self.silent_ack {
                    continue;
                }
                replies.push((kind, self.reply(req, kind)));
            }
        }
        for (kind, mut r) in replies {
            if let Some(m) = &mut self.mangle {
                m(kind, &mut r);
            }
            let s = sockets.get_mut::<udp::Socket>(h);
            s.send_slice(
                &r,
                IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::BROADCAST), 68),
            )
            .unwrap();
        }
    }
}

// ---------------------------------------------------------------- TFTP server

/// How the TFTP server behaves.
#[derive(Default, Clone)]
pub struct TftpBehaviour {
    /// Answer an RRQ with DATA 1 directly (RFC 1350 only).
    pub ignore_options: bool,
    /// Largest blksize granted (0: 65464).
    pub max_blksize: u16,
    /// Accept windowsize.
    pub windowsize: bool,
    /// Send every DATA twice.
    pub duplicate: bool,
    /// In the first window, send block 2 before block 1.
    pub swap_first_two: bool,
    /// Drop the first transmission of these blocks.
    pub lose: Vec<u64>,
    /// Fall silent after sending this many blocks.
    pub stop_after: Option<u64>,
    /// Send ERROR (code, msg) instead of this block.
    pub error_at: Option<(u64, u16, String)>,
    /// Announce this tsize instead of the real one.
    pub tsize_lie: Option<u64>,
    /// Extra/overriding OACK options.
    pub oack: Vec<(String, String)>,
    /// Reply from port 69 (QEMU's server) instead of a new port.
    pub same_port: bool,
    /// After this block, send a DATA from a foreign port too.
    pub stray_after: Option<u64>,
    /// Retransmit after this long without a new ACK (0: 1000 ms).
    pub retransmit_ms: u64,
}

struct Session {
    client: IpEndpoint,
    sock: SocketHandle,
    data: Vec<u8>,
    blksize: usize,
    window: u64,
    acked: u64,
    sent_upto: u64,
    last_send_ms: u64,
    lost: Vec<u64>,
    swapped: bool,
    done: bool,
    sent_blocks: u64,
    stray_sent: bool,
}

pub struct TftpServer {
    pub files: HashMap<String, Vec<u8>>,
    pub b: TftpBehaviour,
    listen: Option<SocketHandle>,
    stray: Option<SocketHandle>,
    sessions: Vec<Session>,
    next_port: u16,
    pending: VecDeque<(SocketHandle, IpEndpoint, Vec<u8>)>,
    pub requests: Vec<Vec<u8>>,
    pub errors_seen: Vec<(u16, String)>,
    pub acks: Vec<u16>,
}

fn new_udp(sockets: &mut SocketSet<'static>, port: u16) -> SocketHandle {
    let mut s = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 128], vec![0; 1 << 20]),
    );
    s.bind(port).unwrap();
    sockets.add(s)
}

impl TftpServer {
    pub fn new(files: &[(&str, Vec<u8>)], b: TftpBehaviour) -> TftpServer {
        TftpServer {
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
            b,
            listen: None,
            stray: None,
            sessions: Vec::new(),
            next_port: 40000,
            pending: VecDeque::new(),
            requests: Vec::new(),
            errors_seen: Vec::new(),
            acks: Vec::new(),
        }
    }

    fn rrq(&mut self, sockets: &mut SocketSet<'static>, from: IpEndpoint, p: &[u8], now: u64) {
        self.requests.push(p.to_vec());
        let fields: Vec<String> = p[2..]
            .split(|&c| c == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let name = fields[0].clone();
        let sock = if self.b.same_port {
            self.listen.unwrap()
        } else {
            self.next_port += 1;
            new_udp(sockets, self.next_port)
        };
        let Some(data) = self.files.get(&name).cloned() else {
            self.pending
                .push_back((sock, from, err(1, "File not found")));
            return;
        };
        let mut opts: HashMap<String, String> = HashMap::new();
        let mut i = 2;
        while i + 1 < fields.len() {
            opts.insert(fields[i].to_ascii_lowercase(), fields[i + 1].clone());
            i += 2;
        }
        let mut s = Session {
            client: from,
            sock,
            data,
            blksize: 512,
            window: 1,
            acked: 0,
            sent_upto: 0,
            last_send_ms: now,
            lost: self.b.lose.clone(),
            swapped: false,
            done: false,
            sent_blocks: 0,
            stray_sent: false,
        };
        if self.b.ignore_options || opts.is_empty() {
            self.sessions.push(s);
            let k = self.sessions.len() - 1;
            self.send_window(k, now);
            return;
        }
        let mut oack: Vec<(String, String)> = Vec::new();
        if opts.contains_key("tsize") {
            let t = self.b.tsize_lie.unwrap_or(s.data.len() as u64);
            oack.push(("tsize".into(), t.to_string()));
        }
        if let Some(b) = opts.get("blksize") {
            let max = if self.b.max_blksize == 0 {
                65464
            } else {
                self.b.max_blksize
            };
            let b = b.parse::<u16>().unwrap().min(max);
            s.blksize = b as usize;
            oack.push(("blksize".into(), b.to_string()));
        }
        if let Some(t) = opts.get("timeout") {
            oack.push(("timeout".into(), t.clone()));
        }
        if self.b.windowsize {
            if let Some(w) = opts.get("windowsize") {
                s.window = w.parse().unwrap();
                oack.push(("windowsize".into(), w.clone()));
            }
        }
        for (k, v) in &self.b.oack {
            oack.retain(|(n, _)| n != k);
            oack.push((k.clone(), v.clone()));
        }
        let mut pkt = vec![0, 6];
        for (k, v) in &oack {
            pkt.extend_from_slice(k.as_bytes());
            pkt.push(0);
            pkt.extend_from_slice(v.as_bytes());
            pkt.push(0);
        }
        self.pending.push_back((sock, from, pkt));
        self.sessions.push(s);
    }

    fn blocks(s: &Session) -> u64 {
        s.data.len() as u64 / s.blksize as u64 + 1
    }

    fn block(s: &Session, n: u64) -> Vec<u8> {
        let start = ((n - 1) * s.blksize as u64) as usize;
        let end = (start + s.blksize).min(s.data.len());
        let mut p = vec![0, 3];
        p.extend_from_slice(&((n & 0xffff) as u16).to_be_bytes());
        p.extend_from_slice(&s.data[start.min(end)..end]);
        p
    }

    fn send_window(&mut self, k: usize, now: u64) {
        let b = self.b.clone();
        let stray = self.stray;
        let s = &mut self.sessions[k];
        s.last_send_ms = now;
        let last = Self::blocks(s).min(s.acked + s.window);
        let mut order: Vec<u64> = (s.acked + 1..=last).collect();
        if b.swap_first_two && !s.swapped && order.len() >= 2 && order[0] == 1 {
            order.swap(0, 1);
            s.swapped = true;
        }
        for n in order {
            if b.stop_after.is_some_and(|m| s.sent_blocks >= m) {
                return;
            }
            if let Some((at, code, msg)) = &b.error_at {
                if n == *at {
                    self.pending.push_back((s.sock, s.client, err(*code, msg)));
                    s.done = true;
                    return;
                }
            }
            s.sent_blocks += 1;
            s.sent_upto = s.sent_upto.max(n);
            if let Some(i) = s.lost.iter().position(|&l| l == n) {
                s.lost.remove(i);
                continue;
            }
            let pkt = Self::block(s, n);
            if b.duplicate {
                self.pending.push_back((s.sock, s.client, pkt.clone()));
            }
            self.pending.push_back((s.sock, s.client, pkt));
            if b.stray_after == Some(n) && !s.stray_sent {
                s.stray_sent = true;
                let p = Self::block(s, n + 1);
                self.pending.push_back((stray.unwrap(), s.client, p));
            }
        }
    }
}

fn err(code: u16, msg: &str) -> Vec<u8> {
    let mut p = vec![0, 5];
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(msg.as_bytes());
    p.push(0);
    p
}

fn send(sockets: &mut SocketSet<'static>, h: SocketHandle, to: IpEndpoint, p: &[u8]) {
    sockets.get_mut::<udp::Socket>(h).send_slice(p, to).unwrap();
}

impl App for TftpServer {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn setup(&mut self, sockets: &mut SocketSet<'static>) {
        self.listen = Some(new_udp(sockets, 69));
        self.stray = Some(new_udp(sockets, 39999));
    }

    fn poll(&mut self, sockets: &mut SocketSet<'static>, _iface: &mut Interface, now: u64) {
        // Requests (and, for a same-port server, everything else).
        let mut got: Vec<(SocketHandle, IpEndpoint, Vec<u8>)> = Vec::new();
        let mut handles = vec![self.listen.unwrap(), self.stray.unwrap()];
        for s in &self.sessions {
            if !handles.contains(&s.sock) {
                handles.push(s.sock);
            }
        }
        for h in handles {
            let s = sockets.get_mut::<udp::Socket>(h);
            while let Ok((p, meta)) = s.recv() {
                got.push((h, meta.endpoint, p.to_vec()));
            }
        }
        for (h, from, p) in got {
            if p.len() < 2 {
                continue;
            }
            match p[1] {
                1 if h == self.listen.unwrap() => self.rrq(sockets, from, &p, now),
                4 if p.len() >= 4 => {
                    let n = u16::from_be_bytes([p[2], p[3]]);
                    self.acks.push(n);
                    let Some(k) = self
                        .sessions
                        .iter()
                        .position(|s| s.sock == h && s.client == from && !s.done)
                    else {
                        continue;
                    };
                    let s = &mut self.sessions[k];
                    // The 64-bit block this ACK means (near what was sent).
                    let base = s.sent_upto & !0xffff;
                    let mut full = base | n as u64;
                    if full > s.sent_upto {
                        full = full.saturating_sub(0x10000);
                    }
                    if full > s.acked || (full == 0 && s.sent_upto == 0) {
                        s.acked = full;
                        if s.acked >= Self::blocks(s) {
                            s.done = true;
                            continue;
                        }
                        self.send_window(k, now);
                    }
                }
                5 => {
                    let code = u16::from_be_bytes([p[2], p[3]]);
                    let msg = String::from_utf8_lossy(&p[4..p.len() - 1]).into_owned();
                    self.errors_seen.push((code, msg));
                    for s in self.sessions.iter_mut().filter(|s| s.sock == h) {
                        s.done = true;
                    }
                }
                _ => {}
            }
        }
        // Retransmit a window that was not acknowledged in time.
        let rt = if self.b.retransmit_ms == 0 {
            1000
        } else {
            self.b.retransmit_ms
        };
        for k in 0..self.sessions.len() {
            let s = &self.sessions[k];
            if !s.done && s.sent_upto > 0 && now.saturating_sub(s.last_send_ms) >= rt {
                self.send_window(k, now);
            }
        }
        // Hand datagrams to the sockets; at most one that needs fragments.
        while let Some((h, to, p)) = self.pending.pop_front() {
            let big = p.len() > 1472;
            send(sockets, h, to, &p);
            if big {
                break;
            }
        }
    }

    fn busy(&self) -> bool {
        !self.pending.is_empty()
    }
}

// ---------------------------------------------------------------- HTTP server

/// Answers one GET on port 80 with `response` (raw bytes), then closes
/// unless `keep_open`. `stall_after`: stop sending after that many bytes
/// and keep the connection open.
pub struct HttpServer {
    pub response: Vec<u8>,
    pub keep_open: bool,
    pub stall_after: Option<usize>,
    pub refuse: bool,
    sock: Option<SocketHandle>,
    request: Vec<u8>,
    sent: usize,
    pub requests: Vec<String>,
}

impl HttpServer {
    pub fn new(response: Vec<u8>) -> HttpServer {
        HttpServer {
            response,
            keep_open: false,
            stall_after: None,
            refuse: false,
            sock: None,
            request: Vec::new(),
            sent: 0,
            requests: Vec::new(),
        }
    }
}

impl App for HttpServer {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn setup(&mut self, sockets: &mut SocketSet<'static>) {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 8192]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        if !self.refuse {
            s.listen(80).unwrap();
        }
        self.sock = Some(sockets.add(s));
    }

    fn poll(&mut self, sockets: &mut SocketSet<'static>, _iface: &mut Interface, _now: u64) {
        let s = sockets.get_mut::<tcp::Socket>(self.sock.unwrap());
        let mut buf = [0u8; 2048];
        while s.can_recv() {
            let n = s.recv_slice(&mut buf).unwrap();
            self.request.extend_from_slice(&buf[..n]);
            if let Some(end) = self.request.windows(4).position(|w| w == b"\r\n\r\n") {
                self.requests
                    .push(String::from_utf8_lossy(&self.request[..end + 4]).into_owned());
            }
        }
        if self.requests.is_empty() || !s.may_send() {
            return;
        }
        let limit = self
            .stall_after
            .unwrap_or(usize::MAX)
            .min(self.response.len());
        while self.sent < limit && s.can_send() {
            let n = s.send_slice(&self.response[self.sent..limit]).unwrap();
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        if self.sent == self.response.len() && !self.keep_open {
            s.close();
        }
    }
}
