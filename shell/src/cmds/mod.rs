//! Generic commands (the loader registers its own on top).

mod mem;
mod test;

use alloc::format;
use alloc::string::{String, ToString};

use crate::num::parse_seconds_us;
use crate::platform::Platform;
use crate::shell::{CmdError, CmdResult, Command, Shell};
use crate::{sh_print, sh_println};

pub(crate) use test::eval as eval_test;

/// Register every generic command.
pub(crate) fn register_builtins<P: Platform>(sh: &mut Shell<P>) {
    let cmds: [Command<P>; 16] = [
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
            usage: "printenv [name...]",
            help: "print environment variables",
            run: do_printenv::<P>,
        },
        Command {
            name: "setenv",
            usage: "setenv name [value...]",
            help: "set (or, without value, delete) an environment variable",
            run: do_setenv::<P>,
        },
        Command {
            name: "run",
            usage: "run var [var...]",
            help: "run the commands stored in environment variables",
            run: do_run::<P>,
        },
        Command {
            name: "test",
            usage: "test [expression]",
            help: "evaluate an expression like /bin/test",
            run: do_test::<P>,
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

fn do_printenv<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = rest(args);
    if names.is_empty() {
        let mut all = String::new();
        for (k, v) in sh.env.iter() {
            all.push_str(k);
            all.push('=');
            all.push_str(v);
            all.push('\n');
        }
        sh.print(&all);
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
    if ok {
        Ok(())
    } else {
        Err(CmdError::Failed)
    }
}

fn do_setenv<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let Some((name, values)) = rest(args).split_first() else {
        return Err(CmdError::Usage);
    };
    let value = values.join(" ");
    sh.env
        .set(name, &value)
        .map_err(|e| CmdError::Msg(e.to_string()))
}

fn do_run<P: Platform>(sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    let names = rest(args);
    if names.is_empty() {
        return Err(CmdError::Usage);
    }
    for name in names {
        let Some(script) = sh.env.get(name).map(String::from) else {
            return Err(CmdError::Msg(format!("## Error: \"{name}\" not defined")));
        };
        sh.run_nested(&script)?;
    }
    Ok(())
}

fn do_test<P: Platform>(_sh: &mut Shell<P>, args: &[String]) -> CmdResult {
    match eval_test(rest(args)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CmdError::Failed),
        Err(msg) => Err(CmdError::Msg(msg)),
    }
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
