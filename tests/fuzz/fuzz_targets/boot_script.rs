//! `loader::devspec`: the boot.scr / boot.cmd extractor (`script_text`, a
//! U-Boot legacy script image or plain text) and the `<dev>[:<part>]`
//! argument parser, then the extracted script through the shell (as the
//! loader's `source` / autoboot does).
//!
//! First byte: bit 0-1 = mode. 0: `parse_dev_part` and `dtfix::parse_value`
//! (the `fdt set` value syntax) on the rest as text;
//! 1: `script_text` on the rest as is; 2/3: the rest is made a legacy image
//! with correct checksums first (magic, type 6 for mode 2, size clipped to
//! the data present, data and header CRC32 fixed), so that the fuzzer gets
//! past the CRCs into the length table. Bit 7: run an extracted script in
//! the shell. Properties: no panic, no hang; errors are one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::devspec::{self, LEGACY_MAGIC};

fn fix_legacy(raw: &[u8], force_script: bool) -> Vec<u8> {
    let mut m = raw.to_vec();
    if m.len() < 64 {
        m.resize(64, 0);
    }
    m[0..4].copy_from_slice(&LEGACY_MAGIC.to_be_bytes());
    let avail = (m.len() - 64) as u32;
    let size = u32::from_be_bytes([m[12], m[13], m[14], m[15]]).min(avail);
    m[12..16].copy_from_slice(&size.to_be_bytes());
    if force_script {
        m[30] = 6;
    }
    let dcrc = crc32fast::hash(&m[64..64 + size as usize]);
    m[24..28].copy_from_slice(&dcrc.to_be_bytes());
    m[4..8].fill(0);
    let hcrc = crc32fast::hash(&m[..64]);
    m[4..8].copy_from_slice(&hcrc.to_be_bytes());
    m
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let mem;
    let input = match cfg & 3 {
        0 => {
            let s = String::from_utf8_lossy(rest);
            if let Ok(dp) = devspec::parse_dev_part(&s) {
                let _ = (dp.dev, dp.part);
            }
            // The same text as `fdt set` value words.
            let words: Vec<&str> = s.split_whitespace().collect();
            let _ = loader::dtfix::parse_value(&words);
            return;
        }
        1 => rest,
        m => {
            mem = fix_legacy(rest, m == 2);
            &mem[..]
        }
    };
    match devspec::script_text(input) {
        Ok(s) => {
            assert!(!s.trim().is_empty());
            if cfg & 0x80 != 0 {
                let mut sh = fuzz_common::fuzz_shell(100);
                let _ = sh.run_script(s);
            }
        }
        Err(e) => assert!(!format!("{e}").contains('\n')),
    }
});
