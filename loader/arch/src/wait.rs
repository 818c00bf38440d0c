//! How a CPU waits (docs/protocol.md §3.3), as plain values shared by the pen code (`pen.S`),
//! the boot CPU's sleep set-up ([`crate::gic`]) and the host-tested wake planning in
//! `loader::wake` (which re-exports these and implements [`WakePlan`] for its wake block).
use alloc::vec::Vec;
use core::fmt;

/// The SGI a loader sends to wake pen CPUs at once (after a release, or to make them see a
/// changed hold period). Linux uses SGIs 0..7.
pub const WAKE_SGI: u32 = 15;
/// Priority mask the sleeping CPU programs (only interrupts of higher priority — lower value —
/// wake it); its timer interrupt gets priority 0.
pub const WAKE_PMR: u32 = 0x80;

/// What a pen CPU used to wait, as it reports it in its state record (`wait`); also how the
/// boot CPU idles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMethod {
    /// Not recorded (an older pen, or the CPU never waited).
    Unknown,
    Wfe,
    Wfit,
    GicV2Timer,
    GicV3Timer,
}

impl WaitMethod {
    pub const WFE: u32 = 1;
    pub const WFIT: u32 = 2;
    pub const GICV2: u32 = 3;
    pub const GICV3: u32 = 4;

    #[must_use]
    pub const fn from_raw(v: u32) -> Self {
        match v {
            Self::WFE => Self::Wfe,
            Self::WFIT => Self::Wfit,
            Self::GICV2 => Self::GicV2Timer,
            Self::GICV3 => Self::GicV3Timer,
            _ => Self::Unknown,
        }
    }

    #[must_use]
    pub const fn raw(self) -> u32 {
        match self {
            Self::Unknown => 0,
            Self::Wfe => Self::WFE,
            Self::Wfit => Self::WFIT,
            Self::GicV2Timer => Self::GICV2,
            Self::GicV3Timer => Self::GICV3,
        }
    }

    /// Whether the CPU really sleeps (under QEMU TCG, WFE spins).
    #[must_use]
    pub const fn sleeps(self) -> bool {
        matches!(self, Self::Wfit | Self::GicV2Timer | Self::GicV3Timer)
    }
}

impl fmt::Display for WaitMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "-",
            Self::Wfe => "wfe",
            Self::Wfit => "wfit",
            Self::GicV2Timer => "wfi+gicv2",
            Self::GicV3Timer => "wfi+gicv3",
        })
    }
}

/// The interrupt controller a CPU sleeps on: the GIC part of a wake block (bases from the DT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeGic {
    None,
    V2 {
        gicd: u64,
        gicc: u64,
    },
    V3 {
        gicd: u64,
        /// Redistributor regions: (base, size), at most `loader::wake::MAX_GICR_REGIONS`.
        gicr: Vec<(u64, u64)>,
    },
}

/// What the boot CPU's sleep set-up ([`crate::gic`]'s `init`) needs from a wake plan: the
/// plan is made and tested on the host (`loader::wake::WakeConfig`); this crate only carries
/// it out.
pub trait WakePlan {
    /// The GIC to sleep on.
    fn gic(&self) -> &WakeGic;
    /// The method for a CPU at `el`, given whether it implements FEAT_WFxT and a GICv3
    /// system-register interface.
    fn method(&self, el: u8, has_wfxt: bool, has_gic_sysregs: bool) -> WaitMethod;
    /// Counter ticks between wake-ups.
    fn period_ticks(&self) -> u64;
    /// The longer period used while a key (the console's receive interrupt) can wake the CPU.
    fn hold_ticks(&self) -> u64;
    /// INTID of the timer a CPU at `el` sleeps on (EL2: hypervisor physical; EL1: virtual).
    fn timer_intid(&self, el: u8) -> u32;
}

#[cfg(test)]
mod tests {
    use super::WaitMethod;

    #[test]
    fn raw_codes_round_trip() {
        for m in [
            WaitMethod::Unknown,
            WaitMethod::Wfe,
            WaitMethod::Wfit,
            WaitMethod::GicV2Timer,
            WaitMethod::GicV3Timer,
        ] {
            assert_eq!(WaitMethod::from_raw(m.raw()), m);
        }
        assert_eq!(WaitMethod::from_raw(99), WaitMethod::Unknown);
    }
}
