//! Identity map with caches on, built with aarch64-paging.
//!
//! RAM banks are Normal write-back cacheable, inner shareable; device regions
//! (every `reg` the DT names outside RAM, plus the console) are Device-nGnRE
//! and execute-never. Page tables come from a static pool in .bss (no heap
//! lock, no atomics are needed to build them with the MMU off), then from the
//! heap if the pool runs out. 48-bit VA, 4 KiB granule, TTBR0 only.

use aarch64_cpu::registers::{Readable, ID_AA64MMFR0_EL1};
use aarch64_paging::descriptor::{
    El1Attributes, El23Attributes, PagingAttributes, PhysicalAddress,
};
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Translation, VaRange};
use aarch64_paging::paging::{El1And0, El2};
use aarch64_paging::Mapping;
use alloc::alloc::{alloc_zeroed, Layout};
use core::arch::asm;
use core::ptr::NonNull;

const POOL_PAGES: usize = 48;

#[repr(C, align(4096))]
struct Pool([[u8; 4096]; POOL_PAGES]);

static mut POOL: Pool = Pool([[0; 4096]; POOL_PAGES]);
static mut POOL_NEXT: usize = 0;

pub struct PoolTranslation;

impl<A: PagingAttributes> Translation<A> for PoolTranslation {
    fn allocate_table(&mut self) -> (NonNull<PageTable<A>>, PhysicalAddress) {
        // SAFETY: single Rust CPU; the pool is only touched here.
        let p = unsafe {
            let next = POOL_NEXT;
            if next < POOL_PAGES {
                POOL_NEXT = next + 1;
                core::ptr::addr_of_mut!(POOL.0[next]) as *mut u8
            } else {
                alloc_zeroed(Layout::from_size_align_unchecked(4096, 4096))
            }
        };
        let Some(nn) = NonNull::new(p as *mut PageTable<A>) else {
            crate::exceptions::halt("out of memory for page tables");
        };
        (nn, PhysicalAddress(p as usize))
    }

    unsafe fn deallocate_table(&mut self, _page_table: NonNull<PageTable<A>>) {
        // Tables live as long as the loader; nothing is ever unmapped.
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<A>> {
        NonNull::new(pa.0 as *mut PageTable<A>)
            .unwrap_or_else(|| crate::exceptions::halt("page table at PA 0"))
    }
}

/// Owns the live tables for the loader's lifetime (never read back).
#[allow(dead_code)]
enum Tables {
    El2(Mapping<PoolTranslation, El2>),
    El1(Mapping<PoolTranslation, El1And0>),
}

static mut TABLES: Option<Tables> = None;

/// What to map: (start, size) pairs.
pub struct Layout2<'a> {
    pub normal: &'a [(u64, u64)],
    pub device: &'a [(u64, u64)],
}

fn pa_bits() -> u32 {
    match ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    }
}

fn ps_field(bits: u32) -> u64 {
    match bits {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        _ => 5,
    }
}

macro_rules! map_all {
    ($m:expr, $attr:ty, $layout:expr, $limit:expr) => {{
        let normal = <$attr>::VALID
            | <$attr>::ACCESSED
            | <$attr>::ATTRIBUTE_INDEX_1
            | <$attr>::INNER_SHAREABLE;
        let device = <$attr>::VALID | <$attr>::ACCESSED | <$attr>::ATTRIBUTE_INDEX_0;
        let mut errors = 0usize;
        for &(start, size) in $layout.normal {
            if let Some(r) = region(start, size, $limit) {
                if $m
                    .map_range(
                        &r,
                        PhysicalAddress(r.start().0),
                        normal,
                        Constraints::empty(),
                    )
                    .is_err()
                {
                    errors += 1;
                }
            }
        }
        for &(start, size) in $layout.device {
            if overlaps_any(start, size, $layout.normal) {
                continue;
            }
            if let Some(r) = region(start, size, $limit) {
                if $m
                    .map_range(
                        &r,
                        PhysicalAddress(r.start().0),
                        device | xn::<$attr>(),
                        Constraints::empty(),
                    )
                    .is_err()
                {
                    errors += 1;
                }
            }
        }
        errors
    }};
}

trait Xn {
    fn xn_bits() -> Self;
}
impl Xn for El23Attributes {
    fn xn_bits() -> Self {
        El23Attributes::XN
    }
}
impl Xn for El1Attributes {
    fn xn_bits() -> Self {
        El1Attributes::UXN | El1Attributes::PXN
    }
}
fn xn<A: Xn>() -> A {
    A::xn_bits()
}

fn overlaps_any(start: u64, size: u64, list: &[(u64, u64)]) -> bool {
    let end = start.saturating_add(size);
    list.iter()
        .any(|&(s, z)| start < s.saturating_add(z) && s < end)
}

fn region(start: u64, size: u64, limit: u64) -> Option<MemoryRegion> {
    if size == 0 || start >= limit {
        return None;
    }
    let end = start.saturating_add(size).min(limit);
    Some(MemoryRegion::new(start as usize, end as usize))
}

const MAIR: u64 = 0x04 | (0xff << 8); // idx0 Device-nGnRE, idx1 Normal WB RW-alloc

/// Builds the identity map and turns the MMU and caches on. Returns the number
/// of regions that could not be mapped.
pub fn enable(layout: &Layout2) -> usize {
    let bits = pa_bits();
    let limit = 1u64 << bits;
    let el = crate::cpu::current_el();
    // TCR: T0SZ=16 (48-bit VA), IRGN0/ORGN0 = WB RA WA, SH0 = inner, TG0 = 4K.
    let tcr_common: u64 = 16 | (1 << 8) | (1 << 10) | (3 << 12);
    record(layout);
    let errors;
    // SAFETY: single Rust CPU, MMU off; the tables are fully built before use.
    unsafe {
        if el == 2 {
            let mut m = Mapping::new(PoolTranslation, 0, El2);
            errors = map_all!(m, El23Attributes, layout, limit);
            let root = m.root_address().0 as u64;
            let tcr = tcr_common | (ps_field(bits) << 16) | (1 << 31) | (1 << 23);
            asm!(
                "msr mair_el2, {mair}",
                "msr tcr_el2, {tcr}",
                "msr ttbr0_el2, {ttbr}",
                "isb",
                "tlbi alle2",
                "dsb ish",
                "isb",
                "ic iallu",
                "dsb ish",
                "isb",
                "mrs {t}, sctlr_el2",
                "orr {t}, {t}, #(1 << 0)",
                "orr {t}, {t}, #(1 << 2)",
                "orr {t}, {t}, #(1 << 12)",
                "msr sctlr_el2, {t}",
                "isb",
                mair = in(reg) MAIR, tcr = in(reg) tcr, ttbr = in(reg) root, t = out(reg) _,
                options(nostack)
            );
            m.mark_active();
            TABLES = Some(Tables::El2(m));
        } else {
            let mut m =
                Mapping::with_asid_and_va_range(PoolTranslation, 0, 0, El1And0, VaRange::Lower);
            errors = map_all!(m, El1Attributes, layout, limit);
            let root = m.root_address().0 as u64;
            let tcr = tcr_common | (ps_field(bits) << 32) | (1 << 23);
            asm!(
                "msr mair_el1, {mair}",
                "msr tcr_el1, {tcr}",
                "msr ttbr0_el1, {ttbr}",
                "isb",
                "tlbi vmalle1",
                "dsb ish",
                "isb",
                "ic iallu",
                "dsb ish",
                "isb",
                "mrs {t}, sctlr_el1",
                "orr {t}, {t}, #(1 << 0)",
                "orr {t}, {t}, #(1 << 2)",
                "orr {t}, {t}, #(1 << 12)",
                "msr sctlr_el1, {t}",
                "isb",
                mair = in(reg) MAIR, tcr = in(reg) tcr, ttbr = in(reg) root, t = out(reg) _,
                options(nostack)
            );
            m.mark_active();
            TABLES = Some(Tables::El1(m));
        }
    }
    errors
}

/// Regions mapped by `enable`, as (start, end, is_ram).
static mut MAPPED: alloc::vec::Vec<(u64, u64, bool)> = alloc::vec::Vec::new();

fn record(layout: &Layout2) {
    // SAFETY: single Rust CPU.
    let v = unsafe { &mut *core::ptr::addr_of_mut!(MAPPED) };
    for &(s, z) in layout.normal {
        v.push((s, s.saturating_add(z), true));
    }
    for &(s, z) in layout.device {
        if !overlaps_any(s, z, layout.normal) {
            v.push((s, s.saturating_add(z), false));
        }
    }
}

/// Whether `[addr, addr+len)` lies inside one region the MMU maps; returns
/// Some(is_ram) if so.
pub fn mapped_kind(addr: u64, len: u64) -> Option<bool> {
    let end = addr.checked_add(len)?;
    // SAFETY: single Rust CPU; MAPPED is only written by `enable`.
    let v = unsafe { &*core::ptr::addr_of!(MAPPED) };
    v.iter()
        .find(|&&(s, e, _)| s <= addr && end <= e)
        .map(|&(_, _, ram)| ram)
}
