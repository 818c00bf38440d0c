//! The `test` expression evaluator (POSIX/U-Boot subset).
//!
//! ```text
//! expr    := and { -o and }
//! and     := not { -a not }
//! not     := { ! } primary
//! primary := str1 binop str2 | -n str | -z str | str
//! ```
//!
//! `-a` binds tighter than `-o`; `!` is counted in a loop (no recursion),
//! so no argument list can exhaust the stack.

use alloc::format;
use alloc::string::String;

use crate::num::parse_signed;

/// Evaluate `args` (the arguments after `test`). No arguments is false.
pub(crate) fn eval(args: &[String]) -> Result<bool, String> {
    if args.is_empty() {
        return Ok(false);
    }
    let mut p = Parser { args, pos: 0 };
    let v = p.or()?;
    match p.peek(0) {
        None => Ok(v),
        Some(extra) => Err(format!("test: unexpected '{extra}'")),
    }
}

struct Parser<'a> {
    args: &'a [String],
    pos: usize,
}

fn is_binary(op: &str) -> bool {
    matches!(
        op,
        "=" | "==" | "!=" | "<" | ">" | "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge"
    )
}

fn number(s: &str) -> Result<i128, String> {
    parse_signed(s).ok_or_else(|| format!("test: invalid number '{s}'"))
}

impl<'a> Parser<'a> {
    fn peek(&self, k: usize) -> Option<&'a str> {
        self.args.get(self.pos.checked_add(k)?).map(String::as_str)
    }

    fn bump(&mut self, k: usize) {
        self.pos = self.pos.saturating_add(k);
    }

    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.peek(0) == Some("-o") {
            self.bump(1);
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.not()?;
        while self.peek(0) == Some("-a") {
            self.bump(1);
            let r = self.not()?;
            v = v && r;
        }
        Ok(v)
    }

    fn not(&mut self) -> Result<bool, String> {
        let mut negate = false;
        // A `!` with nothing after it is a plain (non-empty) string.
        while self.peek(0) == Some("!") && self.peek(1).is_some() {
            negate = !negate;
            self.bump(1);
        }
        Ok(self.primary()? != negate)
    }

    fn primary(&mut self) -> Result<bool, String> {
        let Some(a) = self.peek(0) else {
            return Err("test: missing argument".into());
        };
        if let (Some(op), Some(b)) = (self.peek(1), self.peek(2)) {
            if is_binary(op) {
                self.bump(3);
                return Ok(match op {
                    "=" | "==" => a == b,
                    "!=" => a != b,
                    "<" => a < b,
                    ">" => a > b,
                    _ => {
                        let (x, y) = (number(a)?, number(b)?);
                        match op {
                            "-eq" => x == y,
                            "-ne" => x != y,
                            "-lt" => x < y,
                            "-le" => x <= y,
                            "-gt" => x > y,
                            _ => x >= y, // "-ge"
                        }
                    }
                });
            }
        }
        if let (Some(op @ ("-n" | "-z")), Some(s)) = (Some(a), self.peek(1)) {
            let empty = s.is_empty();
            self.bump(2);
            return Ok(if op == "-n" { !empty } else { empty });
        }
        self.bump(1);
        Ok(!a.is_empty())
    }
}
