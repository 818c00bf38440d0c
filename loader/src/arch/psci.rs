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

pub fn version(c: Conduit) -> Option<(u16, u16)> {
    let v = match c {
        Conduit::Smc => psci::version::<Smc>(),
        Conduit::Hvc => psci::version::<Hvc>(),
    };
    v.ok().map(|v| (v.major, v.minor))
}
