//! PSCI calls to the firmware through the conduit named by /psci, all through the `smccc`
//! crate; plus the two CPU_OFF stubs a pen CPU can be released to (it has no stack there).
use smccc::psci;
use smccc::{Hvc, Smc};

// Where a pen CPU is released to when `cpu_method=psci` hands CPUs back to
// firmware: PSCI CPU_OFF through the conduit (never returns on success).
core::arch::global_asm!(
    ".section .text.psci_off, \"ax\"",
    ".global psci_off_smc",
    "psci_off_smc:",
    "    movz w0, #0x0002",
    "    movk w0, #0x8400, lsl #16",
    "    smc #0",
    "1:  wfe",
    "    b 1b",
    ".global psci_off_hvc",
    "psci_off_hvc:",
    "    movz w0, #0x0002",
    "    movk w0, #0x8400, lsl #16",
    "    hvc #0",
    "2:  wfe",
    "    b 2b",
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// Whether calls through `c` can reach firmware from the current EL. An HVC
/// issued at EL2 traps to ourselves, so it is unusable there.
pub fn usable(c: Conduit) -> bool {
    !(c == Conduit::Hvc && crate::cpu::current_el() == 2)
}

pub fn system_off(c: Conduit) -> Result<(), psci::error::Error> {
    match c {
        Conduit::Smc => psci::system_off::<Smc>(),
        Conduit::Hvc => psci::system_off::<Hvc>(),
    }
}

pub fn system_reset(c: Conduit) -> Result<(), psci::error::Error> {
    match c {
        Conduit::Smc => psci::system_reset::<Smc>(),
        Conduit::Hvc => psci::system_reset::<Hvc>(),
    }
}

pub fn cpu_on(c: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), psci::error::Error> {
    match c {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// Whether firmware reports the CPU (affinity level 0) as OFF.
pub fn is_off(c: Conduit, mpidr: u64) -> bool {
    let r = match c {
        Conduit::Smc => psci::affinity_info::<Smc>(mpidr, psci::LowestAffinityLevel::All),
        Conduit::Hvc => psci::affinity_info::<Hvc>(mpidr, psci::LowestAffinityLevel::All),
    };
    matches!(r, Ok(psci::AffinityState::Off))
}

/// Whether a CPU_ON refusal says the CPU is already running (somewhere).
pub fn means_on(e: psci::error::Error) -> bool {
    matches!(
        e,
        psci::error::Error::AlreadyOn | psci::error::Error::OnPending
    )
}

extern "C" {
    fn psci_off_smc();
    fn psci_off_hvc();
}

/// Address a pen CPU can be released to so that it calls CPU_OFF.
pub fn cpu_off_stub(c: Conduit) -> u64 {
    match c {
        Conduit::Smc => psci_off_smc as *const () as usize as u64,
        Conduit::Hvc => psci_off_hvc as *const () as usize as u64,
    }
}
