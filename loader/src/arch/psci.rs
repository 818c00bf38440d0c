//! PSCI calls to the firmware, through the conduit named by /psci.
use smccc::psci;
use smccc::{Hvc, Smc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// Whether calls through `c` can reach firmware from the current EL. An HVC
/// issued at EL2 traps to ourselves, so it is unusable there.
pub fn usable(c: Conduit) -> bool {
    !(c == Conduit::Hvc && super::cpu::current_el() == 2)
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
