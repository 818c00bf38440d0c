//! Bounds-checked property value helpers: strings, cells, `reg` decoding, interrupt
//! specifiers, and the address translation of a bus's `ranges`.

use alloc::string::String;
use alloc::vec::Vec;

use dtoolkit::fdt::FdtNode;
use dtoolkit::{Node, Property};

use super::*;

pub(super) fn prop<'a>(node: &FdtNode<'a>, name: &str) -> Option<&'a [u8]> {
    node.properties()
        .find(|p| p.name() == name)
        .and_then(|p| p.value_as::<&'a [u8]>().ok())
}

/// First string of a NUL-terminated string (list).
pub(super) fn first_str(value: &[u8]) -> Option<&str> {
    let nul = value.iter().position(|&b| b == 0)?;
    core::str::from_utf8(value.get(..nul)?).ok()
}

/// A string list; `None` if not NUL-terminated or not UTF-8. At most [`MAX_STRINGS`] entries.
pub(super) fn str_list(value: &[u8]) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let Some((&last, body)) = value.split_last() else {
        return Some(out);
    };
    if last != 0 {
        return None;
    }
    for part in body.split(|&b| b == 0).take(MAX_STRINGS) {
        out.push(core::str::from_utf8(part).ok()?);
    }
    Some(out)
}

pub(super) fn has_string(value: &[u8], s: &str) -> bool {
    value.split(|&b| b == 0).any(|p| p == s.as_bytes())
}

pub(super) fn u32_of(value: &[u8]) -> Option<u32> {
    if value.len() == 4 {
        be32_at(value, 0)
    } else {
        None
    }
}

/// Most `#redistributor-regions` a GICv3 node may declare.
pub const MAX_REDIST_REGIONS: u32 = 16;

/// The first interrupt of an `interrupts` property written for a GIC (type, number, flags) as
/// an INTID: SPI (type 0) n → n + 32 (n < 988), PPI (type 1) n → n + 16 (n < 16).
pub(super) fn gic_intid(value: &[u8]) -> Option<u32> {
    if value.len() < 12 || !value.len().is_multiple_of(12) {
        return None;
    }
    let ty = be32_at(value, 0)?;
    let num = be32_at(value, 4)?;
    match ty {
        0 if num < 988 => Some(num + 32),
        1 if num < 16 => Some(num + 16),
        _ => None,
    }
}

/// Decodes an architected timer's `interrupts` written for a GIC (three cells per interrupt:
/// type, number, flags; type 1 = PPI). Up to four interrupts in the binding's order (secure
/// physical, non-secure physical, virtual, hypervisor physical); a non-PPI entry gives `None`
/// for that timer. `None` if the property is not a whole number of triples, or has none.
pub(super) fn timer_irqs(value: &[u8]) -> Option<TimerIrqs> {
    if value.is_empty() || !value.len().is_multiple_of(12) {
        return None;
    }
    let ppi = |i: usize| -> Option<u32> {
        let ty = be32_at(value, i * 12)?;
        let num = be32_at(value, i * 12 + 4)?;
        (ty == 1 && num < 16).then(|| num + 16)
    };
    Some(TimerIrqs {
        secure_phys: ppi(0),
        nonsecure_phys: ppi(1),
        virt: ppi(2),
        hyp_phys: ppi(3),
    })
}

/// Big-endian number of 0, 1 or 2 cells (`value.len()` 0, 4 or 8).
pub(super) fn cells_value(value: &[u8]) -> Option<u64> {
    match value.len() {
        0 => Some(0),
        4 => be32_at(value, 0).map(u64::from),
        8 => Some((u64::from(be32_at(value, 0)?) << 32) | u64::from(be32_at(value, 4)?)),
        _ => None,
    }
}

pub(super) fn cells_bytes(cells: u32) -> Option<usize> {
    usize::try_from(cells).ok()?.checked_mul(4)
}

/// Decodes a `reg`-style array of `(address, size)` tuples.
pub(super) fn decode_reg(value: &[u8], cells: CellSizes) -> Result<Vec<Region>, RegError> {
    if !(1..=2).contains(&cells.address) || cells.size > 2 {
        return Err(RegError::UnsupportedCells {
            address: cells.address,
            size: cells.size,
        });
    }
    let a = cells_bytes(cells.address).unwrap_or(0);
    let s = cells_bytes(cells.size).unwrap_or(0);
    let entry = a.saturating_add(s);
    if entry == 0 || !value.len().is_multiple_of(entry) {
        return Err(RegError::BadLength {
            len: value.len(),
            entry,
        });
    }
    let mut out = Vec::new();
    for chunk in value.chunks_exact(entry).take(MAX_REG_ENTRIES) {
        let (ab, sb) = chunk.split_at(a);
        let base = cells_value(ab).unwrap_or(0);
        let size = cells_value(sb).unwrap_or(0);
        if base.checked_add(size).is_none() {
            return Err(RegError::Overflow { base, size });
        }
        out.push(Region { base, size });
    }
    Ok(out)
}

pub(super) fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(super) fn join_path(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len().saturating_add(name.len()).saturating_add(1));
    if parent != "/" {
        s.push_str(parent);
    }
    s.push('/');
    s.push_str(name);
    s
}

pub(super) fn status_of(node: &FdtNode<'_>) -> Status {
    match prop(node, "status") {
        None => Status::Okay,
        Some(v) => match first_str(v) {
            Some("okay" | "ok") => Status::Okay,
            Some("disabled") => Status::Disabled,
            Some("reserved") => Status::Reserved,
            Some(s) if s.starts_with("fail") => Status::Fail,
            _ => Status::Unknown,
        },
    }
}

/// Address translation from a bus's child address space to CPU physical addresses.
#[derive(Clone)]
pub(super) enum Xlat {
    Identity,
    Windows(Vec<Window>),
}

#[derive(Clone, Copy)]
pub(super) struct Window {
    pub(super) child: u64,
    pub(super) cpu: u64,
    pub(super) size: u64,
}

impl Xlat {
    pub(super) fn translate(&self, r: Region) -> Option<Region> {
        match self {
            // Fuzz regression (pci-window-wraps): identity must not let a
            // wrapping range through either.
            Self::Identity => r.base.checked_add(r.size).map(|_| r),
            Self::Windows(ws) => ws.iter().find_map(|w| {
                let off = r.base.checked_sub(w.child)?;
                if off.checked_add(r.size)? > w.size {
                    return None;
                }
                let base = w.cpu.checked_add(off)?;
                base.checked_add(r.size)?;
                Some(Region { base, size: r.size })
            }),
        }
    }
}

/// The address context a node's `reg` is interpreted in (its parent's).
pub(super) struct Bus {
    pub(super) cells: CellSizes,
    pub(super) xlat: Xlat,
}
