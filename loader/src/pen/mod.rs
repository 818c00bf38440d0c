//! The spin pen: where every secondary CPU waits while no OS owns it.
//!
//! The full contract (layout, release and park sequences, cache rules, DT properties, adoption)
//! is `docs/protocol.md`; this module is its loader-side implementation and the code in
//! `arch/pen.S` is the CPU side. In short:
//!
//! ```text
//! pen region (4 KiB aligned, 4 KiB multiple, one /memreserve/):
//!   0x000  header, 128 bytes            written only by loaders (caches on)
//!   0x080  pen code (arch/pen.S copy)   written only by loaders
//!   slot_offset   nr_slots x 64-byte mailboxes   written only by loaders / OSes (caches on):
//!                 +0 release  +8 mpidr  +16 context  +24 mode
//!   state_offset  nr_slots x 64-byte state records, 2 KiB aligned (>= the largest cache
//!                 writeback granule), written only by pen CPUs (MMU off):
//!                 +0 status  +8 mpidr_seen  +16 entries  +24 parks  +32 releases
//!                 +40 last_entry  +48 el
//! ```
//!
//! Everything here except [`Pen`]'s volatile word accesses is plain, host-tested code. Pen bytes
//! and DT data are untrusted: every offset is checked, every loop is bounded by
//! [`MAX_SLOTS`], nothing panics. A pen whose header does not validate is never written to.

mod error;
mod format;
mod header;
mod image;
mod layout;
mod live;
mod reclaim;

pub use error::*;
pub use format::*;
pub use header::*;
pub use image::*;
pub use layout::*;
pub use live::*;
pub use reclaim::*;

#[cfg(test)]
mod tests;
