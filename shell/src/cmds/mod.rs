//! Generic commands (the loader registers its own on top).

mod env;
mod itest;
mod mem;
mod setexpr;
mod test;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::num::parse_seconds_us;
use crate::platform::Platform;
use crate::shell::{CmdError, CmdResult, Command, Flow, Shell};
use crate::{sh_print, sh_println};

#[cfg(test)]
pub(crate) use setexpr::regex_sub;
pub(crate) use test::{eval as eval_test, TestEnv};

/// Register every generic command.
pub(crate) fn register_builtins<P: Platform>(sh: &mut Shell<P>) {
    let cmds: [Command<P>; 24] = [
        Command {
            name: "help",
            usage: "help [command...]",
            help: "print command description/usage",
            run: do_help::<P>,
        },
        Command {
            name: "version",
            usage: "version",
            help: "print version information",
            run: do_version::<P>,
        },
        Command {
            name: "echo",
            usage: "echo [-n] [args...]",
            help: "echo args to console",
            run: do_echo::<P>,
        },
        Command {
            name: "printenv",
            usage: "printenv [-a] [name...]",
            help: "print environment variables",
            run: env::do_printenv::<P>,
        },
        Command {
            name: "setenv",
            usage: "setenv [-f] name [value...]",
            help: "set (or, without value, delete) an environment variable",
            run: env::do_setenv::<P>,
        },
        Command {
            name: "env",
            usage: "env default [-f] -a | env default [-f] var...\n\
                    env delete [-f] var...\n\
                    env exists name\n\
                    env export [-t | -b | -c] [-s size] addr [var...]\n\
                    env import [-d] [-t [-r] | -b | -c] addr [size|-] [var...]\n\
                    env print [-a | name...]\n\
                    env run var...\n\
                    env save\n\
                    env set [-f] name [value...]",
            help: "environment handling commands",
            run: env::do_env::<P>,
        },
        Command {
            name: "showvar",
            usage: "showvar [name...]",
            help: "print local hushshell variables",
            run: env::do_showvar::<P>,
        },
        Command {
            name: "run",
            usage: "run var [var...]",
            help: "run the commands stored in environment variables",
            run: do_run::<P>,
        },
        Command {
            name: "test",
            usage: "test [args...]",
            help: "minimal test like /bin/sh",
            run: do_test::<P>,
        },
        Command {
            name: "[",
            usage: "[ args... ]",
            help: "alias for 'test'",
            run: do_test::<P>,
        },
        Command {
            name: "itest",
            usage: "itest[.b|.w|.l|.q|.s] [*]value1 <op> [*]value2",
            help: "return true/false on integer compare",
            run: itest::do_itest::<P>,
        },
        Command {
            name: "setexpr",
            usage: "setexpr[.b|.w|.l|.q|.s] name [*]value1 <op> [*]value2 | \
                    setexpr[.b|.w|.l|.q|.s] name [*]value | \
                    setexpr name gsub|sub r s [t]",
            help: "set environment variable as the result of eval expression",
            run: setexpr::do_setexpr::<P>,
        },
        Command {
            name: "true",
            usage: "true",
            help: "do nothing, successfully",
            run: do_true::<P>,
        },
        Command {
            name: "false",
            usage: "false",
            help: "do nothing, unsuccessfully",
            run: do_false::<P>,
        },
        Command {
            name: "exit",
            usage: "exit [n]",
            help: "exit script",
            run: do_exit::<P>,
        },
        Command {
            name: "break",
            usage: "break [n]",
            help: "leave the innermost (or n-th) enclosing loop",
            run: do_break::<P>,
        },
        Command {
            name: "continue",
            usage: "continue [n]",
            help: "start the next iteration of the innermost (or n-th) loop",
            run: do_continue::<P>,
        },
        Command {
            name: "sleep",
            usage: "sleep seconds",
            help: "delay execution (fractions like 0.5 allowed; ctrl-C aborts)",
            run: do_sleep::<P>,
        },
        Command {
            name: "md",
            usage: "md[.b|.w|.l|.q] addr [count]",
            help: "memory display",
            run: mem::do_md::<P>,
        },
        Command {
            name: "mw",
            usage: "mw[.b|.w|.l|.q] addr value [count]",
            help: "memory write (fill)",
            run: mem::do_mw::<P>,
        },
        Command {
            name: "cmp",
            usage: "cmp[.b|.w|.l|.q] addr1 addr2 count",
            help: "memory compare",
            run: mem::do_cmp::<P>,
        },
        Command {
            name: "crc32",
            usage: "crc32 addr size [var|*addr]",
            help: "checksum calculation",
            run: mem::do_crc32::<P>,
        },
        Command {
            name: "reset",
            usage: "reset",
            help: "perform a reset of the machine",
            run: do_reset::<P>,
        },
        Command {
            name: "poweroff",
            usage: "poweroff",
            help: "power the machine off",
            run: do_poweroff::<P>,
        },
    ];
    sh.register_all(&cmds);
}

/// The arguments after the command name.
fn rest(args: &[String]) -> &[String] {
    args.get(1..).unwrap_or(&[])
}

/// The operand width a command's suffix selects (U-Boot's
/// `cmd_get_data_size`: the last two characters of the typed name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// `.b` 1, `.w` 2, `.l` 4, `.q` 8, or the default.
    Bytes(usize),
    /// `.s`: strings.
    Str,
    /// Another `.x` suffix.
    Invalid,
}

pub(crate) fn data_width(cmd: &str, default: usize) -> Width {
    let b = cmd.as_bytes();
    match b.len().checked_sub(2).and_then(|i| b.get(i..)) {
        Some([b'.', c]) if b.len() > 2 => match c {
            b'b' => Width::Bytes(1),
            b'w' => Width::Bytes(2),
            b'l' => Width::Bytes(4),
            b'q' => Width::Bytes(8),
            b's' => Width::Str,
            _ => Width::Invalid,
        },
        _ => Width::Bytes(default),
    }
}

/// Read `len` bytes at `addr` after asking the platform; `what` names the
/// command in the error.
pub(crate) fn read_mem<P: Platform>(
    sh: &Shell<P>,
    what: &str,
    addr: u64,
    len: usize,
) -> Result<Vec<u8>, CmdError> {
    let n = len as u64;
    if addr.checked_add(n).is_none() {
        return Err(CmdError::Msg(format!(
            "{what}: range {addr:#x} + {n:#x} wraps around"
        )));
    }
    sh.platform
        .mem_check(addr, n, false)
        .map_err(|reason| CmdError::Msg(format!("{what}: {reason}")))?;
    let mut buf = alloc::vec![0u8; len];
    sh.platform.mem_read(addr, &mut buf);
    Ok(buf)
}

/// Write `data` at `addr`, followed by zeros up to `total` bytes, after
/// asking the platform about the whole range.
pub(crate) fn write_mem<P: Platform>(
    sh: &mut Shell<P>,
    what: &str,
    addr: u64,
    data: &[u8],
    total: usize,
) -> Result<(), CmdError> {
    let total = total.max(data.len());
    let n = total as u64;
    if addr.checked_add(n).is_none() {
        return Err(CmdError::Msg(format!(
            "{what}: range {addr:#x} + {n:#x} wraps around"
        )));
    }
    sh.platform
        .mem_check(addr, n, true)
        .map_err(|reason| CmdError::Msg(format!("{what}: {reason}")))?;
    sh.platform.mem_write(addr, data);
    let zeros = [0u8; 4096];
    let mut off = data.len();
    while off < total {
        let k = (total - off).min(zeros.len());
        sh.platform
            .mem_write(addr.wrapping_add(off as u64), zeros.get(..k).unwrap_or(&[]));
        off += k;
    }
    Ok(())
}

/// A NUL-terminated string of at most `max` bytes at `addr` (U-Boot reads
/// such strings for `*addr` operands). Memory is checked page by page, so
/// a string near the end of RAM works; one that runs into memory the
/// platform refuses is an error.
pub(crate) fn read_cstring<P: Platform>(
    sh: &Shell<P>,
    what: &str,
    addr: u64,
    max: usize,
) -> Result<String, CmdError> {
    let mut out = Vec::new();
    while out.len() < max {
        let at = addr.wrapping_add(out.len() as u64);
        // Up to the next 4 KiB boundary.
        let n = (4096 - (at % 4096) as usize).min(max - out.len());
        let chunk = read_mem(sh, what, at, n)?;
        match chunk.iter().position(|&b| b == 0) {
            Some(i) => {
                out.extend_from_slice(chunk.get(..i).unwrap_or(&[]));
                return Ok(crate::slre::to_text(&out));
            }
            None => out.extend_from_slice(&chunk),
        }
    }
    Ok(crate::slre::to_text(&out))
}

fn do_help<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = rest(args);
    if names.is_empty() {
        let width = sh
            .commands()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(9)
            .saturating_add(1);
        let lines: String = sh
            .commands()
            .map(|c| format!("{:<width$}- {}\n", c.name, c.help))
            .collect();
        sh.print(&lines);
        return Ok(());
    }
    let mut ok = true;
    for name in names {
        match sh.find_command(name).copied() {
            Some(c) => sh_println!(sh, "{} - {}\nUsage: {}", c.name, c.help, c.usage),
            None => {
                sh_println!(
                    sh,
                    "Unknown command '{}' - try 'help' without arguments for list of all known commands",
                    name
                );
                ok = false;
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(CmdError::Failed)
    }
}

fn do_version<P: Platform>(sh: &mut Shell<P>, _args: &[String]) -> CmdResult {
    let v = sh.platform.version();
    sh_println!(sh, "{}", v);
    Ok(())
}

fn do_echo<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let words = rest(args);
    let (newline, words) = match words.split_first() {
        Some((first, tail)) if first == "-n" => (false, tail),
        _ => (true, words),
    };
    let mut line = words.join(" ");
    if newline {
        line.push('\n');
    }
    sh.print(&line);
    Ok(())
}

/// `run var...`: each variable's script in turn, stopping at the first
/// that fails; the status is that of the last script run (so `exit 3` in
/// it gives 3).
pub(super) fn do_run<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = rest(args);
    if names.is_empty() {
        return Err(CmdError::Usage);
    }
    for name in names {
        let Some(script) = sh.env.get(name).map(String::from) else {
            return Err(CmdError::Msg(format!("## Error: \"{name}\" not defined")));
        };
        let r = sh.run_nested(&script);
        let st = sh.last_status();
        if let Err(e) = r {
            if let CmdError::Msg(m) = e {
                return Err(CmdError::Msg(m));
            }
            sh.status_override = Some(st.max(1));
            return Err(CmdError::Failed);
        }
    }
    sh.status_override = Some(0);
    Ok(())
}

/// `test` / `[`: U-Boot's evaluation (see `test.rs`).
fn do_test<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let mut words = rest(args);
    if args.first().is_some_and(|a| a == "[") {
        match words.split_last() {
            Some((last, init)) if last == "]" => words = init,
            _ => return Err(CmdError::Msg("[: missing terminating ]".into())),
        }
    }
    let mut env = ShellTestEnv { sh };
    if eval_test(words, &mut env) {
        Ok(())
    } else {
        Err(CmdError::Failed)
    }
}

/// `test`'s view of the shell.
struct ShellTestEnv<'a, P: Platform> {
    sh: &'a mut Shell<P>,
}

impl<P: Platform> TestEnv for ShellTestEnv<'_, P> {
    fn file_exists(&mut self, iface: &str, dev_part: &str, path: &str) -> bool {
        match self.sh.platform.file_exists(iface, dev_part, path) {
            Ok(found) => found,
            Err(msg) => {
                sh_println!(self.sh, "{}", msg);
                false
            }
        }
    }

    fn say(&mut self, line: &str) {
        sh_println!(self.sh, "{}", line);
    }
}

/// The optional count of `break` / `continue` (busybox hush: a number
/// >= 1; anything else is reported and counts as "all loops").
fn loop_count<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> u32 {
    match args {
        [] | [_] => 1,
        [cmd, n] => match n.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                sh_println!(sh, "{}: bad arguments", cmd);
                u32::MAX
            }
        },
        [cmd, ..] => {
            sh_println!(sh, "{}: bad arguments", cmd);
            u32::MAX
        }
    }
}

/// `break [n]` (U-Boot's new hush; 2023.01 has no `break`).
fn do_break<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    if sh.loop_depth == 0 {
        sh_println!(sh, "break: only meaningful in a loop");
        return Ok(());
    }
    let n = loop_count(sh, args).min(sh.loop_depth);
    sh.flow = Flow::Break(n);
    Ok(())
}

/// `continue [n]`.
fn do_continue<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    if sh.loop_depth == 0 {
        sh_println!(sh, "continue: only meaningful in a loop");
        return Ok(());
    }
    let n = loop_count(sh, args);
    sh.flow = if n == u32::MAX {
        Flow::Break(sh.loop_depth)
    } else {
        Flow::Continue(n.min(sh.loop_depth))
    };
    Ok(())
}

/// `exit [n]`: end the running script (`run`, `source`, bootcmd) with
/// status n (decimal, default 0; negative gives 0), as U-Boot since
/// 2023.04 (2023.01's `exit` did not stop the script).
fn do_exit<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::Usage);
    }
    let n = args.get(1).map_or(0, |a| {
        if a.starts_with('-') {
            0
        } else {
            crate::num::strtoul(a, 10) as u8
        }
    });
    sh.flow = Flow::Exit(n);
    sh.status_override = Some(n);
    Ok(())
}

fn do_true<P: Platform>(_sh: &mut Shell<P>, _args: &[String]) -> CmdResult {
    Ok(())
}

fn do_false<P: Platform>(_sh: &mut Shell<P>, _args: &[String]) -> CmdResult {
    Err(CmdError::Failed)
}

fn do_sleep<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let [_, time] = args else {
        return Err(CmdError::Usage);
    };
    let Some(us) = parse_seconds_us(time) else {
        return Err(CmdError::Msg(format!("sleep: invalid time '{time}'")));
    };
    let start = sh.platform.now_us();
    while sh.platform.now_us().wrapping_sub(start) < us {
        if sh.ctrlc() {
            return Err(CmdError::Failed);
        }
        sh.platform.idle();
    }
    Ok(())
}

fn do_reset<P: Platform>(sh: &mut Shell<P>, _args: &[String]) -> CmdResult {
    sh_print!(sh, "resetting ...\n");
    sh.platform.reset();
    Err(CmdError::Msg("reset: the platform did not reset".into()))
}

fn do_poweroff<P: Platform>(sh: &mut Shell<P>, _args: &[String]) -> CmdResult {
    sh_print!(sh, "powering off ...\n");
    sh.platform.poweroff();
    Err(CmdError::Msg(
        "poweroff: the platform did not power off".into(),
    ))
}
