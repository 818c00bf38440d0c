//! `load` and `source` as parse → plan: which bytes of a file go where, and
//! which range of memory a script is read from. The memory checks are facts
//! the bin passes in (the shell's `mem_check`: mapped, and for a write, not
//! claimed); the bin reads the file into the accepted range.

use super::ArgError;
use alloc::format;
use alloc::string::String;
use shell::parse_hex;

/// The most of a script `source` reads.
pub const MAX_SCRIPT: u64 = 1 << 20;

/// `load <iface> <dev>[:<part>] <addr> <path> [bytes [pos]]`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadArgs<'a> {
    pub iface: &'a str,
    pub spec: &'a str,
    pub addr: u64,
    pub path: &'a str,
    /// `bytes`: at most this many (0 or absent: to the end of the file).
    pub want: Option<u64>,
    /// `pos`: the file offset to start at.
    pub pos: u64,
}

impl<'a> LoadArgs<'a> {
    /// Parses `args` (`args[0]` is the command name).
    ///
    /// # Errors
    /// [`ArgError::Usage`] for a wrong argument count, else the bad argument.
    pub fn parse(args: &'a [String]) -> Result<Self, ArgError> {
        if !(5..=7).contains(&args.len()) {
            return Err(ArgError::Usage);
        }
        let num = |s: &str, what: &str| {
            parse_hex(s).ok_or_else(|| ArgError::Bad(format!("bad {what} '{s}'")))
        };
        Ok(Self {
            iface: &args[1],
            spec: &args[2],
            addr: num(&args[3], "address")?,
            path: &args[4],
            want: args.get(5).map(|b| num(b, "byte count")).transpose()?,
            pos: args
                .get(6)
                .map(|p| num(p, "position"))
                .transpose()?
                .unwrap_or(0),
        })
    }
}

/// An accepted load: `len` bytes of the file from `pos` go to `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRead {
    pub addr: u64,
    pub pos: u64,
    pub len: u64,
}

/// Plans a load of a file of `file_size` bytes: how much is read, and that the whole target
/// range may be written (`may_write`: the shell's memory check) — before a byte is read.
///
/// # Errors
/// A position past the end of the file, or `load: <why the range may not be written>`.
pub fn file_read(
    a: &LoadArgs<'_>,
    file_size: u64,
    may_write: impl FnOnce(u64, u64) -> Result<(), String>,
) -> Result<FileRead, String> {
    if a.pos > file_size {
        return Err(format!(
            "position {:#x} is beyond the end of {} ({file_size:#x} bytes)",
            a.pos, a.path
        ));
    }
    let avail = file_size - a.pos;
    let len = match a.want {
        Some(0) | None => avail,
        Some(w) => w.min(avail),
    };
    may_write(a.addr, len).map_err(|e| format!("load: {e}"))?;
    Ok(FileRead {
        addr: a.addr,
        pos: a.pos,
        len,
    })
}

/// The length of the file at `addr` when the last load put it there: `${filesize}` if
/// `${fileaddr}` is `addr`.
pub fn loaded_len(fileaddr: Option<&str>, filesize: Option<&str>, addr: u64) -> Option<u64> {
    if fileaddr.and_then(parse_hex) == Some(addr) {
        filesize.and_then(parse_hex)
    } else {
        None
    }
}

/// `source [addr]`: the script's address (default `${scriptaddr}`).
///
/// # Errors
/// [`ArgError::Usage`], or a bad or missing address.
pub fn script_addr(args: &[String], scriptaddr: Option<&str>) -> Result<u64, ArgError> {
    match args {
        [_] => scriptaddr
            .and_then(parse_hex)
            .ok_or_else(|| ArgError::Bad("source: no address and no ${scriptaddr}".into())),
        [_, a] => parse_hex(a).ok_or_else(|| ArgError::Bad(format!("bad address '{a}'"))),
        _ => Err(ArgError::Usage),
    }
}

/// The range `source` reads at `addr`: `${filesize}` bytes when the last load put the script
/// there (`loaded_len`), else up to [`MAX_SCRIPT`] (plain text ends at its first NUL);
/// halved while it is not readable (a script near the end of RAM), down to 64 bytes.
///
/// # Errors
/// `source: <why the range cannot be read>`.
pub fn script_range(
    addr: u64,
    loaded_len: Option<u64>,
    readable: impl Fn(u64, u64) -> Result<(), String>,
) -> Result<(u64, u64), String> {
    let mut len = loaded_len.map_or(MAX_SCRIPT, |n| n.clamp(1, MAX_SCRIPT));
    while len > 64 && readable(addr, len).is_err() {
        len /= 2;
    }
    readable(addr, len).map_err(|e| format!("source: {e}"))?;
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(ToString::to_string).collect()
    }

    #[test]
    fn load_args() {
        let a = args("load virtio 0:1 40000000 /Image 100 20");
        assert_eq!(
            LoadArgs::parse(&a),
            Ok(LoadArgs {
                iface: "virtio",
                spec: "0:1",
                addr: 0x4000_0000,
                path: "/Image",
                want: Some(0x100),
                pos: 0x20
            })
        );
        assert_eq!(
            LoadArgs::parse(&args("load virtio 0 1")),
            Err(ArgError::Usage)
        );
        for (line, want) in [
            ("load virtio 0 zz /x", "bad address 'zz'"),
            ("load virtio 0 0 /x qq", "bad byte count 'qq'"),
            ("load virtio 0 0 /x 1 rr", "bad position 'rr'"),
        ] {
            assert_eq!(
                LoadArgs::parse(&args(line)),
                Err(ArgError::Bad(want.into()))
            );
        }
    }

    #[test]
    fn file_read_sizes_then_checks_the_whole_range() {
        let a = args("load virtio 0 1000 /f");
        let l = LoadArgs::parse(&a).unwrap();
        let ok = |_: u64, _: u64| Ok(());
        assert_eq!(
            file_read(&l, 0x300, ok),
            Ok(FileRead {
                addr: 0x1000,
                pos: 0,
                len: 0x300
            })
        );
        let a = args("load virtio 0 1000 /f 100 280");
        let l = LoadArgs::parse(&a).unwrap();
        assert_eq!(file_read(&l, 0x300, ok).map(|r| r.len), Ok(0x80));
        assert_eq!(
            file_read(&l, 0x200, ok),
            Err("position 0x280 is beyond the end of /f (0x200 bytes)".into())
        );
        let mut asked = None;
        let r = file_read(&l, 0x300, |a, n| {
            asked = Some((a, n));
            Err("refused: claimed".into())
        });
        assert_eq!(r, Err("load: refused: claimed".into()));
        assert_eq!(asked, Some((0x1000, 0x80)));
    }

    #[test]
    fn loaded_len_only_for_the_last_load() {
        assert_eq!(
            loaded_len(Some("40000000"), Some("1f"), 0x4000_0000),
            Some(0x1f)
        );
        assert_eq!(loaded_len(Some("40000000"), Some("1f"), 0x4000_1000), None);
        assert_eq!(loaded_len(None, Some("1f"), 0), None);
        assert_eq!(loaded_len(Some("0"), None, 0), None);
    }

    #[test]
    fn script_address_and_range() {
        assert_eq!(script_addr(&args("source"), Some("2000")), Ok(0x2000));
        assert_eq!(script_addr(&args("source 30"), None), Ok(0x30));
        assert_eq!(
            script_addr(&args("source"), None),
            Err(ArgError::Bad(
                "source: no address and no ${scriptaddr}".into()
            ))
        );
        assert_eq!(script_addr(&args("source 1 2"), None), Err(ArgError::Usage));
        // Just loaded: its size; else 1 MiB shrunk to what is readable.
        assert_eq!(
            script_range(0x10, Some(0x40), |_, _| Ok(())),
            Ok((0x10, 0x40))
        );
        assert_eq!(script_range(0x10, Some(0), |_, _| Ok(())), Ok((0x10, 1)));
        let end = 0x1000_0000u64;
        let (a, n) = script_range(end - 0x1000, None, |a, n| {
            if a + n <= end {
                Ok(())
            } else {
                Err("not RAM".into())
            }
        })
        .unwrap();
        assert!(a + n <= end && n >= 0x800, "{n:#x}");
        assert_eq!(
            script_range(end, None, |_, _| Err("not RAM".into())),
            Err("source: not RAM".into())
        );
    }
}
