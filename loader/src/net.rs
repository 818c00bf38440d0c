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
//! PCI: the disks' scan assigns BARs from the start of the bridge's memory
//! windows each time it runs, always to the same disks in the same order;
//! this scan puts the network functions' BARs above every BAR already
//! decoded in the window, so the two never overlap.

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
use loader::dt::{DtInfo, PciHost, PciSpace};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, ConfigurationAccess, DeviceFunction, HeaderType, MemoryBarType, MmioCam,
    PciRoot,
};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
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
                // SAFETY: the ECAM region is mapped as device memory from the DT.
                let cam = unsafe { MmioCam::new(ecam as usize as *mut u8, Cam::Ecam) };
                let mut root = PciRoot::new(cam);
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
    for slot in &dt.virtio_mmio {
        let base = slot.region.base;
        let Some(hdr) = NonNull::new(base as usize as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the slot's region is mapped as device memory from the DT; the transport
        // only reads the header here. Dropping a transport writes status 0 (a reset), so
        // those of other devices (a disk in use) are forgotten instead of dropped.
        let Ok(t) = (unsafe { MmioTransport::new(hdr, slot.region.size as usize) }) else {
            continue; // empty slot or not virtio
        };
        if t.device_type() != DeviceType::Network {
            core::mem::forget(t);
            continue;
        }
        found.push((
            format!("virtio-mmio@{base:#x}"),
            Loc::Mmio {
                base,
                size: slot.region.size,
            },
        ));
    }
}

type Window = Option<(u64, u64, u64)>; // (next cpu addr, end, cpu - pci offset)

/// A bump allocator over the bridge's window of `space` (non-prefetchable first).
fn window(host: &PciHost, space: PciSpace) -> Window {
    host.windows
        .iter()
        .filter(|w| w.space == space)
        .min_by_key(|w| w.prefetchable)
        .map(|w| {
            (
                w.cpu_addr,
                w.cpu_addr.saturating_add(w.size),
                w.cpu_addr.wrapping_sub(w.pci_addr),
            )
        })
}

fn take(win: &mut Window, size: u64) -> Option<u64> {
    let (next, end, off) = win.as_mut()?;
    let size = size.max(16).checked_next_power_of_two()?;
    let a = next.checked_add(size - 1)? & !(size - 1);
    let e = a.checked_add(size)?;
    if e > *end {
        return None;
    }
    *next = e;
    Some(a.wrapping_sub(*off))
}

/// Moves the window's start above `[pci, pci + size)` if that range (a BAR already decoded)
/// lies in it.
fn skip_used(win: &mut Window, pci: u64, size: u64) {
    if let Some((next, end, off)) = win.as_mut() {
        let cpu = pci.wrapping_add(*off);
        let e = cpu.saturating_add(size);
        if cpu < *end && e > *next {
            *next = e.min(*end);
        }
    }
}

/// Every virtio-net function behind `host`, with BARs assigned above those already in use.
fn scan_pci(host: &PciHost, found: &mut Vec<(String, Loc)>, notes: &mut Vec<String>) {
    let buses = (host.bus_end as u64).saturating_sub(host.bus_start as u64) + 1;
    if host.ecam.size < buses << 20 {
        notes.push(format!("{}: ECAM too small for {buses} buses", host.path));
        return;
    }
    // SAFETY: the ECAM region is mapped as device memory from the DT.
    let cam = unsafe { MmioCam::new(host.ecam.base as usize as *mut u8, Cam::Ecam) };
    let mut root = PciRoot::new(cam);
    // SAFETY: as above; only read (bridge bus numbers).
    let cfg = unsafe { MmioCam::new(host.ecam.base as usize as *mut u8, Cam::Ecam) };
    let mut functions: Vec<DeviceFunction> = Vec::new();
    let mut buses = alloc::vec![host.bus_start];
    let mut walked: Vec<u8> = Vec::new();
    let mut mem32 = window(host, PciSpace::Mem32);
    let mut mem64 = window(host, PciSpace::Mem64);
    while let Some(bus) = buses.pop() {
        if walked.contains(&bus) || walked.len() >= 256 {
            continue;
        }
        walked.push(bus);
        let list: Vec<_> = root.enumerate_bus(bus).collect();
        for (df, info) in list {
            if info.header_type == HeaderType::PciPciBridge {
                let secondary = (cfg.read_word(df, 0x18) >> 8) as u8;
                if secondary > bus && secondary <= host.bus_end {
                    buses.push(secondary);
                }
                continue;
            }
            // BARs others decode already: allocate above them.
            let (_, command) = root.get_status_command(df);
            if command.contains(Command::MEMORY_SPACE) {
                if let Ok(bars) = root.bars(df) {
                    for bar in bars.iter().flatten() {
                        if let BarInfo::Memory { address, size, .. } = bar {
                            skip_used(&mut mem32, *address, *size);
                            skip_used(&mut mem64, *address, *size);
                        }
                    }
                }
            }
            if virtio_device_type(&info) == Some(DeviceType::Network) {
                functions.push(df);
            }
        }
    }
    functions.sort();
    for df in functions {
        let loc = format!("pci {:02x}:{:02x}.{}", df.bus, df.device, df.function);
        if let Err(e) = allocate_bars(&mut root, df, &mut mem32, &mut mem64) {
            notes.push(format!("{loc}: {e}"));
            continue;
        }
        found.push((
            loc,
            Loc::Pci {
                ecam: host.ecam.base,
                df,
            },
        ));
    }
}

fn allocate_bars(
    root: &mut PciRoot<MmioCam<'static>>,
    df: DeviceFunction,
    mem32: &mut Window,
    mem64: &mut Window,
) -> Result<(), String> {
    let bars = root.bars(df).map_err(|e| format!("BAR probe: {e:?}"))?;
    for (i, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address_type, size, ..
        }) = bar
        else {
            continue;
        };
        if *size == 0 {
            continue;
        }
        match address_type {
            MemoryBarType::Width64 => {
                let pci = take(mem64, *size)
                    .or_else(|| take(mem32, *size))
                    .ok_or("no PCI memory window space for a 64-bit BAR")?;
                root.set_bar_64(df, i as u8, pci);
            }
            _ => {
                let pci = take(mem32, *size).ok_or("no 32-bit PCI memory window space")?;
                let pci = u32::try_from(pci).map_err(|_| "32-bit BAR above 4 GiB")?;
                root.set_bar_32(df, i as u8, pci);
            }
        }
    }
    root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
    Ok(())
}
