//! `itest[.b|.w|.l|.q|.s] a op b`, as U-Boot's `cmd/itest.c`.
//!
//! Integers are hex (`hextoul`), cut to the width (default 4 bytes) and
//! compared as C `long`s (so `itest.q ffffffffffffffff -lt 0` is true);
//! `*addr` reads the value from memory. With `.s` the operands are strings:
//! `*addr` is a NUL-terminated string in memory, `${name}` (written so that
//! the shell leaves it alone, e.g. in single quotes) an environment
//! variable — an unset one compares as the empty string, where U-Boot
//! would read through a NULL pointer.
//!
//! Operators: `-lt <`, `-gt >`, `-eq ==`, `-ne != <>`, `-ge >=`, `-le <=`.

use alloc::format;
use alloc::string::String;
use core::cmp::Ordering;

use super::setexpr::MAX_STR;
use super::{data_width, read_cstring, read_mem, Width};
use crate::num::hextoul;
use crate::platform::Platform;
use crate::shell::{CmdError, CmdResult, Shell};

#[derive(Clone, Copy)]
enum Rel {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

const OPS: [(&str, Rel); 13] = [
    ("-lt", Rel::Lt),
    ("<", Rel::Lt),
    ("-gt", Rel::Gt),
    (">", Rel::Gt),
    ("-eq", Rel::Eq),
    ("==", Rel::Eq),
    ("-ne", Rel::Ne),
    ("!=", Rel::Ne),
    ("<>", Rel::Ne),
    ("-ge", Rel::Ge),
    (">=", Rel::Ge),
    ("-le", Rel::Le),
    ("<=", Rel::Le),
];

fn holds(rel: Rel, ord: Ordering) -> bool {
    match rel {
        Rel::Eq => ord == Ordering::Equal,
        Rel::Ne => ord != Ordering::Equal,
        Rel::Lt => ord == Ordering::Less,
        Rel::Gt => ord == Ordering::Greater,
        Rel::Le => ord != Ordering::Greater,
        Rel::Ge => ord != Ordering::Less,
    }
}

/// U-Boot's `evalexp`: a value of `w` bytes as a C `long`.
fn int_value<P: Platform>(sh: &mut Shell<P>, s: &str, w: usize) -> Result<i64, CmdError> {
    if let Some(addr) = s.strip_prefix('*') {
        let bytes = read_mem(sh, "itest", hextoul(addr), w)?;
        let v = bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        return Ok(v as i64);
    }
    let v = hextoul(s);
    Ok(if w >= 8 {
        v as i64
    } else {
        (v & ((1u64 << (w * 8)) - 1)) as i64
    })
}

/// U-Boot's `evalstr`.
fn str_value<P: Platform>(sh: &mut Shell<P>, s: &str) -> Result<String, CmdError> {
    if let Some(addr) = s.strip_prefix('*') {
        return read_cstring(sh, "itest", hextoul(addr), MAX_STR);
    }
    if let Some(inner) = s.strip_prefix('$') {
        // `${name}`; anything else after `$` is U-Boot's NULL.
        let name = inner
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map_or("", |(n, _)| n);
        return Ok(sh.env.get(name).unwrap_or("").into());
    }
    Ok(s.into())
}

pub(super) fn do_itest<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let [cmd, a, op, b] = args else {
        return Err(CmdError::Usage);
    };
    let w = data_width(cmd, 4);
    if matches!(w, Width::Invalid) {
        return Err(CmdError::Msg("Invalid data width specifier".into()));
    }
    let Some(&(_, rel)) = OPS.iter().find(|(s, _)| s == op) else {
        return Err(CmdError::Msg(format!("Unknown operator '{op}'")));
    };
    let ord = match w {
        Width::Str => str_value(sh, a)?
            .as_bytes()
            .cmp(str_value(sh, b)?.as_bytes()),
        Width::Bytes(n) => int_value(sh, a, n)?.cmp(&int_value(sh, b, n)?),
        Width::Invalid => Ordering::Equal,
    };
    if holds(rel, ord) {
        Ok(())
    } else {
        Err(CmdError::Failed)
    }
}
