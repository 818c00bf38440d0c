//! `setexpr`, as U-Boot 2023.01's `cmd/setexpr.c` (without `fmt`, which
//! Debian's build leaves out):
//!
//! ```text
//! setexpr[.b|.w|.l|.q|.s] name [*]value            load a value
//! setexpr[.b|.w|.l|.q|.s] name [*]a op [*]b        op: + - * / % & | ^  (.s: + only)
//! setexpr name sub|gsub regex replacement [string]
//! ```
//!
//! Numbers are hex (`0x` optional, read up to the first non-hex digit as
//! U-Boot's `hextoul`); `*addr` reads 1/2/4/8 bytes (little-endian) at
//! `addr` (default 4), or with `.s` a NUL-terminated string of at most
//! 64 KiB. Results are stored as lowercase hex without `0x` (`%lx`);
//! arithmetic is 64-bit and wraps; `/ 0` gives 0 and `% 0` the dividend,
//! as U-Boot's division does on arm64.
//!
//! `sub` / `gsub` use U-Boot's regex engine (see `crate::slre`), `\0`..`\9`
//! in the replacement for captures; they print `name=result`, and fail with
//! `<string>: No match` when nothing matches (2023.01 behaviour).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;

use super::{data_width, read_cstring, read_mem, Width};
use crate::num::hextoul;
use crate::platform::Platform;
use crate::sh_println;
use crate::shell::{CmdError, CmdResult, Shell};
use crate::slre::{self, Cap, Regex};

/// U-Boot's buffer sizes for `sub` / `gsub` (`SLRE_BUFSZ`, `SLRE_PATSZ`).
const DATA_BUF: usize = 16384;
const PAT_BUF: usize = 4096;
/// Longest string `*addr` yields with `.s`.
pub(super) const MAX_STR: usize = 64 * 1024;

/// A value: an integer, or a string with `.s`.
enum Arg {
    Int(u64),
    Str(String),
}

/// U-Boot's `get_arg`.
fn get_arg<P: Platform>(sh: &mut Shell<P>, s: &str, w: Width) -> Result<Arg, CmdError> {
    let Some(addr) = s.strip_prefix('*') else {
        return match w {
            // 2023.01 refuses a literal with .s (silently, status 1).
            Width::Str => Err(CmdError::Failed),
            _ => Ok(Arg::Int(hextoul(s))),
        };
    };
    let addr = hextoul(addr);
    let n = match w {
        Width::Str => return read_cstring(sh, "setexpr", addr, MAX_STR).map(Arg::Str),
        Width::Bytes(n) => n,
        // An unknown suffix reads a `ulong`, as U-Boot's `default:` case.
        Width::Invalid => 8,
    };
    let bytes = read_mem(sh, "setexpr", addr, n)?;
    let v = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok(Arg::Int(v))
}

fn set_var<P: Platform>(sh: &mut Shell<P>, name: &str, value: &str) -> CmdResult {
    sh.env
        .set(name, value)
        .map_err(|e| CmdError::Msg(e.to_string()))
}

pub(super) fn do_setexpr<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let argc = args.len();
    if argc < 3 {
        return Err(CmdError::Usage);
    }
    let w = data_width(&args[0], 4);
    let a = get_arg(sh, &args[2], w)?;
    if argc == 4 || argc > 6 {
        return Err(CmdError::Usage);
    }
    let name = &args[1];
    if argc == 3 {
        return match a {
            Arg::Str(s) => set_var(sh, name, &s),
            Arg::Int(v) => set_var(sh, name, &format!("{v:x}")),
        };
    }
    match args[2].as_str() {
        "gsub" => return regex_sub_var(sh, name, &args[3], &args[4], args.get(5), true),
        "sub" => return regex_sub_var(sh, name, &args[3], &args[4], args.get(5), false),
        _ => {}
    }
    if argc != 5 || args[3].len() != 1 {
        return Err(CmdError::Usage);
    }
    let b = get_arg(sh, &args[4], w)?;
    let op = args[3].as_bytes()[0];
    match (a, b) {
        (Arg::Str(a), Arg::Str(b)) => match op {
            b'+' => set_var(sh, name, &(a + &b)),
            _ => Err(CmdError::Msg("invalid op".into())),
        },
        (Arg::Int(a), Arg::Int(b)) => {
            let v = match op {
                b'|' => a | b,
                b'&' => a & b,
                b'+' => a.wrapping_add(b),
                b'^' => a ^ b,
                b'-' => a.wrapping_sub(b),
                b'*' => a.wrapping_mul(b),
                // arm64's udiv: x / 0 = 0, so x % 0 = x.
                b'/' => a.checked_div(b).unwrap_or(0),
                b'%' => a.checked_rem(b).unwrap_or(a),
                _ => return Err(CmdError::Msg("invalid op".into())),
            };
            set_var(sh, name, &format!("{v:x}"))
        }
        // Both come from the same width: cannot mix.
        _ => Err(CmdError::Msg("invalid op".into())),
    }
}

/// `setexpr name [g]sub r s [t]` (U-Boot's `regex_sub_var`).
fn regex_sub_var<P: Platform>(
    sh: &mut Shell<P>,
    name: &str,
    r: &str,
    s: &str,
    t: Option<&String>,
    global: bool,
) -> CmdResult {
    let re = Regex::compile(r).map_err(|e| CmdError::Msg(format!("Error compiling regex: {e}")))?;
    let t = match t {
        Some(t) => t.clone(),
        None => match sh.env.get(name) {
            Some(v) => v.into(),
            None => {
                return Err(CmdError::Msg(format!(
                    "## Error: variable \"{name}\" not defined"
                )))
            }
        },
    };
    if t.len() + 1 > DATA_BUF {
        return Err(CmdError::Msg(format!(
            "## error: subst buffer overflow: have {DATA_BUF}, need {}",
            t.len() + 1
        )));
    }
    let data = regex_sub(&re, t.as_bytes(), s.as_bytes(), global).map_err(|e| match e {
        SubError::NoMatch => CmdError::Msg(format!("{t}: No match")),
        SubError::Msg(m) => CmdError::Msg(m),
    })?;
    let data = slre::to_text(&data);
    sh_println!(sh, "{}={}", name, data);
    set_var(sh, name, &data)
}

/// Why a substitution failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubError {
    /// The first match attempt found nothing.
    NoMatch,
    /// A one-line message.
    Msg(String),
}

/// First position of `needle` in `hay` (an empty needle is found at 0).
fn memstr(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// U-Boot's `substitute()`: replace the first `old` at or after `from` in
/// `buf` with `new`, where `buf` may grow to `cap` bytes (counted from
/// `from`, like U-Boot's check). Returns the position after `new`.
fn substitute(
    buf: &mut Vec<u8>,
    from: usize,
    cap: usize,
    old: &[u8],
    new: &[u8],
) -> Result<Option<usize>, SubError> {
    let Some(p) = buf.get(from..).and_then(|h| memstr(h, old)) else {
        return Ok(None);
    };
    let p = from + p;
    if buf.len() + new.len() > cap.saturating_sub(from) + old.len() {
        return Err(SubError::Msg(
            "## error: substitution buffer overflow".into(),
        ));
    }
    buf.splice(p..p + old.len(), new.iter().copied());
    Ok(Some(p + new.len()))
}

/// U-Boot's `setexpr_regex_sub()` on `data`: replace the first (or, with
/// `global`, every) match of `re` with `s`, where `\0`..`\9` in `s` stand
/// for the captures. Faithful to U-Boot, including that the text replaced
/// is the first occurrence of the matched text from the search position
/// (`sub 'b$' Z` on `abab` gives `aZab`). A `gsub` whose regex matches
/// the empty string with an empty replacement, which never ends in U-Boot,
/// is refused.
pub(crate) fn regex_sub(
    re: &Regex,
    data: &[u8],
    s: &[u8],
    global: bool,
) -> Result<Vec<u8>, SubError> {
    let mut data = data.to_vec();
    let steps = Cell::new(slre::MAX_STEPS);
    let mut datap = 0usize;
    let mut first = true;
    loop {
        let mut caps = alloc::vec![Cap::default(); re.num_caps + 2];
        let hay = data.get(datap..).unwrap_or(&[]);
        let found = re
            .find(hay, &mut caps, &steps)
            .map_err(|e| SubError::Msg(format!("setexpr: {e}")))?;
        if !found {
            if first {
                return Err(SubError::NoMatch);
            }
            break;
        }
        first = false;
        let text = |c: &Cap| hay.get(c.start..c.start + c.len).unwrap_or(&[]).to_vec();
        let old = text(&caps[0]);
        if s.len() + 1 >= PAT_BUF {
            return Err(SubError::Msg(format!(
                "## error: pattern buffer overflow: have {PAT_BUF}, need {}",
                s.len() + 1
            )));
        }
        let mut nbuf = s.to_vec();
        for (i, cap) in caps.iter().enumerate().take(10) {
            if cap.len == 0 {
                break;
            }
            let backref = [b'\\', b'0' + i as u8];
            let sub = text(cap);
            let mut np = 0;
            while let Some(next) = substitute(&mut nbuf, np, PAT_BUF, &backref, &sub)? {
                np = next;
            }
        }
        if old.is_empty() && nbuf.is_empty() && global {
            return Err(SubError::Msg(
                "setexpr: the regex matches an empty string: gsub would never end".into(),
            ));
        }
        match substitute(&mut data, datap, DATA_BUF, &old, &nbuf)? {
            Some(next) => datap = next,
            None => break,
        }
        if !global {
            break;
        }
    }
    Ok(data)
}
