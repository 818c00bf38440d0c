//! `drivers::part::read_table` (MBR with EBR chains, GPT with backup, or a
//! superfloppy) over a `MemDisk` built from the input (see
//! `fuzz_common::SparseDisk`; config bits 0-1 pick the block size 512..4096).
//!
//! Properties: no panic or hang; every partition found lies inside the disk
//! (documented: `OutOfDisk` otherwise) and can be opened and read to its last
//! block; `format_table`/`describe` produce text.
#![no_main]

use drivers::block::BlockDevice;
use drivers::part;
use fuzz_common::SparseDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_common::big_allocs_use_mmap();
    let sd = SparseDisk::decode(data);
    let mut disk = sd.memdisk(sd.block_size);
    let blocks = disk.num_blocks();
    let bs = disk.block_size();
    let t = match part::read_table(&mut disk) {
        Ok(t) => t,
        Err(e) => {
            assert!(!format!("{e}").contains('\n'), "multi-line error {e}");
            return;
        }
    };
    let _ = part::format_table(&t, "fuzz device 0");
    let _ = t.default_partition();
    for p in &t.partitions {
        let _ = part::describe(p);
        let end = p.start_lba.checked_add(p.num_blocks);
        assert!(
            end.is_some_and(|e| e <= blocks),
            "partition {} ({}+{}) outside the {blocks}-block disk",
            p.index,
            p.start_lba,
            p.num_blocks
        );
        if p.is_extended() {
            continue;
        }
        let mut view = part::open(&mut disk, p.index)
            .unwrap_or_else(|e| panic!("partition {} listed but open fails: {e}", p.index));
        assert_eq!(view.num_blocks(), p.num_blocks);
        if p.num_blocks > 0 {
            let mut buf = vec![0u8; bs];
            view.read_blocks(p.num_blocks - 1, &mut buf)
                .unwrap_or_else(|e| panic!("last block of partition {}: {e}", p.index));
        }
    }
});
