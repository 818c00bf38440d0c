//! DHCP client (RFC 2131/2132) that also takes plain BOOTP replies (RFC 951),
//! as U-Boot's `dhcp` and `bootp` commands do, and reports the lease the way
//! U-Boot fills its environment (`ipaddr`, `netmask`, `gatewayip`, `dnsip`,
//! `serverip` from `siaddr`, `bootfile` from the `file` field or option 67,
//! `hostname`, `rootpath`, `domain`).
//!
//! Why not smoltcp's DHCP socket: it does not accept BOOTP replies, does not
//! give `siaddr`/`file`, and drops a malformed offer silently; a boot loader
//! must say why an offer was refused. The exchange is simple enough to own:
//! [`DhcpClient`] is the protocol as a state machine, [`parse_reply`] the
//! validating parser (fuzzed), [`dhcp`] the command over a raw IPv4 socket
//! (we have no address yet, so the packets are sent from 0.0.0.0 to
//! 255.255.255.255 by hand).
//!
//! Timing follows U-Boot: DISCOVER after 250 ms, doubling to 2 s, a fresh
//! transaction id each time (answers to any recent one are accepted); 5 s
//! to wait for the ACK after a REQUEST; the whole exchange gives up after
//! `bootpretryperiod` (default 28 s) with one line.

use super::stack::NetStack;
use super::{mask_prefix, Ctx, Ipv4Addr, Mac, NetDevice, NetError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::raw;
use smoltcp::wire::{IpProtocol, IpVersion, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};

/// Server port.
pub const SERVER_PORT: u16 = 67;
/// Client port.
pub const CLIENT_PORT: u16 = 68;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP header before the options (RFC 951).
const FIXED: usize = 236;

/// DHCP message types (option 53).
pub mod msg {
    /// DHCPDISCOVER.
    pub const DISCOVER: u8 = 1;
    /// DHCPOFFER.
    pub const OFFER: u8 = 2;
    /// DHCPREQUEST.
    pub const REQUEST: u8 = 3;
    /// DHCPACK.
    pub const ACK: u8 = 5;
    /// DHCPNAK.
    pub const NAK: u8 = 6;
}

// ---------------------------------------------------------------- replies

/// A validated BOOTREPLY for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Transaction id.
    pub xid: u32,
    /// DHCP message type; `None` for a plain BOOTP reply.
    pub kind: Option<u8>,
    /// `yiaddr`: the address offered (0.0.0.0 in a proxy reply).
    pub your_ip: Ipv4Addr,
    /// `siaddr`: the next server (TFTP), if not 0.
    pub next_server: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 1.
    pub netmask: Option<Ipv4Addr>,
    /// Option 3 (first router).
    pub router: Option<Ipv4Addr>,
    /// Option 6 (first two servers).
    pub dns: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 17.
    pub root_path: Option<String>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
    /// Option 66.
    pub tftp_server_name: Option<String>,
    /// The `file` field (unless it holds options).
    pub file: Option<String>,
    /// Option 67.
    pub bootfile_opt: Option<String>,
}

/// Why a reply was not usable. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not a reply to us: not a BOOTREPLY, another transaction, another
    /// client. Ignored silently.
    NotOurs,
    /// Ours, but broken.
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NotOurs => f.write_str("not a reply to us"),
            ReplyError::Malformed(m) => f.write_str(m),
        }
    }
}

fn bad(m: impl Into<String>) -> ReplyError {
    ReplyError::Malformed(m.into())
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Parses a BOOTP/DHCP message addressed to client `mac` with one of the
/// transaction ids `xids`.
pub fn parse_reply(b: &[u8], mac: &Mac, xids: &[u32]) -> Result<Reply, ReplyError> {
    if b.len() < 34 {
        return Err(ReplyError::NotOurs);
    }
    let xid = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    if b[0] != 2 || !xids.contains(&xid) || b[28..34] != mac[..] {
        return Err(ReplyError::NotOurs);
    }
    if b.len() < FIXED {
        return Err(bad(format!("only {} bytes long", b.len())));
    }
    if b[1] != 1 || b[2] != 6 {
        return Err(bad(format!(
            "hardware type {} length {}, not Ethernet",
            b[1], b[2]
        )));
    }
    let mut r = Reply {
        xid,
        kind: None,
        your_ip: ip_at(b, 16),
        next_server: None,
        server_id: None,
        netmask: None,
        router: None,
        dns: Vec::new(),
        hostname: None,
        domain: None,
        root_path: None,
        lease_secs: None,
        tftp_server_name: None,
        file: None,
        bootfile_opt: None,
    };
    let si = ip_at(b, 20);
    r.next_server = (!si.is_unspecified()).then_some(si);
    let mut overload = 0u8;
    if b.len() >= FIXED + 4 && b[FIXED..FIXED + 4] == MAGIC {
        overload = options(&b[FIXED + 4..], "options", &mut r)?;
        if overload & 1 != 0 {
            options(&b[108..236], "file field", &mut r)?;
        }
        if overload & 2 != 0 {
            options(&b[44..108], "sname field", &mut r)?;
        }
    }
    if overload & 1 == 0 {
        r.file = field_string(&b[108..236], "file")?;
    }
    check_addresses(&r)?;
    Ok(r)
}

/// A NUL-terminated string field; `None` when empty.
fn field_string(f: &[u8], what: &str) -> Result<Option<String>, ReplyError> {
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    text(&f[..end], what)
}

/// Option or field text: printable ASCII (it ends up in the environment and
/// in file names). Trailing NULs are dropped.
fn text(raw: &[u8], what: &str) -> Result<Option<String>, ReplyError> {
    let end = raw.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    let raw = &raw[..end];
    if raw.is_empty() {
        return Ok(None);
    }
    if let Some(c) = raw.iter().find(|&&c| !(0x20..0x7f).contains(&c)) {
        return Err(bad(format!("{what} holds the non-text byte {c:#04x}")));
    }
    Ok(Some(raw.iter().map(|&c| c as char).collect()))
}

const OPT_NAMES: &[(u8, &str)] = &[
    (1, "subnet mask"),
    (3, "router"),
    (6, "DNS server"),
    (51, "lease time"),
    (52, "overload"),
    (53, "message type"),
    (54, "server identifier"),
];

fn opt_name(code: u8) -> &'static str {
    OPT_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, n)| n)
}

/// Walks an option area; returns the overload option's value.
fn options(mut a: &[u8], area: &str, r: &mut Reply) -> Result<u8, ReplyError> {
    let mut overload = 0;
    while let Some(&code) = a.first() {
        match code {
            0 => {
                a = &a[1..];
                continue;
            }
            255 => break,
            _ => {}
        }
        let Some(&len) = a.get(1) else {
            return Err(bad(format!("option {code} in the {area} has no length")));
        };
        let len = len as usize;
        let Some(data) = a.get(2..2 + len) else {
            return Err(bad(format!(
                "option {code} runs past the end of the {area}"
            )));
        };
        option(code, data, r, &mut overload)?;
        a = &a[2 + len..];
    }
    Ok(overload)
}

fn want_len(code: u8, data: &[u8], ok: bool, need: &str) -> Result<(), ReplyError> {
    if ok {
        return Ok(());
    }
    Err(bad(format!(
        "option {code} ({}) has length {}, not {need}",
        opt_name(code),
        data.len()
    )))
}

fn option(code: u8, d: &[u8], r: &mut Reply, overload: &mut u8) -> Result<(), ReplyError> {
    match code {
        1 => {
            want_len(code, d, d.len() == 4, "4")?;
            r.netmask = Some(ip_at(d, 0));
        }
        3 => {
            want_len(
                code,
                d,
                d.len() >= 4 && d.len().is_multiple_of(4),
                "a multiple of 4",
            )?;
            r.router = Some(ip_at(d, 0));
        }
        6 => {
            want_len(
                code,
                d,
                d.len() >= 4 && d.len().is_multiple_of(4),
                "a multiple of 4",
            )?;
            r.dns = d.chunks_exact(4).take(2).map(|c| ip_at(c, 0)).collect();
        }
        12 => r.hostname = text(d, "option 12 (host name)")?,
        15 => r.domain = text(d, "option 15 (domain name)")?,
        17 => r.root_path = text(d, "option 17 (root path)")?,
        51 => {
            want_len(code, d, d.len() == 4, "4")?;
            r.lease_secs = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
        52 => {
            want_len(code, d, d.len() == 1, "1")?;
            *overload = d[0];
        }
        53 => {
            want_len(code, d, d.len() == 1, "1")?;
            r.kind = Some(d[0]);
        }
        54 => {
            want_len(code, d, d.len() == 4, "4")?;
            r.server_id = Some(ip_at(d, 0));
        }
        66 => r.tftp_server_name = text(d, "option 66 (TFTP server name)")?,
        67 => r.bootfile_opt = text(d, "option 67 (boot file name)")?,
        _ => {}
    }
    Ok(())
}

fn unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_loopback()
        || ip.octets()[0] == 0
        || ip.octets()[0] >= 240)
}

fn check_addresses(r: &Reply) -> Result<(), ReplyError> {
    if !r.your_ip.is_unspecified() && !unicast(r.your_ip) {
        return Err(bad(format!("offers the address {}", r.your_ip)));
    }
    if let Some(m) = r.netmask {
        if mask_prefix(m).is_none() {
            return Err(bad(format!("subnet mask {m} is not contiguous")));
        }
    }
    if let Some(gw) = r.router.filter(|g| !unicast(*g)) {
        return Err(bad(format!("router {gw} is not a host address")));
    }
    if let Some(s) = r.next_server.filter(|s| !unicast(*s)) {
        return Err(bad(format!("next server {s} is not a host address")));
    }
    Ok(())
}

// ---------------------------------------------------------------- requests

/// What the client sends besides the basics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptions {
    /// Give up after this long (`bootpretryperiod`, ms).
    pub total_ms: u64,
    /// Vendor class (option 60, `bootp_vci`).
    pub vci: Option<String>,
    /// Client architecture (option 93, `bootp_arch`).
    pub client_arch: Option<u16>,
    /// Host name to send (option 12, `hostname`).
    pub hostname: Option<String>,
}

impl Default for DhcpOptions {
    /// U-Boot's on arm64: 28 s in all, vendor class "U-Boot.armv8" (so
    /// farm DHCP configurations that recognise U-Boot serve us too), client
    /// architecture 0x16.
    fn default() -> Self {
        DhcpOptions {
            total_ms: 28_000,
            vci: Some("U-Boot.armv8".into()),
            client_arch: Some(0x16),
            hostname: None,
        }
    }
}

impl DhcpOptions {
    /// The defaults with U-Boot's variables applied (`bootpretryperiod`
    /// in ms, `bootp_vci`, `bootp_arch` in hex, `hostname`).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<DhcpOptions, String> {
        let mut o = DhcpOptions::default();
        if let Some(v) = get("bootpretryperiod") {
            o.total_ms = v
                .trim()
                .parse()
                .map_err(|_| format!("bootpretryperiod: '{v}' is not a number of ms"))?;
        }
        if let Some(v) = get("bootp_vci") {
            o.vci = Some(v);
        }
        if let Some(v) = get("bootp_arch") {
            let t = v.trim().trim_start_matches("0x");
            o.client_arch = Some(
                u16::from_str_radix(t, 16)
                    .map_err(|_| format!("bootp_arch: '{v}' is not a hex number"))?,
            );
        }
        if let Some(v) = get("hostname") {
            o.hostname = Some(v);
        }
        Ok(o)
    }
}

/// A BOOTREQUEST (DHCP DISCOVER or REQUEST) as the UDP payload.
fn request(
    mac: &Mac,
    xid: u32,
    secs: u16,
    kind: u8,
    server: Option<Ipv4Addr>,
    wanted: Option<Ipv4Addr>,
    o: &DhcpOptions,
) -> Vec<u8> {
    let mut p = vec![0u8; FIXED];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[8..10].copy_from_slice(&secs.to_be_bytes());
    p[28..34].copy_from_slice(mac);
    p.extend_from_slice(&MAGIC);
    let mut opt = |code: u8, data: &[u8]| {
        let data = &data[..data.len().min(255)];
        p.push(code);
        p.push(data.len() as u8);
        p.extend_from_slice(data);
    };
    opt(53, &[kind]);
    opt(57, &576u16.to_be_bytes());
    if let Some(s) = server {
        opt(54, &s.octets());
    }
    if let Some(w) = wanted {
        opt(50, &w.octets());
    }
    if let Some(h) = &o.hostname {
        opt(12, h.as_bytes());
    }
    if let Some(a) = o.client_arch {
        opt(93, &a.to_be_bytes());
    }
    opt(94, &[1, 0, 0]);
    if let Some(v) = &o.vci {
        opt(60, v.as_bytes());
    }
    opt(55, &[1, 3, 6, 12, 15, 17, 66, 67]);
    p.push(255);
    // BOOTP's minimum of 300 bytes (some relays drop shorter ones).
    if p.len() < 300 {
        p.resize(300, 0);
    }
    p
}

// ---------------------------------------------------------------- lease

/// The result of a successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub ip: Ipv4Addr,
    /// Subnet mask.
    pub netmask: Option<Ipv4Addr>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers (at most two).
    pub dns: Vec<Ipv4Addr>,
    /// `siaddr`, the server to load from (U-Boot's `serverip`).
    pub next_server: Option<Ipv4Addr>,
    /// The DHCP server (option 54).
    pub server_id: Option<Ipv4Addr>,
    /// The boot file: the `file` field, else option 67 (U-Boot's order).
    pub bootfile: Option<String>,
    /// Option 66.
    pub tftp_server_name: Option<String>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 17.
    pub root_path: Option<String>,
    /// Option 15.
    pub domain: Option<String>,
    /// Lease time in seconds.
    pub lease_secs: Option<u32>,
    /// A plain BOOTP server answered.
    pub bootp: bool,
}

impl Lease {
    fn from_reply(r: Reply) -> Lease {
        Lease {
            ip: r.your_ip,
            netmask: r.netmask,
            gateway: r.router,
            dns: r.dns,
            next_server: r.next_server,
            server_id: r.server_id,
            bootfile: r.file.or(r.bootfile_opt),
            tftp_server_name: r.tftp_server_name,
            hostname: r.hostname,
            root_path: r.root_path,
            domain: r.domain,
            lease_secs: r.lease_secs,
            bootp: r.kind.is_none(),
        }
    }

    /// The environment variables U-Boot sets after `dhcp`/`bootp`, in its
    /// order (cmd/net.c `netboot_update_env`, net/bootp.c `bootfile`). A
    /// value the reply did not carry is not listed (the old one stays).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(g) = self.gateway {
            v.push(("gatewayip", g.to_string()));
        }
        if let Some(m) = self.netmask {
            v.push(("netmask", m.to_string()));
        }
        if let Some(h) = &self.hostname {
            v.push(("hostname", h.clone()));
        }
        if let Some(p) = &self.root_path {
            v.push(("rootpath", p.clone()));
        }
        v.push(("ipaddr", self.ip.to_string()));
        if let Some(s) = self.next_server {
            v.push(("serverip", s.to_string()));
        }
        if let Some(d) = self.dns.first() {
            v.push(("dnsip", d.to_string()));
        }
        if let Some(d) = self.dns.get(1) {
            v.push(("dnsip2", d.to_string()));
        }
        if let Some(d) = &self.domain {
            v.push(("domain", d.clone()));
        }
        if let Some(f) = &self.bootfile {
            v.push(("bootfile", f.clone()));
        }
        v
    }
}

// ---------------------------------------------------------------- state machine

/// Why DHCP failed. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpError {
    /// Nobody gave us an address in time.
    Timeout {
        /// After this long.
        ms: u64,
        /// Replies refused as malformed meanwhile.
        malformed: u32,
    },
}

impl fmt::Display for DhcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhcpError::Timeout { ms, malformed: 0 } => {
                write!(f, "Retry time exceeded: no DHCP/BOOTP answer in {ms} ms")
            }
            DhcpError::Timeout { ms, malformed } => write!(
                f,
                "Retry time exceeded: no usable DHCP/BOOTP answer in {ms} ms ({malformed} malformed)"
            ),
        }
    }
}

impl From<DhcpError> for NetError {
    fn from(e: DhcpError) -> NetError {
        NetError::Dhcp(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Selecting,
    Requesting {
        server: Option<Ipv4Addr>,
        ip: Ipv4Addr,
        xid: u32,
    },
    Bound,
}

/// What the client wants done.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// UDP payloads to broadcast to port 67.
    pub send: Vec<Vec<u8>>,
    /// Console text.
    pub print: String,
}

/// Where the exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Running,
    /// Bound.
    Bound(Lease),
    /// Failed.
    Failed(DhcpError),
}

/// The DHCP/BOOTP exchange, without I/O. Times in ms.
#[derive(Debug)]
pub struct DhcpClient {
    mac: Mac,
    opts: DhcpOptions,
    state: State,
    start: u64,
    deadline: u64,
    timeout: u64,
    /// Recent transaction ids (U-Boot keeps a few, too).
    xids: Vec<u32>,
    tries: u32,
    malformed: u32,
}

impl DhcpClient {
    /// A client for `mac`.
    pub fn new(mac: Mac, opts: &DhcpOptions) -> DhcpClient {
        DhcpClient {
            mac,
            opts: opts.clone(),
            state: State::Selecting,
            start: 0,
            deadline: 0,
            timeout: 250,
            xids: Vec::new(),
            tries: 0,
            malformed: 0,
        }
    }

    /// Starts at `now` with transaction id `xid`.
    pub fn start(&mut self, now: u64, xid: u32, out: &mut Output) {
        self.start = now;
        self.timeout = 250;
        self.discover(now, xid, out);
    }

    fn secs(&self, now: u64) -> u16 {
        (now.saturating_sub(self.start) / 1000).min(u16::MAX as u64) as u16
    }

    fn discover(&mut self, now: u64, xid: u32, out: &mut Output) {
        self.state = State::Selecting;
        self.tries += 1;
        if self.xids.len() == 8 {
            self.xids.remove(0);
        }
        self.xids.push(xid);
        out.print
            .push_str(&format!("BOOTP broadcast {}\n", self.tries));
        out.send.push(request(
            &self.mac,
            xid,
            self.secs(now),
            msg::DISCOVER,
            None,
            None,
            &self.opts,
        ));
        self.deadline = now + self.timeout;
    }

    /// Replies refused as malformed so far.
    pub fn malformed(&self) -> u32 {
        self.malformed
    }

    /// A UDP payload that arrived on port 68 from `from`.
    pub fn on_reply(&mut self, from: Ipv4Addr, b: &[u8], now: u64, out: &mut Output) -> Status {
        if self.state == State::Bound {
            return Status::Running;
        }
        let r = match parse_reply(b, &self.mac, &self.xids) {
            Ok(r) => r,
            Err(ReplyError::NotOurs) => return Status::Running,
            Err(ReplyError::Malformed(m)) => {
                self.malformed += 1;
                out.print.push_str(&format!(
                    "DHCP: ignoring malformed reply from {from}: {m}\n"
                ));
                return Status::Running;
            }
        };
        if r.your_ip.is_unspecified() {
            // A proxy DHCP answer (PXE) carries no address; U-Boot ignores
            // it too.
            return Status::Running;
        }
        match (self.state, r.kind) {
            (_, None) => self.bound(r, now, out),
            (State::Selecting, Some(msg::OFFER)) => {
                let server = r.server_id;
                self.state = State::Requesting {
                    server,
                    ip: r.your_ip,
                    xid: r.xid,
                };
                out.send.push(request(
                    &self.mac,
                    r.xid,
                    self.secs(now),
                    msg::REQUEST,
                    server,
                    Some(r.your_ip),
                    &self.opts,
                ));
                self.deadline = now + 5000;
                Status::Running
            }
            (State::Requesting { xid, ip, .. }, Some(msg::ACK))
                if xid == r.xid && ip == r.your_ip =>
            {
                self.bound(r, now, out)
            }
            (State::Requesting { xid, .. }, Some(msg::NAK)) if xid == r.xid => {
                out.print.push_str(&format!(
                    "DHCP: {} refused the request (NAK); starting again\n",
                    r.server_id.unwrap_or(from)
                ));
                self.next_timeout();
                let next = self.next_xid();
                self.discover(now, next, out);
                Status::Running
            }
            _ => Status::Running,
        }
    }

    fn bound(&mut self, r: Reply, now: u64, out: &mut Output) -> Status {
        self.state = State::Bound;
        let kind = if r.kind.is_none() { "BOOTP" } else { "DHCP" };
        out.print.push_str(&format!(
            "{kind} client bound to address {} ({} ms)\n",
            r.your_ip,
            now.saturating_sub(self.start)
        ));
        Status::Bound(Lease::from_reply(r))
    }

    fn next_timeout(&mut self) {
        self.timeout = (self.timeout * 2).min(2000);
    }

    fn next_xid(&self) -> u32 {
        let last = self.xids.last().copied().unwrap_or(0);
        last.wrapping_mul(1_103_515_245).wrapping_add(12345)
    }

    /// Time passed: retransmits, or gives up after `total_ms`.
    pub fn on_tick(&mut self, now: u64, out: &mut Output) -> Status {
        if self.state == State::Bound || now < self.deadline {
            return Status::Running;
        }
        let taken = now.saturating_sub(self.start);
        if taken >= self.opts.total_ms {
            return Status::Failed(DhcpError::Timeout {
                ms: taken,
                malformed: self.malformed,
            });
        }
        self.next_timeout();
        let next = self.next_xid();
        self.discover(now, next, out);
        Status::Running
    }
}

/// Whether `dhcp`/`bootp` go on to load `bootfile` by TFTP: U-Boot's
/// `env_get_yesno("autoload") != 0` — yes unless `autoload` starts with
/// n, N, f, F or 0. (`autoload=NFS` is not supported: no NFS client.)
pub fn autoload(value: Option<&str>) -> bool {
    !matches!(
        value.and_then(|v| v.bytes().next()),
        Some(b'n' | b'N' | b'f' | b'F' | b'0')
    )
}

// ---------------------------------------------------------------- the command

/// `dhcp` / `bootp`: gets an address and the boot parameters. Prints
/// U-Boot's `BOOTP broadcast N` lines and `DHCP client bound to address …`.
/// The stack is left configured with the lease; the caller puts
/// [`Lease::env`] into the environment (and runs `autoload`).
pub fn dhcp<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    opts: &DhcpOptions,
) -> Result<Lease, NetError> {
    // No address while asking for one (U-Boot clears net_ip too).
    let mut cfg = stack.config().clone();
    cfg.ip = None;
    stack.configure(&cfg);
    let rx = raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; 16], vec![0; 16 * 1600]);
    let tx = raw::PacketBuffer::new(vec![raw::PacketMetadata::EMPTY; 4], vec![0; 4 * 700]);
    let sock = stack.add(raw::Socket::new(
        Some(IpVersion::Ipv4),
        Some(IpProtocol::Udp),
        rx,
        tx,
    ));
    let mut client = DhcpClient::new(stack.mac(), opts);
    let mut out = Output::default();
    let now = ctx.now_us();
    let xid = stack.random_u32(now);
    client.start(now / 1000, xid, &mut out);
    let r = run(stack, ctx, sock, &mut client, out);
    stack.remove(sock);
    let lease = r?;
    let mut cfg = stack.config().clone();
    cfg.ip = Some(lease.ip);
    cfg.netmask = lease.netmask.or(cfg.netmask);
    cfg.gateway = lease.gateway.or(cfg.gateway);
    cfg.server = lease.next_server.or(cfg.server);
    cfg.dns = lease.dns.first().copied().or(cfg.dns);
    stack.configure(&cfg);
    Ok(lease)
}

fn run<D: NetDevice>(
    stack: &mut NetStack<D>,
    ctx: &mut dyn Ctx,
    sock: smoltcp::iface::SocketHandle,
    client: &mut DhcpClient,
    mut out: Output,
) -> Result<Lease, NetError> {
    let mut buf = vec![0u8; 1600];
    loop {
        flush(stack, sock, &mut out, ctx);
        if ctx.interrupted() {
            return Err(NetError::Aborted);
        }
        let now = ctx.now_us();
        stack.poll(now);
        while let Ok(data) = stack.sockets.get_mut::<raw::Socket>(sock).recv() {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            let Some((from, payload)) = udp_to_client(&buf[..n]) else {
                continue;
            };
            match client.on_reply(from, payload, now / 1000, &mut out) {
                Status::Running => {}
                Status::Bound(l) => {
                    flush(stack, sock, &mut out, ctx);
                    return Ok(l);
                }
                Status::Failed(e) => return Err(e.into()),
            }
        }
        flush(stack, sock, &mut out, ctx);
        if let Status::Failed(e) = client.on_tick(now / 1000, &mut out) {
            flush(stack, sock, &mut out, ctx);
            return Err(e.into());
        }
    }
}

/// The UDP payload of an IPv4 packet for port 68, with its source address.
fn udp_to_client(ip: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    let src = p.src_addr();
    let hl = p.header_len() as usize;
    let total = (p.total_len() as usize).min(ip.len());
    let udp = UdpPacket::new_checked(ip.get(hl..total)?).ok()?;
    if udp.dst_port() != CLIENT_PORT || udp.src_port() != SERVER_PORT {
        return None;
    }
    let len = (udp.len() as usize).clamp(8, total - hl);
    Some((src, ip.get(hl + 8..hl + len)?))
}

/// Sends the client's payloads from 0.0.0.0:68 to 255.255.255.255:67.
fn flush<D: NetDevice>(
    stack: &mut NetStack<D>,
    sock: smoltcp::iface::SocketHandle,
    out: &mut Output,
    ctx: &mut dyn Ctx,
) {
    if !out.print.is_empty() {
        ctx.print(&out.print);
        out.print.clear();
    }
    for payload in out.send.drain(..) {
        let pkt = ip_udp(&payload);
        let _ = stack.sockets.get_mut::<raw::Socket>(sock).send_slice(&pkt);
    }
}

/// An IPv4 + UDP packet 0.0.0.0:68 -> 255.255.255.255:67 around `payload`.
fn ip_udp(payload: &[u8]) -> Vec<u8> {
    let src = Ipv4Addr::UNSPECIFIED;
    let dst = Ipv4Addr::BROADCAST;
    let udp = UdpRepr {
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut ipp, &caps);
    let mut u = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(
        &mut u,
        &src.into(),
        &dst.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// A reply as QEMU's built-in server sends it.
    pub(crate) fn reply(xid: u32, kind: Option<u8>, extra: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; FIXED];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 0, 2, 15]);
        p[20..24].copy_from_slice(&[10, 0, 2, 2]);
        p[28..34].copy_from_slice(&MAC);
        p[108..113].copy_from_slice(b"Image");
        p.extend_from_slice(&MAGIC);
        if let Some(k) = kind {
            p.extend_from_slice(&[53, 1, k]);
        }
        p.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 4, 10, 0, 2, 3]);
        p.extend_from_slice(&[54, 4, 10, 0, 2, 2]);
        for (c, d) in extra {
            p.push(*c);
            p.push(d.len() as u8);
            p.extend_from_slice(d);
        }
        p.push(255);
        p
    }

    #[test]
    fn parses_a_qemu_style_ack() {
        let r = parse_reply(&reply(7, Some(msg::ACK), &[(67, b"other")]), &MAC, &[7]).unwrap();
        assert_eq!(r.your_ip, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(r.next_server, Some(Ipv4Addr::new(10, 0, 2, 2)));
        let l = Lease::from_reply(r);
        // The file field wins over option 67, as in U-Boot.
        assert_eq!(l.bootfile.as_deref(), Some("Image"));
        assert_eq!(
            l.env(),
            vec![
                ("gatewayip", "10.0.2.2".to_string()),
                ("netmask", "255.255.255.0".to_string()),
                ("ipaddr", "10.0.2.15".to_string()),
                ("serverip", "10.0.2.2".to_string()),
                ("dnsip", "10.0.2.3".to_string()),
                ("bootfile", "Image".to_string()),
            ]
        );
    }

    #[test]
    fn replies_for_others_are_ignored_silently() {
        let r = reply(7, Some(msg::OFFER), &[]);
        assert_eq!(parse_reply(&r, &MAC, &[8]), Err(ReplyError::NotOurs));
        assert_eq!(parse_reply(&r, &[2; 6], &[7]), Err(ReplyError::NotOurs));
        let mut req = r.clone();
        req[0] = 1;
        assert_eq!(parse_reply(&req, &MAC, &[7]), Err(ReplyError::NotOurs));
        assert_eq!(parse_reply(&r[..20], &MAC, &[7]), Err(ReplyError::NotOurs));
    }

    #[test]
    fn malformed_replies_say_why() {
        let msg = |b: &[u8]| parse_reply(b, &MAC, &[7]).unwrap_err().to_string();
        let mut r = reply(7, Some(msg::OFFER), &[]);
        r.truncate(r.len() - 1);
        r.extend_from_slice(&[54, 9, 1]);
        assert_eq!(msg(&r), "option 54 runs past the end of the options");
        assert_eq!(
            msg(&reply(7, Some(msg::OFFER), &[(1, &[255, 255, 255])])),
            "option 1 (subnet mask) has length 3, not 4"
        );
        assert_eq!(
            msg(&reply(7, Some(msg::OFFER), &[(1, &[255, 0, 255, 0])])),
            "subnet mask 255.0.255.0 is not contiguous"
        );
        assert_eq!(
            msg(&reply(7, Some(msg::OFFER), &[(67, b"a\nb")])),
            "option 67 (boot file name) holds the non-text byte 0x0a"
        );
        let mut r = reply(7, Some(msg::OFFER), &[]);
        r[16..20].copy_from_slice(&[255, 255, 255, 255]);
        assert_eq!(msg(&r), "offers the address 255.255.255.255");
        assert_eq!(msg(&reply(7, None, &[])[..100]), "only 100 bytes long");
    }

    #[test]
    fn overload_moves_options_into_the_file_field() {
        let mut r = reply(7, Some(msg::ACK), &[(52, &[1])]);
        r[108..236].fill(0);
        r[108..116].copy_from_slice(&[67, 5, b'v', b'm', b'l', b'z', b'1', 255]);
        let l = Lease::from_reply(parse_reply(&r, &MAC, &[7]).unwrap());
        assert_eq!(l.bootfile.as_deref(), Some("vmlz1"));
    }

    #[test]
    fn exchange_with_retries() {
        let o = DhcpOptions::default();
        let mut c = DhcpClient::new(MAC, &o);
        let mut out = Output::default();
        c.start(0, 7, &mut out);
        assert_eq!(out.print, "BOOTP broadcast 1\n");
        assert_eq!(out.send.len(), 1);
        assert_eq!(out.send[0][242], msg::DISCOVER);
        assert!(out.send[0].len() >= 300);
        out = Output::default();
        // 250 ms later a second DISCOVER with a new xid; 500 ms after that a
        // third.
        assert_eq!(c.on_tick(249, &mut out), Status::Running);
        assert!(out.send.is_empty());
        c.on_tick(250, &mut out);
        c.on_tick(750, &mut out);
        assert_eq!(out.print, "BOOTP broadcast 2\nBOOTP broadcast 3\n");
        // An offer to the first xid is still taken.
        out = Output::default();
        let from = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            c.on_reply(from, &reply(7, Some(msg::OFFER), &[]), 800, &mut out),
            Status::Running
        );
        let req = &out.send[0];
        assert_eq!(req[242], msg::REQUEST);
        assert_eq!(&req[4..8], &7u32.to_be_bytes());
        out = Output::default();
        let st = c.on_reply(from, &reply(7, Some(msg::ACK), &[]), 803, &mut out);
        assert!(matches!(st, Status::Bound(ref l) if l.ip == Ipv4Addr::new(10, 0, 2, 15)));
        assert_eq!(
            out.print,
            "DHCP client bound to address 10.0.2.15 (803 ms)\n"
        );
    }

    #[test]
    fn gives_up_after_the_retry_period() {
        let o = DhcpOptions {
            total_ms: 3000,
            ..DhcpOptions::default()
        };
        let mut c = DhcpClient::new(MAC, &o);
        let mut out = Output::default();
        c.start(0, 1, &mut out);
        let mut t = 0;
        loop {
            t += 10;
            match c.on_tick(t, &mut out) {
                Status::Running => assert!(t < 10_000),
                Status::Failed(e) => {
                    assert_eq!(
                        e.to_string(),
                        "Retry time exceeded: no DHCP/BOOTP answer in 3750 ms"
                    );
                    break;
                }
                Status::Bound(_) => unreachable!(),
            }
        }
        // 250, 500, 1000, 2000 ms apart: 4 broadcasts before 3.75 s.
        assert_eq!(out.print.lines().count(), 4);
    }

    #[test]
    fn autoload_follows_env_get_yesno() {
        assert!(autoload(None));
        assert!(autoload(Some("yes")));
        assert!(autoload(Some("1")));
        assert!(!autoload(Some("no")));
        assert!(!autoload(Some("0")));
        assert!(!autoload(Some("false")));
    }

    #[test]
    fn packet_framing_round_trips() {
        let pkt = ip_udp(b"hello");
        let (src, payload) = {
            // Our own packet is from port 68 to 67; flip the ports to read it
            // as a server's reply.
            let mut p = pkt.clone();
            p[20..22].copy_from_slice(&SERVER_PORT.to_be_bytes());
            p[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
            let (s, pl) = udp_to_client(&p).unwrap();
            (s, pl.to_vec())
        };
        assert_eq!(src, Ipv4Addr::UNSPECIFIED);
        assert_eq!(payload, b"hello");
        assert!(udp_to_client(&pkt).is_none());
        assert!(udp_to_client(&pkt[..25]).is_none());
    }
}
