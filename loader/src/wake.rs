//! How a waiting CPU sleeps: the pen's *wake block* (docs/protocol.md §3.3).
//!
//! A pen CPU must notice a release that is only a store to its release word (a stock Linux
//! spin-table release sends SEV, no interrupt). WFE would see the SEV, but under QEMU's
//! multi-threaded TCG WFE does not sleep — every waiting vCPU spins a host thread. So the pen
//! sleeps in a way that wakes on its own at least every [`MAX_WAKE_PERIOD_US`]:
//!
//! 1. WFIT (FEAT_WFxT) with a deadline of now + period, where the CPU has it and the wake block
//!    allows it;
//! 2. else WFI, woken by the CPU's own generic timer (EL2: hypervisor physical timer; EL1:
//!    virtual timer) firing every period through the GIC the DT describes (v2 or v3);
//! 3. else (no GIC, no usable timer interrupt, a broken block) WFE as before.
//!
//! The loader that builds a pen writes one 128-byte wake block into its copy of the pen code
//! (at `pen_wake_block`); this module plans that block from the DT and encodes/decodes it. The
//! pen code only reads it. Everything here is plain Rust, tested on the host.

use crate::dt::{DtInfo, GicVersion};
use alloc::string::String;
use core::fmt;

/// The GIC register map (architectural; `arch::gic_regs`), as the pen code uses it.
pub use arch::gic_regs as regs;
pub use arch::gic_regs::GICR_FRAME;
/// How a CPU waits and the constants the pen and the boot CPU share (`arch::wait`).
pub use arch::wait::{WaitMethod, WakeGic, WakePlan, WAKE_PMR, WAKE_SGI};

/// `"PKBTWAKE"`, little-endian.
pub const WAKE_MAGIC: u64 = u64::from_le_bytes(*b"PKBTWAKE");
/// Bytes of the wake block.
pub const WAKE_BLOCK_SIZE: usize = 128;
/// The wake period never exceeds this (it bounds the latency of a release).
pub const MAX_WAKE_PERIOD_US: u64 = 1000;
/// The loader's default wake period (env `pen_wake_us`).
pub const DEFAULT_WAKE_PERIOD_US: u64 = 500;
/// Shortest wake period the loader accepts.
pub const MIN_WAKE_PERIOD_US: u64 = 50;
/// Redistributor regions a block can describe.
pub const MAX_GICR_REGIONS: usize = 4;
/// The hold period a loader uses while it owns the pen and kicks every release.
pub const DEFAULT_HOLD_PERIOD_US: u64 = 50_000;
/// Flag: the pen may use WFIT where the CPU implements FEAT_WFxT.
pub const FLAG_WFIT: u32 = 1;

/// Byte offsets inside the wake block.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const GIC_VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    pub const PERIOD: usize = 16;
    pub const INTID_EL2: usize = 24;
    pub const INTID_EL1: usize = 28;
    pub const GICD: usize = 32;
    pub const GICC: usize = 40;
    pub const NR_GICR: usize = 48;
    /// u64: the hold period (see [`super::WakeConfig::hold_ticks`]).
    pub const HOLD_PERIOD: usize = 56;
    /// `MAX_GICR_REGIONS` × (base u64, size u64).
    pub const GICR: usize = 64;
}

/// A decoded wake block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeConfig {
    pub gic: WakeGic,
    pub flags: u32,
    /// Counter ticks between wake-ups (0: the block asks for WFE). At most
    /// [`MAX_WAKE_PERIOD_US`]: it bounds how long a release (a store and SEV, no interrupt)
    /// takes to be seen.
    pub period_ticks: u64,
    /// While the loader that owns the pen runs, CPUs sleeping on the GIC timer wait this long
    /// instead (if longer), because that loader kicks them with [`WAKE_SGI`] after every
    /// release. The pen reads it before every sleep; the loader sets it to 0 before it hands
    /// the machine on. WFIT ignores it (no interrupt to kick with).
    pub hold_ticks: u64,
    /// INTID of the hypervisor physical timer (used at EL2); 0 if none.
    pub intid_el2: u32,
    /// INTID of the virtual timer (used at EL1); 0 if none.
    pub intid_el1: u32,
}

/// Why a wake block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeError {
    TooShort { len: usize },
    BadMagic { found: u64 },
    BadGicVersion { found: u32 },
    BadIntid { el: u8, intid: u32 },
    BadPeriod { ticks: u64 },
    BadBase { what: &'static str, addr: u64 },
    BadRegionCount { count: u32 },
    BadRegion { base: u64, size: u64 },
}

impl fmt::Display for WakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "wake block is {len} bytes (need {WAKE_BLOCK_SIZE})")
            }
            Self::BadMagic { found } => write!(f, "wake block magic {found:#018x}"),
            Self::BadGicVersion { found } => write!(f, "wake block GIC version {found}"),
            Self::BadIntid { el, intid } => {
                write!(
                    f,
                    "wake block EL{el} timer INTID {intid} is not a PPI (16..31)"
                )
            }
            Self::BadPeriod { ticks } => write!(f, "wake period {ticks} ticks"),
            Self::BadBase { what, addr } => write!(f, "wake block {what} base {addr:#x}"),
            Self::BadRegionCount { count } => {
                write!(
                    f,
                    "wake block has {count} redistributor regions (max {MAX_GICR_REGIONS})"
                )
            }
            Self::BadRegion { base, size } => {
                write!(f, "wake block redistributor region {base:#x}+{size:#x}")
            }
        }
    }
}

fn rd32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn rd64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn put32(b: &mut [u8; WAKE_BLOCK_SIZE], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8; WAKE_BLOCK_SIZE], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn ppi_ok(intid: u32) -> bool {
    intid == 0 || (16..32).contains(&intid)
}

impl WakeConfig {
    /// A block that makes the pen wait with WFE (what a pen without the feature does).
    #[must_use]
    pub const fn wfe_only() -> Self {
        Self {
            gic: WakeGic::None,
            flags: 0,
            period_ticks: 0,
            hold_ticks: 0,
            intid_el2: 0,
            intid_el1: 0,
        }
    }

    /// Plans the wake block for the machine the DT describes. `cnt_freq` is CNTFRQ_EL0,
    /// `period_us` the wanted wake period (clamped to
    /// [`MIN_WAKE_PERIOD_US`]..=[`MAX_WAKE_PERIOD_US`]). Returns the block and, when the pen
    /// will have no interrupt to sleep on, the reason (it then uses WFIT where the CPU has it,
    /// else WFE).
    #[must_use]
    pub fn plan(dt: &DtInfo, cnt_freq: u64, period_us: u64) -> (Self, Option<String>) {
        let us = period_us.clamp(MIN_WAKE_PERIOD_US, MAX_WAKE_PERIOD_US);
        let period_ticks = (u128::from(cnt_freq) * u128::from(us) / 1_000_000) as u64;
        let mut cfg = Self {
            gic: WakeGic::None,
            flags: FLAG_WFIT,
            period_ticks: period_ticks.max(1),
            hold_ticks: (u128::from(cnt_freq) * u128::from(DEFAULT_HOLD_PERIOD_US) / 1_000_000)
                as u64,
            intid_el2: 0,
            intid_el1: 0,
        };
        if cnt_freq == 0 {
            cfg.period_ticks = 0;
            return (cfg, Some("the counter frequency is 0".into()));
        }
        let Some(t) = dt.timer_irqs else {
            return (cfg, Some("the DT names no timer interrupts".into()));
        };
        cfg.intid_el2 = t.hyp_phys.unwrap_or(0);
        cfg.intid_el1 = t.virt.unwrap_or(0);
        let Some(g) = &dt.gic else {
            return (cfg, Some("the DT describes no GIC".into()));
        };
        let Some(gicd) = g
            .distributor()
            .filter(|r| r.base % 0x1000 == 0 && r.base != 0)
        else {
            return (cfg, Some("the GIC has no usable distributor `reg`".into()));
        };
        cfg.gic = match g.version {
            GicVersion::V2 => match g
                .cpu_interface()
                .filter(|r| r.base % 0x1000 == 0 && r.base != 0)
            {
                Some(c) => WakeGic::V2 {
                    gicd: gicd.base,
                    gicc: c.base,
                },
                None => return (cfg, Some("the GICv2 has no CPU interface `reg`".into())),
            },
            GicVersion::V3 => {
                let gicr: alloc::vec::Vec<(u64, u64)> = g
                    .redistributors()
                    .iter()
                    .filter(|r| {
                        r.base % 0x1_0000 == 0
                            && r.size >= GICR_FRAME
                            && r.base.checked_add(r.size).is_some()
                    })
                    .take(MAX_GICR_REGIONS)
                    .map(|r| (r.base, r.size))
                    .collect();
                if gicr.is_empty() {
                    return (
                        cfg,
                        Some("the GICv3 has no usable redistributor region".into()),
                    );
                }
                WakeGic::V3 {
                    gicd: gicd.base,
                    gicr,
                }
            }
        };
        (cfg, None)
    }

    /// The 128-byte block as the pen code reads it.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; WAKE_BLOCK_SIZE] {
        let mut b = [0u8; WAKE_BLOCK_SIZE];
        put64(&mut b, off::MAGIC, WAKE_MAGIC);
        let (ver, gicd, gicc, regions): (u32, u64, u64, &[(u64, u64)]) = match &self.gic {
            WakeGic::None => (0, 0, 0, &[]),
            WakeGic::V2 { gicd, gicc } => (2, *gicd, *gicc, &[]),
            WakeGic::V3 { gicd, gicr } => (3, *gicd, 0, gicr.as_slice()),
        };
        put32(&mut b, off::GIC_VERSION, ver);
        put32(&mut b, off::FLAGS, self.flags);
        put64(&mut b, off::PERIOD, self.period_ticks);
        put64(&mut b, off::HOLD_PERIOD, self.hold_ticks);
        put32(&mut b, off::INTID_EL2, self.intid_el2);
        put32(&mut b, off::INTID_EL1, self.intid_el1);
        put64(&mut b, off::GICD, gicd);
        put64(&mut b, off::GICC, gicc);
        let n = regions.len().min(MAX_GICR_REGIONS);
        put32(&mut b, off::NR_GICR, n as u32);
        for (i, (base, size)) in regions.iter().take(n).enumerate() {
            put64(&mut b, off::GICR + 16 * i, *base);
            put64(&mut b, off::GICR + 16 * i + 8, *size);
        }
        b
    }

    /// Decodes and checks a wake block (e.g. from a pen found in memory).
    pub fn parse(b: &[u8]) -> Result<Self, WakeError> {
        if b.len() < WAKE_BLOCK_SIZE {
            return Err(WakeError::TooShort { len: b.len() });
        }
        let magic = rd64(b, off::MAGIC);
        if magic != WAKE_MAGIC {
            return Err(WakeError::BadMagic { found: magic });
        }
        let period_ticks = rd64(b, off::PERIOD);
        if period_ticks > 1 << 40 {
            return Err(WakeError::BadPeriod {
                ticks: period_ticks,
            });
        }
        let hold_ticks = rd64(b, off::HOLD_PERIOD);
        if hold_ticks > 1 << 40 {
            return Err(WakeError::BadPeriod { ticks: hold_ticks });
        }
        let intid_el2 = rd32(b, off::INTID_EL2);
        let intid_el1 = rd32(b, off::INTID_EL1);
        for (el, intid) in [(2u8, intid_el2), (1, intid_el1)] {
            if !ppi_ok(intid) {
                return Err(WakeError::BadIntid { el, intid });
            }
        }
        let gicd = rd64(b, off::GICD);
        let gicc = rd64(b, off::GICC);
        let base_ok = |what: &'static str, a: u64| {
            if a == 0 || !a.is_multiple_of(0x1000) {
                Err(WakeError::BadBase { what, addr: a })
            } else {
                Ok(())
            }
        };
        let gic = match rd32(b, off::GIC_VERSION) {
            0 => WakeGic::None,
            2 => {
                base_ok("GICD", gicd)?;
                base_ok("GICC", gicc)?;
                WakeGic::V2 { gicd, gicc }
            }
            3 => {
                base_ok("GICD", gicd)?;
                let n = rd32(b, off::NR_GICR);
                if n as usize > MAX_GICR_REGIONS {
                    return Err(WakeError::BadRegionCount { count: n });
                }
                let mut gicr = alloc::vec::Vec::new();
                for i in 0..n as usize {
                    let base = rd64(b, off::GICR + 16 * i);
                    let size = rd64(b, off::GICR + 16 * i + 8);
                    if !base.is_multiple_of(0x1_0000)
                        || base == 0
                        || size < GICR_FRAME
                        || base.checked_add(size).is_none()
                    {
                        return Err(WakeError::BadRegion { base, size });
                    }
                    gicr.push((base, size));
                }
                WakeGic::V3 { gicd, gicr }
            }
            v => return Err(WakeError::BadGicVersion { found: v }),
        };
        Ok(Self {
            gic,
            flags: rd32(b, off::FLAGS),
            period_ticks,
            hold_ticks,
            intid_el2,
            intid_el1,
        })
    }

    /// What the pen code will use on a CPU at `el` — the same decision `pen.S` makes — given
    /// whether the CPU implements FEAT_WFxT (ID_AA64ISAR2_EL1.WFxT ≥ 2) and a GICv3 system
    /// register interface (ID_AA64PFR0_EL1.GIC ≠ 0). (The pen can still fall back to WFE at
    /// run time: no redistributor for its MPIDR, a sleeping redistributor, ICC_SRE not taking.)
    #[must_use]
    pub fn method(&self, el: u8, has_wfxt: bool, has_gic_sysregs: bool) -> WaitMethod {
        if self.period_ticks == 0 {
            return WaitMethod::Wfe;
        }
        if self.flags & FLAG_WFIT != 0 && has_wfxt {
            return WaitMethod::Wfit;
        }
        let intid = if el == 2 {
            self.intid_el2
        } else {
            self.intid_el1
        };
        if !(16..32).contains(&intid) {
            return WaitMethod::Wfe;
        }
        match &self.gic {
            WakeGic::None => WaitMethod::Wfe,
            WakeGic::V2 { .. } => WaitMethod::GicV2Timer,
            WakeGic::V3 { .. } if has_gic_sysregs => WaitMethod::GicV3Timer,
            WakeGic::V3 { .. } => WaitMethod::Wfe,
        }
    }

    /// The wake period in microseconds at `cnt_freq`.
    #[must_use]
    pub fn period_us(&self, cnt_freq: u64) -> u64 {
        if cnt_freq == 0 {
            return 0;
        }
        (u128::from(self.period_ticks) * 1_000_000 / u128::from(cnt_freq)) as u64
    }
}

/// The boot CPU sleeps by the same plan as the pen (`arch::gic::init`).
impl WakePlan for WakeConfig {
    fn gic(&self) -> &WakeGic {
        &self.gic
    }

    fn method(&self, el: u8, has_wfxt: bool, has_gic_sysregs: bool) -> WaitMethod {
        WakeConfig::method(self, el, has_wfxt, has_gic_sysregs)
    }

    fn period_ticks(&self) -> u64 {
        self.period_ticks
    }

    fn hold_ticks(&self) -> u64 {
        self.hold_ticks
    }

    fn timer_intid(&self, el: u8) -> u32 {
        if el == 2 {
            self.intid_el2
        } else {
            self.intid_el1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::{Gic, Region, TimerIrqs};
    use alloc::string::ToString;
    use alloc::vec;

    fn timer() -> TimerIrqs {
        TimerIrqs {
            secure_phys: Some(29),
            nonsecure_phys: Some(30),
            virt: Some(27),
            hyp_phys: Some(26),
        }
    }

    fn dt(gic: Option<Gic>, t: Option<TimerIrqs>) -> DtInfo {
        DtInfo {
            gic,
            timer_irqs: t,
            ..DtInfo::default()
        }
    }

    fn v2() -> Gic {
        Gic {
            version: GicVersion::V2,
            path: "/intc@8000000".into(),
            regs: vec![
                Region::new(0x0800_0000, 0x1_0000),
                Region::new(0x0801_0000, 0x1_0000),
            ],
            redist_regions: 1,
        }
    }

    fn v3() -> Gic {
        Gic {
            version: GicVersion::V3,
            path: "/intc@8000000".into(),
            regs: vec![
                Region::new(0x0800_0000, 0x1_0000),
                Region::new(0x080a_0000, 0xf6_0000),
            ],
            redist_regions: 1,
        }
    }

    #[test]
    fn gicv2_plan_encodes_and_decodes() {
        let (c, why) = WakeConfig::plan(&dt(Some(v2()), Some(timer())), 62_500_000, 500);
        assert_eq!(why, None);
        assert_eq!(c.period_ticks, 31_250);
        assert_eq!(c.hold_ticks, 3_125_000);
        assert_eq!(c.period_us(62_500_000), 500);
        assert_eq!((c.intid_el2, c.intid_el1), (26, 27));
        assert_eq!(
            c.gic,
            WakeGic::V2 {
                gicd: 0x0800_0000,
                gicc: 0x0801_0000
            }
        );
        let b = c.to_bytes();
        assert_eq!(&b[..8], b"PKBTWAKE");
        assert_eq!(WakeConfig::parse(&b), Ok(c.clone()));
        assert_eq!(c.method(2, false, false), WaitMethod::GicV2Timer);
        assert_eq!(c.method(1, false, false), WaitMethod::GicV2Timer);
        assert_eq!(c.method(2, true, false), WaitMethod::Wfit);
    }

    #[test]
    fn gicv3_plan_needs_the_sysreg_interface() {
        let (c, why) = WakeConfig::plan(&dt(Some(v3()), Some(timer())), 62_500_000, 500);
        assert_eq!(why, None);
        assert_eq!(
            c.gic,
            WakeGic::V3 {
                gicd: 0x0800_0000,
                gicr: vec![(0x080a_0000, 0xf6_0000)]
            }
        );
        let b = c.to_bytes();
        assert_eq!(WakeConfig::parse(&b), Ok(c.clone()));
        assert_eq!(c.method(2, false, true), WaitMethod::GicV3Timer);
        assert_eq!(c.method(2, false, false), WaitMethod::Wfe);
    }

    #[test]
    fn period_is_clamped_to_the_release_latency_bound() {
        let d = dt(Some(v2()), Some(timer()));
        let (c, _) = WakeConfig::plan(&d, 62_500_000, 5_000_000);
        assert_eq!(c.period_us(62_500_000), MAX_WAKE_PERIOD_US);
        let (c, _) = WakeConfig::plan(&d, 62_500_000, 0);
        assert_eq!(c.period_us(62_500_000), MIN_WAKE_PERIOD_US);
        let (c, why) = WakeConfig::plan(&d, 0, 500);
        assert_eq!(c.period_ticks, 0);
        assert!(why.unwrap().contains("frequency"));
        assert_eq!(c.method(2, true, true), WaitMethod::Wfe);
    }

    #[test]
    fn without_gic_or_timer_the_pen_falls_back() {
        let (c, why) = WakeConfig::plan(&dt(None, Some(timer())), 62_500_000, 500);
        assert_eq!(why.as_deref(), Some("the DT describes no GIC"));
        assert_eq!(c.method(2, false, true), WaitMethod::Wfe);
        assert_eq!(c.method(2, true, true), WaitMethod::Wfit);
        let (c, why) = WakeConfig::plan(&dt(Some(v2()), None), 62_500_000, 500);
        assert_eq!(why.as_deref(), Some("the DT names no timer interrupts"));
        assert_eq!(c.method(1, false, false), WaitMethod::Wfe);
        // A timer without the hypervisor PPI: EL2 waits with WFE, EL1 sleeps.
        let t = TimerIrqs {
            hyp_phys: None,
            ..timer()
        };
        let (c, _) = WakeConfig::plan(&dt(Some(v2()), Some(t)), 62_500_000, 500);
        assert_eq!(c.method(2, false, false), WaitMethod::Wfe);
        assert_eq!(c.method(1, false, false), WaitMethod::GicV2Timer);
        // Unaligned redistributors are not used.
        let mut g = v3();
        g.regs[1] = Region::new(0x080a_1000, 0xf6_0000);
        let (_, why) = WakeConfig::plan(&dt(Some(g), Some(timer())), 62_500_000, 500);
        assert!(why.unwrap().contains("redistributor"));
    }

    /// What the boot CPU's sleep set-up (`arch::gic::init`) reads is the planned block.
    #[test]
    fn the_boot_cpu_sleeps_by_the_pen_plan() {
        fn plan_of(p: &impl WakePlan, el: u8) -> (WakeGic, WaitMethod, u64, u64, u32) {
            (
                p.gic().clone(),
                p.method(el, false, true),
                p.period_ticks(),
                p.hold_ticks(),
                p.timer_intid(el),
            )
        }
        let (c, _) = WakeConfig::plan(&dt(Some(v3()), Some(timer())), 62_500_000, 500);
        let gic = WakeGic::V3 {
            gicd: 0x0800_0000,
            gicr: vec![(0x080a_0000, 0xf6_0000)],
        };
        assert_eq!(
            plan_of(&c, 2),
            (gic.clone(), WaitMethod::GicV3Timer, 31_250, 3_125_000, 26)
        );
        assert_eq!(
            plan_of(&c, 1),
            (gic, WaitMethod::GicV3Timer, 31_250, 3_125_000, 27)
        );
        let (c, _) = WakeConfig::plan(&dt(Some(v2()), Some(timer())), 62_500_000, 500);
        assert_eq!(plan_of(&c, 1).1, WaitMethod::GicV2Timer);
        assert_eq!(plan_of(&WakeConfig::wfe_only(), 2).1, WaitMethod::Wfe);
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        let (c, _) = WakeConfig::plan(&dt(Some(v3()), Some(timer())), 62_500_000, 500);
        let good = c.to_bytes();
        let bad = |f: &dyn Fn(&mut [u8; WAKE_BLOCK_SIZE])| {
            let mut b = good;
            f(&mut b);
            WakeConfig::parse(&b).unwrap_err().to_string()
        };
        assert!(bad(&|b| b[0] = b'X').contains("magic"));
        assert!(bad(&|b| put32(b, off::GIC_VERSION, 4)).contains("GIC version 4"));
        assert!(bad(&|b| put32(b, off::INTID_EL2, 40)).contains("EL2 timer INTID 40"));
        assert!(bad(&|b| put32(b, off::NR_GICR, 5)).contains("5 redistributor regions"));
        assert!(bad(&|b| put64(b, off::GICR, 0x080a_1000)).contains("redistributor region"));
        assert!(bad(&|b| put64(b, off::GICD, 0)).contains("GICD base"));
        assert!(bad(&|b| put64(b, off::PERIOD, u64::MAX)).contains("period"));
        assert!(bad(&|b| put64(b, off::HOLD_PERIOD, u64::MAX)).contains("period"));
        assert_eq!(
            WakeConfig::parse(&good[..100]),
            Err(WakeError::TooShort { len: 100 })
        );
        assert_eq!(
            WakeConfig::parse(&WakeConfig::wfe_only().to_bytes()).map(|c| c.method(2, true, true)),
            Ok(WaitMethod::Wfe)
        );
    }
}
