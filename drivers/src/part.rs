//! Partition tables: MBR (with extended/logical partitions), GPT (CRC-checked,
//! falling back to the backup header), and whole-disk ("superfloppy") FAT.
//!
//! Numbering follows U-Boot: MBR primary partitions are 1-4 by slot, logical
//! partitions start at 5; GPT partitions are numbered by entry slot (1-based);
//! a superfloppy is partition 0, the whole disk.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::fmt::Write as _;

use crate::block::{read_bytes, BlockDevice, BlockError, PartitionDevice};

/// Maximum number of logical partitions followed in an extended partition.
pub const MAX_LOGICAL: usize = 128;
/// Maximum GPT partition entry array size in bytes.
pub const MAX_GPT_ARRAY: u64 = 1 << 20;

/// Partition table errors. `Display` is a single line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartError {
    /// The device failed.
    Io(BlockError),
    /// Neither a partition table nor a whole-disk FAT filesystem.
    NoTable,
    /// Unsupported block size.
    BlockSize(usize),
    /// Both GPT headers (or their entry arrays) are invalid.
    BadGpt(&'static str),
    /// A partition lies (partly) outside the disk or the GPT usable area.
    OutOfDisk {
        /// Partition number.
        index: u32,
        /// First block.
        start: u64,
        /// Number of blocks.
        blocks: u64,
        /// Blocks on the disk.
        disk: u64,
    },
    /// The chain of extended boot records is broken.
    BadExtended(&'static str),
    /// No partition with this number.
    NoSuchPartition(u32),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::Io(e) => write!(f, "I/O error reading partition table: {e}"),
            PartError::NoTable => write!(f, "no partition table or filesystem found"),
            PartError::BlockSize(n) => write!(f, "unsupported block size {n}"),
            PartError::BadGpt(why) => write!(f, "invalid GPT: {why}"),
            PartError::OutOfDisk { index, start, blocks, disk } => write!(
                f,
                "partition {index} (start {start}, {blocks} blocks) lies outside the disk ({disk} blocks)"
            ),
            PartError::BadExtended(why) => write!(f, "invalid extended partition: {why}"),
            PartError::NoSuchPartition(n) => write!(f, "** Invalid partition {n} **"),
        }
    }
}

impl From<BlockError> for PartError {
    fn from(e: BlockError) -> Self {
        PartError::Io(e)
    }
}

/// A GUID as stored on disk (mixed-endian); `Display` gives the usual form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// EFI system partition.
    pub const EFI_SYSTEM: Guid = Guid::from_fields(
        0xC12A7328,
        0xF81F,
        0x11D2,
        [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
    );
    /// Microsoft basic data.
    pub const BASIC_DATA: Guid = Guid::from_fields(
        0xEBD0A0A2,
        0xB9E5,
        0x4433,
        [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
    );
    /// Linux filesystem data.
    pub const LINUX_DATA: Guid = Guid::from_fields(
        0x0FC63DAF,
        0x8483,
        0x4772,
        [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
    );

    /// Build from the textual fields.
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Self {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }

    /// All zero (unused entry).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Short name of well-known partition types.
    pub fn type_name(&self) -> Option<&'static str> {
        match *self {
            Guid::EFI_SYSTEM => Some("system"),
            Guid::BASIC_DATA => Some("data"),
            Guid::LINUX_DATA => Some("linux"),
            _ => None,
        }
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9],
            g[10],
            g[11],
            g[12],
            g[13],
            g[14],
            g[15]
        )
    }
}

/// What kind of partition this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// The whole disk (no partition table; "superfloppy").
    WholeDisk,
    /// An MBR entry with its system indicator byte.
    Mbr(u8),
    /// A GPT entry.
    Gpt {
        /// Partition type GUID.
        type_guid: Guid,
        /// Unique partition GUID.
        part_guid: Guid,
        /// Partition name (UTF-16 decoded).
        name: String,
        /// Attribute bits.
        attributes: u64,
    },
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// U-Boot style number (0 = whole disk, 1.. for partitions).
    pub index: u32,
    /// First block on the disk.
    pub start_lba: u64,
    /// Length in blocks.
    pub num_blocks: u64,
    /// Type information.
    pub kind: PartKind,
    /// MBR active flag / GPT "legacy BIOS bootable" attribute.
    pub bootable: bool,
}

impl Partition {
    /// Whether this is an MBR extended-partition container (not a filesystem).
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, PartKind::Mbr(t) if is_extended(t))
    }
}

/// The partitioning scheme found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// No table: a filesystem on the whole disk.
    WholeDisk,
    /// DOS/MBR with its 32-bit disk signature.
    Mbr {
        /// Disk signature (offset 440).
        disk_signature: u32,
    },
    /// GPT.
    Gpt {
        /// Disk GUID.
        disk_guid: Guid,
        /// The primary header or array was bad and the backup was used.
        used_backup: bool,
    },
}

/// A parsed partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// The scheme.
    pub scheme: Scheme,
    /// Partitions in U-Boot order.
    pub partitions: Vec<Partition>,
}

impl PartitionTable {
    /// Partition by U-Boot number. 0 is the whole disk only for superfloppies.
    pub fn get(&self, index: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.index == index)
    }

    /// The partition U-Boot picks when none is given: the first bootable
    /// one, else the first one (extended containers excluded).
    pub fn default_partition(&self) -> Option<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.bootable && !p.is_extended())
            .or_else(|| self.partitions.iter().find(|p| !p.is_extended()))
    }
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0F | 0x85)
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes([
        b[o],
        b[o + 1],
        b[o + 2],
        b[o + 3],
        b[o + 4],
        b[o + 5],
        b[o + 6],
        b[o + 7],
    ])
}

struct MbrEntry {
    boot: u8,
    kind: u8,
    start: u32,
    size: u32,
}

fn mbr_entries(s: &[u8]) -> [MbrEntry; 4] {
    core::array::from_fn(|i| {
        let o = 446 + 16 * i;
        MbrEntry {
            boot: s[o],
            kind: s[o + 4],
            start: le32(s, o + 8),
            size: le32(s, o + 12),
        }
    })
}

fn has_signature(s: &[u8]) -> bool {
    s[510] == 0x55 && s[511] == 0xAA
}

/// Read the partition table of `dev`.
pub fn read_table<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<PartitionTable, PartError> {
    let bs = dev.block_size();
    if !(512..=4096).contains(&bs) || !bs.is_power_of_two() {
        return Err(PartError::BlockSize(bs));
    }
    let disk = dev.num_blocks();
    if disk == 0 {
        return Err(PartError::NoTable);
    }
    let mut s0 = vec![0u8; bs];
    dev.read_blocks(0, &mut s0)?;
    let sig = has_signature(&s0);
    let entries = mbr_entries(&s0);
    let boot_flags_ok = entries.iter().all(|e| e.boot == 0 || e.boot == 0x80);
    let protective = sig && boot_flags_ok && entries.iter().any(|e| e.kind == 0xEE);

    if protective || (!sig && disk > 1 && gpt_signature_at(dev, 1)?) {
        match read_gpt(dev) {
            Ok(t) => return Ok(t),
            Err(e) => {
                if crate::fs::probe(&s0) {
                    return Ok(whole_disk(disk));
                }
                return Err(e);
            }
        }
    }
    if crate::fs::probe(&s0) {
        return Ok(whole_disk(disk));
    }
    if sig && boot_flags_ok {
        return read_mbr(dev, &s0, disk);
    }
    Err(PartError::NoTable)
}

/// The partitions of `dev` (see [`read_table`]).
pub fn partitions<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<Vec<Partition>, PartError> {
    Ok(read_table(dev)?.partitions)
}

/// A bounds-checked view of partition `index` of `dev` (0 = whole disk).
pub fn open<D: BlockDevice + ?Sized>(
    dev: &mut D,
    index: u32,
) -> Result<PartitionDevice<&mut D>, PartError> {
    if index == 0 {
        let n = dev.num_blocks();
        return Ok(PartitionDevice::new(dev, 0, n));
    }
    let t = read_table(dev)?;
    let p = t.get(index).ok_or(PartError::NoSuchPartition(index))?;
    Ok(PartitionDevice::new(dev, p.start_lba, p.num_blocks))
}

fn whole_disk(disk: u64) -> PartitionTable {
    PartitionTable {
        scheme: Scheme::WholeDisk,
        partitions: vec![Partition {
            index: 0,
            start_lba: 0,
            num_blocks: disk,
            kind: PartKind::WholeDisk,
            bootable: false,
        }],
    }
}

fn check_inside(index: u32, start: u64, blocks: u64, disk: u64) -> Result<(), PartError> {
    match start.checked_add(blocks) {
        Some(end) if end <= disk && blocks > 0 => Ok(()),
        _ => Err(PartError::OutOfDisk {
            index,
            start,
            blocks,
            disk,
        }),
    }
}

fn read_mbr<D: BlockDevice + ?Sized>(
    dev: &mut D,
    s0: &[u8],
    disk: u64,
) -> Result<PartitionTable, PartError> {
    let mut parts = Vec::new();
    let mut extended: Option<(u64, u64)> = None;
    for (i, e) in mbr_entries(s0).iter().enumerate() {
        if e.kind == 0 || e.size == 0 {
            continue;
        }
        let index = i as u32 + 1;
        let (start, blocks) = (u64::from(e.start), u64::from(e.size));
        check_inside(index, start, blocks, disk)?;
        parts.push(Partition {
            index,
            start_lba: start,
            num_blocks: blocks,
            kind: PartKind::Mbr(e.kind),
            bootable: e.boot & 0x80 != 0,
        });
        if is_extended(e.kind) && extended.is_none() {
            extended = Some((start, blocks));
        }
    }
    if let Some((ext_start, ext_blocks)) = extended {
        read_logical(dev, ext_start, ext_blocks, disk, &mut parts)?;
    }
    Ok(PartitionTable {
        scheme: Scheme::Mbr {
            disk_signature: le32(s0, 440),
        },
        partitions: parts,
    })
}

fn read_logical<D: BlockDevice + ?Sized>(
    dev: &mut D,
    ext_start: u64,
    ext_blocks: u64,
    disk: u64,
    parts: &mut Vec<Partition>,
) -> Result<(), PartError> {
    let bs = dev.block_size();
    let mut buf = vec![0u8; bs];
    let mut ebr = ext_start;
    let mut index = 5u32;
    let mut visited: Vec<u64> = Vec::new();
    loop {
        if visited.contains(&ebr) {
            return Err(PartError::BadExtended("loop in the EBR chain"));
        }
        if visited.len() >= MAX_LOGICAL {
            return Err(PartError::BadExtended("too many logical partitions"));
        }
        visited.push(ebr);
        dev.read_blocks(ebr, &mut buf)?;
        if !has_signature(&buf) {
            // An extended partition without any EBR yet is legal (empty).
            if ebr == ext_start {
                return Ok(());
            }
            return Err(PartError::BadExtended("missing EBR signature"));
        }
        let mut next = None;
        for e in mbr_entries(&buf).iter().take(2) {
            if e.kind == 0 || e.size == 0 {
                continue;
            }
            if is_extended(e.kind) {
                if next.is_none() {
                    next = Some(ext_start + u64::from(e.start));
                }
                continue;
            }
            let start = ebr + u64::from(e.start);
            let blocks = u64::from(e.size);
            check_inside(index, start, blocks, disk)?;
            parts.push(Partition {
                index,
                start_lba: start,
                num_blocks: blocks,
                kind: PartKind::Mbr(e.kind),
                bootable: e.boot & 0x80 != 0,
            });
            index += 1;
        }
        match next {
            Some(n) if n >= ext_start && n < ext_start + ext_blocks => ebr = n,
            Some(_) => {
                return Err(PartError::BadExtended(
                    "EBR link outside the extended partition",
                ))
            }
            None => return Ok(()),
        }
    }
}

fn gpt_signature_at<D: BlockDevice + ?Sized>(dev: &mut D, lba: u64) -> Result<bool, PartError> {
    let mut b = vec![0u8; dev.block_size()];
    dev.read_blocks(lba, &mut b)?;
    Ok(&b[..8] == b"EFI PART")
}

struct GptHeader {
    alternate: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entries_lba: u64,
    num_entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

fn parse_gpt_header(b: &[u8], lba: u64, disk: u64) -> Result<GptHeader, PartError> {
    if &b[..8] != b"EFI PART" {
        return Err(PartError::BadGpt("missing header signature"));
    }
    let hsize = le32(b, 12) as usize;
    if hsize < 92 || hsize > b.len() {
        return Err(PartError::BadGpt("bad header size"));
    }
    let stored = le32(b, 16);
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..16]);
    h.update(&[0; 4]);
    h.update(&b[20..hsize]);
    if h.finalize() != stored {
        return Err(PartError::BadGpt("header CRC mismatch"));
    }
    if le64(b, 24) != lba {
        return Err(PartError::BadGpt("header at the wrong LBA"));
    }
    let hdr = GptHeader {
        alternate: le64(b, 32),
        first_usable: le64(b, 40),
        last_usable: le64(b, 48),
        disk_guid: Guid(b[56..72].try_into().unwrap_or([0; 16])),
        entries_lba: le64(b, 72),
        num_entries: le32(b, 80),
        entry_size: le32(b, 84),
        entries_crc: le32(b, 88),
    };
    if hdr.first_usable > hdr.last_usable || hdr.last_usable >= disk {
        return Err(PartError::BadGpt("usable area outside the disk"));
    }
    let es = u64::from(hdr.entry_size);
    if es < 128 || !es.is_multiple_of(8) || es > 4096 {
        return Err(PartError::BadGpt("bad partition entry size"));
    }
    let array = u64::from(hdr.num_entries) * es;
    if hdr.num_entries == 0 || array > MAX_GPT_ARRAY {
        return Err(PartError::BadGpt("bad partition entry count"));
    }
    let array_blocks = array.div_ceil(b.len() as u64);
    let inside = hdr.entries_lba >= 1
        && hdr
            .entries_lba
            .checked_add(array_blocks)
            .is_some_and(|e| e <= disk)
        && !(lba >= hdr.entries_lba && lba < hdr.entries_lba + array_blocks);
    if !inside {
        return Err(PartError::BadGpt("partition entry array outside the disk"));
    }
    Ok(hdr)
}

fn read_gpt_at<D: BlockDevice + ?Sized>(
    dev: &mut D,
    lba: u64,
    disk: u64,
) -> Result<(GptHeader, Vec<u8>), (PartError, Option<u64>)> {
    let bs = dev.block_size();
    let mut b = vec![0u8; bs];
    dev.read_blocks(lba, &mut b)
        .map_err(|e| (PartError::Io(e), None))?;
    let hdr = parse_gpt_header(&b, lba, disk).map_err(|e| (e, None))?;
    let len = (u64::from(hdr.num_entries) * u64::from(hdr.entry_size)) as usize;
    let mut arr = vec![0u8; len];
    read_bytes(dev, hdr.entries_lba * bs as u64, &mut arr)
        .map_err(|e| (PartError::Io(e), Some(hdr.alternate)))?;
    if crc32fast::hash(&arr) != hdr.entries_crc {
        return Err((
            PartError::BadGpt("partition entry array CRC mismatch"),
            Some(hdr.alternate),
        ));
    }
    Ok((hdr, arr))
}

fn read_gpt<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<PartitionTable, PartError> {
    let disk = dev.num_blocks();
    let (hdr, arr, used_backup) = match read_gpt_at(dev, 1, disk) {
        Ok((h, a)) => (h, a, false),
        Err((primary_err, alt)) => {
            let last = disk - 1;
            let mut candidates = vec![last];
            if let Some(a) = alt {
                if a != last && a > 1 && a < disk {
                    candidates.insert(0, a);
                }
            }
            let mut found = None;
            for c in candidates {
                if let Ok((h, a)) = read_gpt_at(dev, c, disk) {
                    found = Some((h, a));
                    break;
                }
            }
            match found {
                Some((h, a)) => (h, a, true),
                None => return Err(primary_err),
            }
        }
    };
    let mut parts = Vec::new();
    for (i, e) in arr.chunks_exact(hdr.entry_size as usize).enumerate() {
        let type_guid = Guid(e[..16].try_into().unwrap_or([0; 16]));
        if type_guid.is_zero() {
            continue;
        }
        let index = i as u32 + 1;
        let first = le64(e, 32);
        let last = le64(e, 40);
        if first > last || first < hdr.first_usable || last > hdr.last_usable {
            return Err(PartError::OutOfDisk {
                index,
                start: first,
                blocks: last.wrapping_sub(first).wrapping_add(1),
                disk,
            });
        }
        let attributes = le64(e, 48);
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        parts.push(Partition {
            index,
            start_lba: first,
            num_blocks: last - first + 1,
            kind: PartKind::Gpt {
                type_guid,
                part_guid: Guid(e[16..32].try_into().unwrap_or([0; 16])),
                name: String::from_utf16_lossy(&units),
                attributes,
            },
            bootable: attributes & 4 != 0,
        });
    }
    Ok(PartitionTable {
        scheme: Scheme::Gpt {
            disk_guid: hdr.disk_guid,
            used_backup,
        },
        partitions: parts,
    })
}

/// Format a table like U-Boot's `part list`; `dev_desc` is e.g. "virtio device 0".
pub fn format_table(t: &PartitionTable, dev_desc: &str) -> String {
    let mut s = String::new();
    match &t.scheme {
        Scheme::WholeDisk => {
            let n = t.partitions.first().map_or(0, |p| p.num_blocks);
            let _ = writeln!(
                s,
                "\nNo partition table on {dev_desc}: whole-disk filesystem, {n} sectors"
            );
        }
        Scheme::Mbr { disk_signature } => {
            let _ = writeln!(
                s,
                "\nPartition Map for {dev_desc}  --   Partition Type: DOS\n"
            );
            let _ = writeln!(s, "Part\tStart Sector\tNum Sectors\tUUID\t\tType");
            for p in &t.partitions {
                let ty = match p.kind {
                    PartKind::Mbr(ty) => ty,
                    _ => 0,
                };
                let _ = writeln!(
                    s,
                    "{:3}\t{:<10}\t{:<10}\t{:08x}-{:02x}\t{:02x}{}{}",
                    p.index,
                    p.start_lba,
                    p.num_blocks,
                    disk_signature,
                    p.index,
                    ty,
                    if is_extended(ty) { " Extd" } else { "" },
                    if p.bootable { " Boot" } else { "" }
                );
            }
        }
        Scheme::Gpt { used_backup, .. } => {
            let _ = writeln!(
                s,
                "\nPartition Map for {dev_desc}  --   Partition Type: EFI\n"
            );
            if *used_backup {
                let _ = writeln!(s, "(primary GPT invalid, using backup GPT)");
            }
            let _ = writeln!(
                s,
                "Part\tStart LBA\tEnd LBA\t\tName\n\tAttributes\n\tType GUID\n\tPartition GUID"
            );
            for p in &t.partitions {
                if let PartKind::Gpt {
                    type_guid,
                    part_guid,
                    name,
                    attributes,
                } = &p.kind
                {
                    let end = p.start_lba + p.num_blocks - 1;
                    let name = crate::fs::printable(name);
                    let _ = writeln!(
                        s,
                        "{:3}\t0x{:08x}\t0x{:08x}\t\"{}\"",
                        p.index, p.start_lba, end, name
                    );
                    let _ = writeln!(s, "\tattrs:\t0x{attributes:016x}");
                    let _ = writeln!(s, "\ttype:\t{type_guid}");
                    if let Some(n) = type_guid.type_name() {
                        let _ = writeln!(s, "\t\t({n})");
                    }
                    let _ = writeln!(s, "\tguid:\t{part_guid}");
                }
            }
        }
    }
    s
}

/// One-line description of a partition (for messages).
pub fn describe(p: &Partition) -> String {
    match &p.kind {
        PartKind::WholeDisk => format!("whole disk, {} blocks", p.num_blocks),
        PartKind::Mbr(t) => format!(
            "part {} type 0x{t:02x}, {} blocks at {}",
            p.index, p.num_blocks, p.start_lba
        ),
        PartKind::Gpt { name, .. } => {
            let name = crate::fs::printable(name);
            format!(
                "part {} \"{name}\", {} blocks at {}",
                p.index, p.num_blocks, p.start_lba
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_display() {
        assert_eq!(
            alloc::format!("{}", Guid::EFI_SYSTEM),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
    }
}
