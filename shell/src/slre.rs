//! U-Boot's regular expressions: a port of `lib/slre.c` (SLRE 1.0 by
//! Sergey Lyubka, as in U-Boot 2023.01), used by `setexpr sub/gsub` and
//! `test =~`. The same byte code, the same matcher, so the same answers —
//! including SLRE's quirks:
//!
//! * syntax: `^` `$` `.` `[set]` `[^set]` (no ranges: `[a-z]` is the three
//!   characters `a`, `-`, `z`), `\s` `\S` `\d`, `\n` `\r` `\t` `\0`, `\x`
//!   for a literal `x`, `(` `)` (captures), `|`, `*` `+` `?` and the
//!   non-greedy `*?` `+?`;
//! * the compiled program is limited to 256 bytes of code and 256 of
//!   literal data ("RE is too long ...");
//! * loops never backtrack into a shorter repetition once the rest matched
//!   with the longest one ... exactly as `loop_greedy` does;
//! * an unanchored search on an empty string never matches (not even
//!   `x*`).
//!
//! What differs from U-Boot is only what U-Boot does not survive: the
//! matcher's work is bounded ([`MAX_STEPS`] steps per command, recursion at
//! most [`MAX_DEPTH`] deep), so a pattern like `(a*)*` on a long string
//! ends with an error instead of hanging or overflowing the stack.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

/// Most matcher steps one command may spend (over all its matches).
pub(crate) const MAX_STEPS: u32 = 4_000_000;
/// Deepest recursion of the matcher.
pub(crate) const MAX_DEPTH: u32 = 64;
/// SLRE's code and data array sizes.
const CODE_MAX: usize = 256;
const DATA_MAX: usize = 256;

// Opcodes (slre.c's enum).
const END: u8 = 0;
const BRANCH: u8 = 1;
const ANY: u8 = 2;
const EXACT: u8 = 3;
const ANYOF: u8 = 4;
const ANYBUT: u8 = 5;
const OPEN: u8 = 6;
const CLOSE: u8 = 7;
const BOL: u8 = 8;
const EOL: u8 = 9;
const STAR: u8 = 10;
const PLUS: u8 = 11;
const STARQ: u8 = 12;
const PLUSQ: u8 = 13;
const QUEST: u8 = 14;
const SPACE: u8 = 15;
const NONSPACE: u8 = 16;
const DIGIT: u8 = 17;

const META: &[u8] = b"|.^$*+?()[\\";

/// Why matching stopped without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchError {
    TooManySteps,
    TooDeep,
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchError::TooManySteps => {
                write!(f, "regex needs too much work (more than {MAX_STEPS} steps)")
            }
            MatchError::TooDeep => write!(f, "regex too complex (nesting over {MAX_DEPTH})"),
        }
    }
}

/// A capture: byte offset and length in the searched text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cap {
    pub start: usize,
    pub len: usize,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) struct Regex {
    code: Vec<u8>,
    data: Vec<u8>,
    /// Number of `(` groups.
    pub num_caps: usize,
    anchored: bool,
}

/// Compilation state (slre.c's `struct slre` while compiling).
struct Compiler<'a> {
    re: &'a [u8],
    i: usize,
    code: Vec<u8>,
    data: Vec<u8>,
    num_caps: usize,
    err: Option<&'static str>,
}

impl Compiler<'_> {
    fn peek(&self) -> u8 {
        self.re.get(self.i).copied().unwrap_or(0)
    }

    fn next(&mut self) -> u8 {
        let c = self.peek();
        self.i = self.i.saturating_add(1);
        c
    }

    fn fail(&mut self, msg: &'static str) {
        if self.err.is_none() {
            self.err = Some(msg);
        }
    }

    fn code_at(&self, pc: usize) -> u8 {
        self.code.get(pc).copied().unwrap_or(END)
    }

    fn set_code(&mut self, pc: usize, v: u8) {
        if let Some(c) = self.code.get_mut(pc) {
            *c = v;
        }
    }

    fn emit(&mut self, v: u8) {
        if self.code.len() >= CODE_MAX {
            self.fail("RE is too long (code overflow)");
        } else {
            self.code.push(v);
        }
    }

    fn store(&mut self, ch: u8) {
        if self.data.len() >= DATA_MAX {
            self.fail("RE is too long (data overflow)");
        } else {
            self.data.push(ch);
        }
    }

    fn set_jump_offset(&mut self, pc: usize, offset: usize) {
        let jump = self.code.len().saturating_sub(offset);
        if jump > 0xff {
            self.fail("Jump offset is too big");
        } else {
            self.set_code(pc, jump as u8);
        }
    }

    fn data_len_u8(&self) -> u8 {
        // data.len() <= DATA_MAX == 256; 256 only after an overflow error.
        self.data.len().min(0xff) as u8
    }

    fn exact(&mut self) {
        let old = self.data.len();
        while self.peek() != 0 && !META.contains(&self.peek()) {
            let c = self.next();
            self.store(c);
        }
        self.emit(EXACT);
        self.emit(old.min(0xff) as u8);
        self.emit(self.data.len().saturating_sub(old).min(0xff) as u8);
    }

    /// `\x` escapes: a character, or an opcode in the high byte.
    fn escape_char(&mut self) -> u16 {
        match self.next() {
            b'n' => u16::from(b'\n'),
            b'r' => u16::from(b'\r'),
            b't' => u16::from(b'\t'),
            b'0' => 0,
            b'S' => u16::from(NONSPACE) << 8,
            b's' => u16::from(SPACE) << 8,
            b'd' => u16::from(DIGIT) << 8,
            c => u16::from(c),
        }
    }

    fn anyof(&mut self) {
        let old = self.data.len();
        let mut op = ANYOF;
        if self.peek() == b'^' {
            op = ANYBUT;
            self.next();
        }
        while self.peek() != 0 {
            match self.next() {
                b']' => {
                    self.emit(op);
                    self.emit(old.min(0xff) as u8);
                    self.emit(self.data.len().saturating_sub(old).min(0xff) as u8);
                    return;
                }
                b'\\' => {
                    let esc = self.escape_char();
                    if esc & 0xff == 0 {
                        self.store(0);
                        self.store((esc >> 8) as u8);
                    } else {
                        self.store(esc as u8);
                    }
                }
                c => self.store(c),
            }
        }
        self.fail("No closing ']' bracket");
    }

    /// Insert `shift` bytes at `begin` (after emitting an END, as slre.c).
    fn relocate(&mut self, begin: usize, shift: usize) {
        self.emit(END);
        if self.code.len().saturating_add(shift) > CODE_MAX || begin > self.code.len() {
            self.fail("RE is too long (code overflow)");
            return;
        }
        for _ in 0..shift {
            self.code.insert(begin, 0);
        }
    }

    fn quantifier(&mut self, prev: usize, op: u8) {
        let mut prev = prev;
        if self.code_at(prev) == EXACT && self.code_at(prev + 2) > 1 {
            let n = self.code_at(prev + 2) - 1;
            self.set_code(prev + 2, n);
            self.emit(EXACT);
            self.emit(self.code_at(prev + 1).wrapping_add(n));
            self.emit(1);
            prev = self.code.len().saturating_sub(3);
        }
        self.relocate(prev, 2);
        self.set_code(prev, op);
        self.set_jump_offset(prev + 1, prev);
    }

    fn exact_one_char(&mut self, ch: u8) {
        self.emit(EXACT);
        self.emit(self.data_len_u8());
        self.emit(1);
        self.store(ch);
    }

    fn fixup_branch(&mut self, fixup: usize) {
        if fixup > 0 {
            self.emit(END);
            self.set_jump_offset(fixup, fixup - 2);
        }
    }

    fn compile(&mut self, depth: u32) {
        let mut fixup = 0usize;
        let level = self.num_caps;
        let branch_start = self.code.len();
        let mut last_op = self.code.len();
        loop {
            if self.err.is_some() {
                return;
            }
            match self.next() {
                0 => {
                    self.i = self.i.saturating_sub(1);
                    return;
                }
                b'^' => self.emit(BOL),
                b'$' => self.emit(EOL),
                b'.' => {
                    last_op = self.code.len();
                    self.emit(ANY);
                }
                b'[' => {
                    last_op = self.code.len();
                    self.anyof();
                }
                b'\\' => {
                    last_op = self.code.len();
                    let esc = self.escape_char();
                    if esc & 0xff00 != 0 {
                        self.emit((esc >> 8) as u8);
                    } else {
                        self.exact_one_char(esc as u8);
                    }
                }
                b'(' => {
                    last_op = self.code.len();
                    self.num_caps += 1;
                    let cap_no = self.num_caps.min(0xff) as u8;
                    self.emit(OPEN);
                    self.emit(cap_no);
                    if depth >= MAX_DEPTH {
                        self.fail("RE is too long (brackets nested too deep)");
                        return;
                    }
                    self.compile(depth + 1);
                    if self.err.is_some() {
                        return;
                    }
                    if self.next() != b')' {
                        self.fail("No closing bracket");
                        return;
                    }
                    self.emit(CLOSE);
                    self.emit(cap_no);
                }
                b')' => {
                    self.i = self.i.saturating_sub(1);
                    self.fixup_branch(fixup);
                    if level == 0 {
                        self.fail("Unbalanced brackets");
                    }
                    return;
                }
                c @ (b'+' | b'*') => {
                    let mut op = if c == b'*' { STAR } else { PLUS };
                    if self.peek() == b'?' {
                        self.next();
                        op = if op == STAR { STARQ } else { PLUSQ };
                    }
                    self.quantifier(last_op, op);
                }
                b'?' => self.quantifier(last_op, QUEST),
                b'|' => {
                    self.fixup_branch(fixup);
                    self.relocate(branch_start, 3);
                    self.set_code(branch_start, BRANCH);
                    self.set_jump_offset(branch_start + 1, branch_start);
                    fixup = branch_start + 2;
                    self.set_code(fixup, 0xff);
                }
                _ => {
                    self.i = self.i.saturating_sub(1);
                    last_op = self.code.len();
                    self.exact();
                }
            }
        }
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Matching state: the text and the work budget.
struct Matcher<'a> {
    r: &'a Regex,
    s: &'a [u8],
    steps: &'a Cell<u32>,
}

impl Regex {
    /// Compile `re` (slre_compile). The error is SLRE's message.
    pub(crate) fn compile(re: &str) -> Result<Regex, &'static str> {
        let mut c = Compiler {
            re: re.as_bytes(),
            i: 0,
            code: Vec::new(),
            data: Vec::new(),
            num_caps: 0,
            err: None,
        };
        let anchored = c.peek() == b'^';
        c.emit(OPEN);
        c.emit(0);
        while c.peek() != 0 && c.err.is_none() {
            c.compile(0);
            // A stray `)` at the top level: slre.c loops forever here
            // (compile() returns without consuming it); report it instead.
            if c.peek() == b')' && c.err.is_none() {
                c.fail("Unbalanced brackets");
            }
        }
        if c.code_at(2) == BRANCH {
            c.fixup_branch(4);
        }
        c.emit(CLOSE);
        c.emit(0);
        c.emit(END);
        if let Some(e) = c.err {
            return Err(e);
        }
        // A NUL inside the pattern ends it in C.
        Ok(Regex {
            code: c.code,
            data: c.data,
            num_caps: c.num_caps,
            anchored,
        })
    }

    /// Whether `s` contains a match.
    pub(crate) fn is_match(&self, s: &[u8]) -> Result<bool, MatchError> {
        let steps = Cell::new(MAX_STEPS);
        let mut caps = alloc::vec![Cap::default(); self.num_caps + 2];
        self.find(s, &mut caps, &steps)
    }

    /// slre_match: search `s`, filling `caps` (index 0: the whole match;
    /// `caps.len()` should be `num_caps + 2`). `steps` is the budget left,
    /// shared by all matches of one command.
    pub(crate) fn find(
        &self,
        s: &[u8],
        caps: &mut [Cap],
        steps: &Cell<u32>,
    ) -> Result<bool, MatchError> {
        let m = Matcher { r: self, s, steps };
        if self.anchored {
            let mut ofs = 0;
            return m.run(0, &mut ofs, Some(caps), 0);
        }
        for i in 0..s.len() {
            let mut ofs = i;
            if m.run(0, &mut ofs, Some(&mut *caps), 0)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Matcher<'_> {
    fn code(&self, pc: usize) -> u8 {
        self.r.code.get(pc).copied().unwrap_or(END)
    }

    /// `pc + code[pc + k]`, a forward jump (0 would loop: treated as END).
    fn jump(&self, pc: usize, k: usize) -> Option<usize> {
        match self.code(pc + k) {
            0 => None,
            d => Some(pc + usize::from(d)),
        }
    }

    fn tick(&self) -> Result<(), MatchError> {
        let left = self.steps.get();
        if left == 0 {
            return Err(MatchError::TooManySteps);
        }
        self.steps.set(left - 1);
        Ok(())
    }

    fn byte(&self, ofs: usize) -> Option<u8> {
        self.s.get(ofs).copied()
    }

    fn loop_greedy(&self, pc: usize, ofs: &mut usize, depth: u32) -> Result<(), MatchError> {
        let mut matched = *ofs;
        let Some(next) = self.jump(pc, 1) else {
            return Ok(());
        };
        while self.run(pc + 2, ofs, None, depth + 1)? {
            // An empty loop body matches forever: each round costs a step.
            self.tick()?;
            let saved = *ofs;
            if self.run(next, ofs, None, depth + 1)? {
                matched = saved;
            }
            *ofs = saved;
        }
        *ofs = matched;
        Ok(())
    }

    fn loop_non_greedy(&self, pc: usize, ofs: &mut usize, depth: u32) -> Result<(), MatchError> {
        let mut saved = *ofs;
        let Some(next) = self.jump(pc, 1) else {
            return Ok(());
        };
        while self.run(pc + 2, ofs, None, depth + 1)? {
            self.tick()?;
            saved = *ofs;
            if self.run(next, ofs, None, depth + 1)? {
                break;
            }
        }
        *ofs = saved;
        Ok(())
    }

    fn set_of(&self, pc: usize) -> &[u8] {
        let start = usize::from(self.code(pc + 1));
        let len = usize::from(self.code(pc + 2));
        self.r.data.get(start..start + len).unwrap_or(&[])
    }

    /// Whether byte `ch` is in an ANYOF/ANYBUT set (`\0 op` pairs are the
    /// `\s` `\S` `\d` escapes; SLRE 1.0 compares them as plain bytes).
    fn in_set(set: &[u8], ch: u8) -> bool {
        set.contains(&ch)
    }

    /// slre.c's `match()`: run the code at `pc` against the text at `*ofs`.
    fn run(
        &self,
        mut pc: usize,
        ofs: &mut usize,
        mut caps: Option<&mut [Cap]>,
        depth: u32,
    ) -> Result<bool, MatchError> {
        if depth > MAX_DEPTH {
            return Err(MatchError::TooDeep);
        }
        let len = self.s.len();
        let mut res = true;
        while res && self.code(pc) != END {
            self.tick()?;
            match self.code(pc) {
                BRANCH => {
                    let saved = *ofs;
                    res = self.run(pc + 3, ofs, caps.as_deref_mut(), depth + 1)?;
                    if !res {
                        *ofs = saved;
                        res = match self.jump(pc, 1) {
                            Some(alt) => self.run(alt, ofs, caps.as_deref_mut(), depth + 1)?,
                            None => false,
                        };
                    }
                    match self.jump(pc, 2) {
                        Some(n) => pc = n,
                        None => return Ok(false),
                    }
                }
                EXACT => {
                    res = false;
                    let start = usize::from(self.code(pc + 1));
                    let n = usize::from(self.code(pc + 2));
                    let want = self.r.data.get(start..start + n).unwrap_or(&[]);
                    if n <= len.saturating_sub(*ofs) && self.s.get(*ofs..*ofs + n) == Some(want) {
                        *ofs += n;
                        res = true;
                    }
                    pc += 3;
                }
                QUEST => {
                    res = true;
                    let saved = *ofs;
                    if !self.run(pc + 2, ofs, caps.as_deref_mut(), depth + 1)? {
                        *ofs = saved;
                    }
                    match self.jump(pc, 1) {
                        Some(n) => pc = n,
                        None => return Ok(false),
                    }
                }
                STAR => {
                    res = true;
                    self.loop_greedy(pc, ofs, depth)?;
                    match self.jump(pc, 1) {
                        Some(n) => pc = n,
                        None => return Ok(false),
                    }
                }
                STARQ => {
                    res = true;
                    self.loop_non_greedy(pc, ofs, depth)?;
                    match self.jump(pc, 1) {
                        Some(n) => pc = n,
                        None => return Ok(false),
                    }
                }
                op @ (PLUS | PLUSQ) => {
                    res = self.run(pc + 2, ofs, caps.as_deref_mut(), depth + 1)?;
                    if !res {
                        break;
                    }
                    if op == PLUS {
                        self.loop_greedy(pc, ofs, depth)?;
                    } else {
                        self.loop_non_greedy(pc, ofs, depth)?;
                    }
                    match self.jump(pc, 1) {
                        Some(n) => pc = n,
                        None => return Ok(false),
                    }
                }
                op @ (SPACE | NONSPACE | DIGIT | ANY) => {
                    res = match self.byte(*ofs) {
                        Some(c) => match op {
                            SPACE => is_space(c),
                            NONSPACE => !is_space(c),
                            DIGIT => c.is_ascii_digit(),
                            _ => true,
                        },
                        None => false,
                    };
                    if res {
                        *ofs += 1;
                    }
                    pc += 1;
                }
                op @ (ANYOF | ANYBUT) => {
                    res = match self.byte(*ofs) {
                        Some(c) => Self::in_set(self.set_of(pc), c) == (op == ANYOF),
                        None => false,
                    };
                    if res {
                        *ofs += 1;
                    }
                    pc += 3;
                }
                BOL => {
                    res = *ofs == 0;
                    pc += 1;
                }
                EOL => {
                    res = *ofs == len;
                    pc += 1;
                }
                op @ (OPEN | CLOSE) => {
                    let n = usize::from(self.code(pc + 1));
                    if let Some(c) = caps.as_deref_mut().and_then(|c| c.get_mut(n)) {
                        if op == OPEN {
                            c.start = *ofs;
                        } else {
                            c.len = ofs.saturating_sub(c.start);
                        }
                    }
                    pc += 2;
                }
                // Unknown opcode: slre.c asserts; treat as no match.
                _ => return Ok(false),
            }
        }
        Ok(res)
    }
}

/// Bytes to text for the environment (invalid UTF-8, which a byte-wise
/// regex edit can produce, becomes U+FFFD).
pub(crate) fn to_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
