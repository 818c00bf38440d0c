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
