//! The shell: command registry, script execution and `$` expansion.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::env::Env;
use crate::input::InputState;
use crate::parse::{parse_script, AndOr, Cmd, Conn, IfCmd, List, Seg, Word};
use crate::platform::Platform;
use crate::{MAX_EXPANSION, MAX_RUN_DEPTH};

/// Most commands one top-level line or script may run (fan-out bound).
pub const MAX_COMMANDS: u32 = 20_000;

/// Bound on the total execution nesting (each script being executed — the
/// top-level one, each `run` level — and each `if` being executed count
/// one). Keeps the stack use of the recursive executor bounded even when
/// `run`, `if` and loader commands that run scripts are combined.
pub(crate) const MAX_EXEC_DEPTH: usize = 32;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// Failure; the command already printed whatever it wanted to say.
    Failed,
    /// Wrong arguments: the shell prints `Usage: <usage>`.
    Usage,
    /// Failure with a one-line message that the shell prints.
    Msg(String),
}

/// What a command returns. `Ok` is exit status 0, any error status 1.
pub type CmdResult = Result<(), CmdError>;

/// A command implementation. `args[0]` is the command name as typed
/// (including a `.b`-style suffix, if any); `args` is never empty.
pub type CmdFn<P> = fn(&mut Shell<P>, &[String]) -> CmdResult;

/// A command of the registry.
pub struct Command<P: Platform> {
    /// Name typed to run it. A typed name `name.x` also finds `name` when
    /// no command is called `name.x` (U-Boot style size suffixes).
    pub name: &'static str,
    /// One-line synopsis, printed after `Usage: `.
    pub usage: &'static str,
    /// One-line description for `help`.
    pub help: &'static str,
    /// The implementation.
    pub run: CmdFn<P>,
}

// Manual impls: deriving would needlessly require `P: Clone`.
impl<P: Platform> Clone for Command<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Platform> Copy for Command<P> {}

/// The shell: environment, platform, command registry and input state.
pub struct Shell<P: Platform> {
    /// The environment (`setenv`, `$name`, ...).
    pub env: Env,
    /// The platform (console, timer, memory, power).
    pub platform: P,
    commands: BTreeMap<&'static str, Command<P>>,
    /// Exit status of the last command (`$?`).
    status: u8,
    run_depth: usize,
    exec_depth: usize,
    /// Commands the current top-level script may still run: depth limits
    /// bound nesting, this bounds fan-out (`run a; run a` at every level).
    budget: u32,
    /// The budget each top-level line or script starts with
    /// ([`MAX_COMMANDS`]; the fuzzer lowers it so that fan-out inputs end
    /// sooner, with the same code path).
    pub max_commands: u32,
    /// Set when ctrl-C was seen; stops the running script. Cleared when a
    /// new top-level script starts.
    pub(crate) interrupted: bool,
    pub(crate) input: InputState,
}

impl<P: Platform> fmt::Write for Shell<P> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.platform.write_str(s);
        Ok(())
    }
}

impl<P: Platform> Shell<P> {
    /// A shell with an empty environment and the generic commands
    /// registered. The console starts in dumb line mode; see
    /// [`Shell::probe_terminal`].
    pub fn new(platform: P) -> Self {
        let mut sh = Shell {
            env: Env::new(),
            platform,
            commands: BTreeMap::new(),
            status: 0,
            run_depth: 0,
            exec_depth: 0,
            budget: MAX_COMMANDS + 1,
            max_commands: MAX_COMMANDS,
            interrupted: false,
            input: InputState::new(),
        };
        crate::cmds::register_builtins(&mut sh);
        sh
    }

    /// Add a command, replacing any command of the same name.
    pub fn register(&mut self, cmd: Command<P>) {
        self.commands.insert(cmd.name, cmd);
    }

    /// Add several commands (see [`Shell::register`]).
    pub fn register_all(&mut self, cmds: &[Command<P>]) {
        for c in cmds {
            self.register(*c);
        }
    }

    /// Remove a command; returns whether it existed.
    pub fn unregister(&mut self, name: &str) -> bool {
        self.commands.remove(name).is_some()
    }

    /// All registered commands, sorted by name.
    pub fn commands(&self) -> impl Iterator<Item = &Command<P>> {
        self.commands.values()
    }

    /// Find the command that a typed name runs: an exact match, else the
    /// part before the first `.` (`md.b` runs `md`).
    pub fn find_command(&self, typed: &str) -> Option<&Command<P>> {
        self.commands.get(typed).or_else(|| {
            let (base, _) = typed.split_once('.')?;
            self.commands.get(base)
        })
    }

    /// Print text to the console.
    pub fn print(&mut self, s: &str) {
        self.platform.write_str(s);
    }

    /// Print formatted text (see the [`sh_print!`](crate::sh_print) macro).
    pub fn print_fmt(&mut self, args: fmt::Arguments<'_>) {
        let _ = fmt::Write::write_fmt(self, args);
    }

    /// Exit status of the last command (`$?`): 0 for success.
    pub fn last_status(&self) -> u8 {
        self.status
    }

    /// Whether ctrl-C interrupted the current top-level script.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Parse and run a script (one line or many), as the prompt does for
    /// each line and as the loader does for e.g. `bootcmd`. A syntax error
    /// prints `syntax error: ...` and runs nothing. Returns `Ok` when the
    /// last command succeeded.
    ///
    /// Called from the top level, this clears an earlier ctrl-C. Called
    /// from inside a command it behaves like [`Shell::run_nested`] except
    /// for the `run` depth count (the total nesting is still bounded).
    pub fn run_script(&mut self, script: &str) -> CmdResult {
        if self.exec_depth == 0 {
            self.interrupted = false;
            // `max_commands` may run; the one after them is refused.
            self.budget = self.max_commands.saturating_add(1);
        }
        self.exec_text(script)
    }

    /// Run a script from inside a command (like `run` does): nesting is
    /// limited to [`MAX_RUN_DEPTH`] levels, and a ctrl-C seen earlier keeps
    /// the script from running.
    pub fn run_nested(&mut self, script: &str) -> CmdResult {
        if self.run_depth >= MAX_RUN_DEPTH || self.exec_depth >= MAX_EXEC_DEPTH {
            return Err(CmdError::Msg("run: nesting too deep".into()));
        }
        self.run_depth += 1;
        let r = self.exec_text(script);
        self.run_depth -= 1;
        r
    }

    /// Run one command from already-split arguments (no parsing or
    /// expansion). Errors are printed; the result is also in `$?`.
    pub fn run_command(&mut self, args: &[String]) -> CmdResult {
        let r = self.dispatch(args);
        self.status = u8::from(r.is_err());
        r
    }

    fn dispatch(&mut self, args: &[String]) -> CmdResult {
        let Some(name) = args.first() else {
            return Ok(());
        };
        if self.budget == 0 {
            // Already reported; stop the whole script.
            self.interrupted = true;
            return Err(CmdError::Failed);
        }
        self.budget -= 1;
        if self.budget == 0 {
            let max = self.max_commands;
            crate::sh_println!(
                self,
                "script stopped: more than {max} commands from one line"
            );
            self.interrupted = true;
            return Err(CmdError::Failed);
        }
        let Some(cmd) = self.find_command(name).copied() else {
            crate::sh_println!(self, "Unknown command '{}' - try 'help'", name);
            return Err(CmdError::Failed);
        };
        match (cmd.run)(self, args) {
            Ok(()) => Ok(()),
            Err(CmdError::Usage) => {
                crate::sh_println!(self, "Usage: {}", cmd.usage);
                Err(CmdError::Failed)
            }
            Err(CmdError::Msg(m)) => {
                crate::sh_println!(self, "{}", m);
                Err(CmdError::Failed)
            }
            Err(CmdError::Failed) => Err(CmdError::Failed),
        }
    }

    /// Parse and execute a script as one more execution level.
    fn exec_text(&mut self, script: &str) -> CmdResult {
        if self.exec_depth >= MAX_EXEC_DEPTH {
            return Err(CmdError::Msg(format!(
                "nesting too deep (max {MAX_EXEC_DEPTH})"
            )));
        }
        self.exec_depth += 1;
        let st = match parse_script(script) {
            Ok(list) => self.exec_list(&list),
            Err(e) => {
                crate::sh_println!(self, "syntax error: {}", e.0);
                1
            }
        };
        self.exec_depth -= 1;
        self.status = st;
        if st == 0 {
            Ok(())
        } else {
            Err(CmdError::Failed)
        }
    }

    /// True when the running script must stop because of ctrl-C (checks
    /// the console for a new ctrl-C too).
    fn check_interrupt(&mut self) -> bool {
        self.interrupted || self.ctrlc()
    }

    fn exec_list(&mut self, list: &List) -> u8 {
        let mut st = 0;
        for item in list {
            if self.check_interrupt() {
                return 1;
            }
            st = self.exec_and_or(item);
        }
        st
    }

    fn exec_and_or(&mut self, ao: &AndOr) -> u8 {
        let mut st = self.exec_cmd(&ao.first);
        for (conn, cmd) in &ao.rest {
            if self.interrupted {
                return 1;
            }
            let run = match conn {
                Conn::And => st == 0,
                Conn::Or => st != 0,
            };
            if run {
                st = self.exec_cmd(cmd);
            }
        }
        st
    }

    fn exec_cmd(&mut self, cmd: &Cmd) -> u8 {
        let st = match cmd {
            Cmd::Simple(words) => match self.expand(words) {
                Ok(args) => u8::from(self.dispatch(&args).is_err()),
                Err(msg) => {
                    crate::sh_println!(self, "{}", msg);
                    1
                }
            },
            Cmd::If(ifc) => {
                if self.exec_depth >= MAX_EXEC_DEPTH {
                    crate::sh_println!(self, "nesting too deep (max {})", MAX_EXEC_DEPTH);
                    1
                } else {
                    self.exec_depth += 1;
                    let st = self.exec_if(ifc);
                    self.exec_depth -= 1;
                    st
                }
            }
        };
        self.status = st;
        st
    }

    fn exec_if(&mut self, ifc: &IfCmd) -> u8 {
        for (cond, body) in &ifc.branches {
            let c = self.exec_list(cond);
            if self.interrupted {
                return 1;
            }
            if c == 0 {
                return self.exec_list(body);
            }
        }
        match &ifc.otherwise {
            Some(body) => self.exec_list(body),
            None => 0,
        }
    }

    /// Expand the words of a command into arguments: `$name`, `${name}`
    /// and `$?` are replaced; unquoted expansions are split into fields at
    /// blanks (space, tab, newline) and an unquoted expansion that is empty
    /// produces no argument, like sh. The total size is bounded by
    /// [`MAX_EXPANSION`].
    pub(crate) fn expand(&self, words: &[Word]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut budget = MAX_EXPANSION;
        let status = format!("{}", self.status);
        for w in words {
            let mut cur: Option<String> = None;
            for seg in &w.segs {
                let (val, quoted) = match seg {
                    Seg::Text(t) => (t.as_str(), true),
                    Seg::Var { name, quoted } => (self.env.get(name).unwrap_or(""), *quoted),
                    Seg::Status { quoted } => (status.as_str(), *quoted),
                };
                budget = budget
                    .checked_sub(val.len())
                    .ok_or_else(|| format!("expansion too long (max {MAX_EXPANSION} bytes)"))?;
                if quoted {
                    cur.get_or_insert_with(String::new).push_str(val);
                    continue;
                }
                // Field splitting of an unquoted expansion.
                let is_blank = |c: char| matches!(c, ' ' | '\t' | '\n');
                if val.starts_with(is_blank) {
                    out.extend(cur.take());
                }
                for (i, piece) in val.split(is_blank).filter(|p| !p.is_empty()).enumerate() {
                    if i > 0 {
                        out.extend(cur.take());
                    }
                    cur.get_or_insert_with(String::new).push_str(piece);
                }
                if val.ends_with(is_blank) {
                    out.extend(cur.take());
                }
            }
            out.extend(cur);
        }
        Ok(out)
    }
}
