//! The `fdt` command as parse → plan: which DT blob a command reads (its
//! address and length from the header), what an edit makes of it, and
//! whether the edited tree may be written back where it was. The bin reads
//! the blob, and writes the result only when [`place_edit`] accepts it.

use super::ArgError;
use crate::dt;
use crate::dtfix;
use crate::memmap::{MemMap, Owner};
use alloc::format;
use alloc::string::String;
use alloc::string::ToString;
use alloc::vec::Vec;
use dtoolkit::model::DeviceTree;
use dtoolkit::{Node, Property};
use shell::parse_hex;

/// Length of an FDT header: what is read first to learn a blob's size.
pub const HEADER_LEN: u64 = 40;

/// Largest blob the commands read (booting.rst's 2 MiB, with room for padding).
pub const MAX_BLOB: u64 = dtfix::MAX_DTB as u64 * 4;

/// Room `fdt resize` adds when no size is given.
pub const DEFAULT_RESIZE: u64 = 0x1000;

/// A blob must start 8-byte aligned.
///
/// # Errors
/// The one-line reason.
pub fn check_addr(addr: u64) -> Result<(), String> {
    if addr.is_multiple_of(8) {
        Ok(())
    } else {
        Err(format!("device tree at {addr:#x} is not 8-byte aligned"))
    }
}

/// The length of the blob at `addr`, from `head` (its first [`HEADER_LEN`] bytes).
///
/// # Errors
/// A bad header, or a totalsize above [`MAX_BLOB`].
pub fn blob_len(addr: u64, head: &[u8]) -> Result<u64, String> {
    let total = dt::fdt_totalsize(head).map_err(|e| format!("fdt at {addr:#x}: {e}"))? as u64;
    if total > MAX_BLOB {
        return Err(format!(
            "fdt at {addr:#x}: totalsize {total:#x} is implausible"
        ));
    }
    Ok(total)
}

/// Checks that `blob` is a DT the commands can work on (`fdt addr <addr>`).
///
/// # Errors
/// `fdt: <reason>`.
pub fn validate(blob: &[u8]) -> Result<(), String> {
    dtfix::load(blob)
        .map(|_| ())
        .map_err(|e| format!("fdt: {e}"))
}

/// `fdt addr [addr] | print [path] | set <path> <prop> [value] | rm <path> [prop] | resize [extra]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdtCmd<'a> {
    /// `fdt addr`: say where the working fdt is.
    ShowAddr,
    /// `fdt addr <addr>`: make the blob there the working fdt.
    SetAddr(u64),
    Print(&'a str),
    Set {
        path: &'a str,
        prop: &'a str,
        value: Vec<&'a str>,
    },
    Rm {
        path: &'a str,
        prop: Option<&'a str>,
    },
    /// Add this many bytes of free room (U-Boot's `fdt_shrink_to_minimum` size).
    Resize(u64),
    /// `fdt get value|size|name ...`: sets an env variable.
    Get(Get<'a>),
    /// `fdt header`: the header fields, as U-Boot prints them.
    Header,
    /// `fdt chosen [<start> <size>]`: /chosen with `bootargs` (and an initrd).
    Chosen(Option<(u64, u64)>),
    /// `fdt apply <addr>`: the overlay at `addr` merged into the working fdt.
    Apply(u64),
    /// `fdt move <fdt> <newaddr> [<length>]`: copy and make the copy the working fdt.
    Move {
        src: u64,
        dst: u64,
        len: Option<u64>,
    },
}

/// `fdt get ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Get<'a> {
    /// `value <var> <path> <prop> [<index>]`.
    Value {
        var: &'a str,
        path: &'a str,
        prop: &'a str,
        index: u64,
    },
    /// `size <var> <path> [<prop>]`: the property's length, or the node's number of subnodes.
    Size {
        var: &'a str,
        path: &'a str,
        prop: Option<&'a str>,
    },
    /// `name <var> <path> <index>`: the name of the index-th subnode.
    Name {
        var: &'a str,
        path: &'a str,
        index: u64,
    },
}

impl<'a> FdtCmd<'a> {
    /// Parses `args` (`args[0]` is the command name).
    ///
    /// # Errors
    /// [`ArgError::Usage`] for an unknown sub-command or argument count, else the bad argument.
    pub fn parse(args: &'a [String]) -> Result<Self, ArgError> {
        let sub = args.get(1).map(String::as_str).ok_or(ArgError::Usage)?;
        let rest: Vec<&str> = args
            .get(2..)
            .unwrap_or(&[])
            .iter()
            .map(String::as_str)
            .collect();
        match (sub, rest.as_slice()) {
            ("addr", []) => Ok(Self::ShowAddr),
            ("addr", [a, ..]) => parse_hex(a)
                .map(Self::SetAddr)
                .ok_or_else(|| ArgError::Bad(format!("bad address '{a}'"))),
            ("print", []) => Ok(Self::Print("/")),
            ("print", [path]) => Ok(Self::Print(path)),
            ("set", [path, prop, value @ ..]) => Ok(Self::Set {
                path,
                prop,
                value: value.to_vec(),
            }),
            ("rm", [path]) => Ok(Self::Rm { path, prop: None }),
            ("rm", [path, prop]) => Ok(Self::Rm {
                path,
                prop: Some(prop),
            }),
            ("resize", []) => Ok(Self::Resize(DEFAULT_RESIZE)),
            ("resize", [n]) => parse_hex(n)
                .map(Self::Resize)
                .ok_or_else(|| ArgError::Bad(format!("bad size '{n}'"))),
            ("get", rest) => Self::parse_get(rest),
            ("header", _) => Ok(Self::Header),
            ("chosen", []) => Ok(Self::Chosen(None)),
            ("chosen", [a, n]) => Ok(Self::Chosen(Some((hex(a, "address")?, hex(n, "size")?)))),
            ("apply", [a]) => Ok(Self::Apply(hex(a, "address")?)),
            ("move", [a, b]) => Ok(Self::Move {
                src: hex(a, "address")?,
                dst: hex(b, "address")?,
                len: None,
            }),
            ("move", [a, b, n]) => Ok(Self::Move {
                src: hex(a, "address")?,
                dst: hex(b, "address")?,
                len: Some(hex(n, "length")?),
            }),
            _ => Err(ArgError::Usage),
        }
    }
}

fn hex(s: &str, what: &str) -> Result<u64, ArgError> {
    parse_hex(s).ok_or_else(|| ArgError::Bad(format!("bad {what} '{s}'")))
}

impl<'a> FdtCmd<'a> {
    fn parse_get(rest: &[&'a str]) -> Result<Self, ArgError> {
        let g = match rest {
            ["value", var, path, prop] => Get::Value {
                var,
                path,
                prop,
                index: 0,
            },
            ["value", var, path, prop, i] => Get::Value {
                var,
                path,
                prop,
                index: hex(i, "index")?,
            },
            ["size", var, path] => Get::Size {
                var,
                path,
                prop: None,
            },
            ["size", var, path, prop] => Get::Size {
                var,
                path,
                prop: Some(prop),
            },
            ["name", var, path, i] => Get::Name {
                var,
                path,
                index: hex(i, "index")?,
            },
            _ => return Err(ArgError::Usage),
        };
        Ok(Self::Get(g))
    }
}

/// What an edit of a blob comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `print`: the text to show; nothing is written.
    Print(String),
    /// The new blob to write back at the blob's address.
    Store(Vec<u8>),
    /// `fdt get`: set (Some) or delete (None, an empty property) env variable `.0`.
    SetVar(String, Option<String>),
    /// Failed after saying nothing (`fdt get value` of a missing string-list index, as U-Boot).
    Silent,
}

/// The header fields as U-Boot's `fdt header` prints them.
///
/// # Errors
/// A blob shorter than its header.
pub fn header_text(blob: &[u8]) -> Result<String, String> {
    let f = |i: usize| {
        blob.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| String::from("fdt: header truncated"))
    };
    let (magic, total, off_struct, off_strings, off_rsv, version, last) =
        (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?, f(5)?, f(6)?);
    let mut o = format!(
        "magic:\t\t\t{magic:#x}\ntotalsize:\t\t{total:#x} ({total})\noff_dt_struct:\t\t{off_struct:#x}\noff_dt_strings:\t\t{off_strings:#x}\noff_mem_rsvmap:\t\t{off_rsv:#x}\nversion:\t\t{version}\nlast_comp_version:\t{last}\n"
    );
    if version >= 2 {
        o.push_str(&format!("boot_cpuid_phys:\t{:#x}\n", f(7)?));
    }
    if version >= 3 {
        o.push_str(&format!("size_dt_strings:\t{:#x}\n", f(8)?));
    }
    if version >= 17 {
        o.push_str(&format!("size_dt_struct:\t\t{:#x}\n", f(9)?));
    }
    o.push_str(&format!(
        "number mem_rsv:\t\t{:#x}\n\n",
        mem_rsv_count(blob, off_rsv)
    ));
    Ok(o)
}

/// Entries in the reservation block before its (0, 0) terminator.
fn mem_rsv_count(blob: &[u8], off: u32) -> usize {
    let mut n = 0;
    let mut at = off as usize;
    while let Some(e) = blob.get(at..at + 16) {
        if e.iter().all(|&b| b == 0) {
            break;
        }
        n += 1;
        at += 16;
    }
    n
}

/// libfdt's `fdt_path_offset`: an absolute path, or an alias name followed by an optional
/// path; the error text U-Boot prints.
fn resolve_path(tree: &DeviceTree, path: &str) -> Result<String, String> {
    let notfound = || String::from("libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND");
    let badpath = || String::from("libfdt fdt_path_offset() returned FDT_ERR_BADPATH");
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        let (alias, rest) = path.split_once('/').map_or((path, ""), |(a, r)| (a, r));
        let target = dtfix::find(tree, "/aliases")
            .and_then(|a| {
                a.properties()
                    .find(|p| p.name() == alias)
                    .map(|p| p.value().to_vec())
            })
            .ok_or_else(badpath)?;
        let t = core::str::from_utf8(target.split(|&b| b == 0).next().unwrap_or(&[]))
            .map_err(|_| badpath())?
            .to_string();
        if rest.is_empty() {
            t
        } else {
            format!("{t}/{rest}")
        }
    };
    dtfix::find(tree, &full).map(|_| full).ok_or_else(notfound)
}

/// U-Boot's `is_printable_string`: NUL-terminated runs of printable characters, none empty.
fn is_printable_string(v: &[u8]) -> bool {
    if v.last() != Some(&0) {
        return false;
    }
    v[..v.len() - 1]
        .split(|&b| b == 0)
        .all(|s| !s.is_empty() && s.iter().all(|&b| (0x20..0x7f).contains(&b)))
}

/// `fdt_value_env_set` of U-Boot 2023.01: a string (the `index`-th of a list), one cell as
/// `0x%08X`, up to 20 bytes as 32-bit words printed `%08x` in the CPU's (little-endian)
/// byte order, else unprintable.
fn value_text(v: &[u8], index: u64) -> Result<Option<String>, String> {
    if is_printable_string(v) {
        return Ok(v[..v.len() - 1]
            .split(|&b| b == 0)
            .nth(usize::try_from(index).unwrap_or(usize::MAX))
            .map(|s| String::from_utf8_lossy(s).into_owned()));
    }
    if v.len() == 4 {
        return Ok(Some(format!(
            "0x{:08X}",
            u32::from_be_bytes([v[0], v[1], v[2], v[3]])
        )));
    }
    if v.len().is_multiple_of(4) && v.len() <= 20 {
        return Ok(Some(
            v.chunks_exact(4)
                .map(|c| format!("{:08x}", u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ));
    }
    Err("error: unprintable value".into())
}

/// `fdt get ...` on a parsed tree.
fn get(tree: &DeviceTree, g: &Get<'_>) -> Result<Edit, String> {
    let prop_of = |path: &str, prop: &str| -> Result<Vec<u8>, String> {
        let full = resolve_path(tree, path)?;
        dtfix::find(tree, &full)
            .and_then(|n| {
                n.properties()
                    .find(|p| p.name() == prop)
                    .map(|p| p.value().to_vec())
            })
            .ok_or_else(|| String::from("libfdt fdt_getprop(): FDT_ERR_NOTFOUND"))
    };
    match *g {
        Get::Value {
            var,
            path,
            prop,
            index,
        } => {
            let v = prop_of(path, prop)?;
            if v.is_empty() {
                return Ok(Edit::SetVar(var.into(), None));
            }
            Ok(match value_text(&v, index)? {
                Some(t) => Edit::SetVar(var.into(), Some(t)),
                None => Edit::Silent,
            })
        }
        Get::Size {
            var,
            path,
            prop: Some(prop),
        } => {
            let v = prop_of(path, prop)?;
            if v.is_empty() {
                return Ok(Edit::SetVar(var.into(), None));
            }
            Ok(Edit::SetVar(var.into(), Some(format!("0x{:08X}", v.len()))))
        }
        Get::Size {
            var,
            path,
            prop: None,
        } => {
            let full = resolve_path(tree, path)?;
            let n = dtfix::find(tree, &full).map_or(0, |n| n.children().count());
            Ok(Edit::SetVar(var.into(), Some(format!("{n}"))))
        }
        Get::Name { var, path, index } => {
            let full = resolve_path(tree, path)?;
            dtfix::find(tree, &full)
                .and_then(|n| {
                    n.children()
                        .nth(usize::try_from(index).unwrap_or(usize::MAX))
                })
                .map(|c| Edit::SetVar(var.into(), Some(c.name().to_string())))
                .ok_or_else(|| String::from("libfdt node not found"))
        }
    }
}

/// U-Boot's `fdt_shrink_to_minimum(blob, extra)` size for a blob at `addr` whose structure
/// ends at `used` (end of the strings block): `used + extra`, grown so that the blob ends on
/// a 4 KiB boundary of the address space.
#[must_use]
pub fn resize_len(addr: u64, used: u64, extra: u64) -> u64 {
    let lo = addr & 0xfff;
    (used
        .saturating_add(extra)
        .saturating_add(lo)
        .saturating_add(0xfff)
        & !0xfff)
        - lo
}

/// Where a stored blob's strings block ends (libfdt's used size).
fn used_len(blob: &[u8]) -> u64 {
    let f = |o: usize| {
        blob.get(o..o + 4).map_or(0, |b| {
            u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    f(12) + f(32)
}

/// Applies `cmd` (not `addr`, `apply`, `move`) to `blob`, which lies at `addr`: the blob is
/// parsed and validated, then queried (`print`, `get`, `header`) or edited and serialised anew
/// with the same boot CPU id. An edited blob keeps at least its old size (the room `fdt
/// resize` made stays for the next edit); `resize` sizes it as U-Boot does.
///
/// # Errors
/// `fdt: <reason>`, or U-Boot's own line for `get`.
pub fn edit(
    blob: &[u8],
    addr: u64,
    cmd: &FdtCmd<'_>,
    bootargs: Option<&str>,
) -> Result<Edit, String> {
    if *cmd == FdtCmd::Header {
        return header_text(blob).map(Edit::Print);
    }
    let e = |e: String| format!("fdt: {e}");
    let (mut tree, _) = dtfix::load(blob).map_err(e)?;
    let mut resize = None;
    match cmd {
        FdtCmd::Print(path) => return dtfix::print(&tree, path).map(Edit::Print).map_err(e),
        FdtCmd::Get(g) => return get(&tree, g),
        FdtCmd::Set { path, prop, value } => {
            let bytes = dtfix::parse_value(value).map_err(e)?;
            dtfix::set_property(&mut tree, path, prop, bytes).map_err(e)?;
        }
        FdtCmd::Rm { path, prop } => dtfix::remove(&mut tree, path, *prop).map_err(e)?,
        FdtCmd::Resize(n) => resize = Some(*n),
        FdtCmd::Chosen(initrd) => {
            dtfix::apply_chosen(
                &mut tree,
                &dtfix::ChosenFixups {
                    bootargs: bootargs.map(String::from),
                    initrd: initrd.map(|(s, n)| (s, s.saturating_add(n))),
                    ..dtfix::ChosenFixups::default()
                },
            );
        }
        FdtCmd::Header
        | FdtCmd::ShowAddr
        | FdtCmd::SetAddr(_)
        | FdtCmd::Apply(_)
        | FdtCmd::Move { .. } => {}
    }
    store_sized(&tree, blob, addr, resize).map(Edit::Store)
}

/// Serialises an edited `tree` that was `old` (at `addr`): at least `old`'s size, or the
/// size `fdt resize <extra>` asks for.
///
/// # Errors
/// `fdt: <reason>`.
pub fn store_sized(
    tree: &DeviceTree,
    old: &[u8],
    addr: u64,
    resize: Option<u64>,
) -> Result<Vec<u8>, String> {
    let cpuid = old
        .get(28..32)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut out = dtfix::store(tree, cpuid).map_err(|e| format!("fdt: {e}"))?;
    let want = match resize {
        Some(extra) => resize_len(addr, used_len(&out), extra),
        None => old.len() as u64,
    };
    let grow_by = want.saturating_sub(out.len() as u64);
    grow(&mut out, grow_by);
    Ok(out)
}

/// `fdt apply`: the overlay `ovl` merged into `blob` (at `addr`), all or nothing.
///
/// # Errors
/// `fdt apply: <reason>`; `blob` is not changed either way.
pub fn apply(blob: &[u8], addr: u64, ovl: &[u8]) -> Result<Vec<u8>, String> {
    let (mut tree, _) = dtfix::load(blob).map_err(|e| format!("fdt apply: {e}"))?;
    crate::overlay::apply(&mut tree, ovl).map_err(|e| format!("fdt apply: {e}"))?;
    store_sized(&tree, blob, addr, None)
}

/// Adds `extra` zero bytes of free room to a stored blob (the total capped at
/// [`dtfix::MAX_DTB`]) and patches its totalsize.
pub fn grow(out: &mut Vec<u8>, extra: u64) {
    if extra == 0 {
        return;
    }
    let total = (out.len() as u64)
        .saturating_add(extra)
        .min(dtfix::MAX_DTB as u64)
        .max(out.len() as u64);
    out.resize(total as usize, 0);
    if let Some(h) = out.get_mut(4..8) {
        h.copy_from_slice(&(total as u32).to_be_bytes());
    }
}

/// May an edited tree of `new_len` bytes (the blob was `old_len`) be written back at `addr`?
/// Inside the DT's own claim (the loader's incoming DT, or a DT booti placed) it must fit
/// before the claim's end; elsewhere the range must be RAM a command may write
/// (`may_write`: the shell's memory check, which refuses claimed ranges).
///
/// # Errors
/// `fdt: the edited tree (...) does not fit at <addr>`.
pub fn place_edit(
    map: &MemMap,
    addr: u64,
    old_len: u64,
    new_len: u64,
    may_write: impl FnOnce(u64, u64) -> bool,
) -> Result<(), String> {
    let own = map
        .claim_at(addr)
        .filter(|c| c.owner == Owner::IncomingDt || c.owner == Owner::Fdt)
        .map(|c| c.end);
    let fits = match own {
        Some(end) => addr.checked_add(new_len).is_some_and(|e| e <= end),
        None => may_write(addr, new_len),
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "fdt: the edited tree ({new_len} bytes, was {old_len}) does not fit at {addr:#x}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::Region;
    use alloc::string::ToString;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(ToString::to_string).collect()
    }

    fn small_dtb() -> Vec<u8> {
        // A minimal valid tree: the root with #address-cells/#size-cells and one memory node.
        let mut t = dtoolkit::model::DeviceTree::new();
        t.root
            .add_property(dtoolkit::model::DeviceTreeProperty::new_unchecked(
                "#address-cells",
                2u32,
            ));
        t.root
            .add_property(dtoolkit::model::DeviceTreeProperty::new_unchecked(
                "#size-cells",
                2u32,
            ));
        t.to_dtb()
    }

    #[test]
    fn parses_every_sub_command() {
        assert_eq!(FdtCmd::parse(&args("fdt addr")), Ok(FdtCmd::ShowAddr));
        assert_eq!(
            FdtCmd::parse(&args("fdt addr 40000000")),
            Ok(FdtCmd::SetAddr(0x4000_0000))
        );
        assert_eq!(FdtCmd::parse(&args("fdt print")), Ok(FdtCmd::Print("/")));
        assert_eq!(
            FdtCmd::parse(&args("fdt set /chosen x 1 2")),
            Ok(FdtCmd::Set {
                path: "/chosen",
                prop: "x",
                value: alloc::vec!["1", "2"]
            })
        );
        assert_eq!(
            FdtCmd::parse(&args("fdt rm /a b")),
            Ok(FdtCmd::Rm {
                path: "/a",
                prop: Some("b")
            })
        );
        assert_eq!(
            FdtCmd::parse(&args("fdt resize")),
            Ok(FdtCmd::Resize(DEFAULT_RESIZE))
        );
        assert_eq!(
            FdtCmd::parse(&args("fdt resize 20")),
            Ok(FdtCmd::Resize(0x20))
        );
    }

    #[test]
    fn refuses_bad_command_lines() {
        assert_eq!(FdtCmd::parse(&args("fdt")), Err(ArgError::Usage));
        assert_eq!(FdtCmd::parse(&args("fdt frob")), Err(ArgError::Usage));
        assert_eq!(FdtCmd::parse(&args("fdt rm")), Err(ArgError::Usage));
        assert_eq!(FdtCmd::parse(&args("fdt resize 1 2")), Err(ArgError::Usage));
        assert_eq!(
            FdtCmd::parse(&args("fdt addr zz")),
            Err(ArgError::Bad("bad address 'zz'".into()))
        );
        assert_eq!(
            FdtCmd::parse(&args("fdt resize qq")),
            Err(ArgError::Bad("bad size 'qq'".into()))
        );
    }

    #[test]
    fn blob_header_checks() {
        assert!(check_addr(0x1000).is_ok());
        assert_eq!(
            check_addr(0x1004),
            Err("device tree at 0x1004 is not 8-byte aligned".into())
        );
        let dtb = small_dtb();
        assert_eq!(blob_len(0, &dtb[..40]), Ok(dtb.len() as u64));
        let mut big = dtb.clone();
        big[4..8].copy_from_slice(&(MAX_BLOB as u32 + 8).to_be_bytes());
        assert!(blob_len(0x80, &big[..40])
            .unwrap_err()
            .ends_with("is implausible"));
        assert!(blob_len(0x80, &[0u8; 40])
            .unwrap_err()
            .starts_with("fdt at 0x80: "));
    }

    #[test]
    fn resize_grows_and_patches_totalsize() {
        let dtb = small_dtb();
        let Ok(Edit::Store(out)) = edit(&dtb, 0x4000_0000, &FdtCmd::Resize(0x100), None) else {
            panic!("resize failed")
        };
        // U-Boot's size: used + extra, ending on a 4 KiB boundary.
        assert_eq!(out.len(), 0x1000);
        assert_eq!(
            u32::from_be_bytes([out[4], out[5], out[6], out[7]]) as usize,
            out.len()
        );
        assert!(dt::parse(&out).is_ok());
        // Capped at the DT size limit.
        let mut v = dtb.clone();
        grow(&mut v, u64::MAX);
        assert_eq!(v.len(), dtfix::MAX_DTB);
    }

    #[test]
    fn edit_sets_and_prints() {
        let dtb = small_dtb();
        let cmd = FdtCmd::Set {
            path: "/",
            prop: "model",
            value: alloc::vec!["\"x\""],
        };
        let Ok(Edit::Store(out)) = edit(&dtb, 0, &cmd, None) else {
            panic!("set failed")
        };
        let Ok(Edit::Print(text)) = edit(&out, 0, &FdtCmd::Print("/"), None) else {
            panic!("print failed")
        };
        assert!(text.contains("model"), "{text}");
        let e = edit(&[0u8; 64], 0, &FdtCmd::Print("/"), None).unwrap_err();
        assert!(e.starts_with("fdt: ") && !e.contains('\n'), "{e}");
    }

    /// `fdt-get.dtb` (from `fdt-get.dts` by dtc); the expected values are what U-Boot 2023.01
    /// (Debian's qemu_arm64) sets for the same commands on the same blob.
    const GET_DTB: &[u8] = include_bytes!("../../tests/fixtures/fdt-get.dtb");

    fn get_line(line: &str) -> Result<Edit, String> {
        let a = args(line);
        let cmd = FdtCmd::parse(&a).map_err(|e| format!("{e:?}"))?;
        edit(GET_DTB, 0x5000_0000, &cmd, None)
    }

    fn set(var: &str, v: &str) -> Result<Edit, String> {
        Ok(Edit::SetVar(var.into(), Some(v.into())))
    }

    #[test]
    fn get_matches_u_boot() {
        assert_eq!(get_line("fdt get value v /node c"), set("v", "x"));
        assert_eq!(get_line("fdt get value v /node c 1"), set("v", "yy"));
        assert_eq!(get_line("fdt get value v /node c 2"), Ok(Edit::Silent));
        assert_eq!(
            get_line("fdt get value v /node d"),
            set("v", "78563412f0debc9a")
        );
        assert_eq!(
            get_line("fdt get value v /node e"),
            Ok(Edit::SetVar("v".into(), None))
        );
        assert_eq!(get_line("fdt get value v /node f"), set("v", "0x00000007"));
        assert_eq!(get_line("fdt get value v / model"), set("v", "m"));
        assert_eq!(get_line("fdt get size v /node a"), set("v", "0x00000018"));
        assert_eq!(get_line("fdt get size v /node"), set("v", "2"));
        assert_eq!(get_line("fdt get size v /node/sub1"), set("v", "0"));
        assert_eq!(get_line("fdt get name v /node 1"), set("v", "sub2"));
        for (line, err) in [
            ("fdt get value v /node a", "error: unprintable value"),
            ("fdt get value v /node b", "error: unprintable value"),
            (
                "fdt get value v /nope a",
                "libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND",
            ),
            (
                "fdt get value v node a",
                "libfdt fdt_path_offset() returned FDT_ERR_BADPATH",
            ),
            (
                "fdt get value v /node zz",
                "libfdt fdt_getprop(): FDT_ERR_NOTFOUND",
            ),
            ("fdt get name v /node 5", "libfdt node not found"),
        ] {
            assert_eq!(get_line(line), Err(err.into()), "{line}");
        }
        assert_eq!(
            FdtCmd::parse(&args("fdt get value v /node")),
            Err(ArgError::Usage)
        );
    }

    #[test]
    fn header_matches_u_boot() {
        let Ok(Edit::Print(h)) = get_line("fdt header") else {
            panic!("no header")
        };
        assert_eq!(
            h,
            "magic:\t\t\t0xd00dfeed\ntotalsize:\t\t0x14d (333)\noff_dt_struct:\t\t0x38\noff_dt_strings:\t\t0x120\noff_mem_rsvmap:\t\t0x28\nversion:\t\t17\nlast_comp_version:\t16\nboot_cpuid_phys:\t0x0\nsize_dt_strings:\t0x2d\nsize_dt_struct:\t\t0xe8\nnumber mem_rsv:\t\t0x0\n\n"
        );
        // `fdt resize 1000` at 0x50000000: U-Boot makes it 0x2000 bytes.
        assert_eq!(resize_len(0x5000_0000, 0x120 + 0x2d, 0x1000), 0x2000);
        assert_eq!(resize_len(0x5000_0010, 0x100, 0), 0xff0);
    }

    #[test]
    fn chosen_apply_and_sizes_kept() {
        let a = args("fdt chosen 44000000 100000");
        let cmd = FdtCmd::parse(&a).unwrap();
        let Ok(Edit::Store(out)) = edit(GET_DTB, 0, &cmd, Some("console=ttyAMA0")) else {
            panic!("chosen failed")
        };
        let info = dt::parse(&out).unwrap();
        assert_eq!(info.chosen.bootargs.as_deref(), Some("console=ttyAMA0"));
        assert_eq!(
            info.chosen.initrd.map(|r| (r.base, r.size)),
            Some((0x4400_0000, 0x10_0000))
        );
        // After `fdt resize` an edit keeps the room.
        let Ok(Edit::Store(big)) = edit(GET_DTB, 0, &FdtCmd::Resize(0x1000), None) else {
            panic!()
        };
        let Ok(Edit::Store(again)) = edit(&big, 0, &cmd, None) else {
            panic!()
        };
        assert_eq!(again.len(), big.len());
        // A bad overlay leaves the blob as it was (the caller writes nothing).
        assert!(apply(&big, 0, b"not an overlay at all, not even close..").is_err());
    }

    #[test]
    fn write_back_stays_in_the_dts_claim_or_free_ram() {
        let mut map = MemMap::new(&[Region::new(0x4000_0000, 0x1000_0000)]);
        map.claim(0x4800_0000, 0x2000, Owner::IncomingDt).unwrap();
        // Inside the DT's own claim: must end before the claim does; the memory check is not asked.
        let never = |_: u64, _: u64| -> bool { panic!("not asked") };
        assert!(place_edit(&map, 0x4800_0000, 0x1000, 0x2000, never).is_ok());
        let e = place_edit(&map, 0x4800_0000, 0x1000, 0x2001, never).unwrap_err();
        assert_eq!(
            e,
            "fdt: the edited tree (8193 bytes, was 4096) does not fit at 0x48000000"
        );
        // Elsewhere: what the memory check says.
        assert!(place_edit(&map, 0x4100_0000, 1, 0x3000, |_, _| true).is_ok());
        assert!(place_edit(&map, 0x4100_0000, 1, 0x3000, |_, _| false).is_err());
    }
}
