//! Finding virtio devices of one kind for the disks (`storage.rs`), the network
//! interfaces (`net.rs`) and the RNG (`rng.rs`) without disturbing the others':
//! virtio-mmio slots ([`mmio_of_kind`]) and functions behind a DT-described ECAM
//! host bridge ([`find`]), with their memory BARs assigned.
//!
//! The walk follows the host's first bus and the secondary bus of every bridge
//! a previous stage (firmware, a kexec'ing Linux) configured; walking every bus
//! number instead costs 65 536 config reads (each an MMIO exit under a
//! hypervisor) where QEMU's virt has one bus. Before any BAR is assigned, the
//! whole tree is walked once: BARs that functions of *other* kinds decode
//! already (a disk assigned by an earlier scan, a device Linux set up before
//! kexec) are kept clear, so a later scan of one kind never overlaps what a
//! scan of another kind assigned. Functions of the wanted kind are assigned
//! afresh from a bump allocator over the bridge's windows (non-prefetchable
//! first), so a rescan gives them the same BARs again.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use loader::dt::{DtInfo, PciHost, PciSpace, Region};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, ConfigurationAccess, DeviceFunction, HeaderType, MemoryBarType, MmioCam,
    PciRoot,
};
use virtio_drivers::transport::pci::virtio_device_type;
use virtio_drivers::transport::{DeviceType, Transport};

/// The root complex behind `host`'s ECAM.
pub fn root(ecam: u64) -> PciRoot<MmioCam<'static>> {
    // SAFETY: the ECAM region is mapped as device memory from the DT (the MMU maps every
    // `reg` of a PCI host node as device memory at start-up); nothing else owns it.
    PciRoot::new(unsafe { MmioCam::new(ecam as usize as *mut u8, Cam::Ecam) })
}

/// `pci BB:DD.F`, as the scans name a function.
pub fn location(df: DeviceFunction) -> String {
    format!("pci {:02x}:{:02x}.{}", df.bus, df.device, df.function)
}

/// Every function of `kind` behind `host`, by bus/device/function, each with its memory
/// BARs assigned and memory decoding + bus mastering on. Problems met go to `notes`.
pub fn find(
    host: &PciHost,
    kind: DeviceType,
    notes: &mut Vec<String>,
) -> Option<(PciRoot<MmioCam<'static>>, Vec<DeviceFunction>)> {
    let buses = (host.bus_end as u64).saturating_sub(host.bus_start as u64) + 1;
    if host.ecam.size < buses << 20 {
        notes.push(format!("{}: ECAM too small for {buses} buses", host.path));
        return None;
    }
    let mut root = root(host.ecam.base);
    // SAFETY: as in `root`; this second view only reads (bridge bus numbers).
    let cfg = unsafe { MmioCam::new(host.ecam.base as usize as *mut u8, Cam::Ecam) };
    let mut mem32 = window(host, PciSpace::Mem32);
    let mut mem64 = window(host, PciSpace::Mem64);
    let mut wanted: Vec<DeviceFunction> = Vec::new();
    let mut buses = alloc::vec![host.bus_start];
    let mut walked: Vec<u8> = Vec::new();
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
                } else {
                    notes.push(format!(
                        "{}: bridge without a secondary bus number; devices behind it are not scanned",
                        location(df)
                    ));
                }
                continue;
            }
            if virtio_device_type(&info) == Some(kind) {
                wanted.push(df);
                continue;
            }
            // Another kind's BARs, already decoded: keep them clear.
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
        }
    }
    wanted.sort();
    let mut ready = Vec::new();
    for df in wanted {
        match allocate_bars(&mut root, df, &mut mem32, &mut mem64) {
            Ok(()) => ready.push(df),
            Err(e) => notes.push(format!("{}: {e}", location(df))),
        }
    }
    Some((root, ready))
}

/// A bump allocator over one bridge window: (next cpu addr, end, cpu - pci offset).
type Window = Option<(u64, u64, u64)>;

/// The bridge's window of `space`, non-prefetchable first.
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

/// `size` bytes (a power of two, at least 16) aligned to their size; the PCI address.
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

/// Moves the window's start above `[pci, pci + size)` if that range lies in it.
fn skip_used(win: &mut Window, pci: u64, size: u64) {
    if let Some((next, end, off)) = win.as_mut() {
        let cpu = pci.wrapping_add(*off);
        let e = cpu.saturating_add(size);
        if cpu < *end && e > *next {
            *next = e.min(*end);
        }
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

/// The virtio-mmio transports of every DT slot holding a device of `kind`, in DT order, each
/// with the slot's region. A slot holding another kind is left exactly as it is: dropping a
/// virtio-drivers transport resets its device (status 0), which would pull the queues from
/// under a disk, an interface or an RNG another part has set up — and a later request to it
/// would wait forever.
pub fn mmio_of_kind(dt: &DtInfo, kind: DeviceType) -> Vec<(Region, MmioTransport<'static>)> {
    let mut found = Vec::new();
    for slot in &dt.virtio_mmio {
        let base = slot.region.base;
        let Some(hdr) = NonNull::new(base as usize as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the slot's region is mapped as device memory from the DT (start-up maps every
        // virtio-mmio `reg`); `new` only reads the header (magic, version, device id).
        let Ok(t) = (unsafe { MmioTransport::new(hdr, slot.region.size as usize) }) else {
            continue; // empty slot (device id 0) or not virtio
        };
        if t.device_type() == kind {
            found.push((slot.region, t));
        } else {
            // Another part's device: not reset.
            core::mem::forget(t);
        }
    }
    found
}
