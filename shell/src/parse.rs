//! Lexer and parser for the shell language (U-Boot's hush, a subset of sh).
//!
//! A script is tokenized and parsed completely before anything runs, so a
//! syntax error anywhere means nothing of the script is executed. Words keep
//! their `$` references unexpanded ([`Seg::Var`]); expansion happens when a
//! command is about to run (see `Shell::expand`).
//!
//! Grammar (keywords are recognised only as the first word of a command and
//! only when written without quotes, escapes or `$`; `in` only right after
//! `for NAME`):
//!
//! ```text
//! script   := list
//! list     := { sep } [ and_or { sep { sep } and_or } ] { sep }
//! sep      := ';' | newline
//! and_or   := command { ('&&' | '||') { newline } command }
//! command  := if_cmd | for_cmd | while_cmd | simple
//! simple   := { NAME=word } { word }          (at least one of either)
//! if_cmd   := 'if' list 'then' list { 'elif' list 'then' list } [ 'else' list ] 'fi'
//! for_cmd  := 'for' NAME { newline } 'in' { word } sep { sep } 'do' list 'done'
//! while_cmd:= ('while' | 'until') list 'do' list 'done'
//! ```
//!
//! The parser recurses only through compound commands (`if`, `for`,
//! `while`, `until`), whose nesting is bounded by [`MAX_IF_DEPTH`].
//!
//! A parse error says whether more input could complete the text
//! ([`SyntaxError::incomplete`]: an open quote, `if` without `fi`, a
//! trailing `&&` ...). The prompt uses that to read continuation lines.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::env::is_name_char;
use crate::MAX_IF_DEPTH;

/// The operator of `${name:-word}`, `${name:=word}`, `${name:+word}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarOp {
    /// `:-`: the word if the variable is unset or empty.
    Default,
    /// `:=`: like `:-`, and the word is also assigned (a shell variable).
    Assign,
    /// `:+`: the word if the variable is set and not empty, else nothing.
    Alternate,
}

/// A piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Literal text (from bare characters, quotes or escapes).
    Text(String),
    /// `$name` / `${name}`; `quoted` when inside double quotes (then the
    /// value is not split into fields).
    Var { name: String, quoted: bool },
    /// `${name:-word}` and friends (old hush's `lookup_param`); `word` is
    /// literal text.
    VarOp {
        name: String,
        op: VarOp,
        word: String,
        quoted: bool,
    },
    /// `$?`, the status of the last command.
    Status { quoted: bool },
}

/// A word: a sequence of segments that expands to zero or more arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub segs: Vec<Seg>,
    /// True when the word was written with no quotes, escapes or `$`: only
    /// such words can be keywords.
    pub plain: bool,
    /// When the word starts with an unquoted `NAME=` (a shell variable
    /// assignment if it comes before the command name): the length of
    /// `NAME`. The first segment is then `Text` starting with `NAME=`.
    pub assign: Option<usize>,
}

impl Word {
    /// The keyword this word spells, if it is a plain keyword.
    fn keyword(&self) -> Option<Kw> {
        if !self.plain {
            return None;
        }
        match self.segs.as_slice() {
            [Seg::Text(t)] => Kw::ALL.iter().copied().find(|k| k.as_str() == t),
            _ => None,
        }
    }

    /// The literal text of a word without expansions.
    fn literal(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [Seg::Text(t)] if self.plain => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    If,
    Then,
    Elif,
    Else,
    Fi,
    For,
    In,
    While,
    Until,
    Do,
    Done,
}

impl Kw {
    const ALL: [Kw; 11] = [
        Kw::If,
        Kw::Then,
        Kw::Elif,
        Kw::Else,
        Kw::Fi,
        Kw::For,
        Kw::In,
        Kw::While,
        Kw::Until,
        Kw::Do,
        Kw::Done,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Kw::If => "if",
            Kw::Then => "then",
            Kw::Elif => "elif",
            Kw::Else => "else",
            Kw::Fi => "fi",
            Kw::For => "for",
            Kw::In => "in",
            Kw::While => "while",
            Kw::Until => "until",
            Kw::Do => "do",
            Kw::Done => "done",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    Semi,
    Newline,
    AndIf,
    OrIf,
    Eof,
}

/// `&&` or `||` between two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conn {
    And,
    Or,
}

/// `NAME=value` before (or instead of) a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assign {
    pub name: String,
    /// The value part; expanded as one field (no splitting).
    pub value: Vec<Seg>,
}

/// A simple command: shell variable assignments, then words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimpleCmd {
    pub assigns: Vec<Assign>,
    pub words: Vec<Word>,
}

/// A command: a simple command or a compound one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cmd {
    Simple(SimpleCmd),
    If(Box<IfCmd>),
    For(Box<ForCmd>),
    While(Box<WhileCmd>),
}

/// `if c1; then b1; elif c2; then b2; else b3; fi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfCmd {
    /// `(condition, body)` for the `if` and each `elif`.
    pub branches: Vec<(List, List)>,
    pub otherwise: Option<List>,
}

/// `for var in words; do body; done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForCmd {
    pub var: String,
    pub words: Vec<Word>,
    pub body: List,
}

/// `while cond; do body; done` (or `until`, with `until` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WhileCmd {
    pub until: bool,
    pub cond: List,
    pub body: List,
}

/// Commands joined by `&&` / `||`, evaluated left to right like sh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AndOr {
    pub first: Cmd,
    pub rest: Vec<(Conn, Cmd)>,
}

/// A sequence of and-or lists (separated by `;` or newlines).
pub(crate) type List = Vec<AndOr>;

/// A syntax error; the message excludes the `syntax error: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub msg: String,
    /// More input could make the text valid (the prompt then reads a
    /// continuation line).
    pub incomplete: bool,
}

fn err<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        msg: msg.into(),
        incomplete: false,
    })
}

fn incomplete<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        msg: msg.into(),
        incomplete: true,
    })
}

/// Parse a complete script.
pub(crate) fn parse_script(src: &str) -> Result<List, SyntaxError> {
    parse(src, false)
}

/// Parse text typed at the prompt: like [`parse_script`], but a backslash
/// at the very end asks for a continuation line instead of being literal.
pub(crate) fn parse_interactive(src: &str) -> Result<List, SyntaxError> {
    parse(src, true)
}

fn parse(src: &str, interactive: bool) -> Result<List, SyntaxError> {
    let toks = tokenize(src, interactive)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let list = p.parse_list(&[])?;
    match p.peek() {
        Tok::Eof => Ok(list),
        t => err(format!("unexpected {}", describe(t))),
    }
}

/// Whether `s` is a shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------- lexer --

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    interactive: bool,
}

/// Accumulates the segments of one word.
struct WordBuf {
    segs: Vec<Seg>,
    cur: Vec<u8>,
    plain: bool,
}

impl WordBuf {
    /// End of a quoted section; `before` is `(segs.len(), cur.len())` at
    /// its start. An empty quoted section still creates an (empty) text
    /// segment: that is how `""` and `$unset""` yield an empty argument.
    fn quoted_done(&mut self, before: (usize, usize)) {
        if (self.segs.len(), self.cur.len()) == before {
            self.flush(true);
        }
    }

    /// Move the pending literal bytes into a `Text` segment. With `force`,
    /// an empty segment is still created.
    fn flush(&mut self, force: bool) {
        if self.cur.is_empty() && !force {
            return;
        }
        // Splitting happened only at ASCII bytes, so this is valid UTF-8;
        // the lossy conversion just avoids any unwrap.
        let text = String::from_utf8_lossy(&self.cur).into_owned();
        self.cur.clear();
        if let Some(Seg::Text(prev)) = self.segs.last_mut() {
            prev.push_str(&text);
        } else {
            self.segs.push(Seg::Text(text));
        }
    }
}

/// Characters that end a word. Unlike sh, `<`, `>`, `(` and `)` are
/// ordinary characters in U-Boot's hush (`echo c)` prints `c)`).
fn is_word_end(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'&' | b'|')
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek2(&self) -> Option<u8> {
        self.s.get(self.i.checked_add(1)?).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1; // i < s.len(), cannot overflow
        Some(c)
    }

    /// Length of an unquoted `NAME=` at the current position, if any.
    fn assignment_prefix(&self) -> Option<usize> {
        let rest = self.s.get(self.i..)?;
        let first = *rest.first()?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let n = rest
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))?;
        (rest.get(n) == Some(&b'=')).then_some(n)
    }

    fn word(&mut self) -> Result<Word, SyntaxError> {
        let mut w = WordBuf {
            segs: Vec::new(),
            cur: Vec::new(),
            plain: true,
        };
        let assign = self.assignment_prefix();
        if let Some(n) = assign {
            // `NAME=` is literal text; the value follows.
            for _ in 0..=n {
                if let Some(c) = self.bump() {
                    w.cur.push(c);
                }
            }
        }
        while let Some(c) = self.peek() {
            if is_word_end(c) {
                break;
            }
            self.bump();
            match c {
                b'\\' => {
                    w.plain = false;
                    match self.bump() {
                        None if self.interactive => {
                            return incomplete("'\\' at the end of the line")
                        }
                        None => w.cur.push(b'\\'),
                        Some(b'\n') => {} // line continuation
                        Some(x) => w.cur.push(x),
                    }
                }
                b'\'' => {
                    w.plain = false;
                    let before = (w.segs.len(), w.cur.len());
                    loop {
                        match self.bump() {
                            None => return incomplete("unterminated quote"),
                            Some(b'\'') => break,
                            Some(x) => w.cur.push(x),
                        }
                    }
                    w.quoted_done(before);
                }
                b'"' => {
                    w.plain = false;
                    let before = (w.segs.len(), w.cur.len());
                    loop {
                        match self.bump() {
                            None => return incomplete("unterminated quote"),
                            Some(b'"') => break,
                            Some(b'\\') => match self.peek() {
                                Some(x @ (b'$' | b'"' | b'\\' | b'`')) => {
                                    self.bump();
                                    w.cur.push(x);
                                }
                                Some(b'\n') => {
                                    self.bump();
                                }
                                _ => w.cur.push(b'\\'),
                            },
                            Some(b'$') => self.dollar(&mut w, true)?,
                            Some(x) => w.cur.push(x),
                        }
                    }
                    w.quoted_done(before);
                }
                b'$' => self.dollar(&mut w, false)?,
                _ => w.cur.push(c),
            }
        }
        w.flush(false);
        Ok(Word {
            segs: w.segs,
            plain: w.plain,
            assign,
        })
    }

    /// Handle what follows a `$` (already consumed).
    fn dollar(&mut self, w: &mut WordBuf, quoted: bool) -> Result<(), SyntaxError> {
        let seg = match self.peek() {
            Some(b'{') => {
                self.bump();
                let start = self.i;
                loop {
                    match self.bump() {
                        None => return incomplete("unterminated '${'"),
                        Some(b'}') => break,
                        Some(_) => {}
                    }
                }
                // `start..i-1` is the text between the braces (i >= start+1).
                let inner = self.s.get(start..self.i.saturating_sub(1)).unwrap_or(&[]);
                braced(&String::from_utf8_lossy(inner), quoted)?
            }
            Some(b'?') => {
                self.bump();
                Seg::Status { quoted }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == b'_' => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if !(c.is_ascii_alphanumeric() || c == b'_') {
                        break;
                    }
                    self.bump();
                    name.push(char::from(c));
                }
                Seg::Var { name, quoted }
            }
            // A `$` not followed by a name is literal.
            _ => {
                w.cur.push(b'$');
                return Ok(());
            }
        };
        w.plain = false;
        w.flush(false);
        w.segs.push(seg);
        Ok(())
    }
}

/// The segment for `${inner}`.
fn braced(inner: &str, quoted: bool) -> Result<Seg, SyntaxError> {
    if inner == "?" {
        return Ok(Seg::Status { quoted });
    }
    let bad = || {
        err(format!(
            "bad substitution '${{{}}}'",
            inner.escape_default()
        ))
    };
    let (name, op) = match inner.split_once(':') {
        None => (inner, None),
        Some((name, rest)) => {
            let (op, word) = match rest.as_bytes().first() {
                Some(b'-') => (VarOp::Default, rest.get(1..).unwrap_or("")),
                Some(b'=') => (VarOp::Assign, rest.get(1..).unwrap_or("")),
                Some(b'+') => (VarOp::Alternate, rest.get(1..).unwrap_or("")),
                _ => return bad(),
            };
            (name, Some((op, String::from(word))))
        }
    };
    if name.is_empty() || !name.chars().all(is_name_char) {
        return bad();
    }
    let name = String::from(name);
    Ok(match op {
        None => Seg::Var { name, quoted },
        Some((op, word)) => Seg::VarOp {
            name,
            op,
            word,
            quoted,
        },
    })
}

fn tokenize(src: &str, interactive: bool) -> Result<Vec<Tok>, SyntaxError> {
    let mut lx = Lexer {
        s: src.as_bytes(),
        i: 0,
        interactive,
    };
    let mut toks = Vec::new();
    loop {
        let Some(c) = lx.peek() else {
            toks.push(Tok::Eof);
            return Ok(toks);
        };
        match c {
            b' ' | b'\t' | b'\r' => {
                lx.bump();
            }
            b'\\' if lx.peek2() == Some(b'\n') => {
                lx.bump();
                lx.bump();
            }
            b'\n' => {
                lx.bump();
                toks.push(Tok::Newline);
            }
            b';' => {
                lx.bump();
                toks.push(Tok::Semi);
            }
            b'&' => {
                if lx.peek2() != Some(b'&') {
                    return err("'&' (background jobs) is not supported");
                }
                lx.bump();
                lx.bump();
                toks.push(Tok::AndIf);
            }
            b'|' => {
                if lx.peek2() != Some(b'|') {
                    return err("'|' (pipes) is not supported");
                }
                lx.bump();
                lx.bump();
                toks.push(Tok::OrIf);
            }
            b'#' => {
                // A comment runs to the end of the line (the newline stays).
                while let Some(c) = lx.peek() {
                    if c == b'\n' {
                        break;
                    }
                    lx.bump();
                }
            }
            _ => toks.push(Tok::Word(lx.word()?)),
        }
    }
}

// --------------------------------------------------------------- parser --

static EOF_TOK: Tok = Tok::Eof;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => match w.keyword() {
            Some(k) => format!("'{}'", k.as_str()),
            None => "word".into(),
        },
        Tok::Semi => "';'".into(),
        Tok::Newline => "newline".into(),
        Tok::AndIf => "'&&'".into(),
        Tok::OrIf => "'||'".into(),
        Tok::Eof => "end of input".into(),
    }
}

/// A word used as a plain argument: an assignment-looking word is just text.
fn as_argument(mut w: Word) -> Word {
    w.assign = None;
    w
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&EOF_TOK)
    }

    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
    }

    /// Take the word at the current position (the caller checked it is one).
    fn take_word(&mut self) -> Option<Word> {
        let Some(Tok::Word(w)) = self.toks.get_mut(self.pos) else {
            return None;
        };
        // Take the word out of the token list instead of cloning it.
        let w = core::mem::replace(
            w,
            Word {
                segs: Vec::new(),
                plain: false,
                assign: None,
            },
        );
        self.pos += 1;
        Some(w)
    }

    fn peek_kw(&self) -> Option<Kw> {
        match self.peek() {
            Tok::Word(w) => w.keyword(),
            _ => None,
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Tok::Semi | Tok::Newline) {
            self.advance();
        }
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Tok::Newline) {
            self.advance();
        }
    }

    /// Parse and-or lists until end of input or one of `terms` in command
    /// position (left unconsumed).
    fn parse_list(&mut self, terms: &[Kw]) -> Result<List, SyntaxError> {
        let mut list = Vec::new();
        loop {
            self.skip_separators();
            if self.at_eof() {
                return Ok(list);
            }
            if let Some(k) = self.peek_kw() {
                if terms.contains(&k) {
                    return Ok(list);
                }
            }
            list.push(self.parse_and_or()?);
            match self.peek() {
                Tok::Semi | Tok::Newline | Tok::Eof => {}
                t => return err(format!("unexpected {}", describe(t))),
            }
        }
    }

    fn parse_and_or(&mut self) -> Result<AndOr, SyntaxError> {
        let first = self.parse_command()?;
        let mut rest = Vec::new();
        loop {
            let conn = match self.peek() {
                Tok::AndIf => Conn::And,
                Tok::OrIf => Conn::Or,
                _ => return Ok(AndOr { first, rest }),
            };
            self.advance();
            self.skip_newlines();
            rest.push((conn, self.parse_command()?));
        }
    }

    fn parse_command(&mut self) -> Result<Cmd, SyntaxError> {
        match self.peek_kw() {
            Some(Kw::If) => return self.parse_if(),
            Some(Kw::For) => return self.parse_for(),
            Some(k @ (Kw::While | Kw::Until)) => return self.parse_while(k),
            Some(k) => return err(format!("unexpected '{}'", k.as_str())),
            None => {}
        }
        let mut cmd = SimpleCmd {
            assigns: Vec::new(),
            words: Vec::new(),
        };
        while let Some(w) = self.take_word() {
            match w.assign {
                Some(n) if cmd.words.is_empty() => cmd.assigns.push(split_assignment(w, n)),
                _ => cmd.words.push(as_argument(w)),
            }
        }
        if cmd.assigns.is_empty() && cmd.words.is_empty() {
            return match self.peek() {
                Tok::Eof => incomplete("unexpected end of input"),
                t => err(format!("unexpected {}", describe(t))),
            };
        }
        Ok(Cmd::Simple(cmd))
    }

    /// Expect keyword `k` closing the construct opened by `opener`.
    fn expect_kw(&mut self, opener: Kw, k: Kw) -> Result<(), SyntaxError> {
        if self.peek_kw() == Some(k) {
            self.advance();
            return Ok(());
        }
        match self.peek() {
            Tok::Eof => incomplete(format!("'{}' without '{}'", opener.as_str(), k.as_str())),
            t => err(format!("expected '{}', found {}", k.as_str(), describe(t))),
        }
    }

    /// A list that must not be empty (`after` is the keyword before it,
    /// `opener` the construct, `next` the keyword that should follow).
    fn nonempty(&self, list: List, opener: Kw, after: Kw, next: Kw) -> Result<List, SyntaxError> {
        if !list.is_empty() {
            Ok(list)
        } else if self.at_eof() {
            incomplete(format!("'{}' without '{}'", opener.as_str(), next.as_str()))
        } else {
            err(format!("missing commands after '{}'", after.as_str()))
        }
    }

    /// A body (after `then`, `else`, `do`): may be empty, as U-Boot's hush
    /// accepts (a branch holding only a comment); at the end of the text it
    /// is unfinished.
    fn body(&self, list: List, opener: Kw, next: Kw) -> Result<List, SyntaxError> {
        if list.is_empty() && self.at_eof() {
            incomplete(format!("'{}' without '{}'", opener.as_str(), next.as_str()))
        } else {
            Ok(list)
        }
    }

    fn enter(&mut self, k: Kw) -> Result<(), SyntaxError> {
        if self.depth >= MAX_IF_DEPTH {
            return err(format!(
                "'{}' nested too deep (max {MAX_IF_DEPTH})",
                k.as_str()
            ));
        }
        self.depth += 1;
        self.advance();
        Ok(())
    }

    /// After `fi` / `done`: the construct must end there.
    fn leave(&mut self, end: Kw) -> Result<(), SyntaxError> {
        self.depth -= 1;
        if let Tok::Word(_) = self.peek() {
            return err(format!("unexpected word after '{}'", end.as_str()));
        }
        Ok(())
    }

    fn parse_if(&mut self) -> Result<Cmd, SyntaxError> {
        self.enter(Kw::If)?;
        let mut branches = Vec::new();
        let mut opener = Kw::If;
        loop {
            let cond = self.parse_list(&[Kw::Then])?;
            let cond = self.nonempty(cond, Kw::If, opener, Kw::Then)?;
            self.expect_kw(Kw::If, Kw::Then)?;
            let body = self.parse_list(&[Kw::Elif, Kw::Else, Kw::Fi])?;
            let body = self.body(body, Kw::If, Kw::Fi)?;
            branches.push((cond, body));
            if self.peek_kw() == Some(Kw::Elif) {
                self.advance();
                opener = Kw::Elif;
                continue;
            }
            break;
        }
        let otherwise = if self.peek_kw() == Some(Kw::Else) {
            self.advance();
            let body = self.parse_list(&[Kw::Fi])?;
            Some(self.body(body, Kw::If, Kw::Fi)?)
        } else {
            None
        };
        self.expect_kw(Kw::If, Kw::Fi)?;
        self.leave(Kw::Fi)?;
        Ok(Cmd::If(Box::new(IfCmd {
            branches,
            otherwise,
        })))
    }

    fn parse_for(&mut self) -> Result<Cmd, SyntaxError> {
        self.enter(Kw::For)?;
        let var = match self.take_word() {
            Some(w) => match w.literal() {
                Some(name) if is_shell_name(name) && w.assign.is_none() => String::from(name),
                _ => return err("bad 'for' variable (a name like x or my_var)"),
            },
            None if self.at_eof() => return incomplete("'for' without 'in'"),
            None => return err("'for' without variable"),
        };
        self.skip_newlines();
        if self.peek_kw() != Some(Kw::In) {
            return match self.peek() {
                Tok::Eof => incomplete("'for' without 'in'"),
                _ => err("'for' without 'in' (only 'for NAME in WORDS' is supported)"),
            };
        }
        self.advance();
        let mut words = Vec::new();
        while let Some(w) = self.take_word() {
            words.push(as_argument(w));
        }
        match self.peek() {
            Tok::Semi | Tok::Newline => {}
            Tok::Eof => return incomplete("'for' without 'do'"),
            t => return err(format!("unexpected {} in 'for' list", describe(t))),
        }
        self.skip_separators();
        self.expect_kw(Kw::For, Kw::Do)?;
        let body = self.parse_list(&[Kw::Done])?;
        let body = self.body(body, Kw::For, Kw::Done)?;
        self.expect_kw(Kw::For, Kw::Done)?;
        self.leave(Kw::Done)?;
        Ok(Cmd::For(Box::new(ForCmd { var, words, body })))
    }

    fn parse_while(&mut self, k: Kw) -> Result<Cmd, SyntaxError> {
        self.enter(k)?;
        let cond = self.parse_list(&[Kw::Do])?;
        let cond = self.nonempty(cond, k, k, Kw::Do)?;
        self.expect_kw(k, Kw::Do)?;
        let body = self.parse_list(&[Kw::Done])?;
        let body = self.body(body, k, Kw::Done)?;
        self.expect_kw(k, Kw::Done)?;
        self.leave(Kw::Done)?;
        Ok(Cmd::While(Box::new(WhileCmd {
            until: k == Kw::Until,
            cond,
            body,
        })))
    }
}

/// Split `NAME=value...` (the first segment starts with `NAME=`).
fn split_assignment(w: Word, n: usize) -> Assign {
    let mut segs = w.segs.into_iter();
    let (name, first_rest) = match segs.next() {
        Some(Seg::Text(t)) => {
            let name = String::from(t.get(..n).unwrap_or(""));
            let rest = String::from(t.get(n.saturating_add(1)..).unwrap_or(""));
            (name, rest)
        }
        // Cannot happen: the lexer put `NAME=` first.
        _ => (String::new(), String::new()),
    };
    let mut value = Vec::new();
    if !first_rest.is_empty() {
        value.push(Seg::Text(first_rest));
    }
    value.extend(segs);
    Assign { name, value }
}
