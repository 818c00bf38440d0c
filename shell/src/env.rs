//! The environment: an ordered name → value store, and its text form.
//!
//! Text form (used by `saveenv`/loading): one `name=value` per line, sorted
//! by name. In values, a backslash is written `\\`, a newline `\n` and a
//! carriage return `\r`; every other character is written as is. When
//! parsing, blank lines and lines whose first non-blank character is `#`
//! are ignored.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Errors from environment updates and from parsing the text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// The variable name is empty.
    EmptyName,
    /// The variable name contains a character outside `[A-Za-z0-9_.-]`.
    BadName {
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// A line of the text form is malformed.
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::EmptyName => write!(f, "## Error: empty variable name"),
            EnvError::BadName { name, ch } => write!(
                f,
                "## Error: illegal character '{}' in variable name \"{}\"",
                ch.escape_default(),
                name.escape_default()
            ),
            EnvError::Parse { line, reason } => write!(f, "env: line {line}: {reason}"),
        }
    }
}

/// Check that `name` is a valid variable name: one or more of
/// `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), EnvError> {
    if name.is_empty() {
        return Err(EnvError::EmptyName);
    }
    match name.chars().find(|&c| !is_name_char(c)) {
        Some(ch) => Err(EnvError::BadName {
            name: name.into(),
            ch,
        }),
        None => Ok(()),
    }
}

/// Size of U-Boot's binary environment block (`CONFIG_ENV_SIZE` of
/// Debian's qemu_arm64 build): what `env export -b/-c` write without `-s`,
/// and the limit `printenv` reports. parkboot's own environment file has
/// no such limit.
pub const ENV_BLOCK_SIZE: usize = 0x40000;
/// The data part of a binary block (after its 4-byte CRC).
pub(crate) const ENV_DATA_SIZE: usize = ENV_BLOCK_SIZE - 4;

/// Characters allowed in variable names.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The environment. Variables are kept sorted by name; an empty value is
/// the same as an unset variable (setting one deletes the variable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Set `name` to `value` (an empty value deletes the variable).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EnvError> {
        check_name(name)?;
        if value.is_empty() {
            self.vars.remove(name);
        } else {
            self.vars.insert(name.into(), value.into());
        }
        Ok(())
    }

    /// Delete `name`; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        self.vars.remove(name).is_some()
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Delete every variable.
    pub fn clear(&mut self) {
        self.vars.clear();
    }

    /// Serialize to the text form (`name=value\n` lines, sorted).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.vars {
            out.push_str(k);
            out.push('=');
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        }
        out
    }

    /// Parse the text form. The whole text must be valid: the first bad
    /// line gives an error naming its (1-based) number and nothing is
    /// returned. Later lines override earlier ones; `name=` deletes.
    pub fn from_text(text: &str) -> Result<Env, EnvError> {
        let mut env = Env::new();
        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx.saturating_add(1);
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |reason: String| EnvError::Parse {
                line: line_no,
                reason,
            };
            let Some((name, escaped)) = line.split_once('=') else {
                return Err(err("missing '='".into()));
            };
            match check_name(name) {
                Ok(()) => {}
                Err(EnvError::EmptyName) => return Err(err("empty variable name".into())),
                Err(_) => {
                    return Err(err(format!(
                        "invalid variable name \"{}\"",
                        name.escape_default()
                    )))
                }
            }
            let value = unescape(escaped).map_err(err)?;
            // `set` cannot fail here: the name was checked above.
            let _ = env.set(name, &value);
        }
        Ok(env)
    }
}

/// Undo the escaping of [`Env::to_text`].
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => return Err(format!("bad escape '\\{}'", other.escape_default())),
            None => return Err("backslash at end of line".into()),
        }
    }
    Ok(out)
}

/// One entry of environment data being imported (`env import`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImportOp {
    /// `name=value`.
    Set(String, String),
    /// `name` or `name=` alone: delete the variable.
    Delete(String),
}

/// Why imported environment data was refused; nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportError {
    /// Where: `line N` (text) or `entry N` (binary).
    pub place: String,
    pub reason: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.reason)
    }
}

impl Env {
    /// U-Boot's `hexport_r`: `name=value` entries, each followed by `sep`,
    /// sorted by name (byte order, as `strcmp`). With a separator other
    /// than NUL, a `sep` or `\` in a value is escaped with a `\`, so that
    /// the text can be imported again. `only`: just these names (exact
    /// matches; unknown ones are skipped); `hide_dot`: leave out names
    /// starting with `.` (what `printenv` does). The terminating NUL that
    /// U-Boot counts in its sizes is not included.
    pub(crate) fn export(&self, sep: u8, hide_dot: bool, only: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.vars {
            if !only.is_empty() && !only.iter().any(|o| o == k) {
                continue;
            }
            if hide_dot && k.starts_with('.') {
                continue;
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            for &b in v.as_bytes() {
                if sep != 0 && (b == sep || b == b'\\') {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(sep);
        }
        out
    }
}

/// Parse environment data the way U-Boot's `himport_r` reads it, into
/// checked entries. Entries are separated by `sep` (`\n` for text, NUL for
/// binary; a NUL also ends a text entry) and the data ends at its end or at
/// an entry that starts with NUL (`\n\0`, `\0\0`); leading blanks are
/// skipped, entries starting with `#` are comments, `name` or `name=` alone
/// deletes, and in values a `\` makes the next character literal (so
/// `\`+newline continues a value on the next line). With `crlf_is_lf`, a CR
/// before a LF is dropped first.
///
/// Unlike U-Boot, which would store whatever it finds, the whole data is
/// refused (nothing imported) when an entry is not an environment entry: a
/// name outside `[A-Za-z0-9_.-]`, an empty name with a value, a value that
/// is not UTF-8 text or holds control characters other than tab, CR and LF.
pub(crate) fn parse_import(
    data: &[u8],
    sep: u8,
    crlf_is_lf: bool,
) -> Result<Vec<ImportOp>, ImportError> {
    let stripped;
    let d: &[u8] = if crlf_is_lf {
        stripped = data
            .iter()
            .enumerate()
            .filter(|&(i, &b)| !(b == b'\r' && data.get(i + 1) == Some(&b'\n')))
            .map(|(_, &b)| b)
            .collect::<Vec<u8>>();
        &stripped
    } else {
        data
    };
    let at = |i: usize| d.get(i).copied().unwrap_or(0);
    let place = |start: usize| {
        if sep == b'\n' {
            let line = d
                .get(..start)
                .map_or(0, |p| p.iter().filter(|&&b| b == b'\n').count());
            format!("line {}", line.saturating_add(1))
        } else {
            let entry = d
                .get(..start)
                .map_or(0, |p| p.iter().filter(|&&b| b == sep).count());
            format!("entry {}", entry.saturating_add(1))
        }
    };
    let mut ops = Vec::new();
    let mut i = 0usize;
    while i < d.len() && at(i) != 0 {
        while matches!(at(i), b' ' | b'\t') {
            i += 1;
        }
        let start = i;
        if at(i) == b'#' {
            while at(i) != 0 && at(i) != sep {
                i += 1;
            }
            i += 1;
            continue;
        }
        while at(i) != b'=' && at(i) != 0 && at(i) != sep {
            i += 1;
        }
        let name_bytes = d.get(start..i).unwrap_or(&[]);
        let bad = |reason: String| ImportError {
            place: place(start),
            reason,
        };
        let name = core::str::from_utf8(name_bytes)
            .map_err(|_| bad("variable name is not text".into()))?;
        let c = at(i);
        let next = at(i + 1);
        if c == 0 || c == sep || next == 0 || next == sep {
            // `name` or `name=`: delete.
            i += if c == b'=' { 2 } else { 1 };
            if !name.is_empty() {
                check_name(name).map_err(|_| {
                    bad(format!(
                        "invalid variable name \"{}\"",
                        name.escape_default()
                    ))
                })?;
                ops.push(ImportOp::Delete(name.into()));
            }
            continue;
        }
        i += 1; // the '='
        let mut value = Vec::new();
        while at(i) != 0 && at(i) != sep {
            if at(i) == b'\\' && at(i + 1) != 0 {
                i += 1;
            }
            value.push(at(i));
            i += 1;
        }
        i += 1; // the separator
        if name.is_empty() {
            return Err(bad("empty variable name".into()));
        }
        check_name(name).map_err(|_| {
            bad(format!(
                "invalid variable name \"{}\"",
                name.escape_default()
            ))
        })?;
        let value = String::from_utf8(value)
            .map_err(|_| bad(format!("value of \"{name}\" is not text (not UTF-8)")))?;
        if let Some(ch) = value
            .chars()
            .find(|&ch| ch.is_control() && !matches!(ch, '\t' | '\n' | '\r'))
        {
            return Err(bad(format!(
                "value of \"{name}\" is not text (control character {:#04x})",
                u32::from(ch)
            )));
        }
        ops.push(ImportOp::Set(name.into(), value));
    }
    Ok(ops)
}
