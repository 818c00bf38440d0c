//! The boot-configuration language of extlinux.conf and pxelinux.cfg, as
//! U-Boot's boot/pxe_utils.c reads it (`sysboot`, `pxe boot`): parsed into a
//! typed [`BootMenu`], plus the rules U-Boot applies when it boots a label
//! (paths relative to the configuration's directory, the `fdtdir` file name,
//! `ipappend`, the default label and the order labels are tried in).
//!
//! Lexing is U-Boot's: a line starts with a keyword (case-insensitive,
//! ended by white space); the value of a keyword is the rest of the line
//! after blanks, verbatim; `#` after blanks starts a comment; a NUL byte
//! ends the file. A label ends at the first line that does not start with
//! a label keyword, which is then read at the top level. Unknown commands
//! are reported as notes ("Ignoring unknown command: …") and skipped, as
//! U-Boot does; what U-Boot refuses (a keyword without its value, a label
//! without a name, a failed or too deep `include`) is a [`ConfError`]
//! naming the file and line. Differences from U-Boot, all on input U-Boot
//! handles badly: a trailing CR (DOS line ends) is not part of a value; a
//! second `initrd`/`fdt`/`fdtdir`/`fdtoverlays` line in a label is ignored
//! (U-Boot ends the label there and ignores the label's remaining lines);
//! a number that is not a number is an error (U-Boot reads 0); `initrd`
//! takes a comma-separated list (syslinux's syntax; U-Boot 2023.01 loads
//! one file).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Deepest nesting of `include` (pxelinux's and U-Boot's 16; the top file
/// is level 1).
pub const MAX_NEST: usize = 16;
/// Most files read through `include` in all (bounds a file that includes
/// itself many times).
pub const MAX_INCLUDES: usize = 64;
/// Most labels.
pub const MAX_LABELS: usize = 1000;
/// U-Boot's MAX_TFTP_PATH_LEN: longest path a label may resolve to.
pub const MAX_PATH: usize = 512;

/// A label: one way to boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label {
    /// `label NAME`.
    pub name: String,
    /// `menu label TEXT`.
    pub menu_label: Option<String>,
    /// `kernel` / `linux`, without a `#config` suffix.
    pub kernel: Option<String>,
    /// The `#config` suffix of `kernel` (a FIT configuration), with its `#`.
    pub kernel_config: Option<String>,
    /// `append`.
    pub append: Option<String>,
    /// `initrd` (comma-separated list), or `initrd=` in `append`.
    pub initrd: Vec<String>,
    /// `fdt` / `devicetree`.
    pub fdt: Option<String>,
    /// `fdtdir` / `devicetreedir`.
    pub fdtdir: Option<String>,
    /// `fdtoverlays` / `devicetree-overlay` (space-separated list).
    pub fdtoverlays: Vec<String>,
    /// `localboot N`.
    pub localboot: Option<i64>,
    /// `ipappend N` (bit 0: `ip=`, bit 1: `BOOTIF=`).
    pub ipappend: i64,
    /// `kaslrseed`.
    pub kaslrseed: bool,
    /// Where the label starts: file and line.
    pub file: String,
    /// Line number (1-based).
    pub line: usize,
}

/// A parsed configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootMenu {
    /// `menu title`.
    pub title: Option<String>,
    /// `default` / `ontimeout` / `menu default` (a label name).
    pub default: Option<String>,
    /// `fallback` (a label name).
    pub fallback: Option<String>,
    /// `timeout`, in tenths of a second (0: none).
    pub timeout: i64,
    /// Whether to show the menu and ask: set by any `menu` line, then by
    /// `prompt N` (current U-Boot; 2023.01 ignored `prompt`).
    pub prompt: i64,
    /// `menu background`.
    pub background: Option<String>,
    /// The labels, in file order.
    pub labels: Vec<Label>,
}

/// A configuration U-Boot would refuse. `Display`: `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// File name (as given, or as written in `include`).
    pub file: String,
    /// Line number (1-based).
    pub line: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Something U-Boot mentions and skips (`file:line: Ignoring …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(pub String);

/// Reads an included file: gets the path as written in `include`.
pub type IncludeFn<'a> = dyn FnMut(&str) -> Result<Vec<u8>, String> + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Menu,
    Title,
    Timeout,
    Default,
    Prompt,
    Label,
    Kernel,
    Localboot,
    Append,
    Initrd,
    Include,
    Fdt,
    FdtDir,
    FdtOverlays,
    OnTimeout,
    IpAppend,
    Background,
    KaslrSeed,
    Fallback,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("menu", Kw::Menu),
    ("title", Kw::Title),
    ("timeout", Kw::Timeout),
    ("default", Kw::Default),
    ("prompt", Kw::Prompt),
    ("label", Kw::Label),
    ("kernel", Kw::Kernel),
    ("linux", Kw::Kernel),
    ("localboot", Kw::Localboot),
    ("append", Kw::Append),
    ("initrd", Kw::Initrd),
    ("include", Kw::Include),
    ("devicetree", Kw::Fdt),
    ("fdt", Kw::Fdt),
    ("devicetreedir", Kw::FdtDir),
    ("fdtdir", Kw::FdtDir),
    ("fdtoverlays", Kw::FdtOverlays),
    ("devicetree-overlay", Kw::FdtOverlays),
    ("ontimeout", Kw::OnTimeout),
    ("ipappend", Kw::IpAppend),
    ("background", Kw::Background),
    ("kaslrseed", Kw::KaslrSeed),
    ("fallback", Kw::Fallback),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Eol,
    Eof,
    Kw(Kw, String),
    Str(String),
}

/// A cursor over one file.
struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
    file: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(b: &'a [u8], file: &'a str) -> Lexer<'a> {
        // A NUL ends the file (U-Boot reads a C string).
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Lexer {
            b: &b[..end],
            pos: 0,
            line: 1,
            file,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_blanks_and_comment(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
        if self.peek() == Some(b'#') {
            while self.peek().is_some_and(|c| c != b'\n') {
                self.pos += 1;
            }
        }
    }

    /// The next token; `literal`: the rest of the line is one string.
    fn token(&mut self, literal: bool) -> Tok {
        self.skip_blanks_and_comment();
        match self.peek() {
            None => Tok::Eof,
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Tok::Eol
            }
            Some(_) if literal => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
                let mut v = &self.b[start..self.pos];
                while let Some((b'\r', rest)) = v.split_last() {
                    v = rest;
                }
                Tok::Str(String::from_utf8_lossy(v).into_owned())
            }
            Some(_) => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !c.is_ascii_whitespace() && c != 0x0b)
                {
                    self.pos += 1;
                }
                let word = String::from_utf8_lossy(&self.b[start..self.pos]).to_ascii_lowercase();
                match KEYWORDS.iter().find(|(k, _)| *k == word) {
                    Some((_, kw)) => Tok::Kw(*kw, word),
                    None => Tok::Str(word),
                }
            }
        }
    }

    /// Skips to the end of the line (not past it).
    fn rest_of_line(&mut self) {
        while self.peek().is_some_and(|c| c != b'\n') {
            self.pos += 1;
        }
    }

    fn err(&self, line: usize, reason: String) -> ConfError {
        ConfError {
            file: printable(self.file),
            line,
            reason: printable(&reason),
        }
    }

    fn note(&self, line: usize, text: &str) -> Note {
        Note(printable(&format!("{}:{}: {}", self.file, line, text)))
    }

    /// The value of keyword `kw`: the rest of the line.
    fn literal(&mut self, kw: &str) -> Result<String, ConfError> {
        let line = self.line;
        match self.token(true) {
            Tok::Str(s) => Ok(s),
            Tok::Eol => {
                // Leave the line end for the caller.
                self.pos -= 1;
                self.line -= 1;
                Err(self.err(line, format!("'{kw}' needs a value")))
            }
            _ => Err(self.err(line, format!("'{kw}' needs a value"))),
        }
    }

    /// A decimal number (leading digits, optional sign), as `strtol`.
    fn integer(&mut self, kw: &str) -> Result<i64, ConfError> {
        let line = self.line;
        let s = self.literal(kw)?;
        parse_int(&s).ok_or_else(|| self.err(line, format!("'{kw}' needs a number, not '{s}'")))
    }
}

/// Text from a file made safe for the console: control characters
/// (terminal escapes, CR) become `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits.bytes().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let v = digits[..n].parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

struct Parser<'i, 'f> {
    menu: BootMenu,
    notes: Vec<Note>,
    include: &'i mut IncludeFn<'f>,
    includes: usize,
    max_includes: usize,
}

/// Parses a configuration file named `file` (for messages). `include`
/// reads the files it includes (the caller resolves the path as for any
/// other file: see [`resolve`]).
pub fn parse(
    file: &str,
    text: &[u8],
    include: &mut IncludeFn<'_>,
) -> Result<(BootMenu, Vec<Note>), ConfError> {
    parse_limited(file, text, include, MAX_INCLUDES)
}

/// [`parse`] reading at most `max_includes` files through `include` (the
/// fuzz target lowers it: include fan-out is most of its time).
pub fn parse_limited(
    file: &str,
    text: &[u8],
    include: &mut IncludeFn<'_>,
    max_includes: usize,
) -> Result<(BootMenu, Vec<Note>), ConfError> {
    let mut p = Parser {
        menu: BootMenu::default(),
        notes: Vec::new(),
        include,
        includes: 0,
        max_includes,
    };
    p.top(file, text, 1)?;
    Ok((p.menu, p.notes))
}

impl Parser<'_, '_> {
    fn top(&mut self, file: &str, text: &[u8], nest: usize) -> Result<(), ConfError> {
        let mut lx = Lexer::new(text, file);
        loop {
            let line = lx.line;
            match lx.token(false) {
                Tok::Eof => return Ok(()),
                Tok::Eol => {}
                Tok::Kw(Kw::Menu, _) => {
                    self.menu.prompt = 1;
                    self.menu_line(&mut lx, nest)?;
                }
                Tok::Kw(Kw::Timeout, w) => self.menu.timeout = lx.integer(&w)?,
                Tok::Kw(Kw::Label, _) => self.label(&mut lx, line)?,
                Tok::Kw(Kw::Default | Kw::OnTimeout, w) => {
                    self.menu.default = Some(lx.literal(&w)?);
                }
                Tok::Kw(Kw::Fallback, w) => self.menu.fallback = Some(lx.literal(&w)?),
                Tok::Kw(Kw::Include, _) => self.include(&mut lx, line, nest)?,
                Tok::Kw(Kw::Prompt, w) => {
                    // Current U-Boot: a bad value is ignored.
                    if let Ok(v) = lx.integer(&w) {
                        self.menu.prompt = v;
                    }
                    lx.rest_of_line();
                }
                Tok::Kw(_, w) | Tok::Str(w) => {
                    let n = lx.note(line, &format!("Ignoring unknown command: {w}"));
                    self.notes.push(n);
                    lx.rest_of_line();
                }
            }
        }
    }

    /// `menu title|include|background …` at the top level.
    fn menu_line(&mut self, lx: &mut Lexer<'_>, nest: usize) -> Result<(), ConfError> {
        let line = lx.line;
        match lx.token(false) {
            Tok::Kw(Kw::Title, w) => self.menu.title = Some(lx.literal(&format!("menu {w}"))?),
            Tok::Kw(Kw::Include, _) => return self.include(lx, line, nest),
            Tok::Kw(Kw::Background, w) => {
                self.menu.background = Some(lx.literal(&format!("menu {w}"))?)
            }
            Tok::Eol => {
                let n = lx.note(line, "Ignoring malformed menu command: menu");
                self.notes.push(n);
                return Ok(());
            }
            Tok::Eof => return Ok(()),
            Tok::Kw(_, w) | Tok::Str(w) => {
                let n = lx.note(line, &format!("Ignoring malformed menu command: {w}"));
                self.notes.push(n);
            }
        }
        lx.rest_of_line();
        Ok(())
    }

    fn include(&mut self, lx: &mut Lexer<'_>, line: usize, nest: usize) -> Result<(), ConfError> {
        let path = lx
            .literal("include")
            .map_err(|_| lx.err(line, "'include' needs a file name".into()))?;
        if nest + 1 > MAX_NEST {
            return Err(lx.err(line, format!("includes nested deeper than {MAX_NEST}")));
        }
        if self.includes >= self.max_includes {
            return Err(lx.err(
                line,
                format!("more than {} included files", self.max_includes),
            ));
        }
        self.includes += 1;
        let text = (self.include)(&path)
            .map_err(|why| lx.err(line, format!("cannot include '{path}': {why}")))?;
        self.top(&path, &text, nest + 1)
    }

    fn label(&mut self, lx: &mut Lexer<'_>, line: usize) -> Result<(), ConfError> {
        let name = lx
            .literal("label")
            .map_err(|_| lx.err(line, "'label' needs a name".into()))?;
        if self.menu.labels.len() == MAX_LABELS {
            return Err(lx.err(line, format!("more than {MAX_LABELS} labels")));
        }
        let mut l = Label {
            name,
            file: lx.file.to_string(),
            line,
            ..Label::default()
        };
        loop {
            let (pos, at) = (lx.pos, lx.line);
            match lx.token(false) {
                Tok::Eol => {}
                Tok::Kw(Kw::Menu, _) => self.label_menu(lx, &mut l)?,
                Tok::Kw(Kw::Kernel, w) => {
                    let k = lx.literal(&w)?;
                    match k.find('#') {
                        Some(i) => {
                            l.kernel_config = Some(k[i..].to_string());
                            l.kernel = Some(k[..i].to_string());
                        }
                        None => {
                            l.kernel = Some(k);
                            l.kernel_config = None;
                        }
                    }
                }
                Tok::Kw(Kw::Append, w) => {
                    let a = lx.literal(&w)?;
                    if l.initrd.is_empty() {
                        if let Some(i) = a.find("initrd=") {
                            let v = &a[i + 7..];
                            let v = v.split(' ').next().unwrap_or("");
                            l.initrd = split_list(v, ',');
                        }
                    }
                    l.append = Some(a);
                }
                Tok::Kw(Kw::Initrd, w) => {
                    let v = lx.literal(&w)?;
                    if l.initrd.is_empty() {
                        l.initrd = split_list(&v, ',');
                    }
                }
                Tok::Kw(Kw::Fdt, w) => {
                    let v = lx.literal(&w)?;
                    l.fdt.get_or_insert(v);
                }
                Tok::Kw(Kw::FdtDir, w) => {
                    let v = lx.literal(&w)?;
                    l.fdtdir.get_or_insert(v);
                }
                Tok::Kw(Kw::FdtOverlays, w) => {
                    let v = lx.literal(&w)?;
                    if l.fdtoverlays.is_empty() {
                        l.fdtoverlays = split_list(&v, ' ');
                    }
                }
                Tok::Kw(Kw::Localboot, w) => l.localboot = Some(lx.integer(&w)?),
                Tok::Kw(Kw::IpAppend, w) => l.ipappend = lx.integer(&w)?,
                Tok::Kw(Kw::KaslrSeed, _) => {
                    l.kaslrseed = true;
                    lx.rest_of_line();
                }
                _ => {
                    // Not a label line: the label ends; the top level reads
                    // this line.
                    lx.pos = pos;
                    lx.line = at;
                    self.menu.labels.push(l);
                    return Ok(());
                }
            }
        }
    }

    /// `menu default` / `menu label TEXT` inside a label.
    fn label_menu(&mut self, lx: &mut Lexer<'_>, l: &mut Label) -> Result<(), ConfError> {
        let line = lx.line;
        match lx.token(false) {
            Tok::Kw(Kw::Default, _) => {
                self.menu.default.get_or_insert_with(|| l.name.clone());
            }
            Tok::Kw(Kw::Label, _) => {
                // U-Boot reports a missing text and goes on.
                match lx.literal("menu label") {
                    Ok(t) => l.menu_label = Some(t),
                    Err(e) => self.notes.push(Note(e.to_string())),
                }
            }
            Tok::Eol => {
                let n = lx.note(line, "Ignoring malformed menu command: menu");
                self.notes.push(n);
                // Give the line end back to the label's loop.
                lx.pos -= 1;
                lx.line = line;
                return Ok(());
            }
            Tok::Eof => return Ok(()),
            Tok::Kw(_, w) | Tok::Str(w) => {
                let n = lx.note(line, &format!("Ignoring malformed menu command: {w}"));
                self.notes.push(n);
            }
        }
        lx.rest_of_line();
        Ok(())
    }
}

fn split_list(v: &str, sep: char) -> Vec<String> {
    v.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------- booting a label

impl BootMenu {
    /// The label `default` names (exact match), if any. `override_name`
    /// is `pxe_label_override`; when it names no label a note says so and
    /// the default stands.
    pub fn default_index(&self, override_name: Option<&str>) -> (Option<usize>, Option<String>) {
        let find = |n: &str| self.labels.iter().position(|l| l.name == n);
        if let Some(o) = override_name {
            match find(o) {
                Some(i) => return (Some(i), None),
                None => {
                    let note = format!("Missing override pxe label: {o}");
                    return (self.default.as_deref().and_then(find), Some(note));
                }
            }
        }
        (self.default.as_deref().and_then(find), None)
    }

    /// The labels in the order U-Boot tries them without a choice: the
    /// default (if it exists), then every other label in file order
    /// (`boot_unattempted_labels`).
    pub fn boot_order(&self, override_name: Option<&str>) -> Vec<usize> {
        let (first, _) = self.default_index(override_name);
        let mut v: Vec<usize> = first.into_iter().collect();
        v.extend((0..self.labels.len()).filter(|&i| Some(i) != first));
        v
    }

    /// Whether to show the menu and ask.
    pub fn shows_menu(&self) -> bool {
        self.prompt != 0
    }

    /// The menu's timeout in whole seconds (`timeout` is in tenths, rounded
    /// up as U-Boot does); 0: wait for ever.
    pub fn timeout_secs(&self) -> u64 {
        (self.timeout.max(0) as u64).div_ceil(10)
    }

    /// The menu as U-Boot prints it: the title, then `N:\tlabel` lines.
    pub fn menu_text(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.title {
            s.push_str(t);
            s.push('\n');
        }
        for (i, l) in self.labels.iter().enumerate() {
            s.push_str(&format!("{}:\t{}\n", i + 1, l.display_name()));
        }
        s
    }

    /// The label chosen by typing `key` at the menu (its number).
    pub fn by_key(&self, key: &str) -> Option<usize> {
        let n: usize = key.trim().parse().ok()?;
        (1..=self.labels.len()).contains(&n).then(|| n - 1)
    }
}

impl Label {
    /// `menu label` if set, else the name.
    pub fn display_name(&self) -> &str {
        self.menu_label.as_deref().unwrap_or(&self.name)
    }

    /// The device tree file to load, relative to the configuration's
    /// directory, and whether failing to load it skips the label (`fdt`:
    /// yes; `fdtdir`: no, U-Boot boots without it). `fdtfile`, `soc` and
    /// `board` are the environment's; with `fdtdir` the file is `fdtfile`,
    /// else `<soc>-<board>.dtb` with the missing parts left out.
    pub fn fdt_file(
        &self,
        fdtfile: Option<&str>,
        soc: Option<&str>,
        board: Option<&str>,
    ) -> Option<(String, bool)> {
        if let Some(f) = &self.fdt {
            return Some((f.clone(), true));
        }
        let dir = self.fdtdir.as_deref()?;
        let name = match fdtfile {
            Some(f) => f.to_string(),
            None => {
                let (soc, dash) = match soc {
                    Some(s) => (s, "-"),
                    None => ("", ""),
                };
                let (dash, board) = match board {
                    Some(b) => (dash, b),
                    None => ("", ""),
                };
                format!("{soc}{dash}{board}.dtb")
            }
        };
        let slash = if dir.is_empty() {
            "./"
        } else if dir.ends_with('/') {
            ""
        } else {
            "/"
        };
        Some((format!("{dir}{slash}{name}"), false))
    }

    /// The kernel command line U-Boot sets before booting: `append`, then
    /// ` ip=<ipaddr>:<serverip>:<gatewayip>:<netmask>` (ipappend bit 0) and
    /// ` BOOTIF=01-<mac>` (bit 1), from the environment `get`; `None` when
    /// there is nothing to set. The caller expands `${var}` in it.
    pub fn bootargs(&self, get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if self.append.is_none() && self.ipappend & 3 == 0 {
            return None;
        }
        let mut s = self.append.clone().unwrap_or_default();
        if self.ipappend & 1 != 0 {
            let v = |n: &str| get(n).unwrap_or_default();
            s.push_str(&format!(
                " ip={}:{}:{}:{}",
                v("ipaddr"),
                v("serverip"),
                v("gatewayip"),
                v("netmask")
            ));
        }
        if self.ipappend & 2 != 0 {
            if let Some(mac) = get("ethaddr") {
                s.push_str(&format!(
                    " BOOTIF=01-{}",
                    mac.to_ascii_lowercase().replace(':', "-")
                ));
            }
        }
        Some(s)
    }
}

/// A path from the configuration made usable: relative paths are joined to
/// `bootdir` (the directory of the configuration file for `sysboot`, of
/// `bootfile` for `pxe`); absolute ones stand for themselves when
/// `allow_abs` (`sysboot`), else they are joined too (`pxe`, as U-Boot).
pub fn resolve(bootdir: &str, path: &str, allow_abs: bool) -> Result<String, String> {
    let full = if path.starts_with('/') && allow_abs {
        path.to_string()
    } else {
        format!("{bootdir}{path}")
    };
    if full.len() > MAX_PATH {
        return Err(format!("Base path too long ({full})"));
    }
    Ok(full)
}

/// The directory of a file path, with its trailing `/` (`/boot/extlinux/`
/// for `/boot/extlinux/extlinux.conf`); empty without one.
pub fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn no_include(_: &str) -> Result<Vec<u8>, String> {
        Err("no includes here".into())
    }

    fn p(text: &str) -> Result<(BootMenu, Vec<Note>), ConfError> {
        parse("extlinux.conf", text.as_bytes(), &mut no_include)
    }

    /// What Debian's u-boot-menu (`u-boot-update`) writes.
    const DEBIAN: &str = "## /boot/extlinux/extlinux.conf\n##\n## IMPORTANT WARNING\n##\n## The configuration of this file is generated automatically.\n## Do not edit this file manually, use: u-boot-update\n\ndefault l0\nmenu title U-Boot menu\nprompt 0\ntimeout 50\n\n\nlabel l0\n\tmenu label Debian GNU/Linux 12 (bookworm) 6.1.0-18-arm64\n\tlinux /boot/vmlinuz-6.1.0-18-arm64\n\tinitrd /boot/initrd.img-6.1.0-18-arm64\n\tfdtdir /usr/lib/linux-image-6.1.0-18-arm64/\n\t\n\tappend root=/dev/vda2 ro quiet\n\nlabel l0r\n\tmenu label Debian GNU/Linux 12 (bookworm) 6.1.0-18-arm64 (rescue target)\n\tlinux /boot/vmlinuz-6.1.0-18-arm64\n\tinitrd /boot/initrd.img-6.1.0-18-arm64\n\tfdtdir /usr/lib/linux-image-6.1.0-18-arm64/\n\tappend root=/dev/vda2 ro  single\n\t\n";

    #[test]
    fn debian_u_boot_menu_file() {
        let (m, notes) = p(DEBIAN).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(m.title.as_deref(), Some("U-Boot menu"));
        assert_eq!(m.default.as_deref(), Some("l0"));
        assert_eq!(m.timeout, 50);
        assert_eq!(m.timeout_secs(), 5);
        assert!(!m.shows_menu());
        assert_eq!(m.labels.len(), 2);
        let l = &m.labels[0];
        assert_eq!(l.name, "l0");
        assert_eq!(l.line, 14);
        assert_eq!(l.kernel.as_deref(), Some("/boot/vmlinuz-6.1.0-18-arm64"));
        assert_eq!(l.initrd, vec!["/boot/initrd.img-6.1.0-18-arm64"]);
        assert_eq!(l.append.as_deref(), Some("root=/dev/vda2 ro quiet"));
        assert_eq!(
            l.fdt_file(Some("qemu.dtb"), None, None),
            Some(("/usr/lib/linux-image-6.1.0-18-arm64/qemu.dtb".into(), false))
        );
        assert_eq!(
            m.labels[1].append.as_deref(),
            Some("root=/dev/vda2 ro  single")
        );
        assert_eq!(m.boot_order(None), vec![0, 1]);
        assert_eq!(
            m.menu_text(),
            "U-Boot menu\n1:\tDebian GNU/Linux 12 (bookworm) 6.1.0-18-arm64\n2:\tDebian GNU/Linux 12 (bookworm) 6.1.0-18-arm64 (rescue target)\n"
        );
    }

    #[test]
    fn fedora_style_with_devicetree_overlays_and_menu_default() {
        let text = "# comment\r\nMENU TITLE Fedora\r\nTIMEOUT 20\r\nlabel Fedora-Server (6.5.6-300.fc39.aarch64)\r\n  kernel /vmlinuz-6.5.6#conf-1\r\n  append ro root=UUID=1234 initrd=/ignored.img\r\n  initrd /initramfs-6.5.6.img,/extra.cpio\r\n  devicetree-overlay /dtb/a.dtbo  /dtb/b.dtbo\r\n  devicetree /dtb/board.dtb\r\n  menu default\r\n  kaslrseed\r\nlabel rescue\r\n  localboot 1\r\n";
        let (m, notes) = p(text).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert!(m.shows_menu());
        assert_eq!(m.timeout_secs(), 2);
        let l = &m.labels[0];
        assert_eq!(l.name, "Fedora-Server (6.5.6-300.fc39.aarch64)");
        assert_eq!(l.kernel.as_deref(), Some("/vmlinuz-6.5.6"));
        assert_eq!(l.kernel_config.as_deref(), Some("#conf-1"));
        // initrd= in append came first: the initrd line is ignored.
        assert_eq!(l.initrd, vec!["/ignored.img"]);
        assert_eq!(l.fdtoverlays, vec!["/dtb/a.dtbo", "/dtb/b.dtbo"]);
        assert_eq!(
            l.fdt_file(None, None, None),
            Some(("/dtb/board.dtb".into(), true))
        );
        assert!(l.kaslrseed);
        assert_eq!(
            m.default.as_deref(),
            Some("Fedora-Server (6.5.6-300.fc39.aarch64)")
        );
        assert_eq!(m.labels[1].localboot, Some(1));
    }

    #[test]
    fn initrd_list_and_unknown_commands() {
        let text =
            "label a\n kernel /k\n initrd /i1, /i2 ,/i3\n say hello\n append x\ntimeout 30\n";
        let (m, notes) = p(text).unwrap();
        assert_eq!(m.labels[0].initrd, vec!["/i1", "/i2", "/i3"]);
        // "say" ends the label (as in U-Boot); "append" then is unknown at
        // the top level.
        assert_eq!(
            notes,
            vec![
                Note("extlinux.conf:4: Ignoring unknown command: say".into()),
                Note("extlinux.conf:5: Ignoring unknown command: append".into()),
            ]
        );
        assert_eq!(m.labels[0].append, None);
        assert_eq!(m.timeout, 30);
    }

    #[test]
    fn malformed_input_names_file_and_line() {
        let e = |t: &str| p(t).unwrap_err().to_string();
        assert_eq!(
            e("label a\n  kernel\n"),
            "extlinux.conf:2: 'kernel' needs a value"
        );
        assert_eq!(e("\n\nlabel   \n"), "extlinux.conf:3: 'label' needs a name");
        assert_eq!(
            e("timeout soon\n"),
            "extlinux.conf:1: 'timeout' needs a number, not 'soon'"
        );
        assert_eq!(e("default\n"), "extlinux.conf:1: 'default' needs a value");
        assert_eq!(
            e("label a\n kernel # no\n"),
            "extlinux.conf:2: 'kernel' needs a value"
        );
        assert_eq!(
            e("menu title\n"),
            "extlinux.conf:1: 'menu title' needs a value"
        );
        assert_eq!(
            e("include other.conf\n"),
            "extlinux.conf:1: cannot include 'other.conf': no includes here"
        );
    }

    #[test]
    fn includes_are_read_and_bounded() {
        let mut inc = |path: &str| -> Result<Vec<u8>, String> {
            match path {
                "a.conf" => Ok(b"label fromA\n kernel /ka\ninclude b.conf\n".to_vec()),
                "b.conf" => Ok(b"menu include c.conf\ndefault fromA\n".to_vec()),
                "c.conf" => Ok(b"label fromC\n linux /kc\n".to_vec()),
                "self.conf" => Ok(b"include self.conf\n".to_vec()),
                "bad.conf" => Ok(b"\nlabel\n".to_vec()),
                _ => Err("not found".into()),
            }
        };
        let (m, _) = parse("top", b"include a.conf\nlabel last\n", &mut inc).unwrap();
        let names: Vec<&str> = m.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["fromA", "fromC", "last"]);
        assert_eq!(m.labels[1].file, "c.conf");
        assert_eq!(m.default.as_deref(), Some("fromA"));
        assert!(m.shows_menu());
        let e = parse("top", b"include self.conf\n", &mut inc).unwrap_err();
        assert_eq!(e.to_string(), "self.conf:1: includes nested deeper than 16");
        let e = parse("top", b"include bad.conf\n", &mut inc).unwrap_err();
        assert_eq!(e.to_string(), "bad.conf:2: 'label' needs a name");
    }

    #[test]
    fn many_includes_are_bounded() {
        let mut inc = |name: &str| -> Result<Vec<u8>, String> {
            Ok(match name {
                "fan" => "include leaf\n".repeat(70).into_bytes(),
                _ => b"# empty\n".to_vec(),
            })
        };
        let e = parse("top", b"include fan\n", &mut inc).unwrap_err();
        assert_eq!(e.to_string(), "fan:64: more than 64 included files");
    }

    #[test]
    fn fdtdir_names_follow_u_boot() {
        let l = |dir: &str| Label {
            fdtdir: Some(dir.into()),
            ..Label::default()
        };
        assert_eq!(
            l("/dtbs")
                .fdt_file(None, Some("rk3399"), Some("rockpro64"))
                .unwrap()
                .0,
            "/dtbs/rk3399-rockpro64.dtb"
        );
        assert_eq!(
            l("/dtbs/")
                .fdt_file(None, None, Some("qemu-arm"))
                .unwrap()
                .0,
            "/dtbs/qemu-arm.dtb"
        );
        assert_eq!(
            l("").fdt_file(None, Some("soc"), None).unwrap().0,
            "./soc.dtb"
        );
        assert_eq!(
            l("d")
                .fdt_file(Some("vendor/b.dtb"), Some("x"), Some("y"))
                .unwrap()
                .0,
            "d/vendor/b.dtb"
        );
        assert_eq!(l("d").fdt_file(None, None, None).unwrap().0, "d/.dtb");
        assert_eq!(Label::default().fdt_file(Some("x"), None, None), None);
    }

    #[test]
    fn paths_and_bootargs() {
        assert_eq!(dir_of("/boot/extlinux/extlinux.conf"), "/boot/extlinux/");
        assert_eq!(dir_of("pxelinux.cfg/default"), "pxelinux.cfg/");
        assert_eq!(dir_of("x"), "");
        assert_eq!(
            resolve("/boot/extlinux/", "/vmlinuz", true).unwrap(),
            "/vmlinuz"
        );
        assert_eq!(
            resolve("/boot/extlinux/", "../vmlinuz", true).unwrap(),
            "/boot/extlinux/../vmlinuz"
        );
        assert_eq!(
            resolve("tftp/", "/vmlinuz", false).unwrap(),
            "tftp//vmlinuz"
        );
        assert!(resolve("", &"x".repeat(513), true)
            .unwrap_err()
            .starts_with("Base path too long"));
        let l = Label {
            append: Some("console=ttyAMA0".into()),
            ipappend: 3,
            ..Label::default()
        };
        let env = |n: &str| match n {
            "ipaddr" => Some("10.0.2.15".into()),
            "serverip" => Some("10.0.2.2".into()),
            "gatewayip" => Some("10.0.2.2".into()),
            "netmask" => Some("255.255.255.0".into()),
            "ethaddr" => Some("52:54:00:12:34:56".into()),
            _ => None,
        };
        assert_eq!(
            l.bootargs(&env).unwrap(),
            "console=ttyAMA0 ip=10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0 BOOTIF=01-52-54-00-12-34-56"
        );
        assert_eq!(Label::default().bootargs(&env), None);
    }

    #[test]
    fn defaults_overrides_and_keys() {
        let (m, _) = p("label a\nlabel b\nlabel c\ndefault b\n").unwrap();
        assert_eq!(m.boot_order(None), vec![1, 0, 2]);
        assert_eq!(m.default_index(Some("c")), (Some(2), None));
        assert_eq!(
            m.default_index(Some("zz")),
            (Some(1), Some("Missing override pxe label: zz".into()))
        );
        assert_eq!(m.by_key("3"), Some(2));
        assert_eq!(m.by_key("4"), None);
        let (m, _) = p("label a\ndefault nothere\n").unwrap();
        assert_eq!(m.boot_order(None), vec![0]);
    }

    #[test]
    fn nul_ends_the_file_and_odd_bytes_are_kept_apart() {
        let (m, _) = parse("f", b"label a\n kernel /k\0label b\n", &mut no_include).unwrap();
        assert_eq!(m.labels.len(), 1);
        let (m, notes) = parse("f", b"\xff\xfe\nlabel \xc3\xa9\n", &mut no_include).unwrap();
        assert_eq!(m.labels[0].name, "\u{e9}");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn menu_lines_inside_and_outside_labels() {
        let (m, notes) =
            p("menu\nmenu label x\nlabel a\n menu\n menu foo\n menu label\n kernel /k\n").unwrap();
        assert_eq!(m.labels[0].kernel.as_deref(), Some("/k"));
        let n: Vec<&str> = notes.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(
            n,
            vec![
                "extlinux.conf:1: Ignoring malformed menu command: menu",
                "extlinux.conf:2: Ignoring malformed menu command: label",
                "extlinux.conf:4: Ignoring malformed menu command: menu",
                "extlinux.conf:5: Ignoring malformed menu command: foo",
                "extlinux.conf:6: 'menu label' needs a value",
            ]
        );
    }
}
