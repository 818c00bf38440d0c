//! The ONE way out: every boot the loader does (kernel, payload, next loader),
//! and the test payload's chain into the next loader, leave through `handoff`. It establishes the arm64 boot protocol entry
//! state (Documentation/arch/arm64/booting.rst):
//!
//! - everything the next stage will read is cleaned to PoC (`clean` ranges),
//! - MMU, D-cache and I-cache off, I-cache and TLBs invalidated,
//! - all of DAIF masked,
//! - x0 = DTB, x1 = x2 = x3 = 0,
//! - at the EL the loader was entered at (EL2 preferred),
//! - CNTVOFF_EL2 = 0 and CNTHCTL_EL2.EL1PC(T)EN set (done at entry, redone
//!   here), ICC_SRE_EL2.{SRE,Enable} = 1 when a GICv3 system-register
//!   interface exists;
//! - the boot CPU's idle sleep undone (`gic::quiesce`): its timer off, the
//!   timer interrupt disabled, the GIC CPU interface back to reset; the
//!   distributor stays enabled only while CPUs sleep in a pen
//!   (`keep_distributor`; docs/protocol.md §3.3).

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Writeable, ICC_SRE_EL2};
use core::arch::asm;

/// Leaves the program for `entry` with `dtb` in x0.
///
/// # Safety
/// `entry` must be the entry point of a loaded image, every range in `clean`
/// must be mapped, and nothing may be written to those ranges afterwards.
pub unsafe fn handoff(entry: u64, dtb: u64, clean: &[(u64, u64)], keep_distributor: bool) -> ! {
    crate::uart::flush();
    crate::gic::quiesce(keep_distributor);
    for &(start, len) in clean {
        crate::cpu::clean_dcache_range(start as usize, len as usize);
    }
    let el = crate::cpu::current_el();
    if el == 2 && crate::gic::has_gic_sysregs() {
        // ICC_SRE_EL2: SRE | DFB | DIB | Enable
        ICC_SRE_EL2.set(0xf);
        barrier::isb(barrier::SY);
    }
    // SAFETY: from here on nothing but this asm runs; it does not touch the
    // stack or any memory once the MMU is off.
    unsafe {
        if el == 2 {
            asm!(
                "msr daifset, #0xf",
                "msr cntvoff_el2, xzr",
                "mov x5, #3",
                "msr cnthctl_el2, x5",
                "dsb sy",
                "mrs x5, sctlr_el2",
                "bic x5, x5, #(1 << 0)",
                "bic x5, x5, #(1 << 2)",
                "bic x5, x5, #(1 << 12)",
                "msr sctlr_el2, x5",
                "isb",
                "ic iallu",
                "tlbi alle2",
                "dsb sy",
                "isb",
                "mov x1, xzr",
                "mov x2, xzr",
                "mov x3, xzr",
                "br x4",
                in("x0") dtb,
                in("x4") entry,
                in("x5") 0u64,
                options(noreturn, nostack)
            );
        } else {
            asm!(
                "msr daifset, #0xf",
                "dsb sy",
                "mrs x5, sctlr_el1",
                "bic x5, x5, #(1 << 0)",
                "bic x5, x5, #(1 << 2)",
                "bic x5, x5, #(1 << 12)",
                "msr sctlr_el1, x5",
                "isb",
                "ic iallu",
                "tlbi vmalle1",
                "dsb sy",
                "isb",
                "mov x1, xzr",
                "mov x2, xzr",
                "mov x3, xzr",
                "br x4",
                in("x0") dtb,
                in("x4") entry,
                in("x5") 0u64,
                options(noreturn, nostack)
            );
        }
    }
}
