//! The order in which a [`BlockIo`](super::BlockIo) transaction's blocks
//! reach the disk, chosen so that a power cut between any two writes leaves
//! a volume whose directories and files are intact: at worst some clusters
//! are allocated but unused ("lost", what `fsck.fat` reclaims) or a file's
//! chain is longer than its size — never a chain that runs into a free
//! cluster or ends before the file does.
//!
//! Each FAT entry that changes is put in one of three steps:
//! 1. **allocate**: a free entry becomes used (`0 → next` or `0 → end`);
//! 2. **link**: a used entry points to another cluster (a chain grows, or is
//!    rerouted through clusters step 1 allocated);
//! 3. after the directory entries: an entry is **freed** (`→ 0`) or a chain
//!    is **cut** (`→ end of chain`), when a file shrinks or is replaced.
//!
//! First go the changed blocks of clusters that were free before (the tail
//! of a new file's data, the entries of a new directory cluster): nothing
//! points at them yet. Then the blocks of every FAT copy with the entries
//! of step 1 applied, then with step 2's as well; then every other changed
//! block (directory entries, FSInfo, boot sector, data of clusters that were
//! in use) in block order; then the FAT blocks in their final form. A 12-bit FAT entry can straddle two blocks:
//! both are in the map the plan is made from, so entries are always
//! classified by their whole value.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::geometry::Geometry;
use super::FatType;

/// Where the FAT copies are (bytes from the volume start) and how wide an
/// entry is.
#[derive(Debug, Clone, Copy)]
pub(super) struct FatArea {
    start: u64,
    bytes: u64,
    copies: u32,
    kind: FatType,
    data_start: u64,
    cluster_size: u64,
}

impl FatArea {
    pub(super) fn of(g: &Geometry) -> Self {
        let bps = u64::from(g.bytes_per_sector);
        Self {
            start: u64::from(g.reserved_sectors) * bps,
            bytes: u64::from(g.sectors_per_fat) * bps,
            copies: g.fats,
            kind: g.fat_type,
            data_start: g.data_start,
            cluster_size: u64::from(g.cluster_size),
        }
    }

    /// The cluster that volume byte `at` belongs to, if it is in the data
    /// region.
    fn cluster_of(&self, at: u64) -> Option<u64> {
        let rel = at.checked_sub(self.data_start)?;
        Some(rel / self.cluster_size.max(1) + 2)
    }

    /// The FAT copy and byte offset in it of volume byte `at`, if it is in
    /// a FAT.
    fn locate(&self, at: u64) -> Option<(u32, u64)> {
        let rel = at.checked_sub(self.start)?;
        let copy = rel / self.bytes.max(1);
        (copy < u64::from(self.copies)).then(|| (copy as u32, rel % self.bytes))
    }

    /// Entries (by number) whose bytes overlap `[lo, hi)` of a FAT copy.
    fn entries_in(&self, lo: u64, hi: u64) -> core::ops::Range<u64> {
        match self.kind {
            FatType::Fat12 => (lo * 2 / 3).saturating_sub(1)..(hi * 2).div_ceil(3) + 1,
            FatType::Fat16 => lo / 2..hi.div_ceil(2),
            FatType::Fat32 => lo / 4..hi.div_ceil(4),
        }
    }

    /// The bytes (offset in the copy, bit mask) that hold entry `n`.
    fn entry_bytes(&self, n: u64) -> Vec<(u64, u8)> {
        match self.kind {
            FatType::Fat12 => {
                let off = n + n / 2;
                if n.is_multiple_of(2) {
                    alloc::vec![(off, 0xff), (off + 1, 0x0f)]
                } else {
                    alloc::vec![(off, 0xf0), (off + 1, 0xff)]
                }
            }
            FatType::Fat16 => alloc::vec![(2 * n, 0xff), (2 * n + 1, 0xff)],
            FatType::Fat32 => (0..4).map(|i| (4 * n + i, 0xff)).collect(),
        }
    }

    /// Value of an entry from its bytes (in `entry_bytes` order).
    fn value(&self, n: u64, b: &[u8]) -> u32 {
        let le = |i: usize| u32::from(b.get(i).copied().unwrap_or(0));
        match self.kind {
            FatType::Fat12 if n.is_multiple_of(2) => le(0) | (le(1) & 0x0f) << 8,
            FatType::Fat12 => le(0) >> 4 | le(1) << 4,
            FatType::Fat16 => le(0) | le(1) << 8,
            FatType::Fat32 => (le(0) | le(1) << 8 | le(2) << 16 | le(3) << 24) & 0x0FFF_FFFF,
        }
    }

    /// Whether an entry value ends a chain (end of chain or bad cluster).
    fn is_end(&self, v: u32) -> bool {
        v >= match self.kind {
            FatType::Fat12 => 0xFF7,
            FatType::Fat16 => 0xFFF7,
            FatType::Fat32 => 0x0FFF_FFF7,
        }
    }

    /// The step of a change from `old` to `new` (1, 2, or 3 = late).
    fn step(&self, old: u32, new: u32) -> u8 {
        if old == 0 {
            1
        } else if new == 0 || self.is_end(new) {
            3
        } else {
            2
        }
    }
}

/// A block of the transaction: its content before and after.
pub(super) struct Change<'a> {
    pub(super) old: &'a [u8],
    pub(super) new: &'a [u8],
}

/// Blocks that must be in the map given to [`plan`] besides the changed
/// ones: the neighbours of changed FAT blocks, for entries that straddle.
pub(super) fn neighbours(area: &FatArea, bs: usize, changed: &[u64]) -> Vec<u64> {
    if area.kind != FatType::Fat12 {
        return Vec::new();
    }
    let bs = bs as u64;
    let mut out = Vec::new();
    for &lba in changed {
        for n in [lba.wrapping_sub(1), lba + 1] {
            let in_fat = n.checked_mul(bs).and_then(|at| area.locate(at)).is_some();
            if in_fat && !changed.contains(&n) && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The writes that make the transaction happen, in order: `(lba, content)`.
/// `blocks` holds every changed block (old != new) and the unchanged
/// [`neighbours`]; `changed` lists the changed ones in block order.
pub(super) fn plan(
    area: Option<&FatArea>,
    bs: usize,
    blocks: &BTreeMap<u64, Change<'_>>,
    changed: &[u64],
) -> Vec<(u64, Vec<u8>)> {
    let bs64 = bs as u64;
    // A FAT block lies wholly inside one FAT copy.
    let fat_block = |lba: u64| -> Option<(u32, u64)> {
        let a = area?;
        let (c, lo) = a.locate(lba.checked_mul(bs64)?)?;
        (lo + bs64 <= a.bytes).then_some((c, lo))
    };
    let (fat, other): (Vec<u64>, Vec<u64>) = changed.iter().partition(|&&l| fat_block(l).is_some());
    let mut out = Vec::new();
    let Some(a) = area.filter(|_| !fat.is_empty()) else {
        for &lba in changed {
            out.push((lba, blocks[&lba].new.to_vec()));
        }
        return out;
    };
    let byte = |c: u32, off: u64, new: bool| -> u8 {
        let at = a.start + u64::from(c) * a.bytes + off;
        let (lba, i) = (at / bs64, (at % bs64) as usize);
        blocks.get(&lba).map_or(0, |b| {
            let d = if new { b.new } else { b.old };
            d.get(i).copied().unwrap_or(0)
        })
    };
    // (old, new) value of entry `n` of FAT copy `c`; bytes of blocks not in
    // the map read as 0.
    let values = |c: u32, n: u64| -> (u32, u32) {
        let bytes = a.entry_bytes(n);
        let old: Vec<u8> = bytes.iter().map(|&(o, _)| byte(c, o, false)).collect();
        let new: Vec<u8> = bytes.iter().map(|&(o, _)| byte(c, o, true)).collect();
        (a.value(n, &old), a.value(n, &new))
    };
    // A cluster this transaction allocates: its entry in the first FAT is
    // in a changed block and goes from free to used.
    let fresh = |lba: u64| -> bool {
        let Some(cl) = lba.checked_mul(bs64).and_then(|at| a.cluster_of(at)) else {
            return false;
        };
        let in_map = a
            .entry_bytes(cl)
            .iter()
            .all(|&(o, _)| blocks.contains_key(&((a.start + o) / bs64)));
        let (old, new) = values(0, cl);
        in_map && old == 0 && new != 0
    };
    let (early, late): (Vec<u64>, Vec<u64>) = other.iter().partition(|&&l| fresh(l));
    for &lba in &early {
        out.push((lba, blocks[&lba].new.to_vec()));
    }
    // Images after step 1 and after step 2.
    let mut imgs: [BTreeMap<u64, Vec<u8>>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for &lba in &fat {
        let Some((c, lo)) = fat_block(lba) else {
            continue;
        };
        let b = &blocks[&lba];
        let mut img1 = b.old.to_vec();
        let mut img2 = b.old.to_vec();
        for n in a.entries_in(lo, lo + bs64) {
            let bytes = a.entry_bytes(n);
            if bytes.iter().all(|&(o, _)| o < lo || o >= lo + bs64) {
                continue;
            }
            let (ov, nv) = values(c, n);
            if ov == nv {
                continue;
            }
            let step = a.step(ov, nv);
            for &(o, mask) in &bytes {
                if o < lo || o >= lo + bs64 {
                    continue;
                }
                let i = (o - lo) as usize;
                let v = b.new[i] & mask;
                if step <= 1 {
                    img1[i] = (img1[i] & !mask) | v;
                }
                if step <= 2 {
                    img2[i] = (img2[i] & !mask) | v;
                }
            }
        }
        imgs[0].insert(lba, img1);
        imgs[1].insert(lba, img2);
    }
    let mut last: BTreeMap<u64, &[u8]> = fat.iter().map(|&l| (l, blocks[&l].old)).collect();
    for img in &imgs {
        for (&lba, data) in img {
            if last[&lba] != &data[..] {
                out.push((lba, data.clone()));
                last.insert(lba, data);
            }
        }
    }
    for &lba in &late {
        out.push((lba, blocks[&lba].new.to_vec()));
    }
    for &lba in &fat {
        if last[&lba] != blocks[&lba].new {
            out.push((lba, blocks[&lba].new.to_vec()));
        }
    }
    out
}
