//! The resident EL3 part's target side (docs/psci.md): the per-CPU records the EL3 assembly
//! (`el3.S`) reads, the lock the SMC handlers share, the GIC's security set-up, the power
//! GPIO writes, and the ways into the non-secure world and back into the pen. Everything is
//! used with the MMU off (secure RAM is Device memory then): every shared word is one aligned
//! volatile access, and no atomic read-modify-write is used (exclusives need not work on
//! Device memory) — the lock is Lamport's bakery, which needs only loads and stores.

use crate::gic_regs::*;
use core::cell::UnsafeCell;
use core::ptr::{addr_of, read_volatile, write_volatile};

/// Most CPUs the resident part holds (the records are static).
pub const MAX_CPUS: usize = 64;

/// One CPU's record (layout used by el3.S: `EL3_CPU_*`).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El3Cpu {
    pub mpidr: u64,
    /// Top of its EL3 stack (the SMC handler runs on it).
    pub stack_top: u64,
    /// Where CPU_ON enters the non-secure world, with x0 = `ns_ctx`, at `ns_el`.
    pub ns_entry: u64,
    pub ns_ctx: u64,
    pub ns_el: u64,
    /// Non-zero between its CPU_OFF decision and its arrival in the pen.
    pub leaving: u64,
    /// Its index (TPIDR_EL3 while it runs non-secure code).
    pub index: u64,
    pub _pad: u64,
}

const _: () = assert!(core::mem::size_of::<El3Cpu>() == 64);

/// The GIC, for the per-CPU security set-up in el3.S (`EL3_GIC_*`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct El3Gic {
    /// 0 none, 2, 3.
    pub version: u64,
    /// GICv2 distributor (its IGROUPR0 is banked per CPU).
    pub gicd: u64,
    /// GICv2 CPU interface (its priority mask is banked per CPU).
    pub gicc: u64,
}

#[repr(transparent)]
pub struct Shared<T>(UnsafeCell<T>);
// SAFETY: every access is volatile, under the rules in the module doc.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

const ZERO_CPU: El3Cpu = El3Cpu {
    mpidr: 0,
    stack_top: 0,
    ns_entry: 0,
    ns_ctx: 0,
    ns_el: 0,
    leaving: 0,
    index: 0,
    _pad: 0,
};

#[no_mangle]
pub static EL3_CPUS: Shared<[El3Cpu; MAX_CPUS]> = Shared::new([ZERO_CPU; MAX_CPUS]);
#[no_mangle]
pub static EL3_NR_CPUS: Shared<u64> = Shared::new(0);
#[no_mangle]
pub static EL3_GIC: Shared<El3Gic> = Shared::new(El3Gic {
    version: 0,
    gicd: 0,
    gicc: 0,
});
/// The bakery lock: `CHOOSING[i]`, `NUMBER[i]` of CPU i.
static CHOOSING: Shared<[u64; MAX_CPUS]> = Shared::new([0; MAX_CPUS]);
static NUMBER: Shared<[u64; MAX_CPUS]> = Shared::new([0; MAX_CPUS]);

extern "C" {
    fn el3_enter_ns(rec: *const El3Cpu) -> !;
    fn el3_park(pen_park: u64) -> !;
    fn el3_cpu_on_entry();
}

fn cpu_ptr(i: usize) -> *mut El3Cpu {
    let i = i.min(MAX_CPUS - 1);
    // SAFETY: in bounds of the static array.
    unsafe { EL3_CPUS.get().cast::<El3Cpu>().add(i) }
}

fn dsb() {
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Record `i` (`i < MAX_CPUS`).
#[must_use]
pub fn cpu(i: usize) -> El3Cpu {
    // SAFETY: an aligned static record; volatile (el3.S and other CPUs use it).
    unsafe { read_volatile(cpu_ptr(i)) }
}

/// Writes record `i` (before the CPU can use it).
pub fn set_cpu(i: usize, rec: El3Cpu) {
    // SAFETY: as in `cpu`.
    unsafe { write_volatile(cpu_ptr(i), rec) };
    dsb();
}

/// How many records are in use (el3.S scans them by MPIDR).
pub fn set_nr_cpus(n: usize) {
    // SAFETY: an aligned static word.
    unsafe { write_volatile(EL3_NR_CPUS.get(), n.min(MAX_CPUS) as u64) };
    dsb();
}

/// The GIC for el3.S's per-CPU set-up.
pub fn set_gic(g: El3Gic) {
    // SAFETY: an aligned static, written before any CPU enters the non-secure world.
    unsafe { write_volatile(EL3_GIC.get(), g) };
    dsb();
}

/// CPU_ON: where CPU `i` enters the non-secure world.
pub fn set_entry(i: usize, entry: u64, ctx: u64, el: u8) {
    let p = cpu_ptr(i);
    // SAFETY: fields of an aligned static record; the CPU reads them only after its release.
    unsafe {
        write_volatile(&raw mut (*p).ns_entry, entry);
        write_volatile(&raw mut (*p).ns_ctx, ctx);
        write_volatile(&raw mut (*p).ns_el, u64::from(el));
    }
    dsb();
}

/// CPU_OFF: CPU `i` is on its way into the pen.
pub fn set_leaving(i: usize, leaving: bool) {
    // SAFETY: a field of an aligned static record.
    unsafe { write_volatile(&raw mut (*cpu_ptr(i)).leaving, u64::from(leaving)) };
    dsb();
}

/// This CPU's index, as el3.S set it before it entered the non-secure world.
#[must_use]
pub fn current_index() -> usize {
    let v: u64;
    // SAFETY: reading TPIDR_EL3 at EL3.
    unsafe { core::arch::asm!("mrs {}, tpidr_el3", out(reg) v, options(nomem, nostack)) };
    v as usize
}

/// The address CPU_ON releases a CPU to from the resident pen.
#[must_use]
pub fn cpu_on_entry() -> u64 {
    el3_cpu_on_entry as *const () as usize as u64
}

/// Enters the non-secure world on this CPU as record `i` says; never returns.
///
/// # Safety
/// Record `i` must be this CPU's, with a valid stack and a checked entry.
pub unsafe fn enter_ns(i: usize) -> ! {
    // SAFETY: the caller's contract; el3.S reads the record.
    unsafe { el3_enter_ns(cpu_ptr(i)) }
}

/// Sends this CPU into the resident pen through `pen_park`; never returns.
///
/// # Safety
/// `pen_park` must be the resident pen's park entry, this CPU's release word zeroed.
pub unsafe fn park(pen_park: u64) -> ! {
    // SAFETY: the caller's contract.
    unsafe { el3_park(pen_park) }
}

fn rd(a: *const u64) -> u64 {
    // SAFETY: callers pass aligned words of our statics.
    unsafe { read_volatile(a) }
}
fn wr(a: *mut u64, v: u64) {
    // SAFETY: as in `rd`.
    unsafe { write_volatile(a, v) };
    dsb();
}

/// Takes the lock every SMC handler that looks at or changes the CPUs holds (Lamport's
/// bakery: loads and stores only). `i` is this CPU's index, `n` the number of CPUs.
pub fn lock(i: usize, n: usize) {
    let n = n.min(MAX_CPUS);
    let i = i.min(MAX_CPUS - 1);
    let ch = CHOOSING.get().cast::<u64>();
    let num = NUMBER.get().cast::<u64>();
    // SAFETY (all pointer arithmetic below): indices < MAX_CPUS, inside the static arrays.
    unsafe {
        wr(ch.add(i), 1);
        let max = (0..n).map(|j| rd(num.add(j))).max().unwrap_or(0);
        wr(num.add(i), max + 1);
        wr(ch.add(i), 0);
        for j in (0..n).filter(|&j| j != i) {
            while rd(ch.add(j)) != 0 {}
            loop {
                let (nj, ni) = (rd(num.add(j)), rd(num.add(i)));
                if nj == 0 || (nj, j) > (ni, i) {
                    break;
                }
            }
        }
    }
}

/// Releases the lock taken with [`lock`].
pub fn unlock(i: usize) {
    let i = i.min(MAX_CPUS - 1);
    // SAFETY: index < MAX_CPUS.
    unsafe { wr(NUMBER.get().cast::<u64>().add(i), 0) };
}

fn mmio_rd(a: u64) -> u32 {
    // SAFETY: a GIC register from the DT (Device memory, MMU off).
    unsafe { read_volatile(a as usize as *const u32) }
}
fn mmio_wr(a: u64, v: u32) {
    // SAFETY: as in `mmio_rd`.
    unsafe { write_volatile(a as usize as *mut u32, v) };
}

/// GICv2 with the security extensions: every interrupt group 1 (non-secure) — the SPIs here,
/// this CPU's SGIs and PPIs too (the other CPUs do theirs in el3.S) — and both groups
/// enabled in the distributor, so the non-secure world can use the GIC as without EL3.
pub fn gic_secure_init_v2(gicd: u64) {
    let lines = (mmio_rd(gicd + 0x4) & 0x1f) + 1; // GICD_TYPER.ITLinesNumber
    for n in 0..lines.min(32) {
        mmio_wr(gicd + GICD_IGROUPR as u64 + 4 * u64::from(n), !0);
    }
    mmio_wr(gicd + GICD_CTLR as u64, 0x3);
    dsb();
}

/// GICv3 with two security states: affinity routing for both, every SPI and every CPU's SGIs
/// and PPIs in non-secure group 1, each redistributor awake (GICR_WAKER is secure-only), the
/// groups enabled.
pub fn gic_secure_init_v3(gicd: u64, gicr: &[(u64, u64)]) {
    const ARE_S: u32 = 1 << 4;
    const ARE_NS: u32 = 1 << 5;
    const RWP: u32 = 1 << 31;
    let wait_rwp = || {
        let mut n = GIC_POLL_LIMIT;
        while mmio_rd(gicd + GICD_CTLR as u64) & RWP != 0 && n > 0 {
            n -= 1;
        }
    };
    mmio_wr(gicd + GICD_CTLR as u64, 0);
    wait_rwp();
    mmio_wr(gicd + GICD_CTLR as u64, ARE_S | ARE_NS);
    wait_rwp();
    let lines = (mmio_rd(gicd + 0x4) & 0x1f) + 1;
    for n in 1..lines.min(32) {
        mmio_wr(gicd + GICD_IGROUPR as u64 + 4 * u64::from(n), !0);
        mmio_wr(gicd + 0xd00 + 4 * u64::from(n), 0); // GICD_IGRPMODR
    }
    for &(base, size) in gicr.iter().take(16) {
        let mut rd = base;
        let end = base.saturating_add(size);
        while rd.saturating_add(GICR_FRAME) <= end {
            // SAFETY: a redistributor frame inside a DT region (64-bit register).
            let typer = unsafe { read_volatile((rd + GICR_TYPER as u64) as usize as *const u64) };
            let waker = rd + GICR_WAKER as u64;
            mmio_wr(waker, mmio_rd(waker) & !(1 << 1)); // ProcessorSleep
            let mut n = GIC_POLL_LIMIT;
            while mmio_rd(waker) & (1 << 2) != 0 && n > 0 {
                n -= 1;
            }
            let sgi = rd + GICR_SGI_OFFSET as u64;
            mmio_wr(sgi + GICR_IGROUPR0 as u64, !0);
            mmio_wr(sgi + 0xd00, 0); // GICR_IGRPMODR0
            if typer & (1 << 4) != 0 {
                break; // Last
            }
            rd += if typer & (1 << 1) != 0 {
                2 * GICR_FRAME
            } else {
                GICR_FRAME
            };
        }
    }
    mmio_wr(gicd + GICD_CTLR as u64, ARE_S | ARE_NS | 0x7);
    wait_rwp();
    dsb();
}

/// Performs the power GPIO writes (`loader::psci::resident::PowerGpio::writes`), then waits
/// for the platform to act.
pub fn gpio_power(writes: &[(u64, u32)]) -> ! {
    for &(a, v) in writes {
        mmio_wr(a, v);
        dsb();
    }
    loop {
        // SAFETY: waiting for the power to go.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// CPU_SUSPEND standby: one WFI (an interrupt for the non-secure world ends it).
pub fn standby() {
    // SAFETY: DSB + WFI; interrupts stay masked at EL3 and are taken after the return.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
}

/// The address of a hold word.
#[must_use]
pub fn hold_word(hold_base: u64, index: usize) -> *mut u64 {
    (hold_base + 8 * index as u64) as usize as *mut u64
}

/// Reads a hold word (written by a secondary from reset, MMU off).
#[must_use]
pub fn hold_read(hold_base: u64, index: usize) -> u64 {
    // SAFETY: a word of the hold area in secure RAM (the board's, checked by the layout).
    unsafe { read_volatile(hold_word(hold_base, index)) }
}

/// Writes a hold word and wakes the secondaries (SEV).
pub fn hold_write(hold_base: u64, index: usize, v: u64) {
    // SAFETY: as in `hold_read`.
    unsafe { write_volatile(hold_word(hold_base, index), v) };
    // SAFETY: DSB + SEV.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
}

/// Whether EL2 is implemented (CPU_ON then enters the non-secure world there).
#[must_use]
pub fn has_el2() -> bool {
    let v: u64;
    // SAFETY: reading an ID register.
    unsafe { core::arch::asm!("mrs {}, id_aa64pfr0_el1", out(reg) v, options(nomem, nostack)) };
    (v >> 8) & 0xf != 0
}

/// The address of [`EL3_CPUS`] (for the report).
#[must_use]
pub fn records() -> u64 {
    addr_of!(EL3_CPUS) as u64
}
