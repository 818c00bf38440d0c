//! PSCI served by parkboot itself: the resident EL3 part (docs/psci.md).
//!
//! When parkboot starts at EL3 from reset (`-bios loader.bin` on QEMU virt with
//! `secure=on`), it keeps a copy of itself in secure RAM that answers PSCI calls made with SMC
//! by the non-secure world, backed by a pen (docs/protocol.md) at EL3: CPU_OFF parks the
//! calling CPU in it, CPU_ON releases a CPU from it. Everything that decides is here and
//! host-tested:
//!
//! - [`call`]: SMC function IDs → a typed [`Call`] (SMC32 and SMC64 conventions);
//! - [`machine`]: what each call does to the CPUs, with the PSCI 1.1 return codes
//!   ([`handle`] → [`Action`]); the CPUs' states come from the pen through [`CpuTable`];
//! - [`resident`]: where the resident part, its stacks, its pen and the secondaries' reset
//!   hold live in secure RAM, what is secure (never described to the non-secure world as
//!   RAM), the power GPIO lines, and the DT the non-secure world gets (`/psci`, method
//!   `smc`; cpu nodes `enable-method = "psci"`).
//!
//! The glue (`loader/src/resident.rs`) and the EL3 assembly (`loader/arch/src/el3.S`) only
//! carry the decisions out.

pub mod call;
pub mod machine;
pub mod resident;

pub use call::*;
pub use machine::*;
