//! The boot sector (BPB): parsed and validated into a [`Geometry`], and the
//! `probe` used for superfloppy detection.

use super::{le16, le32, FatType, FsError};

/// Validated volume geometry (all offsets in bytes from the volume start).
#[derive(Debug, Clone)]
pub(super) struct Geometry {
    pub(super) fat_type: FatType,
    pub(super) bytes_per_sector: u32,
    pub(super) cluster_size: u32,
    /// Byte offset of the FAT copy used for reading.
    pub(super) fat_start: u64,
    pub(super) fat_bytes: u64,
    pub(super) root_start: u64,
    pub(super) root_bytes: u64,
    pub(super) root_cluster: u32,
    pub(super) data_start: u64,
    pub(super) cluster_count: u32,
    // Raw fields needed by the write-path checks.
    pub(super) reserved_sectors: u32,
    pub(super) sectors_per_fat: u32,
    pub(super) fats: u32,
    pub(super) fs_info_sector: u32,
    pub(super) backup_boot_sector: u32,
    pub(super) signature: bool,
    pub(super) label: [u8; 11],
}

impl Geometry {
    /// Parse and validate a boot sector (`bs` must hold at least 512 bytes).
    pub(super) fn parse(bs: &[u8]) -> Result<Self, FsError> {
        if bs.len() < 512 {
            return Err(FsError::NotFat("boot sector too short"));
        }
        let bps = u32::from(le16(bs, 11));
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(FsError::NotFat("bad bytes per sector"));
        }
        let spc = u32::from(bs[13]);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(FsError::NotFat("bad sectors per cluster"));
        }
        let reserved = u32::from(le16(bs, 14));
        if reserved == 0 {
            return Err(FsError::NotFat("no reserved sectors"));
        }
        let fats = u32::from(bs[16]);
        if fats == 0 || fats > 4 {
            return Err(FsError::NotFat("bad number of FATs"));
        }
        let root_entries = u32::from(le16(bs, 17));
        let ts16 = u32::from(le16(bs, 19));
        let spf16 = u32::from(le16(bs, 22));
        let ts32 = le32(bs, 32);
        let fat32_layout = spf16 == 0;
        let total_sectors = if ts16 != 0 { ts16 } else { ts32 };
        if total_sectors == 0 {
            return Err(FsError::NotFat("zero total sectors"));
        }
        if ts16 != 0 && ts32 != 0 && ts16 != ts32 {
            return Err(FsError::NotFat("conflicting total sector counts"));
        }
        let (spf, root_cluster, fs_info, backup, active_fat, label_off) = if fat32_layout {
            let spf32 = le32(bs, 36);
            if spf32 == 0 {
                return Err(FsError::NotFat("zero sectors per FAT"));
            }
            if le16(bs, 42) != 0 {
                return Err(FsError::NotFat("unsupported FAT32 version"));
            }
            if root_entries != 0 || ts16 != 0 {
                return Err(FsError::NotFat(
                    "FAT12/16 fields set in a FAT32 boot sector",
                ));
            }
            let ext_flags = le16(bs, 40);
            let active = if ext_flags & 0x80 != 0 {
                u32::from(ext_flags & 0x0F)
            } else {
                0
            };
            if active >= fats {
                return Err(FsError::NotFat("active FAT out of range"));
            }
            (
                spf32,
                le32(bs, 44),
                u32::from(le16(bs, 48)),
                u32::from(le16(bs, 50)),
                active,
                71,
            )
        } else {
            if root_entries == 0 {
                return Err(FsError::NotFat("empty root directory region"));
            }
            (spf16, 0, 0, 0, 0, 43)
        };
        let root_bytes = u64::from(root_entries) * 32;
        let root_sectors = root_bytes.div_ceil(u64::from(bps));
        let fat_sectors = u64::from(fats) * u64::from(spf);
        let first_data = u64::from(reserved) + fat_sectors + root_sectors;
        if first_data >= u64::from(total_sectors) {
            return Err(FsError::NotFat("no data region"));
        }
        let clusters = (u64::from(total_sectors) - first_data) / u64::from(spc);
        if clusters == 0 {
            return Err(FsError::NotFat("no clusters"));
        }
        // `clusters` < 2^32 because total_sectors is a u32.
        let cluster_count = clusters as u32;
        let fat_type = if cluster_count < 4085 {
            FatType::Fat12
        } else if cluster_count < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        if (fat_type == FatType::Fat32) != fat32_layout {
            return Err(FsError::NotFat("cluster count does not match the FAT type"));
        }
        if cluster_count > 0x0FFF_FFF5 {
            return Err(FsError::NotFat("too many clusters"));
        }
        let bits: u64 = match fat_type {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        let fat_bytes = u64::from(spf) * u64::from(bps);
        if fat_bytes * 8 / bits < u64::from(cluster_count) + 2 {
            return Err(FsError::NotFat("FAT too small for the cluster count"));
        }
        if fat_type == FatType::Fat32 && (root_cluster < 2 || root_cluster - 2 >= cluster_count) {
            return Err(FsError::NotFat("root directory cluster out of range"));
        }
        let mut label = [b' '; 11];
        if bs[label_off - 5] == 0x29 {
            label.copy_from_slice(&bs[label_off..label_off + 11]);
        }
        let bps64 = u64::from(bps);
        Ok(Self {
            fat_type,
            bytes_per_sector: bps,
            cluster_size: bps * spc,
            fat_start: (u64::from(reserved) + u64::from(active_fat) * u64::from(spf)) * bps64,
            fat_bytes,
            root_start: (u64::from(reserved) + fat_sectors) * bps64,
            root_bytes: root_sectors * bps64,
            root_cluster,
            data_start: first_data * bps64,
            cluster_count,
            reserved_sectors: reserved,
            sectors_per_fat: spf,
            fats,
            fs_info_sector: fs_info,
            backup_boot_sector: backup,
            signature: bs[510] == 0x55 && bs[511] == 0xAA,
            label,
        })
    }

    pub(super) fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster - 2) * u64::from(self.cluster_size)
    }

    pub(super) fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c - 2 < self.cluster_count
    }

    /// Extra constraints `fatfs` needs so that its own (unchecked, 32-bit)
    /// arithmetic cannot overflow and its validation agrees with ours.
    pub(super) fn check_fatfs_compatible(&self) -> Result<(), FsError> {
        if !self.signature {
            return Err(FsError::Unsupported(
                "writing to a boot sector without the 0x55AA signature",
            ));
        }
        let fits = u64::from(self.sectors_per_fat)
            .checked_mul(u64::from(self.bytes_per_sector) * 8)
            .is_some_and(|v| v <= u64::from(u32::MAX));
        if !fits {
            return Err(FsError::Unsupported("FAT too large for write support"));
        }
        if u64::from(self.fats) * u64::from(self.sectors_per_fat) > u64::from(u32::MAX) {
            return Err(FsError::Unsupported("FAT too large for write support"));
        }
        if self.fat_type == FatType::Fat32
            && (self.fs_info_sector == 0
                || self.fs_info_sector >= self.reserved_sectors
                || self.backup_boot_sector >= self.reserved_sectors)
        {
            return Err(FsError::Unsupported("FAT32 without a valid FSInfo sector"));
        }
        Ok(())
    }
}

/// Cheap check whether a boot sector holds a plausible FAT BPB (used for
/// "superfloppy" detection by the partition code).
pub fn probe(boot_sector: &[u8]) -> bool {
    if boot_sector.len() < 512 {
        return false;
    }
    let jump_ok = matches!(boot_sector[0], 0xEB | 0xE9);
    let media = boot_sector[21];
    let media_ok = media == 0xF0 || media >= 0xF8;
    jump_ok && media_ok && Geometry::parse(boot_sector).is_ok()
}
