//! parkboot command shell: a small U-Boot "hush"-like command language,
//! an environment store, generic commands and console line input.
//!
//! The crate is `no_std` + `alloc` and host-testable. Everything that touches
//! hardware goes through the [`Platform`] trait, implemented by the loader on
//! the target and by a fake in the unit tests.
//!
//! # Using the shell from the loader
//!
//! ```ignore
//! use shell::{Command, CmdError, CmdResult, Platform, Shell};
//!
//! let mut sh = Shell::new(board);              // builtin commands are registered
//! sh.register(Command {                        // add (or override) a command
//!     name: "bootefi",
//!     usage: "bootefi addr [fdt]",
//!     help: "boot an EFI image",
//!     run: do_bootefi,
//! });
//! sh.env = shell::Env::from_text(&saved)?;     // restore the environment
//! let _ = sh.run_script("run bootcmd");        // scripts (e.g. bootcmd)
//! sh.probe_terminal(100);                      // pick line-editing or dumb input
//! sh.run_prompt_loop();                        // `=> ` prompt until end of input
//! ```
//!
//! No input typed at the console or found in a script may make the shell
//! panic: every index is checked, every user number goes through checked
//! arithmetic, and every recursion is bounded (see the `MAX_*` constants).
//!
//! The language and the commands are described in `docs/shell.md`.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod cmds;
mod env;
mod input;
mod num;
mod parse;
mod platform;
mod shell;
mod slre;

#[cfg(test)]
mod tests;

pub use env::{check_name, Env, EnvError, ENV_BLOCK_SIZE};
pub use input::{LineMode, ReadLine};
pub use num::{hextoul, parse_hex, parse_signed, strtol, strtoul};
pub use platform::Platform;
pub use shell::{CmdError, CmdFn, CmdResult, Command, Shell};

/// Longest accepted input line, in bytes (not counting the line end).
pub const MAX_LINE: usize = 1024;
/// Longest command typed at the prompt over all its continuation lines,
/// in bytes.
pub const MAX_COMMAND_TEXT: usize = 16 * MAX_LINE;
/// Deepest accepted nesting of compound commands (`if`, `for`, `while`,
/// `until`) inside one script.
pub const MAX_IF_DEPTH: usize = 16;
/// Deepest accepted nesting of `run` (a script running a script ...).
pub const MAX_RUN_DEPTH: usize = 16;
/// Upper bound for the bytes produced by expanding one command's words.
pub const MAX_EXPANSION: usize = 64 * 1024;
/// Prompt printed before each interactive line.
pub const PROMPT: &str = "=> ";
/// Prompt printed before a continuation line (U-Boot's
/// `CONFIG_SYS_PROMPT_HUSH_PS2`).
pub const PROMPT2: &str = "> ";

/// Print to the shell's console with `format!` syntax (no newline).
#[macro_export]
macro_rules! sh_print {
    ($sh:expr, $($arg:tt)*) => {
        $sh.print_fmt(format_args!($($arg)*))
    };
}

/// Print to the shell's console with `format!` syntax, followed by `\n`.
#[macro_export]
macro_rules! sh_println {
    ($sh:expr) => {
        $sh.print("\n")
    };
    ($sh:expr, $($arg:tt)*) => {{
        $sh.print_fmt(format_args!($($arg)*));
        $sh.print("\n");
    }};
}
