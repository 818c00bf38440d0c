//! The saved environment on a FAT volume: U-Boot's redundant environment
//! (`CONFIG_SYS_REDUNDAND_ENVIRONMENT`) as two text files.
//!
//! * Two copies, [`ENV_FILES`]: `/parkboot.env` and `/parkboot-redund.env`
//!   (U-Boot's `uboot.env` / `uboot-redund.env`). Each saved copy is the
//!   shell's text form after one header line
//!   `#parkboot-env v1 seq=<n> len=<bytes> crc32=<8 hex digits>`: `len` bytes
//!   of text follow the header, `crc32` is their CRC-32, `seq` counts saves.
//!   The file is padded with newlines to a multiple of 4 KiB. Being a comment
//!   line, the header is skipped by an older parkboot, which reads the text
//!   as before.
//! * Loading: the valid copy with the highest `seq` wins. A copy that is
//!   cut off, fails its CRC or does not parse is named on the console and
//!   ignored, never read back silently. A file without the header (a
//!   `/parkboot.env` written by hand or by an older parkboot) still loads,
//!   as the oldest possible copy (`seq` 0), and is said to have no checksum.
//! * Saving writes the copy that is *not* the newest valid one, with
//!   `seq + 1`; the newest valid copy is never touched, so a power cut or a
//!   write error at any moment leaves it — the old environment — or the
//!   complete new one. When the target file already has room, the new copy
//!   is written into its own clusters ([`fs::overwrite`]): no FAT or
//!   directory block changes at all. Otherwise it goes through `fs::write`
//!   (create or grow; a transaction, see docs/storage.md). The written copy
//!   is read back and checked before `saveenv` says OK.
//!
//! Everything here works on any [`BlockDevice`] and is tested on the host
//! with a disk that loses power at every block of a save
//! (`loader/tests/envstore.rs`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use drivers::block::BlockDevice;
use drivers::fs::{self, FsError};
use shell::Env;

/// The two copies, in U-Boot's order (the first is the primary).
pub const ENV_FILES: [&str; 2] = ["/parkboot.env", "/parkboot-redund.env"];
/// Start of a saved copy's header line.
pub const MAGIC: &str = "#parkboot-env";
/// The format version after [`MAGIC`].
const VERSION: &str = " v1 ";
/// Largest environment text `saveenv` writes (U-Boot's 256 KiB env block).
pub const MAX_TEXT: usize = shell::ENV_BLOCK_SIZE;
/// Largest copy that is read: the text, its header and padding.
pub const MAX_FILE: u64 = MAX_TEXT as u64 + PAD as u64;
/// Copies are padded to a multiple of this, so that a slightly larger
/// environment still fits in place.
const PAD: usize = 4096;

/// What one copy on the volume holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// No such file.
    Missing,
    /// A checked copy: header, length and CRC good, text parsed.
    Saved {
        /// Save counter from the header.
        seq: u64,
        /// The environment it holds.
        env: Env,
        /// The file's size (room for an in-place save).
        size: u64,
    },
    /// A file without the header: hand-written or from an older parkboot.
    /// It parsed, but there is nothing to check it against.
    Plain {
        /// The environment it holds.
        env: Env,
        /// The file's size.
        size: u64,
    },
    /// A file that is there but unusable, and why (one line).
    Bad {
        /// Why it was ignored.
        why: String,
        /// The file's size, if it could be read.
        size: Option<u64>,
    },
}

impl Copy {
    /// The save counter of a usable copy: a plain file is the oldest.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Copy::Saved { seq, .. } => Some(*seq),
            Copy::Plain { .. } => Some(0),
            Copy::Missing | Copy::Bad { .. } => None,
        }
    }

    fn env(&self) -> Option<&Env> {
        match self {
            Copy::Saved { env, .. } | Copy::Plain { env, .. } => Some(env),
            Copy::Missing | Copy::Bad { .. } => None,
        }
    }

    fn size(&self) -> Option<u64> {
        match self {
            Copy::Saved { size, .. } | Copy::Plain { size, .. } => Some(*size),
            Copy::Bad { size, .. } => *size,
            Copy::Missing => None,
        }
    }
}

/// The header line of a copy holding `text` as save number `seq`.
fn header(seq: u64, text: &[u8]) -> String {
    format!(
        "{MAGIC}{VERSION}seq={seq} len={} crc32={:08x}\n",
        text.len(),
        crc32fast::hash(text)
    )
}

/// The bytes of a copy: header, text, newlines up to `size` or to the next
/// multiple of 4 KiB, whichever is larger.
pub fn encode(seq: u64, text: &str, size: usize) -> Vec<u8> {
    let mut out = header(seq, text.as_bytes()).into_bytes();
    out.extend_from_slice(text.as_bytes());
    let want = out.len().div_ceil(PAD).saturating_mul(PAD).max(size);
    out.resize(want, b'\n');
    out
}

/// Parses `<key>=<value>` with the expected key.
fn field<'a>(word: Option<&'a str>, key: &str) -> Result<&'a str, String> {
    word.and_then(|w| w.strip_prefix(key))
        .and_then(|w| w.strip_prefix('='))
        .ok_or_else(|| format!("bad header: no {key}="))
}

/// Reads a copy's bytes (the whole file) into what it holds.
pub fn decode(bytes: &[u8]) -> Copy {
    let size = Some(bytes.len() as u64);
    let bad = |why: String| Copy::Bad { why, size };
    if bytes.is_empty() {
        return bad("empty file".into());
    }
    let framed = bytes.starts_with(MAGIC.as_bytes()) || MAGIC.as_bytes().starts_with(bytes);
    if !framed {
        return match core::str::from_utf8(bytes) {
            Err(_) => bad("not text".into()),
            Ok(t) => match Env::from_text(t) {
                Ok(env) => Copy::Plain {
                    env,
                    size: bytes.len() as u64,
                },
                Err(e) => bad(e.to_string()),
            },
        };
    }
    let rest = bytes.get(MAGIC.len()..).unwrap_or(&[]);
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return bad("cut off in its header".into());
    };
    let (line, body) = (&rest[..nl], &rest[nl + 1..]);
    let Some(line) = line.strip_prefix(VERSION.as_bytes()) else {
        return bad("bad header: not version 1".into());
    };
    let parsed = core::str::from_utf8(line)
        .map_err(|_| String::from("bad header: not text"))
        .and_then(|l| {
            let mut w = l.split(' ');
            let seq = field(w.next(), "seq")?;
            let len = field(w.next(), "len")?;
            let crc = field(w.next(), "crc32")?;
            if w.next().is_some() {
                return Err("bad header: extra fields".into());
            }
            let num = |s: &str, what: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("bad header: {what}={s}"))
            };
            let crc = u32::from_str_radix(crc, 16)
                .ok()
                .filter(|_| crc.len() == 8)
                .ok_or_else(|| format!("bad header: crc32={crc}"))?;
            Ok((num(seq, "seq")?, num(len, "len")?, crc))
        });
    let (seq, len, crc) = match parsed {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let Some(text) = usize::try_from(len).ok().and_then(|n| body.get(..n)) else {
        return bad(format!(
            "cut off: the header says {len} bytes of text, {} follow",
            body.len()
        ));
    };
    if crc32fast::hash(text) != crc {
        return bad(format!(
            "CRC mismatch (save {seq} did not complete, or the file was changed)"
        ));
    }
    let env = core::str::from_utf8(text)
        .map_err(|_| String::from("not text"))
        .and_then(|t| Env::from_text(t).map_err(|e| e.to_string()));
    match env {
        Ok(env) => Copy::Saved {
            seq,
            env,
            size: bytes.len() as u64,
        },
        Err(e) => bad(e),
    }
}

/// Reads the copy at `path`.
pub fn read_copy<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Copy {
    let size = match fs::size(dev, path) {
        Ok(n) => n,
        Err(FsError::NotFound(_)) => return Copy::Missing,
        Err(e) => {
            return Copy::Bad {
                why: e.to_string(),
                size: None,
            }
        }
    };
    if size > MAX_FILE {
        return Copy::Bad {
            why: format!("too large ({size} bytes; at most {MAX_FILE})"),
            size: Some(size),
        };
    }
    let mut buf = alloc::vec![0u8; size as usize];
    match fs::read(dev, path, &mut buf, 0) {
        Ok(n) if n as u64 == size => decode(&buf),
        Ok(n) => Copy::Bad {
            why: format!("read {n} of {size} bytes"),
            size: Some(size),
        },
        Err(e) => Copy::Bad {
            why: e.to_string(),
            size: Some(size),
        },
    }
}

/// Both copies, in [`ENV_FILES`] order.
pub fn read_copies<D: BlockDevice + ?Sized>(dev: &mut D) -> [Copy; 2] {
    [read_copy(dev, ENV_FILES[0]), read_copy(dev, ENV_FILES[1])]
}

/// Index of the newest usable copy (the first one on a tie).
pub fn newest(copies: &[Copy; 2]) -> Option<usize> {
    match (copies[0].seq(), copies[1].seq()) {
        (Some(a), Some(b)) => Some(if b > a { 1 } else { 0 }),
        (Some(_), None) => Some(0),
        (None, Some(_)) => Some(1),
        (None, None) => None,
    }
}

/// What loading found: the environment to use (if any) and the console
/// lines that say where it came from and what was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The newest usable copy's environment.
    pub env: Option<Env>,
    /// One line each (without "env: " and the newline).
    pub notes: Vec<String>,
}

/// Loads the newest usable copy; `place` names the volume in the notes
/// ("virtio 0"). No copy at all is not worth a note.
pub fn load<D: BlockDevice + ?Sized>(dev: &mut D, place: &str) -> Loaded {
    if let Err(e) = fs::FatVolume::mount(dev) {
        return Loaded {
            env: None,
            notes: alloc::vec![format!("{place}: {e}")],
        };
    }
    let copies = read_copies(dev);
    let mut notes = Vec::new();
    for (c, path) in copies.iter().zip(ENV_FILES) {
        if let Copy::Bad { why, .. } = c {
            notes.push(format!("{path} on {place} ignored: {why}"));
        }
    }
    let Some(i) = newest(&copies) else {
        if !notes.is_empty() {
            notes.push("no usable saved environment: using the defaults".into());
        }
        return Loaded { env: None, notes };
    };
    let env = copies[i].env().cloned();
    let n = env.as_ref().map_or(0, Env::len);
    let what = match &copies[i] {
        Copy::Saved { seq, .. } => format!("save {seq}, CRC ok"),
        _ => "plain text, no checksum".into(),
    };
    notes.push(format!(
        "{n} variable(s) from {} on {place} ({what})",
        ENV_FILES[i]
    ));
    Loaded { env, notes }
}

/// A save that did not happen; the newest usable copy is untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveError {
    /// The copy that was being written, if it got that far.
    pub path: Option<&'static str>,
    /// What went wrong.
    pub why: String,
    /// The copy that still holds the saved environment: (path, seq).
    pub kept: Option<(&'static str, u64)>,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.path {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.why)?;
        match self.kept {
            Some((p, 0)) => write!(f, "; {p} (plain text) is still the saved environment"),
            Some((p, seq)) => write!(f, "; {p} (save {seq}) is still the saved environment"),
            None => write!(f, "; nothing was saved before"),
        }
    }
}

/// A save that happened: which copy, which number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The copy written.
    pub path: &'static str,
    /// Its save counter.
    pub seq: u64,
    /// Whether it was written in place (no FAT or directory change).
    pub in_place: bool,
}

/// Saves `env` as the next copy (see the module documentation).
pub fn save<D: BlockDevice + ?Sized>(dev: &mut D, env: &Env) -> Result<Saved, SaveError> {
    let text = env.to_text();
    let copies = read_copies(dev);
    let cur = newest(&copies);
    let kept = cur.map(|i| (ENV_FILES[i], copies[i].seq().unwrap_or(0)));
    let fail = |path, why: String| SaveError { path, why, kept };
    if text.len() > MAX_TEXT {
        return Err(fail(
            None,
            format!(
                "the environment is {} bytes of text; at most {MAX_TEXT} can be saved",
                text.len()
            ),
        ));
    }
    let target = match cur {
        Some(i) => 1 - i,
        None => 0,
    };
    let path = ENV_FILES[target];
    let seq = cur
        .and_then(|i| copies[i].seq())
        .map_or(1, |s| s.saturating_add(1));
    let room = copies[target]
        .size()
        .filter(|&s| s <= MAX_FILE)
        .unwrap_or(0);
    let bytes = encode(seq, &text, room as usize);
    let in_place = bytes.len() as u64 == room;
    let written = if in_place {
        fs::overwrite(dev, path, &bytes)
    } else {
        fs::write(dev, path, &bytes)
    };
    written.map_err(|e| fail(Some(path), e.to_string()))?;
    match read_copy(dev, path) {
        Copy::Saved { seq: s, env: e, .. } if s == seq && e == *env => Ok(Saved {
            path,
            seq,
            in_place,
        }),
        Copy::Bad { why, .. } => Err(fail(Some(path), format!("read back: {why}"))),
        _ => Err(fail(
            Some(path),
            "read back: not what was written".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut e = Env::new();
        for (k, v) in pairs {
            e.set(k, v).unwrap();
        }
        e
    }

    #[test]
    fn encode_decode_round_trip_and_padding() {
        let e = env(&[("a", "1"), ("bootcmd", "echo x\ny")]);
        let b = encode(7, &e.to_text(), 0);
        assert_eq!(b.len(), 4096);
        assert!(b.starts_with(b"#parkboot-env v1 seq=7 len="));
        assert_eq!(
            decode(&b),
            Copy::Saved {
                seq: 7,
                env: e.clone(),
                size: 4096
            }
        );
        // Room for more: padded to the room.
        assert_eq!(encode(7, &e.to_text(), 12288).len(), 12288);
        // An older loader reads the same variables (the header is a comment).
        let old = Env::from_text(core::str::from_utf8(&b).unwrap()).unwrap();
        assert_eq!(old, e);
    }

    #[test]
    fn damaged_copies_are_bad_with_a_reason() {
        let e = env(&[("a", "1"), ("b", "2")]);
        let b = encode(3, &e.to_text(), 0);
        let why = |c: Copy| match c {
            Copy::Bad { why, .. } => why,
            other => panic!("{other:?}"),
        };
        let mut flipped = b.clone();
        let at = b.iter().position(|&c| c == b'\n').unwrap() + 3;
        flipped[at] ^= 1;
        assert_eq!(
            why(decode(&flipped)),
            "CRC mismatch (save 3 did not complete, or the file was changed)"
        );
        let hl = b.iter().position(|&c| c == b'\n').unwrap() + 1;
        assert_eq!(
            why(decode(&b[..hl + 2])),
            "cut off: the header says 8 bytes of text, 2 follow"
        );
        assert_eq!(why(decode(&b[..10])), "cut off in its header");
        assert_eq!(
            why(decode(b"#parkboot-env v1 seq=x len=0 crc32=00000000\n")),
            "bad header: seq=x"
        );
        assert_eq!(
            why(decode(b"#parkboot-env v1 seq=1 len=0\n")),
            "bad header: no crc32="
        );
        assert_eq!(why(decode(b"no equals\n")), "env: line 1: missing '='");
        assert_eq!(why(decode(&[0xff, b'\n'])), "not text");
        assert_eq!(why(decode(b"")), "empty file");
        assert_eq!(why(decode(b"#parkb")), "cut off in its header");
        assert_eq!(
            why(decode(b"#parkboot-env v2 seq=1\n")),
            "bad header: not version 1"
        );
    }

    #[test]
    fn plain_text_from_before_still_loads() {
        let c = decode(b"bootdelay=0\npen_gather=boot\n");
        assert_eq!(
            c,
            Copy::Plain {
                env: env(&[("bootdelay", "0"), ("pen_gather", "boot")]),
                size: 28
            }
        );
        assert_eq!(c.seq(), Some(0));
    }

    #[test]
    fn newest_usable_copy_wins() {
        let s = |seq| Copy::Saved {
            seq,
            env: Env::new(),
            size: 0,
        };
        let p = Copy::Plain {
            env: Env::new(),
            size: 0,
        };
        let bad = Copy::Bad {
            why: "x".into(),
            size: None,
        };
        assert_eq!(newest(&[s(4), s(5)]), Some(1));
        assert_eq!(newest(&[s(6), s(5)]), Some(0));
        assert_eq!(newest(&[p.clone(), s(1)]), Some(1));
        assert_eq!(newest(&[p.clone(), Copy::Missing]), Some(0));
        assert_eq!(newest(&[bad.clone(), s(1)]), Some(1));
        assert_eq!(newest(&[s(9), bad.clone()]), Some(0));
        assert_eq!(newest(&[bad, Copy::Missing]), None);
    }
}
