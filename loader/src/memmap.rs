//! The memory map: RAM banks and the claims made on them.
//!
//! Every range the loader uses or protects (its own image, stack and heap, the incoming DT,
//! `/memreserve/` and `/reserved-memory` ranges, the spin pen, and at boot time the kernel, initrd
//! and FDT) is a [`Claim`] with an [`Owner`]. Claims never overlap and always lie inside one
//! (normalised) RAM bank; a refused claim says exactly which two users collide, e.g.
//! `0x40200000..0x40400000 (kernel) overlaps 0x40000000..0x40300000 (loader image)`.
//!
//! All arithmetic on addresses is checked or saturating: inputs may come from an untrusted DT or
//! from the shell.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dt::Region;

const MIB: u64 = 1 << 20;

/// Who a claim belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    LoaderImage,
    LoaderStack,
    LoaderHeap,
    /// The DTB the loader was given.
    IncomingDt,
    /// Entry `n` (0-based) of the incoming DT's `/memreserve/` block.
    MemReserve(usize),
    /// A `/reserved-memory` child, by node name.
    ReservedMemory(String),
    /// The secondary-CPU spin pen.
    Pen,
    Kernel,
    Initrd,
    /// The DTB handed to the kernel.
    Fdt,
    /// A file loaded by a shell command (the string says what).
    Load(String),
    Other(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoaderImage => f.write_str("loader image"),
            Self::LoaderStack => f.write_str("loader stack"),
            Self::LoaderHeap => f.write_str("loader heap"),
            Self::IncomingDt => f.write_str("incoming DT"),
            Self::MemReserve(n) => write!(f, "/memreserve/ #{n}"),
            Self::ReservedMemory(name) => write!(f, "reserved-memory: {name}"),
            Self::Pen => f.write_str("pen"),
            Self::Kernel => f.write_str("kernel"),
            Self::Initrd => f.write_str("initrd"),
            Self::Fdt => f.write_str("fdt"),
            Self::Load(what) => write!(f, "load: {what}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// Identifies a claim; ids are never reused within one [`MemMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClaimId(u64);

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A claimed range `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: ClaimId,
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    pub owner: Owner,
}

impl Claim {
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    #[must_use]
    pub const fn region(&self) -> Region {
        Region::new(self.start, self.size())
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x} ({})", self.start, self.end, self.owner)
    }
}

/// Why a range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemError {
    ZeroSize {
        start: u64,
        owner: Owner,
    },
    Overflow {
        start: u64,
        size: u64,
        owner: Owner,
    },
    /// Not entirely inside one RAM bank.
    OutsideRam {
        start: u64,
        end: u64,
        owner: Owner,
    },
    Overlap {
        start: u64,
        end: u64,
        owner: Owner,
        other_start: u64,
        other_end: u64,
        other_owner: Owner,
    },
    NoSuchClaim {
        id: ClaimId,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroSize { start, owner } => {
                write!(f, "zero-size range at {start:#x} ({owner})")
            }
            Self::Overflow { start, size, owner } => write!(
                f,
                "range {start:#x} + {size:#x} ({owner}) overflows the address space"
            ),
            Self::OutsideRam { start, end, owner } => {
                write!(f, "{start:#x}..{end:#x} ({owner}) is not inside a RAM bank")
            }
            Self::Overlap {
                start,
                end,
                owner,
                other_start,
                other_end,
                other_owner,
            } => write!(
                f,
                "{start:#x}..{end:#x} ({owner}) overlaps {other_start:#x}..{other_end:#x} ({other_owner})"
            ),
            Self::NoSuchClaim { id } => write!(f, "no memory claim {id}"),
        }
    }
}

/// Which end of the free space [`MemMap::find_free`] prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    Low,
    High,
}

/// Default load addresses (U-Boot environment names) and the room each has before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadAddrs {
    pub kernel_addr_r: u64,
    /// Bytes reserved for the kernel's load (and in-place footprint) before `fdt_addr_r`.
    pub kernel_size: u64,
    pub fdt_addr_r: u64,
    pub fdt_size: u64,
    pub scriptaddr: u64,
    pub pxefile_addr_r: u64,
    /// Scratch area for a compressed kernel (U-Boot: copied here, inflated to `kernel_addr_r`).
    pub kernel_comp_addr_r: u64,
    pub kernel_comp_size: u64,
    pub ramdisk_addr_r: u64,
    /// Everything from `ramdisk_addr_r` to the end of the free area.
    pub ramdisk_size: u64,
}

impl LoadAddrs {
    /// `(variable, value)` pairs to seed the environment with.
    #[must_use]
    pub const fn env(&self) -> [(&'static str, u64); 7] {
        [
            ("kernel_addr_r", self.kernel_addr_r),
            ("fdt_addr_r", self.fdt_addr_r),
            ("scriptaddr", self.scriptaddr),
            ("pxefile_addr_r", self.pxefile_addr_r),
            ("kernel_comp_addr_r", self.kernel_comp_addr_r),
            ("kernel_comp_size", self.kernel_comp_size),
            ("ramdisk_addr_r", self.ramdisk_addr_r),
        ]
    }
}

/// What [`MemMap::reserve`] did with a firmware reservation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReserveOutcome {
    /// Claims created for the parts inside RAM that were still free.
    pub claimed: Vec<ClaimId>,
    /// Existing claims the reservation overlapped (those parts were already protected).
    pub overlapped: Vec<ClaimId>,
    /// Some of the range lies outside RAM (nothing to protect there).
    pub outside_ram: bool,
}

/// RAM banks plus non-overlapping claims.
#[derive(Debug, Clone, Default)]
pub struct MemMap {
    /// Sorted, non-empty, non-overlapping, non-adjacent.
    banks: Vec<Region>,
    /// Sorted by start; pairwise disjoint; each inside one bank.
    claims: Vec<Claim>,
    next_id: u64,
}

/// Rounds up to `align` (a power of two).
const fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align.saturating_sub(1);
    match x.checked_add(mask) {
        Some(v) => Some(v & !mask),
        None => None,
    }
}

/// Rounds down to `align` (a power of two).
const fn align_down(x: u64, align: u64) -> u64 {
    x & !align.saturating_sub(1)
}

impl MemMap {
    /// A map of `banks` (any order; zero-size banks are dropped, overlapping or adjacent ones
    /// merged, ends saturate at `u64::MAX`). No claims.
    #[must_use]
    pub fn new(banks: &[Region]) -> Self {
        let mut v: Vec<(u64, u64)> = banks
            .iter()
            .filter(|b| b.size > 0)
            .map(|b| (b.base, b.base.saturating_add(b.size)))
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Self {
            banks: merged
                .into_iter()
                .map(|(s, e)| Region::new(s, e.saturating_sub(s)))
                .collect(),
            claims: Vec::new(),
            next_id: 1,
        }
    }

    /// The normalised RAM banks.
    #[must_use]
    pub fn banks(&self) -> &[Region] {
        &self.banks
    }

    /// All claims, by address.
    pub fn claims(&self) -> impl Iterator<Item = &Claim> {
        self.claims.iter()
    }

    /// The claim with this id.
    #[must_use]
    pub fn claim_by_id(&self, id: ClaimId) -> Option<&Claim> {
        self.claims.iter().find(|c| c.id == id)
    }

    /// The claim containing `addr`.
    #[must_use]
    pub fn claim_at(&self, addr: u64) -> Option<&Claim> {
        let idx = self.claims.partition_point(|c| c.end <= addr);
        self.claims
            .get(idx)
            .filter(|c| c.start <= addr && addr < c.end)
    }

    /// The bank fully containing `[start, end)`.
    fn bank_containing(&self, start: u64, end: u64) -> Option<Region> {
        self.banks
            .iter()
            .copied()
            .find(|b| start >= b.base && end <= b.end())
    }

    /// Whether `[start, start + size)` is non-empty and inside one RAM bank.
    #[must_use]
    pub fn in_ram(&self, start: u64, size: u64) -> bool {
        size > 0
            && start
                .checked_add(size)
                .is_some_and(|end| self.bank_containing(start, end).is_some())
    }

    /// Validates a range and returns `(end, insertion index)`.
    fn validate(&self, start: u64, size: u64, owner: &Owner) -> Result<(u64, usize), MemError> {
        if size == 0 {
            return Err(MemError::ZeroSize {
                start,
                owner: owner.clone(),
            });
        }
        let Some(end) = start.checked_add(size) else {
            return Err(MemError::Overflow {
                start,
                size,
                owner: owner.clone(),
            });
        };
        if self.bank_containing(start, end).is_none() {
            return Err(MemError::OutsideRam {
                start,
                end,
                owner: owner.clone(),
            });
        }
        let idx = self.claims.partition_point(|c| c.start < start);
        let prev = idx
            .checked_sub(1)
            .and_then(|i| self.claims.get(i))
            .filter(|c| c.end > start);
        let next = self.claims.get(idx).filter(|c| c.start < end);
        if let Some(other) = prev.or(next) {
            return Err(MemError::Overlap {
                start,
                end,
                owner: owner.clone(),
                other_start: other.start,
                other_end: other.end,
                other_owner: other.owner.clone(),
            });
        }
        Ok((end, idx))
    }

    /// Checks that `[start, start + size)` could be claimed by `owner` (non-empty, no overflow,
    /// inside one RAM bank, overlapping no claim) without claiming it.
    ///
    /// # Errors
    /// The [`MemError`] [`MemMap::claim`] would return.
    pub fn check(&self, start: u64, size: u64, owner: &Owner) -> Result<(), MemError> {
        self.validate(start, size, owner).map(|_| ())
    }

    /// Claims `[start, start + size)` for `owner`.
    ///
    /// # Errors
    /// [`MemError::ZeroSize`], [`MemError::Overflow`], [`MemError::OutsideRam`] or
    /// [`MemError::Overlap`] (naming the first claim hit).
    pub fn claim(&mut self, start: u64, size: u64, owner: Owner) -> Result<ClaimId, MemError> {
        let (end, idx) = self.validate(start, size, &owner)?;
        let id = ClaimId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        self.claims.insert(
            idx,
            Claim {
                id,
                start,
                end,
                owner,
            },
        );
        Ok(id)
    }

    /// Releases a claim and returns it.
    ///
    /// # Errors
    /// [`MemError::NoSuchClaim`].
    pub fn release(&mut self, id: ClaimId) -> Result<Claim, MemError> {
        let idx = self
            .claims
            .iter()
            .position(|c| c.id == id)
            .ok_or(MemError::NoSuchClaim { id })?;
        Ok(self.claims.remove(idx))
    }

    /// Replaces the claims `ids` by one claim of `[start, start + size)` for `owner`, as one
    /// step: when the new claim is refused (or an id is unknown), every claim of `ids` is back
    /// exactly as it was (range, owner, id) and the map is unchanged. Used where a range that
    /// must never be unprotected changes owner (a predecessor's pen adopted in place: its
    /// `/memreserve/` claim becomes the pen's).
    ///
    /// # Errors
    /// [`MemError::NoSuchClaim`] for an unknown id, else what [`MemMap::claim`] returns.
    pub fn replace(
        &mut self,
        ids: &[ClaimId],
        start: u64,
        size: u64,
        owner: Owner,
    ) -> Result<ClaimId, MemError> {
        if let Some(&id) = ids.iter().find(|&&id| self.claim_by_id(id).is_none()) {
            return Err(MemError::NoSuchClaim { id });
        }
        let saved: Vec<Claim> = self
            .claims
            .iter()
            .filter(|c| ids.contains(&c.id))
            .cloned()
            .collect();
        self.claims.retain(|c| !ids.contains(&c.id));
        match self.claim(start, size, owner) {
            Ok(id) => Ok(id),
            Err(e) => {
                for c in saved {
                    let idx = self.claims.partition_point(|x| x.start < c.start);
                    self.claims.insert(idx, c);
                }
                Err(e)
            }
        }
    }

    /// Protects a firmware reservation (`/memreserve/`, `/reserved-memory`) as well as possible:
    /// the parts of `[start, start + size)` inside RAM that are still free are claimed for `owner`
    /// (possibly several claims); parts already claimed, or outside RAM, are reported instead of
    /// being an error. Overflowing ranges are clipped at `u64::MAX`.
    pub fn reserve(&mut self, start: u64, size: u64, owner: &Owner) -> ReserveOutcome {
        let mut out = ReserveOutcome::default();
        let end = start.saturating_add(size);
        if end <= start {
            return out;
        }
        let mut inside: u64 = 0;
        let pieces: Vec<(u64, u64)> = self
            .banks
            .iter()
            .filter_map(|b| {
                let s = start.max(b.base);
                let e = end.min(b.end());
                (s < e).then_some((s, e))
            })
            .collect();
        for (s, e) in pieces {
            inside = inside.saturating_add(e.saturating_sub(s));
            // Free sub-ranges of [s, e) between existing claims.
            let mut cursor = s;
            let overlapping: Vec<(u64, u64, ClaimId)> = self
                .claims
                .iter()
                .filter(|c| c.start < e && c.end > s)
                .map(|c| (c.start, c.end, c.id))
                .collect();
            let mut free = Vec::new();
            for (cs, ce, cid) in overlapping {
                out.overlapped.push(cid);
                if cs > cursor {
                    free.push((cursor, cs));
                }
                cursor = cursor.max(ce);
            }
            if cursor < e {
                free.push((cursor, e));
            }
            for (fs, fe) in free {
                if let Ok(id) = self.claim(fs, fe.saturating_sub(fs), owner.clone()) {
                    out.claimed.push(id);
                }
            }
        }
        out.outside_ram = inside < end.saturating_sub(start);
        out
    }

    /// Free ranges (inside RAM, outside every claim), by address.
    #[must_use]
    pub fn free_regions(&self) -> Vec<Region> {
        let mut out = Vec::new();
        for b in &self.banks {
            let mut cursor = b.base;
            for c in self
                .claims
                .iter()
                .filter(|c| c.start >= b.base && c.start < b.end())
            {
                if c.start > cursor {
                    out.push(Region::new(cursor, c.start.saturating_sub(cursor)));
                }
                cursor = cursor.max(c.end);
            }
            if b.end() > cursor {
                out.push(Region::new(cursor, b.end().saturating_sub(cursor)));
            }
        }
        out
    }

    /// Finds a free, `align`-aligned start for `size` bytes (`align` 0 means 1; it must otherwise
    /// be a power of two). With `below`, the range must end at or below that address. `Low` gives
    /// the lowest such start, `High` the highest.
    #[must_use]
    pub fn find_free(
        &self,
        size: u64,
        align: u64,
        below: Option<u64>,
        prefer: Prefer,
    ) -> Option<u64> {
        let align = align.max(1);
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let mut best = None;
        for gap in self.free_regions() {
            let gap_end = below.map_or(gap.end(), |b| gap.end().min(b));
            let candidate = match prefer {
                Prefer::Low => align_up(gap.base, align)
                    .filter(|s| s.checked_add(size).is_some_and(|e| e <= gap_end)),
                Prefer::High => gap_end
                    .checked_sub(size)
                    .map(|s| align_down(s, align))
                    .filter(|&s| s >= gap.base),
            };
            if let Some(s) = candidate {
                match prefer {
                    Prefer::Low => return Some(s),
                    Prefer::High => best = Some(s),
                }
            }
        }
        best
    }

    /// Default load addresses for this map, or `None` if no free area holds even the smallest
    /// layout (24 MiB).
    ///
    /// Policy: from the first 2 MiB boundary of a free area lay out, in order: `kernel_addr_r`
    /// (kernel slot), `fdt_addr_r` (2 MiB), `scriptaddr` (1 MiB), `pxefile_addr_r` (1 MiB),
    /// `kernel_comp_addr_r` (compressed-kernel slot) and `ramdisk_addr_r`, which gets everything
    /// up to the end of the area. The slots are the first tier of [`LAYOUT_TIERS`] that fits
    /// (64 / 32 / at least 192 MiB for kernel / compressed kernel / ramdisk when RAM allows; the
    /// ramdisk shrinks first, the kernel last). The area is the largest free area of the first
    /// (lowest) RAM bank, unless the largest free area of all banks allows a better tier.
    #[must_use]
    pub fn default_load_addresses(&self) -> Option<LoadAddrs> {
        let free = self.free_regions();
        let first_bank = self.banks.first()?;
        let largest_in_first = free
            .iter()
            .filter(|r| first_bank.contains(r.base))
            .max_by_key(|r| r.size)
            .copied();
        let largest = free.iter().max_by_key(|r| r.size).copied();
        let a = largest_in_first.and_then(layout_in);
        let b = largest.and_then(layout_in);
        match (a, b) {
            (Some((ta, la)), Some((tb, lb))) => Some(if tb < ta { lb } else { la }),
            (Some((_, l)), None) | (None, Some((_, l))) => Some(l),
            (None, None) => None,
        }
    }
}

/// `(kernel, compressed kernel, minimum ramdisk)` slot sizes in MiB, best first.
pub const LAYOUT_TIERS: [(u64, u64, u64); 7] = [
    (64, 32, 192),
    (64, 32, 64),
    (64, 16, 32),
    (32, 16, 32),
    (32, 8, 16),
    (16, 8, 8),
    (8, 4, 8),
];

/// Lays out the load slots in `area`; returns the tier index used and the addresses.
fn layout_in(area: Region) -> Option<(usize, LoadAddrs)> {
    const FDT: u64 = 2 * MIB;
    const SCRIPT: u64 = MIB;
    const PXE: u64 = MIB;
    let k0 = align_up(area.base, 2 * MIB)?;
    let area_end = area.end();
    for (tier, &(kernel, comp, ramdisk_min)) in LAYOUT_TIERS.iter().enumerate() {
        let (kernel, comp, ramdisk_min) = (
            kernel.saturating_mul(MIB),
            comp.saturating_mul(MIB),
            ramdisk_min.saturating_mul(MIB),
        );
        let need = kernel
            .saturating_add(FDT + SCRIPT + PXE)
            .saturating_add(comp)
            .saturating_add(ramdisk_min);
        if k0.checked_add(need).is_some_and(|e| e <= area_end) {
            // No overflow below: k0 + need <= area_end.
            let fdt_addr_r = k0.saturating_add(kernel);
            let scriptaddr = fdt_addr_r.saturating_add(FDT);
            let pxefile_addr_r = scriptaddr.saturating_add(SCRIPT);
            let kernel_comp_addr_r = pxefile_addr_r.saturating_add(PXE);
            let ramdisk_addr_r = kernel_comp_addr_r.saturating_add(comp);
            return Some((
                tier,
                LoadAddrs {
                    kernel_addr_r: k0,
                    kernel_size: kernel,
                    fdt_addr_r,
                    fdt_size: FDT,
                    scriptaddr,
                    pxefile_addr_r,
                    kernel_comp_addr_r,
                    kernel_comp_size: comp,
                    ramdisk_addr_r,
                    ramdisk_size: area_end.saturating_sub(ramdisk_addr_r),
                },
            ));
        }
    }
    None
}

impl fmt::Display for MemMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.banks {
            writeln!(f, "RAM {b} ({} MiB)", b.size >> 20)?;
            for c in self
                .claims
                .iter()
                .filter(|c| c.start >= b.base && c.start < b.end())
            {
                writeln!(f, "  {c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn replace_is_all_or_nothing() {
        // #17 item 4: a pen adopted in place changes owner from its /memreserve/ claim to the
        // pen claim; a refused pen claim must leave the reservation in place.
        let mut m = MemMap::new(&[Region::new(0x4000_0000, 0x1000_0000)]);
        let res = m.claim(0x4f00_0000, 0x1000, Owner::MemReserve(0)).unwrap();
        let res2 = m.claim(0x4f00_1000, 0x1000, Owner::MemReserve(1)).unwrap();
        m.claim(0x4f00_2000, 0x1000, Owner::ReservedMemory("fw".into()))
            .unwrap();
        let before: Vec<Claim> = m.claims().cloned().collect();
        // the pen runs into the reserved-memory node: refused, nothing released
        let e = m
            .replace(&[res, res2], 0x4f00_0000, 0x3000, Owner::Pen)
            .unwrap_err();
        assert!(matches!(e, MemError::Overlap { .. }), "{e:?}");
        assert_eq!(m.claims().cloned().collect::<Vec<_>>(), before);
        // an unknown id: refused before anything changes
        let bogus = ClaimId(999);
        assert_eq!(
            m.replace(&[res, bogus], 0x4f00_0000, 0x1000, Owner::Pen),
            Err(MemError::NoSuchClaim { id: bogus })
        );
        assert_eq!(m.claims().cloned().collect::<Vec<_>>(), before);
        // fitting: the two reservations become one pen claim
        let pen = m
            .replace(&[res, res2], 0x4f00_0000, 0x2000, Owner::Pen)
            .unwrap();
        let c = m.claim_by_id(pen).unwrap();
        assert_eq!(
            (c.start, c.end, &c.owner),
            (0x4f00_0000, 0x4f00_2000, &Owner::Pen)
        );
        assert!(m.claim_by_id(res).is_none() && m.claim_by_id(res2).is_none());
        assert_eq!(m.claims().count(), 2);
    }
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    const GIB: u64 = 1 << 30;

    fn qemu_1g() -> MemMap {
        MemMap::new(&[Region::new(0x4000_0000, GIB)])
    }

    /// The QEMU virt situation: loader at 0x40200000, DTB at 0x48000000 (1 MiB).
    fn qemu_1g_booted() -> MemMap {
        let mut m = qemu_1g();
        m.claim(0x4020_0000, 0x20_0000, Owner::LoaderImage).unwrap();
        m.claim(0x4040_0000, 0x10_0000, Owner::LoaderStack).unwrap();
        m.claim(0x4050_0000, 0x100_0000, Owner::LoaderHeap).unwrap();
        m.claim(0x4800_0000, 0x10_0000, Owner::IncomingDt).unwrap();
        m
    }

    #[test]
    fn banks_are_normalised() {
        let m = MemMap::new(&[
            Region::new(0x8000_0000, 0x1000),
            Region::new(0x1000, 0x1000),
            Region::new(0x2000, 0x1000),          // adjacent: merged
            Region::new(0x2800, 0x2000),          // overlapping: merged
            Region::new(0x9000_0000, 0),          // empty: dropped
            Region::new(u64::MAX - 0xff, 0x1000), // saturates
        ]);
        assert_eq!(
            m.banks(),
            [
                Region::new(0x1000, 0x3800),
                Region::new(0x8000_0000, 0x1000),
                Region::new(u64::MAX - 0xff, 0xff)
            ]
        );
        // a claim across the former boundary of merged banks is fine
        let mut m = m;
        assert!(m.claim(0x1800, 0x1000, Owner::Kernel).is_ok());
    }

    #[test]
    fn claim_errors_name_both_owners() {
        let mut m = qemu_1g();
        m.claim(0x4000_0000, 0x30_0000, Owner::LoaderImage).unwrap();
        let e = m.claim(0x4020_0000, 0x20_0000, Owner::Kernel).unwrap_err();
        assert_eq!(
            e.to_string(),
            "0x40200000..0x40400000 (kernel) overlaps 0x40000000..0x40300000 (loader image)"
        );
        assert!(matches!(
            e,
            MemError::Overlap {
                other_owner: Owner::LoaderImage,
                ..
            }
        ));
        assert_eq!(
            m.claim(0x3fff_0000, 0x2_0000, Owner::Initrd)
                .unwrap_err()
                .to_string(),
            "0x3fff0000..0x40010000 (initrd) is not inside a RAM bank"
        );
        assert_eq!(
            m.claim(0x7fff_f000, 0x2000, Owner::Fdt)
                .unwrap_err()
                .to_string(),
            "0x7ffff000..0x80001000 (fdt) is not inside a RAM bank"
        );
        assert_eq!(
            m.claim(0x5000_0000, 0, Owner::Load("kernel".into()))
                .unwrap_err()
                .to_string(),
            "zero-size range at 0x50000000 (load: kernel)"
        );
        assert_eq!(
            m.claim(u64::MAX, 2, Owner::Pen).unwrap_err().to_string(),
            "range 0xffffffffffffffff + 0x2 (pen) overflows the address space"
        );
        // overlap with a claim that starts inside the new range
        m.claim(0x5000_0000, 0x1000, Owner::MemReserve(2)).unwrap();
        assert_eq!(
            m.claim(0x4fff_f000, 0x2000, Owner::ReservedMemory("secmon".into())).unwrap_err().to_string(),
            "0x4ffff000..0x50001000 (reserved-memory: secmon) overlaps 0x50000000..0x50001000 (/memreserve/ #2)"
        );
        // touching is not overlapping
        m.claim(0x4fff_f000, 0x1000, Owner::Other("x".into()))
            .unwrap();
        m.claim(0x5000_1000, 0x1000, Owner::Other("y".into()))
            .unwrap();
        assert_eq!(m.claims().count(), 4);
    }

    #[test]
    fn two_banks_no_spanning() {
        let mut m = MemMap::new(&[
            Region::new(0x4000_0000, 0x1000_0000),
            Region::new(0x6000_0000, 0x1000_0000),
        ]);
        assert!(matches!(
            m.claim(0x4ff0_0000, 0x1020_0000, Owner::Kernel),
            Err(MemError::OutsideRam { .. })
        ));
        assert!(m.claim(0x6000_0000, 0x1000_0000, Owner::Kernel).is_ok());
        assert!(m.in_ram(0x4000_0000, 1));
        assert!(!m.in_ram(0x5000_0000, 1));
        assert!(!m.in_ram(0x4000_0000, 0));
    }

    #[test]
    fn release_check_and_lookup() {
        let mut m = qemu_1g();
        let a = m.claim(0x4100_0000, 0x1000, Owner::Kernel).unwrap();
        let b = m.claim(0x4000_0000, 0x1000, Owner::Fdt).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            m.claims().map(|c| c.start).collect::<Vec<_>>(),
            [0x4000_0000, 0x4100_0000]
        );
        assert_eq!(m.claim_at(0x4100_0fff).map(|c| c.id), Some(a));
        assert_eq!(m.claim_at(0x4100_1000), None);
        assert_eq!(m.claim_by_id(b).map(|c| c.owner.clone()), Some(Owner::Fdt));
        assert!(m.check(0x4100_0800, 0x1000, &Owner::Initrd).is_err());
        assert!(m.check(0x4200_0000, 0x1000, &Owner::Initrd).is_ok());
        assert_eq!(m.claims().count(), 2, "check must not claim");
        let c = m.release(a).unwrap();
        assert_eq!(
            (c.start, c.end, c.size()),
            (0x4100_0000, 0x4100_1000, 0x1000)
        );
        assert_eq!(c.to_string(), "0x41000000..0x41001000 (kernel)");
        assert_eq!(m.release(a), Err(MemError::NoSuchClaim { id: a }));
        assert_eq!(
            MemError::NoSuchClaim { id: a }.to_string(),
            "no memory claim #1"
        );
        let again = m.claim(0x4100_0000, 0x1000, Owner::Kernel).unwrap();
        assert_ne!(again, a, "ids are not reused");
    }

    #[test]
    fn find_free_low_high_below() {
        let m = qemu_1g_booted();
        assert_eq!(
            m.find_free(0x1000, 0x1000, None, Prefer::Low),
            Some(0x4000_0000)
        );
        assert_eq!(
            m.find_free(0x40_0000, 0x20_0000, None, Prefer::Low),
            Some(0x4160_0000)
        );
        assert_eq!(
            m.find_free(0x1000, 0x1000, None, Prefer::High),
            Some(0x7fff_f000)
        );
        assert_eq!(
            m.find_free(0x1000, 0x1000, Some(0x4800_0000), Prefer::High),
            Some(0x47ff_f000)
        );
        assert_eq!(
            m.find_free(0x10_0000, 0x1000, Some(0x4020_0000), Prefer::High),
            Some(0x4010_0000)
        );
        assert_eq!(
            m.find_free(0x30_0000, 0x1000, Some(0x4040_0000), Prefer::High),
            None
        );
        assert_eq!(m.find_free(0, 0x1000, None, Prefer::Low), None);
        assert_eq!(m.find_free(0x1000, 3, None, Prefer::Low), None);
        assert_eq!(m.find_free(0x1000, 0, None, Prefer::Low), Some(0x4000_0000));
        assert_eq!(m.find_free(2 * GIB, 0x1000, None, Prefer::Low), None);
        assert_eq!(m.find_free(0x1000, 1 << 63, None, Prefer::Low), None);
        assert_eq!(m.find_free(u64::MAX, 1, None, Prefer::High), None);
    }

    #[test]
    fn free_regions_and_display() {
        let m = qemu_1g_booted();
        assert_eq!(
            m.free_regions(),
            [
                Region::new(0x4000_0000, 0x20_0000),
                Region::new(0x4150_0000, 0x4800_0000 - 0x4150_0000),
                Region::new(0x4810_0000, 0x8000_0000 - 0x4810_0000),
            ]
        );
        let s = m.to_string();
        assert!(s.contains("RAM 0x40000000..0x80000000 (1024 MiB)"), "{s}");
        assert!(s.contains("  0x48000000..0x48100000 (incoming DT)"), "{s}");
    }

    #[test]
    fn reserve_clips_and_reports() {
        let mut m = qemu_1g_booted();
        // spans the end of RAM
        let r = m.reserve(0x7ff0_0000, 0x20_0000, &Owner::MemReserve(0));
        assert!(r.outside_ram);
        assert_eq!(r.claimed.len(), 1);
        assert_eq!(
            m.claim_by_id(r.claimed[0]).unwrap().region(),
            Region::new(0x7ff0_0000, 0x10_0000)
        );
        // overlaps the loader image and stack: only the free parts are claimed
        let r = m.reserve(0x4010_0000, 0x40_0000, &Owner::ReservedMemory("fw".into()));
        assert!(!r.outside_ram);
        assert_eq!(r.overlapped.len(), 2); // image, stack
        let claimed: Vec<Region> = r
            .claimed
            .iter()
            .map(|id| m.claim_by_id(*id).unwrap().region())
            .collect();
        assert_eq!(claimed, [Region::new(0x4010_0000, 0x10_0000)]);
        // entirely outside RAM / empty
        assert_eq!(
            m.reserve(0x1000, 0x1000, &Owner::MemReserve(1)),
            ReserveOutcome {
                outside_ram: true,
                ..Default::default()
            }
        );
        assert_eq!(
            m.reserve(0x4000_0000, 0, &Owner::MemReserve(1)),
            ReserveOutcome::default()
        );
        // overflowing: clipped at u64::MAX, nothing in RAM
        assert!(m
            .reserve(u64::MAX - 1, 10, &Owner::MemReserve(3))
            .claimed
            .is_empty());
        assert_no_overlaps(&m);
    }

    #[test]
    fn default_addresses_qemu_1g() {
        let m = qemu_1g_booted();
        let la = m.default_load_addresses().unwrap();
        assert_eq!(la.kernel_addr_r, 0x4820_0000);
        assert_eq!(la.kernel_size, 64 << 20);
        assert_eq!(la.fdt_addr_r, 0x4c20_0000);
        assert_eq!(la.scriptaddr, 0x4c40_0000);
        assert_eq!(la.pxefile_addr_r, 0x4c50_0000);
        assert_eq!(la.kernel_comp_addr_r, 0x4c60_0000);
        assert_eq!(la.kernel_comp_size, 32 << 20);
        assert_eq!(la.ramdisk_addr_r, 0x4e60_0000);
        assert_eq!(la.ramdisk_addr_r + la.ramdisk_size, 0x8000_0000);
        assert_eq!(la.kernel_addr_r % (2 << 20), 0);
        assert_eq!(la.fdt_addr_r % (2 << 20), 0);
        assert_eq!(la.ramdisk_addr_r % (2 << 20), 0);
        // every slot is free RAM
        for (start, size) in [
            (la.kernel_addr_r, la.kernel_size),
            (la.fdt_addr_r, la.fdt_size),
            (la.scriptaddr, 1 << 20),
            (la.pxefile_addr_r, 1 << 20),
            (la.kernel_comp_addr_r, la.kernel_comp_size),
            (la.ramdisk_addr_r, la.ramdisk_size),
        ] {
            m.check(start, size, &Owner::Kernel).unwrap();
        }
        assert_eq!(la.env()[0], ("kernel_addr_r", 0x4820_0000));
    }

    #[test]
    fn default_addresses_scale_down() {
        // 128 MiB of RAM (QEMU's default -m), loader at +2 MiB, DTB at +64 MiB.
        let mut m = MemMap::new(&[Region::new(0x4000_0000, 128 << 20)]);
        m.claim(0x4020_0000, 0x120_0000, Owner::LoaderImage)
            .unwrap();
        m.claim(0x4400_0000, 0x10_0000, Owner::IncomingDt).unwrap();
        let la = m.default_load_addresses().unwrap();
        // largest gap: 0x44100000..0x48000000 (63 MiB) -> tier (32, 8, 16)
        assert_eq!(la.kernel_addr_r, 0x4420_0000);
        assert_eq!(la.kernel_size, 32 << 20);
        assert_eq!(la.kernel_comp_size, 8 << 20);
        assert_eq!(la.ramdisk_addr_r + la.ramdisk_size, 0x4800_0000);
        assert!(la.ramdisk_size >= 16 << 20);

        // too little RAM for anything
        let mut tiny = MemMap::new(&[Region::new(0x4000_0000, 16 << 20)]);
        assert_eq!(tiny.default_load_addresses(), None);
        tiny.claim(0x4000_0000, 1, Owner::Pen).unwrap();
        assert_eq!(tiny.default_load_addresses(), None);
        assert_eq!(MemMap::new(&[]).default_load_addresses(), None);
    }

    #[test]
    fn default_addresses_prefer_better_bank() {
        // First bank is small (40 MiB), second is large: the second allows a better tier.
        let m = MemMap::new(&[
            Region::new(0x4000_0000, 40 << 20),
            Region::new(0x8_0000_0000, 2 * GIB),
        ]);
        let la = m.default_load_addresses().unwrap();
        assert_eq!(la.kernel_addr_r, 0x8_0000_0000);
        assert_eq!(la.kernel_size, 64 << 20);
        // Both allow the best tier: the first bank wins.
        let m = MemMap::new(&[
            Region::new(0x4000_0000, GIB),
            Region::new(0x8_0000_0000, 4 * GIB),
        ]);
        assert_eq!(
            m.default_load_addresses().unwrap().kernel_addr_r,
            0x4000_0000
        );
    }

    // ---- property-style test ----

    use testkit::Rng;

    fn assert_no_overlaps(m: &MemMap) {
        let cs: Vec<&Claim> = m.claims().collect();
        for (i, a) in cs.iter().enumerate() {
            assert!(a.start < a.end, "empty claim {a}");
            assert!(
                m.banks()
                    .iter()
                    .any(|b| a.start >= b.base && a.end <= b.end()),
                "{a} outside RAM"
            );
            for b in &cs[i + 1..] {
                assert!(a.end <= b.start || b.end <= a.start, "{a} overlaps {b}");
                assert!(a.start < b.start, "claims not sorted");
            }
        }
    }

    #[test]
    fn random_claims_never_overlap() {
        let banks = [
            Region::new(0x100, 0x300),
            Region::new(0x400, 0x200),
            Region::new(0x800, 0x400),
            Region::new(0xc00, 0x100),
        ];
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut m = MemMap::new(&banks);
        let mut ok_claims = 0;
        for step in 0..20_000 {
            match rng.below(10) {
                0..=4 => {
                    let start = match rng.below(20) {
                        0 => u64::MAX - rng.below(16),
                        _ => rng.below(0x1100),
                    };
                    let size = match rng.below(10) {
                        0 => 0,
                        1 => u64::MAX - rng.below(4),
                        _ => 1 + rng.below(0x80),
                    };
                    // oracle, by brute force
                    let end = start.checked_add(size);
                    let inside = end.is_some_and(|e| {
                        size > 0 && m.banks().iter().any(|b| start >= b.base && e <= b.end())
                    });
                    let free =
                        end.is_some_and(|e| m.claims().all(|c| e <= c.start || c.end <= start));
                    let r = m.claim(start, size, Owner::Other("p".into()));
                    assert_eq!(
                        r.is_ok(),
                        inside && free,
                        "step {step}: claim({start:#x}, {size:#x}) -> {r:?}"
                    );
                    if r.is_ok() {
                        ok_claims += 1;
                    }
                }
                5 | 6 => {
                    let ids: Vec<ClaimId> = m.claims().map(|c| c.id).collect();
                    if !ids.is_empty() {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        assert!(m.release(id).is_ok());
                        assert!(m.claim_by_id(id).is_none());
                    }
                }
                7 => {
                    let start = rng.below(0x1100);
                    let size = rng.below(0x200);
                    let before = m.claims().count();
                    let r = m.reserve(start, size, &Owner::MemReserve(0));
                    assert_eq!(m.claims().count(), before + r.claimed.len());
                }
                _ => {
                    let size = 1 + rng.below(0x100);
                    let align = 1u64 << rng.below(8);
                    let below = if rng.below(2) == 0 {
                        Some(rng.below(0x1100))
                    } else {
                        None
                    };
                    let prefer = if rng.below(2) == 0 {
                        Prefer::Low
                    } else {
                        Prefer::High
                    };
                    let got = m.find_free(size, align, below, prefer);
                    // brute force over the small address space
                    let fits = |s: u64| {
                        s.is_multiple_of(align)
                            && below.is_none_or(|b| s + size <= b)
                            && m.check(s, size, &Owner::Kernel).is_ok()
                    };
                    let mut all = (0..0x1100u64).filter(|&s| fits(s));
                    let expect = match prefer {
                        Prefer::Low => all.next(),
                        Prefer::High => all.next_back(),
                    };
                    assert_eq!(
                        got, expect,
                        "step {step}: find_free({size:#x}, {align:#x}, {below:?}, {prefer:?})"
                    );
                }
            }
            assert_no_overlaps(&m);
        }
        assert!(ok_claims > 1000, "{ok_claims}");
        let _ = vec![0u8; 0];
        let _ = "x".to_string();
    }
}
