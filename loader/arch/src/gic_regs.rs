//! The GIC register offsets the pen code (`pen.S`) and the boot CPU's sleep set-up
//! ([`crate::gic`]) use (architectural; GICv2 and GICv3 specifications). Plain constants,
//! also on the host: `loader::wake` re-exports them and a host test checks `pen.S` against them.

pub const GICD_CTLR: usize = 0x000;
pub const GICD_IGROUPR: usize = 0x080;
pub const GICD_ISENABLER: usize = 0x100;
pub const GICD_ICENABLER: usize = 0x180;
pub const GICD_ISPENDR: usize = 0x200;
pub const GICD_ICPENDR: usize = 0x280;
pub const GICD_IPRIORITYR: usize = 0x400;
pub const GICD_ITARGETSR: usize = 0x800;
pub const GICD_SGIR: usize = 0xf00;
pub const GICD_CPENDSGIR: usize = 0xf10;
pub const GICD_IROUTER: usize = 0x6000;
pub const GICC_CTLR: usize = 0x000;
pub const GICC_PMR: usize = 0x004;
pub const GICR_CTLR: usize = 0x0000;
pub const GICR_TYPER: usize = 0x0008;
pub const GICR_WAKER: usize = 0x0014;
pub const GICR_SGI_OFFSET: usize = 0x1_0000;
pub const GICR_IGROUPR0: usize = 0x0080;
pub const GICR_ISENABLER0: usize = 0x0100;
pub const GICR_ICENABLER0: usize = 0x0180;
pub const GICR_ISPENDR0: usize = 0x0200;
pub const GICR_ICPENDR0: usize = 0x0280;
pub const GICR_IPRIORITYR: usize = 0x0400;
/// Bound on polls of RWP / ChildrenAsleep.
pub const GIC_POLL_LIMIT: u32 = 0x10_0000;
/// Size of one GICv3 redistributor frame pair (RD + SGI).
pub const GICR_FRAME: u64 = 0x2_0000;
