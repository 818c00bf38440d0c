//! Free space: counting free clusters with a chunked scan of the FAT, and
//! finding where a new directory entry goes (and so whether its directory
//! must grow).

use alloc::vec;

use super::dir::DirLoc;
use super::volume::FatVolume;
use super::{le16, le32, FatType, FsError};
use crate::block::{read_bytes, BlockDevice};

impl<D: BlockDevice + ?Sized> FatVolume<'_, D> {
    /// Index of the first of `n` consecutive directory slots that `fatfs`
    /// (`Dir::find_free_entries`) will use for a new entry in `dir`: the
    /// first run of `n` deleted slots, else the run of deleted slots just
    /// before the end-of-directory marker (or the end of the directory's
    /// clusters), else that end. Slots past the directory's current size are
    /// taken by growing it.
    pub(super) fn new_entry_slot(&mut self, dir: DirLoc, n: u64) -> Result<u64, FsError> {
        let (mut index, mut run_start, mut run) = (0u64, 0u64, 0u64);
        let mut found = None;
        self.for_each_raw(dir, |raw| {
            match raw[0] {
                0 => {
                    found = Some(if run > 0 { run_start } else { index });
                    return true;
                }
                0xE5 => {
                    if run == 0 {
                        run_start = index;
                    }
                    run += 1;
                    if run == n {
                        found = Some(run_start);
                        return true;
                    }
                }
                _ => run = 0,
            }
            index += 1;
            false
        })?;
        Ok(found.unwrap_or(if run > 0 { run_start } else { index }))
    }

    /// Count free clusters by scanning the whole FAT, in large reads (one
    /// FAT12 entry pair per 3 bytes, FAT16 2 bytes, FAT32 4 bytes).
    pub fn free_clusters(&mut self) -> Result<u32, FsError> {
        // A multiple of 3 (FAT12 pairs), 2 and 4, so no entry straddles two
        // reads.
        const CHUNK: usize = 48 * 1024;
        let total = u64::from(self.g.cluster_count) + 2;
        // mount checked that the FAT holds `total` entries.
        let fat_len = match self.g.fat_type {
            FatType::Fat12 => (total * 3).div_ceil(2),
            FatType::Fat16 => total * 2,
            FatType::Fat32 => total * 4,
        };
        let mut buf = vec![0u8; CHUNK];
        let mut free = 0u32;
        let mut off = 0u64;
        while off < fat_len {
            let n = (fat_len - off).min(CHUNK as u64) as usize;
            let b = &mut buf[..n];
            read_bytes(self.dev, self.g.fat_start + off, b)?;
            // Entries 0 and 1 are reserved; `total` ends the last chunk
            // (FAT12: the last byte may hold half of a nonexistent entry).
            free += match self.g.fat_type {
                FatType::Fat12 => {
                    let first = off / 3 * 2;
                    let values = b.chunks(3).flat_map(|g| {
                        let (b0, b1, b2) = (
                            u32::from(g[0]),
                            g.get(1).copied().map_or(0, u32::from),
                            g.get(2).copied().map_or(0, u32::from),
                        );
                        [b0 | (b1 & 0xF) << 8, b1 >> 4 | b2 << 4]
                    });
                    (first..total)
                        .zip(values)
                        .filter(|&(c, v)| c >= 2 && v == 0)
                        .count() as u32
                }
                FatType::Fat16 | FatType::Fat32 => {
                    let esz = if self.g.fat_type == FatType::Fat16 {
                        2
                    } else {
                        4
                    };
                    let first = off / esz;
                    let lo = (2u64.saturating_sub(first) * esz) as usize;
                    let hi = (total.min(first + n as u64 / esz) - first) * esz;
                    let entries = b.get(lo..hi as usize).unwrap_or(&[]);
                    if esz == 2 {
                        count_free_fat16(entries)
                    } else {
                        count_free_fat32(entries)
                    }
                }
            };
            off += n as u64;
        }
        Ok(free)
    }
}

/// Free (zero) FAT16 entries in `b` (whole entries), eight bytes at a time:
/// a lane's top bit of `(x & 0x7FFF) + 0x7FFF | x` is set exactly when the
/// lane is non-zero (no carry leaves a lane).
pub(super) fn count_free_fat16(b: &[u8]) -> u32 {
    const LOW: u64 = 0x7FFF_7FFF_7FFF_7FFF;
    let words = b.chunks_exact(8);
    let tail = words
        .remainder()
        .chunks_exact(2)
        .filter(|e| le16(e, 0) == 0);
    let mut free = tail.count() as u32;
    for w in words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let nonzero = (((x & LOW) + LOW) | x) & !LOW;
        free += 4 - nonzero.count_ones();
    }
    free
}

/// Free FAT32 entries in `b` (whole entries; the top 4 bits of an entry are
/// reserved and ignored), two per 8 bytes, as in [`count_free_fat16`].
pub(super) fn count_free_fat32(b: &[u8]) -> u32 {
    const MASK: u64 = 0x0FFF_FFFF_0FFF_FFFF;
    let words = b.chunks_exact(8);
    let tail = words.remainder().chunks_exact(4);
    let mut free = tail.filter(|e| le32(e, 0) & 0x0FFF_FFFF == 0).count() as u32;
    for w in words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) & MASK;
        let nonzero = (x + MASK) & 0x1000_0000_1000_0000;
        free += 2 - nonzero.count_ones();
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::write_bytes;

    /// The chunked scan of `free_clusters` agrees with reading every entry
    /// through `fat_raw`, for each FAT type, with the FAT scribbled over so
    /// that free and used entries sit at chunk and FAT12 pair edges.
    #[test]
    fn free_clusters_matches_per_entry_scan() {
        use crate::block::{BlockDevice, MemDisk, PartitionDevice};
        let fixtures: [&[u8]; 3] = [
            include_bytes!("../../tests/fixtures/fat12_superfloppy.img.gz"),
            include_bytes!("../../tests/fixtures/fat16_mbr.img.gz"),
            include_bytes!("../../tests/fixtures/fat32_gpt.img.gz"),
        ];
        for (i, gz) in fixtures.into_iter().enumerate() {
            let img = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
            let mut disk = MemDisk::new(img);
            let (start, len) = match crate::part::read_table(&mut disk) {
                Ok(t) => {
                    let p = t.default_partition().unwrap();
                    (p.start_lba, p.num_blocks)
                }
                Err(_) => (0, disk.num_blocks()),
            };
            let mut seed = 0x9E37_79B9u32 + i as u32;
            for round in 0..4 {
                let mut dev = PartitionDevice::new(&mut disk, start, len);
                let mut vol = FatVolume::mount(&mut dev).unwrap();
                let total = vol.g.cluster_count + 2;
                let slow = (2..total).filter(|&c| vol.fat_raw(c).unwrap() == 0).count() as u32;
                assert_eq!(
                    vol.free_clusters().unwrap(),
                    slow,
                    "fixture {i} round {round}"
                );
                // Scribble: runs of zero and non-zero bytes across the FAT.
                let (fat_start, fat_bytes) = (vol.g.fat_start, vol.g.fat_bytes);
                drop(vol);
                let mut fat = vec![0u8; fat_bytes as usize];
                read_bytes(&mut dev, fat_start, &mut fat).unwrap();
                // Entry-aligned runs of one 32-bit pattern: zero, only a top
                // bit (FAT16: used; FAT32: reserved bits, so free), only a
                // low bit, or random.
                for _ in 0..64 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let at = (seed as usize % fat.len()) & !3;
                    let run = (seed >> 20) as usize % 97 + 1;
                    let v: u32 = match seed >> 29 {
                        0 | 1 => 0,
                        2 => 0x8000_8000,
                        3 => 0xF000_0000,
                        4 => 0x0000_0001,
                        5 => 0x0001_0000,
                        _ => seed.rotate_left(7),
                    };
                    let end = (at + run).min(fat.len());
                    for (k, byte) in fat[at..end].iter_mut().enumerate() {
                        *byte = v.to_le_bytes()[k % 4];
                    }
                }
                write_bytes(&mut dev, fat_start, &fat).unwrap();
            }
        }
    }
}
