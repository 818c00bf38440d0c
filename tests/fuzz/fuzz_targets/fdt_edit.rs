//! The shell's `fdt set` / `fdt rm` / `fdt print` (loader::dtfix) on any DTB
//! with any edit sequence, then `store` as booti and `fdt` do.
//!
//! Input: a little-endian u16 length N, N bytes of DTB, then text with one
//! edit per line (at most 16): `set <path> <prop> [<value words>...]`
//! (`dtfix::parse_value` syntax), `rm <path> [<prop>]`, `print <path>`.
//! Properties: no panic, no hang; every error is one line; the stored tree
//! parses again with both `loader::dt::parse` and `dtfix::load` (or `store`
//! fails with a one-line error); every property `set` reported written is
//! read back byte-identical from the stored tree.
#![no_main]

use dtoolkit::{Node, Property};
use libfuzzer_sys::fuzz_target;
use loader::dtfix;

fn one_line(r: Result<(), String>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            assert!(!e.contains('\n'), "multi-line error {e:?}");
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = u16::from_le_bytes(*len) as usize;
    let Some(dtb) = rest.get(..n) else {
        return;
    };
    let text = String::from_utf8_lossy(&rest[n..]);
    let Ok((mut tree, _)) = dtfix::load(dtb) else {
        return;
    };
    // (path, property, bytes) that `set` reported written and nothing removed since.
    let mut written: Vec<(String, String, Vec<u8>)> = Vec::new();
    for line in text.lines().take(16) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["set", path, prop, value @ ..] => {
                let r = dtfix::parse_value(value).and_then(|v| {
                    dtfix::set_property(&mut tree, path, prop, v.clone()).map(|()| v)
                });
                match r {
                    Ok(v) => {
                        // The same node may be named by another path spelling: keep one entry per name.
                        written.retain(|(_, q, _)| q != prop);
                        written.push((path.to_string(), prop.to_string(), v));
                    }
                    Err(e) => assert!(!e.contains('\n'), "multi-line error {e:?}"),
                }
            }
            ["rm", path] => {
                if one_line(dtfix::remove(&mut tree, path, None)) {
                    written.clear();
                }
            }
            ["rm", path, prop] => {
                if one_line(dtfix::remove(&mut tree, path, Some(prop))) {
                    written.retain(|(_, q, _)| q != prop);
                }
            }
            ["print", path] => {
                one_line(dtfix::print(&tree, path).map(|_| ()));
            }
            _ => {}
        }
    }
    let out = match dtfix::store(&tree, 0) {
        Ok(out) => out,
        Err(e) => {
            assert!(!e.contains('\n'), "multi-line error {e:?}");
            return;
        }
    };
    if let Err(e) = loader::dt::parse(&out) {
        panic!("the stored tree does not parse: {e}");
    }
    let (back, _) =
        dtfix::load(&out).unwrap_or_else(|e| panic!("the stored tree does not load: {e}"));
    for (path, prop, bytes) in &written {
        let node = dtfix::find(&back, path)
            .unwrap_or_else(|| panic!("node {path} of a set property is gone"));
        let found = node
            .properties()
            .find(|p| p.name() == prop)
            .map(|p| p.value().to_vec())
            .unwrap_or_else(|| panic!("property {path} {prop} is gone"));
        assert_eq!(
            found, *bytes,
            "property {path} {prop} reads back different bytes"
        );
    }
});
