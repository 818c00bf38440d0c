//! Memory commands: md, mw, cmp, crc32 (U-Boot compatible output).
//!
//! Numbers are hexadecimal (`0x` optional). Every range is checked with
//! `Platform::mem_check` before any access, and memory is accessed in
//! bounded chunks so huge ranges never need huge buffers. Multi-byte values
//! are little-endian, as on arm64.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use crate::num::parse_hex;
use crate::platform::Platform;
use crate::sh_println;
use crate::shell::{CmdError, CmdResult, Shell};

/// Bytes per memory access chunk.
const CHUNK: usize = 4096;
/// Bytes shown per `md` line.
const LINE_BYTES: usize = 16;
/// Default `md` object count (U-Boot's `dp_last_length`).
const MD_DEFAULT_COUNT: u64 = 0x40;

/// Object size from the command suffix: none → 4, `.b` 1, `.w` 2, `.l` 4,
/// `.q` 8; anything else is a usage error.
fn data_size(cmd: &str) -> Result<usize, CmdError> {
    match cmd.split_once('.') {
        None => Ok(4),
        Some((_, "b")) => Ok(1),
        Some((_, "w")) => Ok(2),
        Some((_, "l")) => Ok(4),
        Some((_, "q")) => Ok(8),
        Some(_) => Err(CmdError::Usage),
    }
}

/// The command's base name (without suffix), for messages.
fn base(cmd: &str) -> &str {
    cmd.split_once('.').map_or(cmd, |(b, _)| b)
}

fn hex(cmd: &str, s: &str) -> Result<u64, CmdError> {
    parse_hex(s).ok_or_else(|| CmdError::Msg(format!("{}: invalid number '{}'", base(cmd), s)))
}

/// `count` objects of `size` bytes, in bytes.
fn byte_len(cmd: &str, count: u64, size: usize) -> Result<u64, CmdError> {
    count
        .checked_mul(size as u64)
        .ok_or_else(|| CmdError::Msg(format!("{}: count too large", base(cmd))))
}

/// Validate a range with the platform.
fn check<P: Platform>(
    sh: &Shell<P>,
    cmd: &str,
    addr: u64,
    len: u64,
    write: bool,
) -> Result<(), CmdError> {
    if addr.checked_add(len).is_none() {
        return Err(CmdError::Msg(format!(
            "{}: range {:#x} + {:#x} wraps around",
            base(cmd),
            addr,
            len
        )));
    }
    sh.platform
        .mem_check(addr, len, write)
        .map_err(|reason| CmdError::Msg(format!("{}: {}", base(cmd), reason)))
}

/// Little-endian value of up to 8 bytes.
fn le_value(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn type_name(size: usize) -> &'static str {
    match size {
        8 => "double word",
        4 => "word",
        2 => "halfword",
        _ => "byte",
    }
}

/// C's `%#0*lx` with the given width (0 is printed without `0x`).
fn c_alt_hex(v: u64, width: usize) -> String {
    if v == 0 {
        format!("{:0width$}", 0)
    } else {
        format!("{v:#0width$x}")
    }
}

/// `md[.b|.w|.l|.q] addr [count]`
pub(super) fn do_md<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let (cmd, addr_s, count_s) = match args {
        [c, a] => (c, a, None),
        [c, a, n] => (c, a, Some(n)),
        _ => return Err(CmdError::Usage),
    };
    let size = data_size(cmd)?;
    let addr = hex(cmd, addr_s)?;
    let count = match count_s {
        Some(n) => hex(cmd, n)?,
        None => MD_DEFAULT_COUNT,
    };
    check(sh, cmd, addr, byte_len(cmd, count, size)?, false)?;

    let per_line = LINE_BYTES / size;
    let mut remaining = count;
    let mut line_addr = addr;
    let mut buf = [0u8; LINE_BYTES];
    while remaining > 0 {
        // Objects on this line (<= per_line, so the casts are lossless).
        let n = remaining.min(per_line as u64) as usize;
        let data = buf.get_mut(..n * size).unwrap_or_default();
        sh.platform.mem_read(line_addr, data);

        let mut line = format!("{line_addr:08x}:");
        for item in data.chunks(size) {
            line.push_str(&format!(" {:0w$x}", le_value(item), w = size * 2));
        }
        for _ in n..per_line {
            line.push_str(&" ".repeat(size * 2 + 1));
        }
        line.push_str("  ");
        line.extend(data.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        }));
        sh_println!(sh, "{}", line);

        line_addr = line_addr.wrapping_add((n * size) as u64);
        remaining -= n as u64;
        if sh.ctrlc() {
            break;
        }
    }
    Ok(())
}

/// `mw[.b|.w|.l|.q] addr value [count]`
pub(super) fn do_mw<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let (cmd, addr_s, val_s, count_s) = match args {
        [c, a, v] => (c, a, v, None),
        [c, a, v, n] => (c, a, v, Some(n)),
        _ => return Err(CmdError::Usage),
    };
    let size = data_size(cmd)?;
    let addr = hex(cmd, addr_s)?;
    let value = hex(cmd, val_s)?;
    let count = match count_s {
        Some(n) => hex(cmd, n)?,
        None => 1,
    };
    if size < 8 && value >> (size * 8) != 0 {
        return Err(CmdError::Msg(format!(
            "{}: value {:#x} does not fit in {} byte(s)",
            base(cmd),
            value,
            size
        )));
    }
    let len = byte_len(cmd, count, size)?;
    check(sh, cmd, addr, len, true)?;

    // A chunk-sized buffer filled with the value, written repeatedly.
    let bytes = value.to_le_bytes();
    let item = bytes.get(..size).unwrap_or(&bytes);
    let mut pattern = vec![0u8; CHUNK];
    for slot in pattern.chunks_mut(size) {
        for (d, s) in slot.iter_mut().zip(item) {
            *d = *s;
        }
    }
    let mut off: u64 = 0;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        sh.platform
            .mem_write(addr.wrapping_add(off), pattern.get(..n).unwrap_or(&pattern));
        off += n as u64;
    }
    Ok(())
}

/// `cmp[.b|.w|.l|.q] addr1 addr2 count`
pub(super) fn do_cmp<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let [cmd, a1, a2, n] = args else {
        return Err(CmdError::Usage);
    };
    let size = data_size(cmd)?;
    let addr1 = hex(cmd, a1)?;
    let addr2 = hex(cmd, a2)?;
    let count = hex(cmd, n)?;
    let len = byte_len(cmd, count, size)?;
    check(sh, cmd, addr1, len, false)?;
    check(sh, cmd, addr2, len, false)?;

    let ty = type_name(size);
    let mut buf1 = vec![0u8; CHUNK];
    let mut buf2 = vec![0u8; CHUNK];
    let mut ngood: u64 = 0;
    let mut off: u64 = 0;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        let (Some(b1), Some(b2)) = (buf1.get_mut(..n), buf2.get_mut(..n)) else {
            break;
        };
        sh.platform.mem_read(addr1.wrapping_add(off), b1);
        sh.platform.mem_read(addr2.wrapping_add(off), b2);
        for (i, (w1, w2)) in b1.chunks(size).zip(b2.chunks(size)).enumerate() {
            let (v1, v2) = (le_value(w1), le_value(w2));
            if v1 != v2 {
                let at = off.wrapping_add((i * size) as u64);
                sh_println!(
                    sh,
                    "{ty} at 0x{:08x} ({}) != {ty} at 0x{:08x} ({})",
                    addr1.wrapping_add(at),
                    c_alt_hex(v1, size),
                    addr2.wrapping_add(at),
                    c_alt_hex(v2, size)
                );
                sh_println!(sh, "Total of {} {}(s) were the same", ngood, ty);
                return Err(CmdError::Failed);
            }
            ngood += 1;
        }
        off += n as u64;
    }
    sh_println!(sh, "Total of {} {}(s) were the same", ngood, ty);
    Ok(())
}

/// Where `crc32` stores its result besides printing it.
enum CrcDest {
    None,
    Var(String),
    Mem(u64),
}

/// `crc32 addr size [var|*addr]`
pub(super) fn do_crc32<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let (cmd, addr_s, size_s, dest_s) = match args {
        [c, a, s] => (c, a, s, None),
        [c, a, s, d] => (c, a, s, Some(d)),
        _ => return Err(CmdError::Usage),
    };
    let addr = hex(cmd, addr_s)?;
    let len = hex(cmd, size_s)?;
    check(sh, cmd, addr, len, false)?;
    // Validate the destination before doing the work.
    let dest = match dest_s {
        None => CrcDest::None,
        Some(d) => match d.strip_prefix('*') {
            Some(a) => {
                let a = hex(cmd, a)?;
                check(sh, cmd, a, 4, true)?;
                CrcDest::Mem(a)
            }
            None => {
                crate::env::check_name(d).map_err(|e| CmdError::Msg(e.to_string()))?;
                CrcDest::Var(d.clone())
            }
        },
    };

    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut off: u64 = 0;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        let Some(chunk) = buf.get_mut(..n) else {
            break;
        };
        sh.platform.mem_read(addr.wrapping_add(off), chunk);
        hasher.update(chunk);
        off += n as u64;
    }
    let crc = hasher.finalize();
    sh_println!(
        sh,
        "crc32 for {:08x} ... {:08x} ==> {:08x}",
        addr,
        addr.wrapping_add(len).wrapping_sub(1),
        crc
    );
    match dest {
        CrcDest::None => Ok(()),
        // U-Boot stores the digest bytes, i.e. big-endian.
        CrcDest::Mem(a) => {
            sh.platform.mem_write(a, &crc.to_be_bytes());
            Ok(())
        }
        CrcDest::Var(name) => sh
            .env
            .set(&name, &format!("{crc:08x}"))
            .map_err(|e| CmdError::Msg(e.to_string())),
    }
}
