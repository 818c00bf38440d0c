//! `test` (and its alias `[`), evaluated exactly like U-Boot's
//! `cmd/test.c`.
//!
//! U-Boot's `test` is not a recursive grammar: it walks the arguments left
//! to right. At each position it looks for a binary operator in the
//! *second* argument (`=`, `!=`, `<`, `>`, `-eq` ... `-ge`, and `==`, `=~`
//! here), else for a unary operator or connective in the first (`!`, `-o`,
//! `-a`, `-z`, `-n`, `-e`). `!` negates the next primary only; `-o` / `-a`
//! combine the value so far with the next primary, strictly left to right
//! (no precedence: `a -o b -a c` is `(a or b) and c`). Numbers are read
//! with C's `strtol(s, NULL, 0)` rules as U-Boot's `simple_strtol`: `0x`
//! hex, leading-`0` octal, decimal, stopping at the first non-digit (so
//! `1ffffff` is 1 and `abc` is 0).
//!
//! Like U-Boot, an argument list it cannot read (a word where an operator
//! should be, a missing operand) ends the evaluation with the result
//! *true*; `test` never fails with an error message.
//!
//! With one argument, `test s` is true when `s` is not empty — and not
//! `-n`, so that `test -n $unset` stays false (U-Boot since 2026.07; 2023.01
//! answered false for every single argument). No argument is false.

use alloc::string::String;

use crate::num::strtol;
use crate::slre::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Not,
    Or,
    And,
    StrEmpty,
    StrNotEmpty,
    StrEq,
    StrNe,
    StrLt,
    StrGt,
    IntEq,
    IntNe,
    IntLt,
    IntLe,
    IntGt,
    IntGe,
    FileExists,
    Regex,
}

/// `(argument index the operator is looked for at, spelling, op, arguments
/// consumed)`, in U-Boot's order (binary operators first).
const OPS: [(usize, &str, Op, usize); 18] = [
    (1, "=", Op::StrEq, 3),
    (1, "==", Op::StrEq, 3),
    (1, "!=", Op::StrNe, 3),
    (1, "<", Op::StrLt, 3),
    (1, ">", Op::StrGt, 3),
    (1, "-eq", Op::IntEq, 3),
    (1, "-ne", Op::IntNe, 3),
    (1, "-lt", Op::IntLt, 3),
    (1, "-le", Op::IntLe, 3),
    (1, "-gt", Op::IntGt, 3),
    (1, "-ge", Op::IntGe, 3),
    (0, "!", Op::Not, 1),
    (0, "-o", Op::Or, 1),
    (0, "-a", Op::And, 1),
    (0, "-z", Op::StrEmpty, 2),
    (0, "-n", Op::StrNotEmpty, 2),
    (0, "-e", Op::FileExists, 4),
    (1, "=~", Op::Regex, 3),
];

/// What `test` needs from outside: file tests and a place for messages.
pub(crate) trait TestEnv {
    /// `test -e iface dev[:part] path`.
    fn file_exists(&mut self, iface: &str, dev_part: &str, path: &str) -> bool;
    /// Print one line (regex errors).
    fn say(&mut self, line: &str);
}

/// Evaluate `args` (the arguments after `test`).
pub(crate) fn eval(args: &[String], env: &mut dyn TestEnv) -> bool {
    match args {
        [] => false,
        [a] => !a.is_empty() && a != "-n",
        _ => eval_list(args, env),
    }
}

fn find_op(ap: &[String]) -> Option<(Op, usize)> {
    OPS.iter().find_map(|&(at, s, op, adv)| {
        let word = ap.get(at)?;
        // U-Boot skips an entry when fewer than `at + 1` arguments remain.
        (ap.len() > at && word == s).then_some((op, adv))
    })
}

fn int(s: &str) -> i64 {
    strtol(s, 0)
}

fn eval_list(args: &[String], env: &mut dyn TestEnv) -> bool {
    let mut ap = args;
    let mut expr = false;
    let mut last_expr = false;
    let mut pending_not = false;
    let mut last_binop: Option<Op> = None;
    while !ap.is_empty() {
        let Some((op, adv)) = find_op(ap) else {
            return true;
        };
        if ap.len() < adv {
            return true;
        }
        let a = |i: usize| ap.get(i).map_or("", String::as_str);
        match op {
            Op::StrEmpty => expr = a(1).is_empty(),
            Op::StrNotEmpty => expr = !a(1).is_empty(),
            Op::StrEq => expr = a(0) == a(2),
            Op::StrNe => expr = a(0) != a(2),
            Op::StrLt => expr = a(0) < a(2),
            Op::StrGt => expr = a(0) > a(2),
            Op::IntEq => expr = int(a(0)) == int(a(2)),
            Op::IntNe => expr = int(a(0)) != int(a(2)),
            Op::IntLt => expr = int(a(0)) < int(a(2)),
            Op::IntLe => expr = int(a(0)) <= int(a(2)),
            Op::IntGt => expr = int(a(0)) > int(a(2)),
            Op::IntGe => expr = int(a(0)) >= int(a(2)),
            Op::FileExists => expr = env.file_exists(a(1), a(2), a(3)),
            Op::Regex => expr = regex_match(a(0), a(2), env),
            Op::Not | Op::Or | Op::And => {}
        }
        match op {
            Op::Or | Op::And => {
                last_expr = expr;
                last_binop = Some(op);
            }
            Op::Not => pending_not = !pending_not,
            _ => {
                if pending_not {
                    expr = !expr;
                    pending_not = false;
                }
                match last_binop.take() {
                    Some(Op::Or) => expr = last_expr || expr,
                    Some(Op::And) => expr = last_expr && expr,
                    _ => {}
                }
            }
        }
        ap = ap.get(adv..).unwrap_or(&[]);
    }
    expr
}

/// `s =~ re` with U-Boot's regex subset (see `crate::slre`).
fn regex_match(s: &str, re: &str, env: &mut dyn TestEnv) -> bool {
    match Regex::compile(re) {
        Ok(r) => match r.is_match(s.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                env.say(&alloc::format!("test: {e}"));
                false
            }
        },
        Err(e) => {
            env.say(&alloc::format!("Error compiling regex: {e}"));
            false
        }
    }
}
