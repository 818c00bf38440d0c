//! `loader::bootconf`: the extlinux.conf / pxelinux.cfg parser, with
//! includes, and the boot-time helpers on its result.
//!
//! Input: files separated by the byte 0xfe; the first is the top file,
//! `include N` (N a digit) reads file N (at most MAX_NEST + 4 reads, the
//! product's 64 made fuzzing slow). Properties: no panic, no hang
//! (self-including files end at the depth and count limits); errors and
//! notes are one line and name a file and line; labels and lines are within
//! bounds; the helpers (menu text, boot order, fdt file, paths, bootargs)
//! do not panic and are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::bootconf::{self, MAX_LABELS, MAX_NEST};

/// Includes allowed per input: enough to reach the depth limit and the
/// count limit; fan-out to the product's 64 was most of the time per exec.
const MAX_INCLUDES: usize = MAX_NEST + 4;

fuzz_target!(|data: &[u8]| {
    let files: Vec<&[u8]> = data.split(|&b| b == 0xfe).collect();
    let mut reads = 0usize;
    let mut inc = |path: &str| -> Result<Vec<u8>, String> {
        reads += 1;
        assert!(reads <= MAX_INCLUDES, "more includes read than allowed");
        let n: usize = path
            .trim()
            .parse()
            .map_err(|_| "no such file".to_string())?;
        files
            .get(n)
            .map(|f| f.to_vec())
            .ok_or_else(|| "no such file".to_string())
    };
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    match bootconf::parse_limited("extlinux.conf", files[0], &mut inc, MAX_INCLUDES) {
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'));
            assert!(e.line >= 1 && e.line <= lines);
        }
        Ok((menu, notes)) => {
            for n in &notes {
                assert!(!n.0.contains('\n'), "{:?}", n.0);
            }
            assert!(menu.labels.len() <= MAX_LABELS);
            let text = menu.menu_text();
            assert_eq!(
                text.lines().count(),
                menu.labels.len() + menu.title.is_some() as usize
            );
            let order = menu.boot_order(Some("x"));
            assert_eq!(order.len(), menu.labels.len());
            let _ = menu.timeout_secs();
            let env = |n: &str| (n == "ethaddr").then(|| "52:54:00:12:34:56".to_string());
            for l in &menu.labels {
                assert!(l.line >= 1);
                assert!(!l.name.contains('\n'));
                if let Some((f, _)) = l.fdt_file(None, Some("soc"), Some("board")) {
                    let _ = bootconf::resolve(bootconf::dir_of("/boot/extlinux/x"), &f, true);
                }
                if let Some(k) = &l.kernel {
                    if let Ok(p) = bootconf::resolve("/boot/", k, false) {
                        assert!(p.len() <= bootconf::MAX_PATH);
                    }
                }
                let _ = l.bootargs(&env);
            }
        }
    }
});
