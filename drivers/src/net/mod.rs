//! Network boot: a small device trait ([`NetDevice`]), an IPv4 stack on
//! smoltcp ([`stack::NetStack`]), and the clients U-Boot's network commands
//! need — DHCP/BOOTP ([`dhcp`]), ICMP echo ([`ping`]), TFTP ([`tftp`]),
//! HTTP/1.1 ([`http`]) and the pxelinux.cfg file names ([`pxe`]). Every
//! download goes through a [`sink::Download`], which refuses to write past
//! the destination's limit. docs/network.md describes the design.
//!
//! Each command is one function taking the stack, a [`Ctx`] (clock, ctrl-C,
//! console) and, for downloads, a [`sink::Sink`]; it prints U-Boot's
//! transcript as it goes and returns a typed result or a [`NetError`] whose
//! `Display` is the one line to print. The protocol logic itself lives in
//! state machines (`dhcp::DhcpClient`, `tftp::TftpClient`,
//! `http::ResponseReader`) that are driven by packets and time only, so the
//! host tests and the fuzz targets run them without a network.

pub mod csum;
pub mod dhcp;
pub mod http;
pub mod ping;
pub mod progress;
pub mod pxe;
pub mod sink;
pub mod stack;
pub mod tftp;
#[cfg(target_os = "none")]
pub mod virtio;

use alloc::format;
use alloc::string::String;
use core::fmt;
pub use core::net::Ipv4Addr;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Largest Ethernet frame the stack sends or accepts (1500-byte MTU plus the
/// 14-byte header; no FCS, no VLAN tag).
pub const MAX_FRAME: usize = 1514;

/// A network interface that moves raw Ethernet frames.
pub trait NetDevice {
    /// The interface's own MAC address.
    fn mac(&self) -> Mac;
    /// Copies the next received frame into `buf` (at least [`MAX_FRAME`]
    /// bytes) and returns its length, or `None` at once when no frame is
    /// waiting. Never blocks.
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DeviceError>;
    /// Sends one frame (destination MAC first, no FCS).
    fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError>;
}

/// A device failure (driver-specific text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceError(pub &'static str);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network device error: {}", self.0)
    }
}

/// What a network command needs from the machine while it runs.
pub trait Ctx {
    /// Monotonic time in microseconds.
    fn now_us(&mut self) -> u64;
    /// Whether the user asked to stop (ctrl-C). Polled on every turn of the
    /// command's loop.
    fn interrupted(&mut self) -> bool;
    /// Console output (progress, messages). Lines end in `\n`.
    fn print(&mut self, s: &str);
}

/// Why a network command failed. `Display` is the one line to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// A variable the command needs is not set (U-Boot's wording).
    NotSet(&'static str),
    /// A variable holds something that is not an address.
    BadSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// ctrl-C.
    Aborted,
    /// `ping`: no answer.
    NotAlive(Ipv4Addr),
    /// DHCP/BOOTP failed.
    Dhcp(dhcp::DhcpError),
    /// TFTP failed.
    Tftp(tftp::TftpError),
    /// HTTP failed.
    Http(http::HttpError),
    /// `pxe get`: no configuration file found.
    NoPxeConfig,
    /// The stack could not do what was asked (no socket, ...).
    Stack(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NotSet(v) => write!(f, "*** ERROR: `{v}' not set"),
            NetError::BadSetting { name, value } => {
                write!(f, "*** ERROR: `{name}' is '{value}', not an IPv4 address")
            }
            NetError::Aborted => f.write_str("Abort"),
            NetError::NotAlive(ip) => write!(f, "ping failed; host {ip} is not alive"),
            NetError::Dhcp(e) => write!(f, "{e}"),
            NetError::Tftp(e) => write!(f, "{e}"),
            NetError::Http(e) => write!(f, "{e}"),
            NetError::NoPxeConfig => f.write_str("Config file not found"),
            NetError::Stack(m) => write!(f, "network stack: {m}"),
        }
    }
}

/// The IPv4 settings, as U-Boot keeps them in its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpConfig {
    /// `ipaddr`.
    pub ip: Option<Ipv4Addr>,
    /// `netmask` (unset: every address is on the link, as in U-Boot).
    pub netmask: Option<Ipv4Addr>,
    /// `gatewayip`.
    pub gateway: Option<Ipv4Addr>,
    /// `serverip`.
    pub server: Option<Ipv4Addr>,
    /// `dnsip`.
    pub dns: Option<Ipv4Addr>,
}

impl IpConfig {
    /// Reads `ipaddr`, `netmask`, `gatewayip`, `serverip`, `dnsip` through
    /// `get` (the shell's environment). An empty or missing variable is
    /// unset; one that is not an address is an error naming it.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<IpConfig, NetError> {
        let read = |name: &'static str| -> Result<Option<Ipv4Addr>, NetError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => parse_ip(v.trim())
                    .map(Some)
                    .ok_or(NetError::BadSetting { name, value: v }),
            }
        };
        Ok(IpConfig {
            ip: read("ipaddr")?,
            netmask: read("netmask")?,
            gateway: read("gatewayip")?,
            server: read("serverip")?,
            dns: read("dnsip")?,
        })
    }

    /// Whether `dst` is reached through the gateway (U-Boot's "; sending
    /// through gateway" test).
    pub fn via_gateway(&self, dst: Ipv4Addr) -> bool {
        match (self.ip, self.netmask, self.gateway) {
            (Some(ip), Some(mask), Some(_)) => {
                let m = u32::from(mask);
                (u32::from(ip) & m) != (u32::from(dst) & m)
            }
            _ => false,
        }
    }

    /// The netmask's prefix length, if the mask is contiguous.
    pub fn prefix_len(&self) -> Option<u8> {
        match self.netmask {
            None => Some(0),
            Some(m) => mask_prefix(m),
        }
    }
}

/// Prefix length of a contiguous netmask (`255.255.255.0` → 24).
pub fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// A dotted-quad IPv4 address (`10.0.2.15`), strictly: four decimal parts
/// 0..=255.
pub fn parse_ip(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// `52:54:00:12:34:56` (or with `-`). Multicast and all-zero addresses are
/// refused, as U-Boot's `is_valid_ethaddr` does.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let bad = || format!("'{s}' is not a MAC address (like 52:54:00:12:34:56)");
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(format!("'{s}' is a multicast or zero MAC address"));
    }
    Ok(mac)
}

/// `52:54:00:12:34:56`.
pub fn format_mac(mac: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// U-Boot's warning when `ethaddr` differs from the device's own address
/// (the environment's address is used).
pub fn mac_mismatch_warning(dev_name: &str, rom: &Mac, env: &Mac) -> Option<String> {
    (rom != env).then(|| {
        format!(
            "\nWarning: {dev_name} MAC addresses don't match:\nAddress in ROM is          {}\nAddress in environment is  {}\n",
            format_mac(rom),
            format_mac(env)
        )
    })
}

/// The MAC to use: `ethaddr` when it is a valid unicast address, else the
/// device's. Returns U-Boot's mismatch warning when both exist and differ,
/// or a one-line note when `ethaddr` is not usable (the device's is used).
pub fn choose_mac(dev_name: &str, device: Mac, ethaddr: Option<&str>) -> (Mac, Option<String>) {
    match ethaddr.map(parse_mac) {
        None => (device, None),
        Some(Ok(env)) => (env, mac_mismatch_warning(dev_name, &device, &env)),
        Some(Err(e)) => (
            device,
            Some(format!("ethaddr: {e}; using {}", format_mac(&device))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Ok([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52-54-00-12-34-5f").unwrap()[5], 0x5f);
        assert!(parse_mac("52:54:00:12:34").is_err());
        assert!(parse_mac("52:54:00:12:34:56:78").is_err());
        assert!(parse_mac("52:54:00:12:34:567").is_err());
        assert!(parse_mac("52:54:00:12:34:zz").is_err());
        assert_eq!(
            parse_mac("01:00:5e:00:00:01").unwrap_err(),
            "'01:00:5e:00:00:01' is a multicast or zero MAC address"
        );
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "52:54:00:12:34:56"
        );
    }

    #[test]
    fn mac_choice() {
        let dev = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert_eq!(choose_mac("virtio-net#0", dev, None), (dev, None));
        assert_eq!(
            choose_mac("virtio-net#0", dev, Some("52:54:00:12:34:56")),
            (dev, None)
        );
        let (m, w) = choose_mac("virtio-net#0", dev, Some("02:00:00:00:00:01"));
        assert_eq!(m, [2, 0, 0, 0, 0, 1]);
        assert_eq!(
            w.unwrap(),
            "\nWarning: virtio-net#0 MAC addresses don't match:\nAddress in ROM is          52:54:00:12:34:56\nAddress in environment is  02:00:00:00:00:01\n"
        );
        assert_eq!(
            choose_mac("virtio-net#0", dev, Some("zz")),
            (
                dev,
                Some(
                    "ethaddr: 'zz' is not a MAC address (like 52:54:00:12:34:56); using 52:54:00:12:34:56"
                        .into()
                )
            )
        );
    }

    #[test]
    fn env_config() {
        let env = |k: &str| match k {
            "ipaddr" => Some("10.0.2.15".into()),
            "netmask" => Some("255.255.255.0".into()),
            "gatewayip" => Some("10.0.2.2".into()),
            "serverip" => Some("".into()),
            _ => None,
        };
        let c = IpConfig::from_env(&env).unwrap();
        assert_eq!(c.ip, Some(Ipv4Addr::new(10, 0, 2, 15)));
        assert_eq!(c.server, None);
        assert_eq!(c.prefix_len(), Some(24));
        assert!(c.via_gateway(Ipv4Addr::new(10, 0, 3, 1)));
        assert!(!c.via_gateway(Ipv4Addr::new(10, 0, 2, 1)));
        let bad = |k: &str| (k == "serverip").then(|| "10.0.2".into());
        assert_eq!(
            IpConfig::from_env(&bad).unwrap_err().to_string(),
            "*** ERROR: `serverip' is '10.0.2', not an IPv4 address"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
