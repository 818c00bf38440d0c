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
use alloc::vec::Vec;
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
    /// Add this many bytes of free room.
    Resize(u64),
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
            _ => Err(ArgError::Usage),
        }
    }
}

/// What an edit of a blob comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// `print`: the text to show; nothing is written.
    Print(String),
    /// The new blob to write back at the blob's address.
    Store(Vec<u8>),
}

/// Applies `cmd` (not `addr`) to `blob`: the blob is parsed and validated, edited, and
/// serialised anew with the same boot CPU id; `resize` adds free room (up to
/// [`dtfix::MAX_DTB`]).
///
/// # Errors
/// `fdt: <reason>`.
pub fn edit(blob: &[u8], cmd: &FdtCmd<'_>) -> Result<Edit, String> {
    let e = |e: String| format!("fdt: {e}");
    let (mut tree, _) = dtfix::load(blob).map_err(e)?;
    let mut extra = 0;
    match cmd {
        FdtCmd::Print(path) => return dtfix::print(&tree, path).map(Edit::Print).map_err(e),
        FdtCmd::Set { path, prop, value } => {
            let bytes = dtfix::parse_value(value).map_err(e)?;
            dtfix::set_property(&mut tree, path, prop, bytes).map_err(e)?;
        }
        FdtCmd::Rm { path, prop } => dtfix::remove(&mut tree, path, *prop).map_err(e)?,
        FdtCmd::Resize(n) => extra = *n,
        FdtCmd::ShowAddr | FdtCmd::SetAddr(_) => {}
    }
    let cpuid = blob
        .get(28..32)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut out = dtfix::store(&tree, cpuid).map_err(e)?;
    grow(&mut out, extra);
    Ok(Edit::Store(out))
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
        let Ok(Edit::Store(out)) = edit(&dtb, &FdtCmd::Resize(0x100)) else {
            panic!("resize failed")
        };
        assert_eq!(out.len(), dtb.len() + 0x100);
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
        let Ok(Edit::Store(out)) = edit(&dtb, &cmd) else {
            panic!("set failed")
        };
        let Ok(Edit::Print(text)) = edit(&out, &FdtCmd::Print("/")) else {
            panic!("print failed")
        };
        assert!(text.contains("model"), "{text}");
        let e = edit(&[0u8; 64], &FdtCmd::Print("/")).unwrap_err();
        assert!(e.starts_with("fdt: ") && !e.contains('\n'), "{e}");
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
