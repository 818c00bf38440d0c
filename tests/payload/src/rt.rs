//! The payload's runtime on top of the arch crate (which has the Image header, the boot CPU's
//! entry, the vectors, console, caches, timer, heap, PSCI and the handoff, as in the loader):
//! the secondary entry (`secondary.S`), the shared per-CPU table and records, what a
//! secondary checks at entry, and the payload's exception and panic reports.
use crate::println;
use aarch64_cpu::registers::{Readable, CNTHP_CTL_EL2, CNTV_CTL_EL0, ICC_SRE_EL2};
use arch::cpu;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ptr::{addr_of, read_volatile, write_volatile};

pub use parkboot_payload::MAX_CPUS;

core::arch::global_asm!(include_str!("secondary.S"));

/// Memory shared between CPUs (or with assembly). Every access is volatile.
#[repr(transparent)]
pub struct Shared<T>(UnsafeCell<T>);

// SAFETY: every access goes through volatile loads/stores of aligned words, with the cache
// maintenance the protocol asks for; single writer per word.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }
    pub fn get(&self) -> *mut T {
        self.0.get()
    }
}

// ---------------------------------------------------------------------------------------------
// The CPU table (boot CPU writes, secondaries read) and the entry records (each secondary
// writes its own, the boot CPU reads). Layouts are used by entry.S.
// ---------------------------------------------------------------------------------------------

#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct CpuSlot {
    pub mpidr: u64,
    /// The CPU's `cpu-release-addr`.
    pub release: u64,
    /// `cpu-park-addr`.
    pub park: u64,
    /// Non-zero: park without zeroing the release word (fault injection, `payload.inject`).
    pub skip_zero: u64,
    /// The CPU's pen state record (its `wakes` are read at entry).
    pub state: u64,
    _pad: [u64; 3],
}

impl CpuSlot {
    const ZERO: Self = Self {
        mpidr: 0,
        release: 0,
        park: 0,
        skip_zero: 0,
        state: 0,
        _pad: [0; 3],
    };
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Record {
    pub entries: u64,
    pub mpidr: u64,
    pub el: u64,
    pub regs: [u64; 4],
    /// CNTPCT at the entry (first instruction).
    pub entry_ticks: u64,
    /// The CPU's own timer control at entry (EL2: CNTHP_CTL_EL2; EL1: CNTV_CTL_EL0).
    pub timer_ctl: u64,
    /// What the CPU found of the pen's GIC wake-up set-up ([`parkboot_payload::GicBits`]).
    pub gic_bits: u64,
    /// Its pen state record's `wakes` at entry.
    pub wakes: u64,
    _pad: [u64; 5],
}

impl Record {
    const ZERO: Self = Self {
        entries: 0,
        mpidr: 0,
        el: 0,
        regs: [0; 4],
        entry_ticks: 0,
        timer_ctl: 0,
        gic_bits: 0,
        wakes: 0,
        _pad: [0; 5],
    };
}

/// Where the GIC is (from the DT), for the secondaries' entry checks. Written by the boot CPU
/// before any release.
#[repr(C, align(64))]
#[derive(Clone, Copy, Default)]
pub struct GicInfo {
    /// 0 none, 2, 3.
    pub version: u64,
    pub gicd: u64,
    /// v2: GICC.
    pub gicc: u64,
    /// v3: the first redistributor region.
    pub gicr: u64,
    pub gicr_size: u64,
    /// The timer INTID of the payload's EL (hypervisor physical at EL2, virtual at EL1).
    pub timer_intid: u64,
    _pad: [u64; 2],
}

pub static PAYLOAD_GIC: Shared<GicInfo> = Shared::new(GicInfo {
    version: 0,
    gicd: 0,
    gicc: 0,
    gicr: 0,
    gicr_size: 0,
    timer_intid: 0,
    _pad: [0; 2],
});

const _: () = assert!(core::mem::size_of::<CpuSlot>() == 64); // entry.S CPU_SLOT_SHIFT
const _: () = assert!(core::mem::size_of::<Record>() == 128);

#[no_mangle]
pub static PAYLOAD_CPUS: Shared<[CpuSlot; MAX_CPUS]> = Shared::new([CpuSlot::ZERO; MAX_CPUS]);
#[no_mangle]
pub static PAYLOAD_NR_CPUS: Shared<u64> = Shared::new(0);
/// MPIDR | 1 << 63 of a CPU that entered the payload without a table entry.
#[no_mangle]
pub static PAYLOAD_STRAY: Shared<u64> = Shared::new(0);
pub static RECORDS: Shared<[Record; MAX_CPUS]> = Shared::new([Record::ZERO; MAX_CPUS]);
/// `payload.el1=1`: what the CPU released with mode 1 found at EL1 (secondary.S writes it).
#[no_mangle]
pub static PAYLOAD_EL1: Shared<parkboot_payload::El1Report> = Shared::new(El1Report_ZERO);
#[allow(non_upper_case_globals)]
const El1Report_ZERO: parkboot_payload::El1Report = parkboot_payload::El1Report {
    done: 0,
    x0: 0,
    el: 0,
    pmu_n: 0,
    sve_vl: 0,
    pauth: 0,
    midr: 0,
    mpidr: 0,
};
/// `payload.foreign=1`: the shared release word of the foreign spin-table.
#[no_mangle]
pub static PAYLOAD_FOREIGN_WORD: Shared<u64> = Shared::new(0);
/// `payload.foreign=1`: the MPIDR of the CPU that leaves the foreign spin-table 1.5 s late.
#[no_mangle]
pub static PAYLOAD_FOREIGN_LATE: Shared<u64> = Shared::new(u64::MAX);
/// The boot CPU's MPIDR (for the exception report).
pub static BOOT_MPIDR: Shared<u64> = Shared::new(u64::MAX);

extern "C" {
    pub fn payload_secondary_entry();
    pub fn payload_keep_entry();
    pub fn payload_udf();
    pub fn payload_el1_entry();
    pub fn payload_foreign_spin();
    static __image_start: u8;
    static __image_end: u8;
    static __heap_start: u8;
    static __heap_end: u8;
}

/// The payload's in-place footprint `[start, end)`.
pub fn footprint() -> (u64, u64) {
    // Linker symbols: only their addresses are used.
    (addr_of!(__image_start) as u64, addr_of!(__image_end) as u64)
}

pub fn entry_addr() -> u64 {
    payload_secondary_entry as *const () as usize as u64
}

pub fn rd(p: *const u64) -> u64 {
    // SAFETY: callers pass aligned pointers to memory the payload may read.
    unsafe { read_volatile(p) }
}

pub fn wr(p: *mut u64, v: u64) {
    // SAFETY: callers pass aligned pointers to words they own.
    unsafe { write_volatile(p, v) }
}

/// The slot `i` of the CPU table.
pub fn cpu_slot(i: usize) -> *mut CpuSlot {
    assert!(i < MAX_CPUS);
    // SAFETY: in bounds.
    unsafe { PAYLOAD_CPUS.get().cast::<CpuSlot>().add(i) }
}

pub fn record(i: usize) -> *mut Record {
    assert!(i < MAX_CPUS);
    // SAFETY: in bounds.
    unsafe { RECORDS.get().cast::<Record>().add(i) }
}

// ---------------------------------------------------------------------------------------------
// Caches, console, heap (the arch crate's, with the payload's addresses)
// ---------------------------------------------------------------------------------------------

/// `DC CIVAC` over `[addr, addr + len)`, then `DSB SY`.
pub fn civac(addr: u64, len: u64) {
    cpu::clean_inval_dcache_range(addr as usize, len as usize);
}

/// `DC CVAC` over `[addr, addr + len)`, then `DSB SY`.
pub fn cvac(addr: u64, len: u64) {
    cpu::clean_dcache_range(addr as usize, len as usize);
}

/// QEMU virt's PL011, used until the DT names the console.
pub const DEFAULT_UART: usize = 0x0900_0000;

/// The boot CPU's first steps: the console on QEMU virt's PL011 (until the DT names one), the
/// payload's reports for exceptions, and the heap in the footprint.
pub fn init() {
    arch::uart::set_base(DEFAULT_UART);
    arch::exceptions::set_reporter(exception_report);
    // SAFETY: the heap section is ours and unused; called once, before any allocation.
    unsafe {
        arch::heap::init(
            addr_of!(__heap_start) as usize,
            addr_of!(__heap_end) as usize,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Secondary entry (called from entry.S on the CPU's own stack)
// ---------------------------------------------------------------------------------------------

/// Records one entry of secondary `idx`: MPIDR, EL and x0..x3 first, then the round counter
/// (so a boot CPU that sees the new count sees the data), then cleans the record to PoC.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
extern "C" fn payload_secondary(
    idx: u64,
    x0: u64,
    x1: u64,
    x2: u64,
    x3: u64,
    el: u64,
    mpidr: u64,
    entry_ticks: u64,
) {
    let r = record(idx as usize);
    let slot = cpu_slot(idx as usize);
    // SAFETY: our own table entry (written by the boot CPU before the release).
    let state = unsafe { rd(&raw const (*slot).state) };
    // The pen wrote its record uncached; ours is an uncached load too (MMU off).
    let wakes = if state != 0 {
        rd((state + loader::pen::state::WAKES as u64) as *const u64) & 0xffff_ffff
    } else {
        0
    };
    let timer_ctl = own_timer_ctl(el);
    let gic_bits = gic_bits(mpidr);
    // SAFETY: `r` is this CPU's own record (one writer); field pointers are aligned.
    unsafe {
        wr(&raw mut (*r).mpidr, mpidr);
        wr(&raw mut (*r).el, el);
        wr(&raw mut (*r).regs[0], x0);
        wr(&raw mut (*r).regs[1], x1);
        wr(&raw mut (*r).regs[2], x2);
        wr(&raw mut (*r).regs[3], x3);
        wr(&raw mut (*r).entry_ticks, entry_ticks);
        wr(&raw mut (*r).timer_ctl, timer_ctl);
        wr(&raw mut (*r).gic_bits, gic_bits);
        wr(&raw mut (*r).wakes, wakes);
        cpu::dsb();
        let n = rd(&raw const (*r).entries);
        wr(&raw mut (*r).entries, n.wrapping_add(1));
    }
    civac(r as u64, 128);
}

/// The control register of the timer a pen at this EL sleeps on.
fn own_timer_ctl(el: u64) -> u64 {
    if el == 2 {
        CNTHP_CTL_EL2.get()
    } else {
        CNTV_CTL_EL0.get()
    }
}

fn mmio32(addr: u64) -> u32 {
    // SAFETY: GIC registers from the DT (device memory; the MMU is off).
    unsafe { read_volatile(addr as usize as *const u32) }
}

/// What this CPU finds of a GIC wake-up set-up at entry (docs/protocol.md §3.3 says none is
/// left): the timer PPI and SGI 15 enabled or pending, the CPU interface enabled, a non-zero
/// priority mask. [`parkboot_payload::GicBits::CHECKED`] when the GIC could be read.
fn gic_bits(mpidr: u64) -> u64 {
    use arch::gic_regs::*;
    use parkboot_payload::GicBits as B;
    let gic = GIC.read();
    let intid = gic.timer_intid as u32;
    let (tbit, sbit) = (1u32.checked_shl(intid).unwrap_or(0), 1u32 << 15);
    let mut bits = 0;
    let (enabled, pending) = match gic.version {
        2 => {
            let ctlr = mmio32(gic.gicc + GICC_CTLR as u64);
            let pmr = mmio32(gic.gicc + GICC_PMR as u64);
            if ctlr & 3 != 0 {
                bits |= B::CPU_IF_ENABLED;
            }
            if pmr != 0 {
                bits |= B::PMR_SET;
            }
            let d = gic.gicd;
            (
                mmio32(d + GICD_ISENABLER as u64),
                mmio32(d + GICD_ISPENDR as u64),
            )
        }
        3 => {
            let Some(rd) = arch::gic::find_redistributor(&[(gic.gicr, gic.gicr_size)], mpidr)
            else {
                return 0;
            };
            let rd = rd as u64;
            let sre: u64 = if cpu::current_el() == 2 {
                ICC_SRE_EL2.get()
            } else {
                let v: u64;
                // SAFETY: ICC_SRE_EL1 (not in aarch64-cpu): booting.rst has EL2 allow EL1 to
                // read it; no side effects.
                unsafe { asm!("mrs {}, s3_0_c12_c12_5", out(reg) v, options(nomem, nostack)) };
                v
            };
            if sre & 1 != 0 {
                let (grpen, pmr): (u64, u64);
                // SAFETY: system-register CPU interface enabled (SRE = 1).
                unsafe {
                    asm!("mrs {}, s3_0_c12_c12_7", out(reg) grpen, options(nomem, nostack));
                    asm!("mrs {}, s3_0_c4_c6_0", out(reg) pmr, options(nomem, nostack));
                }
                if grpen & 1 != 0 {
                    bits |= B::CPU_IF_ENABLED;
                }
                if pmr != 0 {
                    bits |= B::PMR_SET;
                }
            }
            let sgi = rd + GICR_SGI_OFFSET as u64;
            (
                mmio32(sgi + GICR_ISENABLER0 as u64),
                mmio32(sgi + GICR_ISPENDR0 as u64),
            )
        }
        _ => return 0,
    };
    if enabled & tbit != 0 {
        bits |= B::TIMER_ENABLED;
    }
    if pending & tbit != 0 {
        bits |= B::TIMER_PENDING;
    }
    // GICv2 may keep SGIs permanently enabled (QEMU's does): only v3 says what we did.
    if gic.version == 3 && enabled & sbit != 0 {
        bits |= B::SGI_ENABLED;
    }
    // A kick (SGI 15) still pending would be taken by whatever runs here next.
    let sgi_pending = if gic.version == 2 {
        // SAFETY: GICD_SPENDSGIR byte of SGI 15 (banked; byte-accessible).
        unsafe { read_volatile((gic.gicd + 0xf20 + 15) as usize as *const u8) != 0 }
    } else {
        pending & sbit != 0
    };
    if sgi_pending {
        bits |= B::SGI_PENDING;
    }
    bits | B::CHECKED
}

/// The boot CPU's copy of [`GicInfo`], as secondaries read it (after a clean+invalidate).
pub static GIC: GicCell = GicCell;

pub struct GicCell;

impl GicCell {
    pub fn write(&self, g: GicInfo) {
        // SAFETY: written by the boot CPU before any secondary is released.
        unsafe { write_volatile(PAYLOAD_GIC.get(), g) };
        civac(PAYLOAD_GIC.get() as u64, 64);
    }

    pub fn read(&self) -> GicInfo {
        civac(PAYLOAD_GIC.get() as u64, 64);
        // SAFETY: aligned static; not written while secondaries run.
        unsafe { read_volatile(PAYLOAD_GIC.get()) }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// An exception on any CPU: `PAYLOAD: FAIL ...`, on the boot CPU also the verdict; then stop.
fn exception_report(e: &arch::exceptions::Exception<'_>) -> ! {
    let (base, _) = footprint();
    let mpidr = cpu::mpidr();
    let (esr, elr, far) = (e.esr, e.frame.elr, e.far);
    let what = e.kind_name();
    println!(
        "PAYLOAD: FAIL exception {what} on MPIDR {mpidr:#x} at EL{}: ESR {esr:#x} ELR {elr:#x} (payload+{:#x}) FAR {far:#x}",
        cpu::current_el(),
        elr.wrapping_sub(base)
    );
    if mpidr == rd(BOOT_MPIDR.get()) {
        println!(
            "PAYLOAD: VERDICT FAIL exception {what} on the boot CPU (ESR {esr:#x}, ELR {elr:#x})"
        );
    }
    cpu::stop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let m = cpu::mpidr();
    if let Some(l) = info.location() {
        println!(
            "PAYLOAD: FAIL panic on MPIDR {m:#x} at {}:{}: {}",
            l.file(),
            l.line(),
            info.message()
        );
    } else {
        println!("PAYLOAD: FAIL panic on MPIDR {m:#x}: {}", info.message());
    }
    if m == rd(BOOT_MPIDR.get()) {
        println!("PAYLOAD: VERDICT FAIL panic");
    }
    cpu::stop()
}

/// The arch crate's EL3 vectors call this for an SMC; the payload never runs at EL3 as a
/// resident part, so every call is NOT_SUPPORTED.
///
/// # Safety
/// Called by el3.S only, with `frame` on the CPU's EL3 stack.
#[no_mangle]
pub unsafe extern "C" fn parkboot_smc(frame: *mut [u64; 22], _spsr: u64) {
    // SAFETY: el3.S passes the frame it saved.
    unsafe { (*frame)[0] = u64::MAX };
}
