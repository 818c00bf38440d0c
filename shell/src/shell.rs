//! The shell: command registry, script execution and `$` expansion.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::env::Env;
use crate::input::InputState;
use crate::parse::{
    is_shell_name, parse_interactive, parse_script, AndOr, Cmd, Conn, ForCmd, IfCmd, List, Seg,
    SimpleCmd, VarOp, WhileCmd, Word,
};
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

/// The local variable U-Boot's old hush starts with (read-only).
const HUSH_VERSION: (&str, &str) = ("HUSH_VERSION", "0.01");

/// Control flow that unwinds the running script: set by `break`,
/// `continue` and `exit`, consumed by the loop or script level it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Normal,
    /// Leave this many enclosing loops.
    Break(u32),
    /// Leave this many - 1 loops and continue the next one.
    Continue(u32),
    /// End the running script (the innermost `run`, `source`, bootcmd ...)
    /// with this status.
    Exit(u8),
}

/// The shell: environment, platform, command registry and input state.
pub struct Shell<P: Platform> {
    /// The environment (`setenv`, `$name`, ...).
    pub env: Env,
    /// The default environment: what `env default -a` restores and where
    /// `env default <var>` takes a variable's value from. Empty unless the
    /// embedder sets it (the loader sets the board's defaults plus the
    /// variables it computes at start).
    pub default_env: Env,
    /// The platform (console, timer, memory, power).
    pub platform: P,
    commands: BTreeMap<&'static str, Command<P>>,
    /// Exit status of the last command (`$?`).
    status: u8,
    /// A command may set this to make its status something other than
    /// 0 / 1 (`exit 3`, `run` passing on its script's status).
    pub(crate) status_override: Option<u8>,
    /// Local shell variables (`name=value`), in creation order.
    locals: Vec<(String, String)>,
    run_depth: usize,
    exec_depth: usize,
    /// Loops being executed in the running script text (`break` and
    /// `continue` act only on these).
    pub(crate) loop_depth: u32,
    pub(crate) flow: Flow,
    /// Commands the current top-level script may still run: depth limits
    /// bound nesting, this bounds fan-out (`run a; run a` at every level)
    /// and loops (every iteration counts as a command).
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
            default_env: Env::new(),
            platform,
            commands: BTreeMap::new(),
            status: 0,
            status_override: None,
            // Old hush's read-only variable (U-Boot 2023.01 has it).
            locals: alloc::vec![(String::from(HUSH_VERSION.0), String::from(HUSH_VERSION.1))],
            run_depth: 0,
            exec_depth: 0,
            loop_depth: 0,
            flow: Flow::Normal,
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

    // ------------------------------------------------- shell variables --

    /// The value `$name` expands to: the environment variable if set, else
    /// the local shell variable (U-Boot's hush looks in that order, so an
    /// environment variable hides a local one of the same name).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).or_else(|| self.local(name))
    }

    /// A local shell variable (set by `name=value` or a `for` loop).
    pub fn local(&self, name: &str) -> Option<&str> {
        self.locals
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All local shell variables, in the order they were created.
    pub fn locals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.locals.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Set a local shell variable; an empty value deletes it. `name` must
    /// be `[A-Za-z_][A-Za-z0-9_]*`.
    pub fn set_local(&mut self, name: &str, value: &str) -> Result<(), String> {
        if !is_shell_name(name) {
            return Err(format!(
                "'{}': not a shell variable name",
                name.escape_default()
            ));
        }
        if name == HUSH_VERSION.0 {
            return Err(format!("{name}: readonly variable"));
        }
        let slot = self.locals.iter().position(|(k, _)| k == name);
        match (slot, value.is_empty()) {
            (Some(i), true) => {
                self.locals.remove(i);
            }
            (Some(i), false) => {
                if let Some(e) = self.locals.get_mut(i) {
                    e.1 = value.into();
                }
            }
            (None, true) => {}
            (None, false) => self.locals.push((name.into(), value.into())),
        }
        Ok(())
    }

    // --------------------------------------------------------- scripts --

    /// Parse and run a script (one line or many), as the loader does for
    /// e.g. `bootcmd`. A syntax error prints `syntax error: ...` and runs
    /// nothing. Returns `Ok` when the last command succeeded; `exit` ends
    /// the script (with its status).
    ///
    /// Called from the top level, this clears an earlier ctrl-C. Called
    /// from inside a command it behaves like [`Shell::run_nested`] except
    /// for the `run` depth count (the total nesting is still bounded).
    pub fn run_script(&mut self, script: &str) -> CmdResult {
        self.start_top_level();
        self.exec_parsed(parse_script(script), false)
    }

    /// Run a line typed at the prompt (already complete; see
    /// [`crate::parse::parse_interactive`]). `exit` here is refused, as in
    /// U-Boot.
    pub(crate) fn run_typed(&mut self, text: &str) -> CmdResult {
        self.start_top_level();
        self.exec_parsed(parse_interactive(text), true)
    }

    fn start_top_level(&mut self) {
        if self.exec_depth == 0 {
            self.interrupted = false;
            self.flow = Flow::Normal;
            // `max_commands` may run; the one after them is refused.
            self.budget = self.max_commands.saturating_add(1);
        }
    }

    /// Run a script from inside a command (like `run` does): nesting is
    /// limited to [`MAX_RUN_DEPTH`] levels, and a ctrl-C seen earlier keeps
    /// the script from running. The script's status is in
    /// [`Shell::last_status`] afterwards.
    pub fn run_nested(&mut self, script: &str) -> CmdResult {
        if self.run_depth >= MAX_RUN_DEPTH || self.exec_depth >= MAX_EXEC_DEPTH {
            return Err(CmdError::Msg("run: nesting too deep".into()));
        }
        self.run_depth += 1;
        let r = self.exec_parsed(parse_script(script), false);
        self.run_depth -= 1;
        r
    }

    /// Run one command from already-split arguments (no parsing or
    /// expansion). Errors are printed; the result is also in `$?`.
    pub fn run_command(&mut self, args: &[String]) -> CmdResult {
        let st = self.run_args(args);
        self.status = st;
        if st == 0 {
            Ok(())
        } else {
            Err(CmdError::Failed)
        }
    }

    /// Dispatch a command; its status (0 = success).
    fn run_args(&mut self, args: &[String]) -> u8 {
        self.status_override = None;
        let r = self.dispatch(args);
        self.status_override.take().unwrap_or(u8::from(r.is_err()))
    }

    /// Count one command (or loop iteration) against the budget; false
    /// (after reporting it once) when the budget is used up.
    fn charge(&mut self) -> bool {
        if self.budget == 0 {
            // Already reported; stop the whole script.
            self.interrupted = true;
            return false;
        }
        self.budget -= 1;
        if self.budget == 0 {
            let max = self.max_commands;
            crate::sh_println!(
                self,
                "script stopped: more than {max} commands from one line"
            );
            self.interrupted = true;
            return false;
        }
        true
    }

    fn dispatch(&mut self, args: &[String]) -> CmdResult {
        let Some(name) = args.first() else {
            return Ok(());
        };
        if !self.charge() {
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

    /// Execute a parsed script as one more execution level. `typed`: the
    /// line came from the prompt (then `exit` is refused).
    fn exec_parsed(
        &mut self,
        parsed: Result<List, crate::parse::SyntaxError>,
        typed: bool,
    ) -> CmdResult {
        if self.exec_depth >= MAX_EXEC_DEPTH {
            return Err(CmdError::Msg(format!(
                "nesting too deep (max {MAX_EXEC_DEPTH})"
            )));
        }
        let top_typed = typed && self.exec_depth == 0;
        self.exec_depth += 1;
        // `break` / `continue` act only on the loops of this script text.
        let outer_loops = core::mem::replace(&mut self.loop_depth, 0);
        let mut st = match parsed {
            Ok(list) => self.exec_list(&list),
            Err(e) => {
                crate::sh_println!(self, "syntax error: {}", e.msg);
                1
            }
        };
        if let Flow::Exit(code) = core::mem::replace(&mut self.flow, Flow::Normal) {
            if top_typed {
                crate::sh_println!(self, "exit not allowed from main input shell.");
            } else {
                st = code;
            }
        }
        self.loop_depth = outer_loops;
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

    /// Whether `break`, `continue` or `exit` is unwinding.
    fn unwinding(&self) -> bool {
        self.flow != Flow::Normal
    }

    fn exec_list(&mut self, list: &List) -> u8 {
        let mut st = 0;
        for item in list {
            if self.check_interrupt() {
                return 1;
            }
            st = self.exec_and_or(item);
            if self.unwinding() {
                break;
            }
        }
        st
    }

    fn exec_and_or(&mut self, ao: &AndOr) -> u8 {
        let mut st = self.exec_cmd(&ao.first);
        for (conn, cmd) in &ao.rest {
            if self.interrupted {
                return 1;
            }
            if self.unwinding() {
                return st;
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
            Cmd::Simple(sc) => self.exec_simple(sc),
            Cmd::If(c) => self.compound(|sh| sh.exec_if(c)),
            Cmd::For(c) => self.compound(|sh| sh.exec_for(c)),
            Cmd::While(c) => self.compound(|sh| sh.exec_while(c)),
        };
        self.status = st;
        st
    }

    /// Run a compound command as one more (bounded) execution level.
    fn compound(&mut self, f: impl FnOnce(&mut Self) -> u8) -> u8 {
        if self.exec_depth >= MAX_EXEC_DEPTH {
            crate::sh_println!(self, "nesting too deep (max {})", MAX_EXEC_DEPTH);
            return 1;
        }
        self.exec_depth += 1;
        let st = f(self);
        self.exec_depth -= 1;
        st
    }

    /// `a=1 b=2 cmd args`: the assignments set local shell variables (and
    /// keep them, as U-Boot's hush does), then the command runs.
    fn exec_simple(&mut self, sc: &SimpleCmd) -> u8 {
        for a in &sc.assigns {
            let value = match self.expand_single(&a.value) {
                Ok(v) => v,
                Err(msg) => {
                    crate::sh_println!(self, "{}", msg);
                    return 1;
                }
            };
            if let Err(msg) = self.set_local(&a.name, &value) {
                crate::sh_println!(self, "{}", msg);
                return 1;
            }
        }
        if sc.words.is_empty() {
            return 0;
        }
        match self.expand(&sc.words) {
            Ok(args) => self.run_args(&args),
            Err(msg) => {
                crate::sh_println!(self, "{}", msg);
                1
            }
        }
    }

    fn exec_if(&mut self, ifc: &IfCmd) -> u8 {
        for (cond, body) in &ifc.branches {
            let c = self.exec_list(cond);
            if self.interrupted {
                return 1;
            }
            if self.unwinding() {
                return c;
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

    /// Start of a loop iteration: false when the loop must stop (ctrl-C,
    /// or the command budget is used up: every iteration counts).
    fn next_iteration(&mut self) -> bool {
        !self.check_interrupt() && self.charge()
    }

    /// After a loop body: whether the loop must stop, handling `break` /
    /// `continue` aimed at it.
    fn leave_loop(&mut self) -> bool {
        match self.flow {
            Flow::Normal => self.interrupted,
            Flow::Break(n) => {
                self.flow = if n > 1 {
                    Flow::Break(n - 1)
                } else {
                    Flow::Normal
                };
                true
            }
            Flow::Continue(n) if n > 1 => {
                self.flow = Flow::Continue(n - 1);
                true
            }
            Flow::Continue(_) => {
                self.flow = Flow::Normal;
                false
            }
            Flow::Exit(_) => true,
        }
    }

    /// `for var in words; do body; done`: the status of the last body run,
    /// 0 if none.
    fn exec_for(&mut self, f: &ForCmd) -> u8 {
        let items = match self.expand(&f.words) {
            Ok(v) => v,
            Err(msg) => {
                crate::sh_println!(self, "{}", msg);
                return 1;
            }
        };
        let mut st = 0;
        self.loop_depth += 1;
        for item in &items {
            if !self.next_iteration() {
                st = 1;
                break;
            }
            // The name was checked by the parser.
            let _ = self.set_local(&f.var, item);
            st = self.exec_list(&f.body);
            if self.leave_loop() {
                break;
            }
        }
        self.loop_depth -= 1;
        st
    }

    /// `while` / `until`: the status of the last body run, 0 if none.
    fn exec_while(&mut self, w: &WhileCmd) -> u8 {
        let mut st = 0;
        self.loop_depth += 1;
        loop {
            if !self.next_iteration() {
                st = 1;
                break;
            }
            let c = self.exec_list(&w.cond);
            if self.interrupted {
                st = 1;
                break;
            }
            if self.unwinding() {
                if self.leave_loop() {
                    break;
                }
                continue;
            }
            if (c == 0) == w.until {
                break;
            }
            st = self.exec_list(&w.body);
            if self.leave_loop() {
                break;
            }
        }
        self.loop_depth -= 1;
        st
    }

    // ------------------------------------------------------- expansion --

    /// The value of `${name:-word}` and friends.
    fn var_op(&mut self, name: &str, op: VarOp, word: &str) -> String {
        let set = self.var(name).filter(|v| !v.is_empty()).map(String::from);
        match (op, set) {
            (VarOp::Default | VarOp::Assign, Some(v)) => v,
            (VarOp::Default, None) => word.into(),
            (VarOp::Assign, None) => {
                // Only shell variable names can be assigned; others just
                // expand to the word.
                let _ = self.set_local(name, word);
                word.into()
            }
            (VarOp::Alternate, Some(_)) => word.into(),
            (VarOp::Alternate, None) => String::new(),
        }
    }

    /// Expand the value of an assignment: one field, no splitting.
    fn expand_single(&mut self, segs: &[Seg]) -> Result<String, String> {
        let mut out = String::new();
        let status = format!("{}", self.status);
        for seg in segs {
            let owned;
            let val: &str = match seg {
                Seg::Text(t) => t,
                Seg::Var { name, .. } => self.var(name).unwrap_or(""),
                Seg::Status { .. } => &status,
                Seg::VarOp { name, op, word, .. } => {
                    owned = self.var_op(name, *op, word);
                    &owned
                }
            };
            if out.len().saturating_add(val.len()) > MAX_EXPANSION {
                return Err(format!("expansion too long (max {MAX_EXPANSION} bytes)"));
            }
            out.push_str(val);
        }
        Ok(out)
    }

    /// Expand the words of a command into arguments: `$name`, `${name}`
    /// and `$?` are replaced; unquoted expansions are split into fields at
    /// blanks (space, tab, newline) and an unquoted expansion that is empty
    /// produces no argument, like sh. The total size is bounded by
    /// [`MAX_EXPANSION`].
    pub(crate) fn expand(&mut self, words: &[Word]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut budget = MAX_EXPANSION;
        let status = format!("{}", self.status);
        for w in words {
            let mut cur: Option<String> = None;
            for seg in &w.segs {
                let owned;
                let (val, quoted): (&str, bool) = match seg {
                    Seg::Text(t) => (t.as_str(), true),
                    Seg::Var { name, quoted } => (self.var(name).unwrap_or(""), *quoted),
                    Seg::Status { quoted } => (status.as_str(), *quoted),
                    Seg::VarOp {
                        name,
                        op,
                        word,
                        quoted,
                    } => {
                        owned = self.var_op(name, *op, word);
                        (owned.as_str(), *quoted)
                    }
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
