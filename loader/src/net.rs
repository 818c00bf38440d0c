//! The network part: virtio-net interfaces (virtio-mmio slots and
//! virtio-pci functions, found in the DT as the disks are in `storage.rs`).
//! Found on the first network command, not at start (start-up time stays
//! the disks').
//!
//! Like U-Boot's `eth_init` / `eth_halt` around every network command, a
//! command opens its interface ([`Net::open`]: the device initialised, its
//! receive buffers posted, a fresh IPv4 stack) and the stack's drop resets
//! the device. So between commands — and after `booti` hands the machine on
//! — no device writes received frames into memory.
//!
//! Interfaces are numbered like the disks: mmio slots in DT order, then PCI
//! functions by bus/device/function; named `virtio-net#N`. The one in use
//! is `${ethact}` when it names one, else the first (U-Boot's rule).
//!
//! PCI: `virtio.rs` walks the bridge and assigns the network functions' BARs
//! clear of every BAR other devices (the disks) decode already.

use crate::arch::timer;
use crate::stages;
use crate::storage::LoaderHal;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use drivers::net::stack::NetStack;
use drivers::net::virtio::VirtioNet;
use drivers::net::{DeviceError, Mac, NetDevice};
use loader::dt::{DtInfo, PciHost};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::DeviceFunction;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceType, Transport};

/// A virtio-net device over either transport.
pub enum NetDev {
    Mmio(VirtioNet<LoaderHal, MmioTransport<'static>>),
    Pci(VirtioNet<LoaderHal, PciTransport>),
}

impl NetDevice for NetDev {
    fn mac(&self) -> Mac {
        match self {
            Self::Mmio(d) => d.mac(),
            Self::Pci(d) => d.mac(),
        }
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DeviceError> {
        match self {
            Self::Mmio(d) => d.receive(buf),
            Self::Pci(d) => d.receive(buf),
        }
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), DeviceError> {
        match self {
            Self::Mmio(d) => d.send(frame),
            Self::Pci(d) => d.send(frame),
        }
    }
}

/// An open interface: its stack (dropping it resets the device).
pub type Stack = NetStack<NetDev>;

/// Where a device is.
#[derive(Clone, Copy)]
enum Loc {
    Mmio { base: u64, size: u64 },
    Pci { ecam: u64, df: DeviceFunction },
}

impl Loc {
    /// Initialises the device (the transport checks it is still a network device).
    fn open(self) -> Result<NetDev, String> {
        match self {
            Self::Mmio { base, size } => {
                let hdr = NonNull::new(base as usize as *mut VirtIOHeader)
                    .ok_or("virtio-mmio slot at 0")?;
                // SAFETY: the slot's region is mapped as device memory from the DT.
                let t = unsafe { MmioTransport::new(hdr, size as usize) }
                    .map_err(|e| format!("{e:?}"))?;
                if t.device_type() != DeviceType::Network {
                    return Err("not a network device any more".into());
                }
                VirtioNet::new(t)
                    .map(NetDev::Mmio)
                    .map_err(|e| format!("{e}"))
            }
            Self::Pci { ecam, df } => {
                let mut root = crate::virtio::root(ecam);
                let t = PciTransport::new::<LoaderHal, _>(&mut root, df)
                    .map_err(|e| format!("{e:?}"))?;
                VirtioNet::new(t)
                    .map(NetDev::Pci)
                    .map_err(|e| format!("{e}"))
            }
        }
    }
}

/// One interface.
pub struct NetIf {
    /// `virtio-net#N`.
    pub name: String,
    /// Where it was found, e.g. `virtio-mmio@0xa003e00` or `pci 00:01.0`.
    pub location: String,
    /// The device's own MAC.
    pub rom_mac: Mac,
    loc: Loc,
}

/// The network part.
pub struct Net {
    ifs: Vec<NetIf>,
    scanned: bool,
    /// Notes already printed (U-Boot warns of a MAC mismatch once, at probe).
    noted: Vec<String>,
}

impl Net {
    pub const fn new() -> Self {
        Self {
            ifs: Vec::new(),
            scanned: false,
            noted: Vec::new(),
        }
    }

    /// Whether `note` is new (and remembers it).
    pub fn first_time(&mut self, note: &str) -> bool {
        if self.noted.iter().any(|n| n == note) {
            return false;
        }
        self.noted.push(note.into());
        true
    }

    /// Finds the virtio-net devices the DT describes (once); returns the lines to print: the
    /// problems met and the [`Net::summary`] (nothing when it was done before).
    pub fn scan(&mut self, dt: Option<&DtInfo>) -> Vec<String> {
        let mut notes = Vec::new();
        if self.scanned {
            return notes;
        }
        self.scanned = true;
        let t0 = timer::ticks();
        let mut found: Vec<(String, Loc)> = Vec::new();
        if let Some(dt) = dt {
            scan_mmio(dt, &mut found);
            for host in &dt.pci_hosts {
                scan_pci(host, &mut found, &mut notes);
            }
        }
        for (location, loc) in found {
            // Opened once for its MAC, then reset again (dropped).
            match loc.open() {
                Ok(dev) => {
                    let name = format!("virtio-net#{}", self.ifs.len());
                    self.ifs.push(NetIf {
                        name,
                        location,
                        rom_mac: dev.mac(),
                        loc,
                    });
                }
                Err(e) => notes.push(format!("{location}: {e}")),
            }
        }
        stages::mark_span("net scan", t0, timer::ticks(), 0);
        notes.push(self.summary());
        notes
    }

    /// U-Boot's `Net:` line: the interfaces found, where, with their own MACs.
    pub fn summary(&self) -> String {
        if self.ifs.is_empty() {
            return "Net:   No ethernet found.".into();
        }
        let list: Vec<String> = self
            .ifs
            .iter()
            .map(|i| {
                format!(
                    "{} ({}, {})",
                    i.name,
                    i.location,
                    drivers::net::format_mac(&i.rom_mac)
                )
            })
            .collect();
        format!("Net:   {}", list.join(", "))
    }

    /// The interface `ethact` names, else the first.
    pub fn active(&self, ethact: Option<&str>) -> Option<&NetIf> {
        ethact
            .and_then(|n| self.ifs.iter().find(|i| i.name == n))
            .or_else(|| self.ifs.first())
    }

    /// Opens `netif` for one command with `mac`: the device initialised and a fresh stack.
    ///
    /// # Errors
    /// The device's refusal, one line.
    pub fn open(netif: &NetIf, mac: Mac) -> Result<Box<Stack>, String> {
        let dev = netif
            .loc
            .open()
            .map_err(|e| format!("{}: {e}", netif.name))?;
        Ok(Box::new(NetStack::new(
            dev,
            &netif.name,
            Some(mac),
            timer::now_us(),
        )))
    }
}

/// Every virtio-mmio slot holding a network device.
fn scan_mmio(dt: &DtInfo, found: &mut Vec<(String, Loc)>) {
    for (r, t) in crate::virtio::mmio_of_kind(dt, DeviceType::Network) {
        // Opened again (and reset when dropped) per command.
        drop(t);
        let (base, size) = (r.base, r.size);
        found.push((format!("virtio-mmio@{base:#x}"), Loc::Mmio { base, size }));
    }
}

/// Every virtio-net function behind `host`, BARs assigned clear of other devices' (`virtio.rs`).
fn scan_pci(host: &PciHost, found: &mut Vec<(String, Loc)>, notes: &mut Vec<String>) {
    let Some((_, functions)) = crate::virtio::find(host, DeviceType::Network, notes) else {
        return;
    };
    for df in functions {
        found.push((
            crate::virtio::location(df),
            Loc::Pci {
                ecam: host.ecam.base,
                df,
            },
        ));
    }
}
