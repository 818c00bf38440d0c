//! Environment commands: `printenv`, `setenv`, `showvar` and `env` with its
//! subcommands, byte-compatible with U-Boot 2023.01 (`cmd/nvedit.c`,
//! `lib/hashtable.c`) where scripts or people read the result.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{read_mem, rest, write_mem};
use crate::env::{parse_import, Env, ImportOp, ENV_BLOCK_SIZE, ENV_DATA_SIZE};
use crate::num::hextoul;
use crate::platform::Platform;
use crate::sh_println;
use crate::shell::{CmdError, CmdResult, Shell};

/// Largest environment data `env import` reads (U-Boot's `MAX_ENV_SIZE`).
pub(crate) const MAX_IMPORT: usize = 1 << 20;

/// The `env` subcommands, for U-Boot's unique-prefix lookup.
const SUBCOMMANDS: [&str; 9] = [
    "default", "delete", "exists", "export", "import", "print", "run", "save", "set",
];

fn status(ok: bool) -> CmdResult {
    if ok {
        Ok(())
    } else {
        Err(CmdError::Failed)
    }
}

/// `printenv [-a] [name...]` (also `env print`).
pub(super) fn do_printenv<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let mut names = rest(args);
    let mut hide_dot = true;
    if names.first().is_some_and(|a| a.starts_with("-a")) {
        hide_dot = false;
        names = names.get(1..).unwrap_or(&[]);
    }
    if names.is_empty() {
        let text = sh.env.export(b'\n', hide_dot, &[]);
        sh.platform.write_bytes(&text);
        // U-Boot counts the terminating NUL.
        sh_println!(
            sh,
            "\nEnvironment size: {}/{} bytes",
            text.len() + 1,
            ENV_DATA_SIZE
        );
        return Ok(());
    }
    let mut ok = true;
    for name in names {
        match sh.env.get(name).map(String::from) {
            Some(v) => sh_println!(sh, "{}={}", name, v),
            None => {
                sh_println!(sh, "## Error: \"{}\" not defined", name);
                ok = false;
            }
        }
    }
    status(ok)
}

/// Skip U-Boot's `-f` (force) options; anything else is a usage error.
fn force_flags(args: &[String]) -> Result<&[String], CmdError> {
    let mut args = args;
    while let Some(a) = args.first().filter(|a| a.starts_with('-')) {
        if !a.chars().skip(1).all(|c| c == 'f') {
            return Err(CmdError::Usage);
        }
        args = args.get(1..).unwrap_or(&[]);
    }
    Ok(args)
}

/// `setenv [-f] name [value...]` (also `env set`): the values joined by one
/// space; without value, delete.
pub(super) fn do_setenv<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let args = force_flags(rest(args))?;
    let Some((name, values)) = args.split_first() else {
        return Err(CmdError::Usage);
    };
    let value = values.join(" ");
    sh.env
        .set(name, &value)
        .map_err(|e| CmdError::Msg(e.to_string()))
}

/// `showvar [name...]`: the local shell variables (old hush's command).
pub(super) fn do_showvar<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = rest(args);
    if names.is_empty() {
        let all: String = sh.locals().map(|(k, v)| format!("{k}={v}\n")).collect();
        sh.print(&all);
        return Ok(());
    }
    let mut ok = true;
    for name in names {
        match sh.local(name).map(String::from) {
            Some(v) => sh_println!(sh, "{}={}", name, v),
            None => {
                sh_println!(sh, "## Error: \"{}\" not defined", name);
                ok = false;
            }
        }
    }
    status(ok)
}

/// U-Boot's `find_cmd_tbl`: an exact name, else a unique prefix.
fn find_sub(typed: &str) -> Option<&'static str> {
    if let Some(s) = SUBCOMMANDS.iter().find(|s| **s == typed) {
        return Some(s);
    }
    let mut found = SUBCOMMANDS.iter().filter(|s| s.starts_with(typed));
    match (found.next(), found.next()) {
        (Some(s), None) if !typed.is_empty() => Some(s),
        _ => None,
    }
}

/// `env <subcommand> ...`
pub(super) fn do_env<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    // From here on args[0] is the subcommand, as in U-Boot.
    let sub_args = rest(args);
    let Some(sub) = sub_args.first().and_then(|s| find_sub(s)) else {
        return Err(CmdError::Usage);
    };
    match sub {
        "default" => env_default(sh, sub_args),
        "delete" => env_delete(sh, sub_args),
        "exists" => env_exists(sh, sub_args),
        "export" => env_export(sh, sub_args),
        "import" => env_import(sh, sub_args),
        "print" => do_printenv(sh, sub_args),
        "run" => super::do_run(sh, sub_args),
        "save" => env_save(sh),
        _ => do_setenv(sh, sub_args),
    }
}

fn env_exists<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let Some(name) = args.get(1) else {
        return Err(CmdError::Usage);
    };
    status(sh.env.get(name).is_some())
}

/// `env delete [-f] name...`: fails (silently, like U-Boot) when a variable
/// was not set.
fn env_delete<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = force_flags(rest(args))?;
    let mut ok = true;
    for name in names {
        ok &= sh.env.remove(name);
    }
    status(ok)
}

/// `env save`: the platform's `saveenv`, if it has one.
fn env_save<P: Platform>(sh: &mut Shell<P>) -> CmdResult {
    if sh.find_command("saveenv").is_none() {
        return Err(CmdError::Msg(
            "env save: this platform has no saveenv".into(),
        ));
    }
    sh.run_command(&[String::from("saveenv")])
}

/// `env default [-f] -a` or `env default [-f] var...`.
fn env_default<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let mut all = false;
    let mut names = rest(args);
    while let Some(a) = names.first().filter(|a| a.starts_with('-')) {
        for c in a.chars().skip(1) {
            match c {
                'a' => all = true,
                'f' => {}
                _ => return Err(CmdError::Usage),
            }
        }
        names = names.get(1..).unwrap_or(&[]);
    }
    match (all, names.is_empty()) {
        (true, true) => {
            sh.print("## Resetting to default environment\n");
            sh.env = sh.default_env.clone();
            Ok(())
        }
        (false, false) => {
            // U-Boot since 2025.01: a variable the default environment
            // lacks is deleted (2023.01 left it alone).
            for name in names {
                match sh.default_env.get(name).map(String::from) {
                    Some(v) => {
                        let _ = sh.env.set(name, &v);
                    }
                    None if sh.env.remove(name) => {
                        sh_println!(sh, "WARNING: '{}' not in imported env, deleting it!", name)
                    }
                    None => sh_println!(
                        sh,
                        "WARNING: '{}' neither in running nor in imported env!",
                        name
                    ),
                }
            }
            Ok(())
        }
        _ => Err(CmdError::Usage),
    }
}

/// The format options of `env export` / `env import`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Binary,
    Checksum,
}

/// `env export [-t | -b | -c] [-s size] addr [var...]`
fn env_export<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let mut fmt: Option<Format> = None;
    let mut size: Option<usize> = None;
    let mut i = 1;
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-')) {
        for c in a.chars().skip(1) {
            let f = match c {
                't' => Format::Text,
                'b' => Format::Binary,
                'c' => Format::Checksum,
                's' => {
                    i += 1;
                    let s = args.get(i).ok_or(CmdError::Usage)?;
                    size = Some(usize::try_from(hextoul(s)).unwrap_or(usize::MAX));
                    break;
                }
                _ => return Err(CmdError::Usage),
            };
            if fmt.replace(f).is_some() {
                return Err(CmdError::Msg(
                    "## Error: export: only one of \"-b\", \"-c\" or \"-t\" allowed".into(),
                ));
            }
        }
        i += 1;
    }
    let Some(addr_s) = args.get(i) else {
        return Err(CmdError::Usage);
    };
    let addr = hextoul(addr_s);
    let names = args.get(i + 1..).unwrap_or(&[]);
    let fmt = fmt.unwrap_or(Format::Text);
    let sep = if fmt == Format::Text { b'\n' } else { 0 };
    let mut data = sh.env.export(sep, false, names);
    data.push(0);
    let too_small = |have: usize, need: usize| {
        CmdError::Msg(format!(
            "Env export buffer too small: {have}, but need {need}\n## Error: Cannot export environment: errno = 12"
        ))
    };
    // (bytes written from addr, prefix to write first, `filesize` text)
    let (total, block, filesize) = match fmt {
        Format::Text => {
            let total = size.unwrap_or(data.len());
            if total < data.len() {
                return Err(too_small(total, data.len()));
            }
            (total, data, format!("{total:X}"))
        }
        Format::Binary => {
            let total = size.unwrap_or(ENV_DATA_SIZE);
            if total < data.len() {
                return Err(too_small(total, data.len()));
            }
            // U-Boot reports the block size (data + CRC) for -b too.
            let fs = size.unwrap_or(ENV_BLOCK_SIZE);
            (total, data, format!("{fs:x}"))
        }
        Format::Checksum => {
            let total = size.unwrap_or(ENV_BLOCK_SIZE);
            let area = total.saturating_sub(4);
            if area < data.len() {
                return Err(too_small(area, data.len()));
            }
            let mut h = crc32fast::Hasher::new();
            h.update(&data);
            update_zeros(&mut h, area - data.len());
            let mut block = h.finalize().to_le_bytes().to_vec();
            block.extend_from_slice(&data);
            (total, block, format!("{total:x}"))
        }
    };
    write_mem(sh, "env export", addr, &block, total)?;
    sh.env
        .set("filesize", &filesize)
        .map_err(|e| CmdError::Msg(e.to_string()))
}

/// Feed `n` zero bytes to a CRC.
fn update_zeros(h: &mut crc32fast::Hasher, mut n: usize) {
    let zeros = [0u8; 256];
    while n > 0 {
        let k = n.min(zeros.len());
        h.update(zeros.get(..k).unwrap_or(&[]));
        n -= k;
    }
}

/// Options of `env import`.
struct ImportOpts {
    fmt: Option<Format>,
    crlf_is_lf: bool,
    delete: bool,
}

fn import_opts(args: &[String]) -> Result<(ImportOpts, usize), CmdError> {
    let mut o = ImportOpts {
        fmt: None,
        crlf_is_lf: false,
        delete: false,
    };
    let mut i = 1;
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-')) {
        for c in a.chars().skip(1) {
            let f = match c {
                't' => Format::Text,
                'b' => Format::Binary,
                'c' => Format::Checksum,
                'r' => {
                    o.crlf_is_lf = true;
                    continue;
                }
                'd' => {
                    o.delete = true;
                    continue;
                }
                _ => return Err(CmdError::Usage),
            };
            if o.fmt.replace(f).is_some() {
                return Err(CmdError::Msg(
                    "## import: only one of \"-b\", \"-c\" or \"-t\" allowed".into(),
                ));
            }
        }
        i += 1;
    }
    Ok((o, i))
}

/// Find the end of data without a given size, as U-Boot does: the first
/// `sep` followed by NUL (at most [`MAX_IMPORT`] bytes), + 2.
fn scan_size<P: Platform>(sh: &mut Shell<P>, addr: u64, sep: u8) -> Result<usize, CmdError> {
    const CHUNK: usize = 4096;
    let mut prev: Option<u8> = None;
    let mut off = 0usize;
    while off <= MAX_IMPORT {
        let n = CHUNK.min(MAX_IMPORT + 1 - off);
        let at = addr.wrapping_add(off as u64);
        let chunk = read_mem(sh, "env import", at, n).map_err(|_| {
            CmdError::Msg(format!(
                "## Error: env import: no end of data (separator + NUL) before unreadable memory at {at:#x}; give the size"
            ))
        })?;
        for (k, &b) in chunk.iter().enumerate() {
            if prev == Some(sep) && b == 0 {
                let size = off + k - 1;
                return Ok(size + 2);
            }
            prev = Some(b);
        }
        off += n;
    }
    sh_println!(
        sh,
        "## Warning: Input data exceeds {} bytes - truncated",
        MAX_IMPORT
    );
    Ok(MAX_IMPORT + 2)
}

/// `env import [-d] [-t [-r] | -b | -c] addr [size|-] [var...]`
///
/// The data is read and checked completely before anything changes: on any
/// error the environment is exactly as it was.
fn env_import<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let (o, i) = import_opts(args)?;
    let Some(addr_s) = args.get(i) else {
        return Err(CmdError::Usage);
    };
    if o.fmt.is_none() {
        sh.print("## Warning: defaulting to text format\n");
    }
    let fmt = o.fmt.unwrap_or(Format::Text);
    let sep = if fmt == Format::Text { b'\n' } else { 0 };
    let crlf_is_lf = o.crlf_is_lf && sep == b'\n';
    let addr = hextoul(addr_s);
    let mut scanned = false;
    let size = match args.get(i + 1).filter(|s| *s != "-") {
        Some(s) => usize::try_from(hextoul(s)).unwrap_or(usize::MAX),
        None if fmt == Format::Checksum => {
            return Err(CmdError::Msg(
                "## Error: external checksum format must pass size".into(),
            ))
        }
        None => {
            let size = scan_size(sh, addr, sep)?;
            scanned = true;
            sh_println!(sh, "## Info: input data size = {} = 0x{:X}", size, size);
            size
        }
    };
    let only = args.get(i + 2..).unwrap_or(&[]);
    if size > MAX_IMPORT + 2 {
        return Err(CmdError::Msg(format!(
            "## Error: Environment import failed: size 0x{size:X} is too big (max 0x{MAX_IMPORT:X})"
        )));
    }
    // After a scan that found no end, U-Boot's size reaches one byte past
    // what it scanned; that byte only ever ends the data (as a NUL).
    let len = if scanned {
        size.min(MAX_IMPORT + 1)
    } else {
        size
    };
    let mut raw = read_mem(sh, "env import", addr, len)?;
    if fmt == Format::Checksum {
        raw = check_crc(raw)?;
    }
    let ops = parse_import(&raw, sep, crlf_is_lf).map_err(|e| {
        CmdError::Msg(format!(
            "## Error: Environment import failed: {e}; nothing imported"
        ))
    })?;
    drop(raw);
    let (env, warnings) = apply_import(&sh.env, ops, only, o.delete);
    sh.env = env;
    for w in warnings {
        sh_println!(sh, "{}", w);
    }
    Ok(())
}

/// `-c` data: 4-byte CRC (little-endian) over the rest.
fn check_crc(raw: Vec<u8>) -> Result<Vec<u8>, CmdError> {
    if raw.len() <= 4 {
        return Err(CmdError::Msg(format!(
            "## Error: Invalid size 0x{:X}",
            raw.len()
        )));
    }
    let (crc, data) = raw.split_at(4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(data) != want {
        return Err(CmdError::Msg("## Error: bad CRC, import failed".into()));
    }
    Ok(data.to_vec())
}

/// The environment after an import (U-Boot's himport_r on a copy), and the
/// warnings to print.
fn apply_import(
    current: &Env,
    ops: Vec<ImportOp>,
    only: &[String],
    delete: bool,
) -> (Env, Vec<String>) {
    let mut env = if delete && only.is_empty() {
        Env::new()
    } else {
        current.clone()
    };
    // Each listed name is taken once: its first entry in the data.
    let mut wanted: Vec<Option<&String>> = only.iter().map(Some).collect();
    let mut take = |name: &str| {
        if only.is_empty() {
            return true;
        }
        let mut found = false;
        for w in wanted.iter_mut() {
            if w.is_some_and(|n| n == name) {
                *w = None;
                found = true;
            }
        }
        found
    };
    for op in ops {
        match op {
            ImportOp::Set(k, v) => {
                if take(&k) {
                    let _ = env.set(&k, &v);
                }
            }
            ImportOp::Delete(k) => {
                if take(&k) {
                    env.remove(&k);
                }
            }
        }
    }
    let mut warnings = Vec::new();
    if delete {
        for name in wanted.into_iter().flatten() {
            if env.remove(name) {
                warnings.push(format!(
                    "WARNING: '{name}' not in imported env, deleting it!"
                ));
            } else {
                warnings.push(format!(
                    "WARNING: '{name}' neither in running nor in imported env!"
                ));
            }
        }
    }
    (env, warnings)
}
