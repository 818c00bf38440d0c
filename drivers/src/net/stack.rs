//! The IPv4 stack: smoltcp's `Interface` on a [`NetDevice`], with the socket
//! set the clients borrow for the length of one command.
//!
//! The stack keeps the interface (and with it the ARP cache) between
//! commands; the loader makes one per network device and calls
//! [`NetStack::configure`] with the environment's settings before each
//! command, as U-Boot re-reads `ipaddr` & co. every time.

use super::csum::{self, Verdict};
use super::{IpConfig, Mac, NetDevice, MAX_FRAME};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Frame counters (for `net stats`-like output and the tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Receive errors the device reported.
    pub rx_errors: u64,
    /// Send errors the device reported.
    pub tx_errors: u64,
    /// Frames dropped for a wrong UDP/TCP checksum, or as fragments that
    /// cannot be verified (`csum::check_frame`).
    pub rx_dropped: u64,
}

/// One network interface with its IPv4 stack.
pub struct NetStack<D: NetDevice> {
    dev: D,
    name: String,
    mac: Mac,
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    rx: RxBuf,
    tx: Vec<u8>,
    cfg: IpConfig,
    stats: Stats,
    seed: u64,
    /// UDP datagrams larger than a frame are expected (smoltcp verifies UDP).
    udp_fragments: bool,
}

/// smoltcp's view of the device for one poll.
/// Where a received frame starts in the receive buffer: 6 bytes past an
/// 8-byte boundary, so the IPv4 payload (after 14 + 20 header bytes) starts
/// on one. UDP and TCP checksums then run on aligned words, and smoltcp's
/// copy of a UDP payload into its socket buffer is an aligned copy (the
/// target is built for strict alignment: `memcpy` between addresses that
/// differ modulo 8 goes a byte at a time). A device that places frames at
/// the same offset ([`super::virtio`]) copies them here aligned too.
pub const RX_FRAME_OFFSET: usize = 6;

/// The receive buffer: 8-byte-aligned storage for one frame at
/// [`RX_FRAME_OFFSET`].
struct RxBuf(Vec<u64>);

impl RxBuf {
    fn new() -> RxBuf {
        RxBuf(vec![0u64; (RX_FRAME_OFFSET + MAX_FRAME).div_ceil(8)])
    }

    /// The frame area.
    fn frame(&self) -> &[u8] {
        // SAFETY: the u64 storage viewed as bytes: same memory, u8 has no alignment or
        // validity requirement, the length is the storage's size in bytes.
        let all =
            unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const u8, self.0.len() * 8) };
        &all[RX_FRAME_OFFSET..]
    }

    fn frame_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `frame`, with the storage borrowed mutably.
        let all = unsafe {
            core::slice::from_raw_parts_mut(self.0.as_mut_ptr() as *mut u8, self.0.len() * 8)
        };
        &mut all[RX_FRAME_OFFSET..]
    }
}

struct Phy<'a, D: NetDevice> {
    dev: &'a mut D,
    rx: &'a mut RxBuf,
    tx: &'a mut Vec<u8>,
    stats: &'a mut Stats,
    udp_fragments: bool,
}

struct RxTok<'a>(&'a [u8]);

struct TxTok<'a, D: NetDevice> {
    dev: &'a mut D,
    buf: &'a mut Vec<u8>,
    stats: &'a mut Stats,
}

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<D: NetDevice> phy::TxToken for TxTok<'_, D> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        let r = f(&mut self.buf[..len]);
        match self.dev.send(&self.buf[..len]) {
            Ok(()) => self.stats.tx_frames += 1,
            Err(_) => self.stats.tx_errors += 1,
        }
        r
    }
}

impl<D: NetDevice> phy::Device for Phy<'_, D> {
    type RxToken<'b>
        = RxTok<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxTok<'b, D>
    where
        Self: 'b;

    fn receive(&mut self, _t: Instant) -> Option<(RxTok<'_>, TxTok<'_, D>)> {
        loop {
            match self.dev.receive(self.rx.frame_mut()) {
                Ok(Some(n)) if n <= self.rx.frame().len() => {
                    self.stats.rx_frames += 1;
                    let frame = &self.rx.frame()[..n];
                    if csum::check_frame(frame, self.udp_fragments) == Verdict::Drop {
                        self.stats.rx_dropped += 1;
                        continue;
                    }
                    return Some((
                        RxTok(&self.rx.frame()[..n]),
                        TxTok {
                            dev: self.dev,
                            buf: self.tx,
                            stats: self.stats,
                        },
                    ));
                }
                Ok(_) => return None,
                Err(_) => {
                    self.stats.rx_errors += 1;
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, _t: Instant) -> Option<TxTok<'_, D>> {
        Some(TxTok {
            dev: self.dev,
            buf: self.tx,
            stats: self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // `csum::check_frame` verifies what smoltcp does not (see there).
        caps.checksum.tcp = Checksum::Tx;
        if !self.udp_fragments {
            caps.checksum.udp = Checksum::Tx;
        }
        caps
    }
}

/// smoltcp's clock from microseconds.
pub(crate) fn instant(now_us: u64) -> Instant {
    Instant::from_micros(now_us.min(i64::MAX as u64) as i64)
}

impl<D: NetDevice> NetStack<D> {
    /// A stack on `dev`, called `name` in messages (U-Boot's "virtio-net#0"),
    /// using `mac` (from `ethaddr`) or else the device's own address. `mac`
    /// must be a valid unicast address ([`super::parse_mac`] checks).
    pub fn new(mut dev: D, name: &str, mac: Option<Mac>, now_us: u64) -> NetStack<D> {
        let mac = mac.unwrap_or_else(|| dev.mac());
        let mac = if EthernetAddress(mac).is_unicast() {
            mac
        } else {
            // A device reporting a multicast address: use a fixed local one
            // rather than let smoltcp panic.
            [0x02, 0, 0, 0, 0, 1]
        };
        let seed =
            now_us ^ u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let mut rx = RxBuf::new();
        let mut tx = vec![0u8; MAX_FRAME];
        let mut stats = Stats::default();
        let mut iface = {
            let mut phy = Phy {
                dev: &mut dev,
                rx: &mut rx,
                tx: &mut tx,
                stats: &mut stats,
                udp_fragments: false,
            };
            Interface::new(config, &mut phy, instant(now_us))
        };
        // A lost fragment must not block the single reassembly buffer for
        // long (smoltcp's default is 60 s; TFTP retries after 5 s).
        iface.set_reassembly_timeout(Duration::from_millis(1000));
        NetStack {
            dev,
            name: String::from(name),
            mac,
            iface,
            sockets: SocketSet::new(Vec::new()),
            rx,
            tx,
            cfg: IpConfig::default(),
            stats,
            seed,
            udp_fragments: false,
        }
    }

    /// Whether UDP datagrams larger than a frame are expected (a TFTP
    /// `blksize` above [`super::tftp::FRAME_BLKSIZE`]): then UDP fragments are
    /// reassembled and smoltcp verifies their checksum; otherwise they are
    /// dropped and unfragmented UDP is verified by `csum::check_frame`.
    pub fn expect_udp_fragments(&mut self, on: bool) {
        self.udp_fragments = on;
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MAC address in use.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Frame counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Uses `mac` from now on (a changed `ethaddr`); ignored unless unicast.
    pub fn set_mac(&mut self, mac: Mac) {
        if EthernetAddress(mac).is_unicast() && mac != self.mac {
            self.mac = mac;
            self.iface
                .set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(mac)));
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &IpConfig {
        &self.cfg
    }

    /// Applies `cfg`: our address and prefix, the default route. A
    /// non-contiguous netmask counts as unset (everything on the link).
    pub fn configure(&mut self, cfg: &IpConfig) {
        self.cfg = cfg.clone();
        let prefix = cfg.prefix_len().unwrap_or(0);
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(ip) = cfg.ip.filter(|ip| !ip.is_unspecified()) {
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(ip, prefix)));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = cfg.gateway.filter(|g| !g.is_unspecified()) {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
    }

    /// Our address, if one is configured.
    pub fn ip(&self) -> Option<Ipv4Address> {
        self.iface.ipv4_addr()
    }

    /// Moves frames: receives and processes what the device has, sends what
    /// the sockets queued, runs ARP and TCP timers.
    pub fn poll(&mut self, now_us: u64) {
        let mut phy = Phy {
            dev: &mut self.dev,
            rx: &mut self.rx,
            tx: &mut self.tx,
            stats: &mut self.stats,
            udp_fragments: self.udp_fragments,
        };
        self.iface
            .poll(instant(now_us), &mut phy, &mut self.sockets);
    }

    /// Adds a socket for the length of a command.
    pub(crate) fn add<S: smoltcp::socket::AnySocket<'static>>(&mut self, s: S) -> SocketHandle {
        self.sockets.add(s)
    }

    /// Removes a socket added with [`NetStack::add`].
    pub(crate) fn remove(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
    }

    /// Starts a TCP connection on socket `h` from local port `local`.
    pub(crate) fn tcp_connect(
        &mut self,
        h: SocketHandle,
        remote: smoltcp::wire::IpEndpoint,
        local: u16,
    ) -> Result<(), super::NetError> {
        let s = self.sockets.get_mut::<smoltcp::socket::tcp::Socket>(h);
        s.connect(self.iface.context(), remote, local)
            .map_err(|_| super::NetError::Stack("cannot open a TCP connection"))
    }

    /// A pseudo-random local port in 1024..=65535 (U-Boot picks its TFTP
    /// port from the timer in the same spirit).
    pub(crate) fn ephemeral_port(&mut self, now_us: u64) -> u16 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(now_us | 1);
        1024 + ((self.seed >> 33) % (65536 - 1024)) as u16
    }

    /// A pseudo-random 32-bit number (DHCP transaction ids).
    pub(crate) fn random_u32(&mut self, now_us: u64) -> u32 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(now_us | 1);
        (self.seed >> 32) as u32
    }
}
