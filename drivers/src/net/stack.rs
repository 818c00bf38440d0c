//! The IPv4 stack: smoltcp's `Interface` on a [`NetDevice`], with the socket
//! set the clients borrow for the length of one command.
//!
//! The stack keeps the interface (and with it the ARP cache) between
//! commands; the loader makes one per network device and calls
//! [`NetStack::configure`] with the environment's settings before each
//! command, as U-Boot re-reads `ipaddr` & co. every time.

use super::{IpConfig, Mac, NetDevice, MAX_FRAME};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
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
}

/// One network interface with its IPv4 stack.
pub struct NetStack<D: NetDevice> {
    dev: D,
    name: String,
    mac: Mac,
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    cfg: IpConfig,
    stats: Stats,
    seed: u64,
}

/// smoltcp's view of the device for one poll.
struct Phy<'a, D: NetDevice> {
    dev: &'a mut D,
    rx: &'a mut Vec<u8>,
    tx: &'a mut Vec<u8>,
    stats: &'a mut Stats,
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
        match self.dev.receive(self.rx) {
            Ok(Some(n)) if n <= self.rx.len() => {
                self.stats.rx_frames += 1;
                Some((
                    RxTok(&self.rx[..n]),
                    TxTok {
                        dev: self.dev,
                        buf: self.tx,
                        stats: self.stats,
                    },
                ))
            }
            Ok(_) => None,
            Err(_) => {
                self.stats.rx_errors += 1;
                None
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
        let mut rx = vec![0u8; MAX_FRAME];
        let mut tx = vec![0u8; MAX_FRAME];
        let mut stats = Stats::default();
        let mut iface = {
            let mut phy = Phy {
                dev: &mut dev,
                rx: &mut rx,
                tx: &mut tx,
                stats: &mut stats,
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
        }
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
