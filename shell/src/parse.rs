//! Lexer and parser for the shell language (a small subset of hush/sh).
//!
//! A script is tokenized and parsed completely before anything runs, so a
//! syntax error anywhere means nothing of the script is executed. Words keep
//! their `$` references unexpanded ([`Seg::Var`]); expansion happens when a
//! command is about to run (see `Shell::expand`).
//!
//! Grammar (keywords are recognised only as the first word of a command and
//! only when written without quotes, escapes or `$`):
//!
//! ```text
//! script  := list
//! list    := { sep } [ and_or { sep { sep } and_or } ] { sep }
//! sep     := ';' | newline
//! and_or  := command { ('&&' | '||') { newline } command }
//! command := if_cmd | word { word }
//! if_cmd  := 'if' list 'then' list { 'elif' list 'then' list } [ 'else' list ] 'fi'
//! ```
//!
//! The parser recurses only through `if`, whose nesting is bounded by
//! [`MAX_IF_DEPTH`].

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::env::is_name_char;
use crate::MAX_IF_DEPTH;

/// A piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Literal text (from bare characters, quotes or escapes).
    Text(String),
    /// `$name` / `${name}`; `quoted` when inside double quotes (then the
    /// value is not split into fields).
    Var { name: String, quoted: bool },
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
}

impl Word {
    /// The keyword this word spells, if it is a plain keyword.
    fn keyword(&self) -> Option<Kw> {
        if !self.plain {
            return None;
        }
        match self.segs.as_slice() {
            [Seg::Text(t)] => match t.as_str() {
                "if" => Some(Kw::If),
                "then" => Some(Kw::Then),
                "elif" => Some(Kw::Elif),
                "else" => Some(Kw::Else),
                "fi" => Some(Kw::Fi),
                _ => None,
            },
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
}

impl Kw {
    fn as_str(self) -> &'static str {
        match self {
            Kw::If => "if",
            Kw::Then => "then",
            Kw::Elif => "elif",
            Kw::Else => "else",
            Kw::Fi => "fi",
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

/// A command: a simple command (words) or an `if` construct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cmd {
    Simple(Vec<Word>),
    If(Box<IfCmd>),
}

/// `if c1; then b1; elif c2; then b2; else b3; fi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfCmd {
    /// `(condition, body)` for the `if` and each `elif`.
    pub branches: Vec<(List, List)>,
    pub otherwise: Option<List>,
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
pub(crate) struct SyntaxError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(msg.into()))
}

/// Parse a complete script.
pub(crate) fn parse_script(src: &str) -> Result<List, SyntaxError> {
    let toks = tokenize(src)?;
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

// ---------------------------------------------------------------- lexer --

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
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

fn is_word_end(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')'
    )
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

    fn word(&mut self) -> Result<Word, SyntaxError> {
        let mut w = WordBuf {
            segs: Vec::new(),
            cur: Vec::new(),
            plain: true,
        };
        while let Some(c) = self.peek() {
            if is_word_end(c) {
                break;
            }
            self.bump();
            match c {
                b'\\' => {
                    w.plain = false;
                    match self.bump() {
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
                            None => return err("unterminated quote"),
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
                            None => return err("unterminated quote"),
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
                        None => return err("unterminated '${'"),
                        Some(b'}') => break,
                        Some(_) => {}
                    }
                }
                // `start..i-1` is the text between the braces (i >= start+1).
                let name_bytes = self.s.get(start..self.i.saturating_sub(1)).unwrap_or(&[]);
                let name = String::from_utf8_lossy(name_bytes).into_owned();
                if name == "?" {
                    Seg::Status { quoted }
                } else if name.is_empty() || !name.chars().all(is_name_char) {
                    return err(format!("bad substitution '${{{}}}'", name.escape_default()));
                } else {
                    Seg::Var { name, quoted }
                }
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

fn tokenize(src: &str) -> Result<Vec<Tok>, SyntaxError> {
    let mut lx = Lexer {
        s: src.as_bytes(),
        i: 0,
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
            b'<' | b'>' | b'(' | b')' => {
                return err(format!("unexpected '{}' (quote it)", char::from(c)));
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

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&EOF_TOK)
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
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

    /// Parse and-or lists until end of input or one of `terms` in command
    /// position (left unconsumed).
    fn parse_list(&mut self, terms: &[Kw]) -> Result<List, SyntaxError> {
        let mut list = Vec::new();
        loop {
            self.skip_separators();
            if matches!(self.peek(), Tok::Eof) {
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
            while matches!(self.peek(), Tok::Newline) {
                self.advance();
            }
            rest.push((conn, self.parse_command()?));
        }
    }

    fn parse_command(&mut self) -> Result<Cmd, SyntaxError> {
        match self.peek_kw() {
            Some(Kw::If) => return self.parse_if(),
            Some(k) => return err(format!("unexpected '{}'", k.as_str())),
            None => {}
        }
        let mut words = Vec::new();
        while let Some(Tok::Word(w)) = self.toks.get_mut(self.pos) {
            // Take the word out of the token list instead of cloning it.
            words.push(core::mem::replace(
                w,
                Word {
                    segs: Vec::new(),
                    plain: false,
                },
            ));
            self.pos += 1;
        }
        if words.is_empty() {
            return err(format!("unexpected {}", describe(self.peek())));
        }
        Ok(Cmd::Simple(words))
    }

    /// Expect keyword `k`; on anything else report what `what` lacks.
    fn expect_kw(&mut self, k: Kw) -> Result<(), SyntaxError> {
        if self.peek_kw() == Some(k) {
            self.advance();
            return Ok(());
        }
        match self.peek() {
            Tok::Eof => err(format!("'if' without '{}'", k.as_str())),
            t => err(format!("expected '{}', found {}", k.as_str(), describe(t))),
        }
    }

    fn nonempty(list: List, after: Kw) -> Result<List, SyntaxError> {
        if list.is_empty() {
            err(format!("missing commands after '{}'", after.as_str()))
        } else {
            Ok(list)
        }
    }

    fn parse_if(&mut self) -> Result<Cmd, SyntaxError> {
        if self.depth >= MAX_IF_DEPTH {
            return err(format!("'if' nested too deep (max {MAX_IF_DEPTH})"));
        }
        self.depth += 1;
        self.advance(); // `if`
        let mut branches = Vec::new();
        let mut opener = Kw::If;
        loop {
            let cond = Self::nonempty(self.parse_list(&[Kw::Then])?, opener)?;
            self.expect_kw(Kw::Then)?;
            let body = Self::nonempty(self.parse_list(&[Kw::Elif, Kw::Else, Kw::Fi])?, Kw::Then)?;
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
            Some(Self::nonempty(self.parse_list(&[Kw::Fi])?, Kw::Else)?)
        } else {
            None
        };
        self.expect_kw(Kw::Fi)?;
        self.depth -= 1;
        if let Tok::Word(_) = self.peek() {
            return err("unexpected word after 'fi'");
        }
        Ok(Cmd::If(Box::new(IfCmd {
            branches,
            otherwise,
        })))
    }
}
