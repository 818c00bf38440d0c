//! Typed, validated description of the device tree the loader was given.
//!
//! The DTB handed to the loader (x0 at entry) is untrusted input. Following the pvmfw approach, it
//! is parsed once, up front, into plain typed structs ([`DtInfo`]); the rest of the loader works
//! with those and never walks the raw blob again for decisions.
//!
//! Layers of defence:
//! 1. [`fdt_totalsize`] checks the header magic and size before the loader forms a slice.
//! 2. [`parse`] runs `dtoolkit`'s full structural validation ([`Fdt::new`]: header offsets and
//!    sizes, memory-reservation block termination, every token, every node and property name,
//!    property lengths). `dtoolkit`'s accessors only panic (`expect("Fdt should be valid")`) on
//!    blobs that did not pass that validation, so they are only used after it.
//! 3. An iterative pass rejects trees nested deeper than [`MAX_DEPTH`], node names longer than
//!    [`MAX_NODE_NAME`] and paths longer than [`MAX_PATH`], so every later recursion (ours, and
//!    `dtoolkit`'s recursive `DeviceTree::from_fdt` / `Display`) has a bounded depth and stored
//!    paths stay small.
//! 4. Property values are decoded by hand with checked arithmetic; anything odd about an
//!    individual node becomes a [`DtWarning`] (kept in [`DtInfo::warnings`]) rather than a panic or
//!    a rejection of the whole tree. Every collected list and every kept string is capped, so the
//!    heap used by a [`DtInfo`] is bounded (about 1 MiB at worst) whatever the input.

mod cells;
mod chosen;
mod cpus;
mod devices;
mod model;
mod parser;
mod warnings;

pub use cells::MAX_REDIST_REGIONS;
pub use model::*;
use parser::Parser;
pub use warnings::*;

use alloc::vec::Vec;

use dtoolkit::error::FdtParseError;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::Node;

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the (version 17) FDT header.
pub const FDT_HEADER_LEN: usize = 40;
/// Deepest node nesting accepted: nodes may be at most this many levels below the root.
pub const MAX_DEPTH: usize = 32;
/// Longest node name (`name@unit-address`) accepted, in bytes.
pub const MAX_NODE_NAME: usize = 127;
/// Longest node path accepted, in bytes.
pub const MAX_PATH: usize = 256;
/// Longest string kept from a property (compatible entries, model, enable-method, stdout-path).
pub const MAX_STRING: usize = 256;
/// Longest `/chosen/bootargs` kept.
pub const MAX_BOOTARGS: usize = 4096;

const MAX_WARNINGS: usize = 64;
const MAX_BANKS: usize = 128;
const MAX_RESERVATIONS: usize = 256;
const MAX_CPUS: usize = 512;
const MAX_MMIO: usize = 512;
const MAX_VIRTIO: usize = 256;
const MAX_PCI_HOSTS: usize = 16;
const MAX_REG_ENTRIES: usize = 64;
const MAX_WINDOWS: usize = 32;
const MAX_STRINGS: usize = 32;
/// Most `/config/environment` properties imported.
pub const MAX_ENV_PROPS: usize = 128;
/// The node whose properties become env variables.
pub const ENV_NODE: &str = "/config/environment";

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

fn be32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Reads `totalsize` from an FDT header (at least [`FDT_HEADER_LEN`] bytes), checking the magic.
///
/// Use this to decide how many bytes at the DTB address to hand to [`parse`]; the caller must still
/// check that `[dtb, dtb + totalsize)` is memory it may read.
///
/// # Errors
/// [`DtError::HeaderTooShort`], [`DtError::BadMagic`], [`DtError::TotalSizeTooSmall`].
pub fn fdt_totalsize(header: &[u8]) -> Result<usize, DtError> {
    if header.len() < FDT_HEADER_LEN {
        return Err(DtError::HeaderTooShort { len: header.len() });
    }
    let magic = be32_at(header, 0).ok_or(DtError::HeaderTooShort { len: header.len() })?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic { found: magic });
    }
    let total = be32_at(header, 4).ok_or(DtError::HeaderTooShort { len: header.len() })?;
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total < FDT_HEADER_LEN {
        return Err(DtError::TotalSizeTooSmall { totalsize: total });
    }
    Ok(total)
}

/// Validates `dtb` and extracts a [`DtInfo`].
///
/// `dtb` may be longer than the header's `totalsize` (the extra bytes are ignored) but not shorter.
///
/// # Errors
/// Any [`DtError`]; problems confined to single nodes become [`DtInfo::warnings`] instead.
pub fn parse(dtb: &[u8]) -> Result<DtInfo, DtError> {
    let total = fdt_totalsize(dtb)?;
    let blob = dtb.get(..total).ok_or(DtError::Truncated {
        totalsize: total,
        available: dtb.len(),
    })?;
    let fdt = Fdt::new(blob).map_err(DtError::Malformed)?;
    check_shape(fdt)?;

    let mut p = Parser {
        fdt,
        info: DtInfo {
            totalsize: total,
            boot_cpuid_phys: fdt.boot_cpuid_phys(),
            ..DtInfo::default()
        },
        mmio_full: false,
    };
    p.run();
    Ok(p.info)
}

/// Iterative (no recursion) pass bounding depth, node-name and path length.
fn check_shape(fdt: Fdt<'_>) -> Result<(), DtError> {
    let root = fdt.root();
    // (children iterator, length of the parent's path without the trailing '/')
    let mut stack: Vec<(<FdtNode<'_> as Node>::Children<'_>, usize)> = Vec::new();
    stack.push((root.children(), 0));
    while let Some((iter, parent_len)) = stack.last_mut() {
        let parent_len = *parent_len;
        match iter.next() {
            Some(child) => {
                let len = child.name().len();
                if len > MAX_NODE_NAME {
                    return Err(DtError::NameTooLong {
                        len,
                        limit: MAX_NODE_NAME,
                    });
                }
                let path_len = parent_len.saturating_add(1).saturating_add(len);
                if path_len > MAX_PATH {
                    return Err(DtError::PathTooLong {
                        len: path_len,
                        limit: MAX_PATH,
                    });
                }
                // `stack.len()` is the child's depth (root children are at depth 1).
                if stack.len() > MAX_DEPTH {
                    return Err(DtError::TooDeep { limit: MAX_DEPTH });
                }
                stack.push((child.children(), path_len));
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
