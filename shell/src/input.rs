//! Console input: escape-sequence filtering, the dumb line reader, the
//! noline line editor adapter and the terminal probe.
//!
//! All console bytes go through one pipeline:
//!
//! ```text
//! Platform::read_byte ─► raw queue ─► EscParser ─► held events ─► line reader
//! ```
//!
//! * The raw queue keeps bytes read while polling for ctrl-C (during
//!   commands), so type-ahead is never lost.
//! * [`EscParser`] turns bytes into [`Event`]s: plain ASCII keys and
//!   complete, well-formed escape sequences. Bytes >= 0x80 are dropped.
//! * Held events are events read while waiting for a terminal's cursor
//!   position report (CPR): they are kept, in order, for the next reader.
//!
//! # Why noline needs an adapter
//!
//! noline 0.5.1 is used for line editing and history, but it trusts its
//! input: `ESC [ R` without two parameters panics (`unwrap`), a CPR with a
//! 0 row/column underflows, a 0-column terminal divides by zero, numbers of
//! 5+ digits overflow its output buffer (`unwrap`), invalid UTF-8 such as
//! surrogates is stored into a `str` unchecked, and any key arriving while
//! it waits for the CPR of its start-of-line handshake aborts the handshake
//! (the key is lost and the cursor bookkeeping then underflows). So the
//! editor never sees raw input. [`EditIo`] gives it only:
//!
//! * ASCII keys (no ESC, nothing >= 0x80),
//! * a canonical re-encoding of the editing keys (arrows, Home, End,
//!   Delete),
//! * exactly one sanitized CPR for each `ESC[6n` it sends, with clamped
//!   values; while a CPR is awaited, other input is held back, and if the
//!   terminal does not answer in time a CPR is synthesized (and the shell
//!   falls back to dumb mode for the next lines).

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;

use noline::builder::EditorBuilder;

use crate::platform::Platform;
use crate::shell::Shell;
use crate::{MAX_COMMAND_TEXT, MAX_LINE, PROMPT, PROMPT2};

/// Raw bytes kept while polling for ctrl-C; beyond this, bytes are left in
/// the platform (the UART FIFO) instead of being read.
const RAW_CAP: usize = 16 * 1024;
/// Events held while waiting for a CPR; beyond this, reading pauses.
const EVENT_CAP: usize = 16 * 1024;
/// Lines kept in the line-editor history.
const HISTORY_MAX: usize = 32;
/// CPR timeout used by line-editing mode unless `probe_terminal` set one.
const DEFAULT_CPR_TIMEOUT_US: u64 = 200_000;
/// Longest escape sequence accepted; longer ones are dropped.
const MAX_ESC_LEN: u8 = 32;

/// How interactive lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMode {
    /// Echo, backspace/DEL, ctrl-C; no cursor movement or history. Works
    /// with anything, including a pipe delivering a script.
    Dumb,
    /// Line editing and history (noline), for a terminal that answers
    /// cursor position requests.
    Edit,
}

/// Result of reading one interactive line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadLine {
    /// A complete line (without its line end).
    Line(String),
    /// The line was cancelled with ctrl-C (or ctrl-D on an empty line in
    /// edit mode).
    Cancelled,
    /// The line was longer than [`MAX_LINE`] bytes and was discarded.
    TooLong,
    /// No more input will arrive ([`Platform::idle`] returned `false`).
    Eof,
}

/// A unit of console input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A plain ASCII byte other than ESC.
    Key(u8),
    /// `ESC [ p1 ; p2 fin` with at most two numeric parameters
    /// (`n` = how many were given; values saturate at 9999).
    Csi { fin: u8, n: u8, p: [u16; 2] },
    /// `ESC O fin` (application-mode cursor keys).
    Ss3(u8),
}

impl Event {
    /// The (row, column) of a cursor position report.
    fn cpr(self) -> Option<(u16, u16)> {
        match self {
            Event::Csi {
                fin: b'R',
                n: 2,
                p: [r, c],
            } => Some((r, c)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum EscState {
    Ground,
    Esc,
    Csi {
        p: [u16; 2],
        /// Index of the parameter being read (number of `;` seen).
        idx: u8,
        /// Whether any parameter character was seen.
        any: bool,
        /// Malformed (private marker, intermediates, >2 parameters).
        bad: bool,
        len: u8,
    },
    Ss3,
}

/// Byte → [`Event`] state machine. Never panics, never loses a control
/// character: a sequence interrupted by a control byte is dropped and the
/// byte is then handled normally (so ctrl-C and Enter always work).
#[derive(Debug)]
pub(crate) struct EscParser {
    state: EscState,
}

impl EscParser {
    pub(crate) fn new() -> Self {
        Self {
            state: EscState::Ground,
        }
    }

    fn ground(&mut self, b: u8) -> Option<Event> {
        self.state = EscState::Ground;
        match b {
            0x1b => {
                self.state = EscState::Esc;
                None
            }
            0x00..=0x7f => Some(Event::Key(b)),
            _ => None,
        }
    }

    /// Feed one byte; returns the event it completes, if any.
    pub(crate) fn feed(&mut self, b: u8) -> Option<Event> {
        match self.state {
            EscState::Ground => self.ground(b),
            EscState::Esc => match b {
                b'[' => {
                    self.state = EscState::Csi {
                        p: [0; 2],
                        idx: 0,
                        any: false,
                        bad: false,
                        len: 0,
                    };
                    None
                }
                b'O' => {
                    self.state = EscState::Ss3;
                    None
                }
                0x1b => None,
                // ESC + other byte (e.g. Alt-x): drop the ESC, keep the byte.
                _ => self.ground(b),
            },
            EscState::Csi {
                mut p,
                mut idx,
                mut any,
                mut bad,
                len,
            } => {
                let len = len.saturating_add(1);
                match b {
                    b'0'..=b'9' => {
                        any = true;
                        match p.get_mut(usize::from(idx)) {
                            Some(v) => {
                                *v = v
                                    .saturating_mul(10)
                                    .saturating_add(u16::from(b - b'0'))
                                    .min(9999);
                            }
                            None => bad = true,
                        }
                    }
                    b';' => {
                        any = true;
                        idx = idx.saturating_add(1);
                        if usize::from(idx) >= p.len() {
                            bad = true;
                        }
                    }
                    0x20..=0x2f | b':' | b'<'..=b'?' => bad = true,
                    0x40..=0x7e => {
                        self.state = EscState::Ground;
                        if bad {
                            return None;
                        }
                        let n = if any { idx.saturating_add(1) } else { 0 };
                        return Some(Event::Csi { fin: b, n, p });
                    }
                    // Control byte, DEL or non-ASCII: abort the sequence.
                    _ => return self.ground(b),
                }
                // An over-long sequence is consumed to its end and dropped.
                self.state = EscState::Csi {
                    p,
                    idx,
                    any,
                    bad: bad || len > MAX_ESC_LEN,
                    len,
                };
                None
            }
            EscState::Ss3 => match b {
                0x40..=0x7e => {
                    self.state = EscState::Ground;
                    Some(Event::Ss3(b))
                }
                _ => self.ground(b),
            },
        }
    }
}

/// Input state kept in the shell between lines.
pub(crate) struct InputState {
    raw: VecDeque<u8>,
    esc: EscParser,
    events: VecDeque<Event>,
    /// The last key was CR: a following LF belongs to the same line end.
    skip_lf: bool,
    mode: LineMode,
    cpr_timeout_us: u64,
    history: VecDeque<String>,
}

impl InputState {
    pub(crate) fn new() -> Self {
        Self {
            raw: VecDeque::new(),
            esc: EscParser::new(),
            events: VecDeque::new(),
            skip_lf: false,
            mode: LineMode::Dumb,
            cpr_timeout_us: DEFAULT_CPR_TIMEOUT_US,
            history: VecDeque::new(),
        }
    }
}

/// Outcome of waiting for input.
enum Wait {
    Event(Event),
    Timeout,
    Eof,
}

impl<P: Platform> Shell<P> {
    /// Poll the console for ctrl-C (0x03), for long-running commands.
    /// Other bytes read meanwhile are kept as input for later lines.
    /// A ctrl-C also marks the running script as interrupted: it stops
    /// before its next command.
    pub fn ctrlc(&mut self) -> bool {
        while self.input.raw.len() < RAW_CAP {
            match self.platform.read_byte() {
                Some(0x03) => {
                    self.interrupted = true;
                    return true;
                }
                Some(b) => self.input.raw.push_back(b),
                None => break,
            }
        }
        false
    }

    /// Non-blocking: the next key typed, if any (for e.g. an autoboot
    /// "press any key" countdown). Escape sequences (arrow keys ...) are
    /// reported as a single 0x1b.
    pub fn poll_key(&mut self) -> Option<u8> {
        match self.poll_event()? {
            Event::Key(b) => Some(b),
            _ => Some(0x1b),
        }
    }

    /// Current line input mode.
    pub fn line_mode(&self) -> LineMode {
        self.input.mode
    }

    /// Force a line input mode (normally chosen by
    /// [`Shell::probe_terminal`]).
    pub fn set_line_mode(&mut self, mode: LineMode) {
        self.input.mode = mode;
    }

    /// Ask the console whether a terminal is attached: send `ESC[6n` and
    /// wait up to `timeout_ms` for a cursor position report. With a reply
    /// the shell uses [`LineMode::Edit`], else [`LineMode::Dumb`]. Input
    /// that arrives meanwhile and is not the reply is kept. The timeout is
    /// also used for the handshake line-editing mode does on every line.
    /// Returns whether a terminal answered.
    pub fn probe_terminal(&mut self, timeout_ms: u32) -> bool {
        let dur = u64::from(timeout_ms).saturating_mul(1000);
        self.input.cpr_timeout_us = dur;
        self.platform.write_str("\x1b[6n");
        let start = self.platform.now_us();
        loop {
            match self.wait_event(Some((start, dur)), true) {
                Wait::Event(ev) if ev.cpr().is_some() => {
                    self.input.mode = LineMode::Edit;
                    return true;
                }
                Wait::Event(ev) => self.hold(ev),
                Wait::Timeout | Wait::Eof => {
                    self.input.mode = LineMode::Dumb;
                    return false;
                }
            }
        }
    }

    /// Print the prompt and read one line (blocking, in the current mode).
    pub fn read_line(&mut self) -> ReadLine {
        self.read_line_prompt(PROMPT)
    }

    /// Print `prompt` and read one line (blocking, in the current mode).
    pub fn read_line_prompt(&mut self, prompt: &str) -> ReadLine {
        match self.input.mode {
            LineMode::Dumb => self.read_line_dumb(prompt),
            LineMode::Edit => self.read_line_edit(prompt),
        }
    }

    /// Read one command and execute it. Returns `false` at end of input.
    ///
    /// Like U-Boot's hush, a command that is not finished at the end of a
    /// line (an open quote, `if`/`for`/`while` without its end, a trailing
    /// `&&`/`||` or `\`) is continued on the next line, read with the
    /// secondary prompt [`PROMPT2`]; ctrl-C there drops the whole command.
    pub fn prompt_once(&mut self) -> bool {
        let mut text = String::new();
        let mut prompt = PROMPT;
        loop {
            let line = match self.read_line_prompt(prompt) {
                ReadLine::Line(line) => line,
                ReadLine::Cancelled => return true,
                ReadLine::TooLong => {
                    crate::sh_println!(self, "line too long (max {})", MAX_LINE);
                    return true;
                }
                ReadLine::Eof if text.is_empty() => return false,
                // End of input inside a command: run it (it reports what
                // is missing) and stop.
                ReadLine::Eof => {
                    let _ = self.run_typed(&text);
                    return false;
                }
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&line);
            if text.len() > MAX_COMMAND_TEXT {
                crate::sh_println!(
                    self,
                    "command too long (max {} bytes over all its lines)",
                    MAX_COMMAND_TEXT
                );
                return true;
            }
            match crate::parse::parse_interactive(&text) {
                Err(e) if e.incomplete => prompt = PROMPT2,
                _ => {
                    let _ = self.run_typed(&text);
                    return true;
                }
            }
        }
    }

    /// Run the interactive prompt until end of input (on the target:
    /// forever).
    pub fn run_prompt_loop(&mut self) {
        while self.prompt_once() {}
    }

    // ------------------------------------------------------- plumbing --

    fn raw_byte(&mut self) -> Option<u8> {
        self.input
            .raw
            .pop_front()
            .or_else(|| self.platform.read_byte())
    }

    /// Next event from new input (not from the held events).
    fn poll_parsed(&mut self) -> Option<Event> {
        while let Some(b) = self.raw_byte() {
            if let Some(ev) = self.input.esc.feed(b) {
                return Some(ev);
            }
        }
        None
    }

    /// Next event: held events first, then new input.
    fn poll_event(&mut self) -> Option<Event> {
        self.input.events.pop_front().or_else(|| self.poll_parsed())
    }

    fn hold(&mut self, ev: Event) {
        if self.input.events.len() < EVENT_CAP {
            self.input.events.push_back(ev);
        }
    }

    /// Wait for an event until `deadline` = (start, duration) in µs.
    /// With `fresh_only`, held events are skipped (used while looking for
    /// a CPR, which is never among them) and reading pauses when the held
    /// queue is full.
    fn wait_event(&mut self, deadline: Option<(u64, u64)>, fresh_only: bool) -> Wait {
        loop {
            let ev = if !fresh_only {
                self.poll_event()
            } else if self.input.events.len() < EVENT_CAP {
                self.poll_parsed()
            } else {
                None
            };
            if let Some(ev) = ev {
                return Wait::Event(ev);
            }
            if let Some((start, dur)) = deadline {
                if self.platform.now_us().wrapping_sub(start) >= dur {
                    return Wait::Timeout;
                }
            }
            if !self.platform.idle() {
                return Wait::Eof;
            }
        }
    }

    /// CR LF is one line end: returns false for the LF of a CR LF pair.
    fn crlf_keep(&mut self, b: u8) -> bool {
        let skip = self.input.skip_lf && b == b'\n';
        self.input.skip_lf = b == b'\r';
        !skip
    }

    fn read_line_dumb(&mut self, prompt: &str) -> ReadLine {
        self.print(prompt);
        let mut line: Vec<u8> = Vec::new();
        // Bytes typed beyond MAX_LINE: they are echoed but not stored, and
        // the line is rejected at its end.
        let mut excess: usize = 0;
        loop {
            let b = match self.wait_event(None, false) {
                Wait::Event(Event::Key(b)) => b,
                Wait::Event(_) | Wait::Timeout => continue, // escape sequences are ignored
                Wait::Eof => {
                    if line.is_empty() && excess == 0 {
                        self.print("\n");
                        return ReadLine::Eof;
                    }
                    break; // a last line without line end still counts
                }
            };
            if !self.crlf_keep(b) {
                continue;
            }
            match b {
                b'\r' | b'\n' => break,
                0x03 => {
                    self.print("<INTERRUPT>\n");
                    return ReadLine::Cancelled;
                }
                0x08 | 0x7f => {
                    if excess > 0 {
                        excess -= 1;
                        self.print("\x08 \x08");
                    } else if line.pop().is_some() {
                        self.print("\x08 \x08");
                    }
                }
                b'\t' | 0x20..=0x7e => {
                    if excess == 0 && line.len() < MAX_LINE {
                        line.push(b);
                    } else {
                        excess = excess.saturating_add(1);
                    }
                    self.platform.write_bytes(&[b]);
                }
                _ => {}
            }
        }
        self.print("\n");
        if excess > 0 {
            return ReadLine::TooLong;
        }
        // Only ASCII was stored, so this is lossless.
        ReadLine::Line(String::from_utf8_lossy(&line).into_owned())
    }

    fn read_line_edit(&mut self, prompt: &str) -> ReadLine {
        // One more byte than allowed, to detect (and reject) long lines.
        let mut line_buf = vec![0u8; MAX_LINE + 1];
        // The editor's history is rebuilt from ours for each line; size the
        // buffer so that it never wraps.
        let hist_len = self
            .input
            .history
            .iter()
            .fold(MAX_LINE + 64, |acc, h| acc.saturating_add(h.len() + 1));
        let mut hist_buf = vec![0u8; hist_len];

        let mut io = EditIo {
            sh: self,
            out: VecDeque::new(),
            matched: 0,
            cpr_pending: 0,
            cpr_seen: 0,
            rows: 24,
            prompt_len: u16::try_from(prompt.len()).unwrap_or(u16::MAX),
            eof: false,
            lost: false,
        };
        let result = match EditorBuilder::from_slice(&mut line_buf)
            .with_slice_history(&mut hist_buf)
            .build_sync(&mut io)
        {
            Ok(mut editor) => {
                editor.load_history(io.sh.input.history.iter().map(String::as_str));
                editor.readline(prompt, &mut io).map(|s| s.to_string())
            }
            Err(e) => Err(e),
        };
        let (eof, lost) = (io.eof, io.lost);
        if lost {
            // The terminal stopped answering: do not wait for it again.
            self.input.mode = LineMode::Dumb;
        }
        match result {
            Ok(s) if s.len() > MAX_LINE => ReadLine::TooLong,
            Ok(s) => {
                let h = &mut self.input.history;
                if !s.is_empty() && h.back() != Some(&s) {
                    h.push_back(s.clone());
                    if h.len() > HISTORY_MAX {
                        h.pop_front();
                    }
                }
                ReadLine::Line(s)
            }
            Err(_) if eof => ReadLine::Eof,
            Err(_) => ReadLine::Cancelled,
        }
    }
}

/// embedded-io adapter between noline and the shell; see the module docs.
struct EditIo<'a, P: Platform> {
    sh: &'a mut Shell<P>,
    /// Bytes ready for the editor (one translated event or CPR).
    out: VecDeque<u8>,
    /// How much of `ESC[6n` the editor's output has matched so far.
    matched: usize,
    /// CPR requests sent by the editor and not yet answered.
    cpr_pending: u32,
    /// CPRs delivered during this line (0: the size probe, then position).
    cpr_seen: u32,
    rows: u16,
    /// Length of the prompt printed before the line.
    prompt_len: u16,
    eof: bool,
    lost: bool,
}

const CPR_REQUEST: &[u8] = b"\x1b[6n";

impl<P: Platform> EditIo<'_, P> {
    fn push(&mut self, bytes: &[u8]) {
        self.out.extend(bytes.iter().copied());
    }

    fn push_num(&mut self, v: u16) {
        // v <= 9999 here, but handle any u16 without formatting machinery.
        let mut digits = [0u8; 5];
        let mut n = v;
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        let tail = digits.get(i..).unwrap_or(&[]);
        self.out.extend(tail.iter().copied());
    }

    /// Give the editor a CPR built from the terminal's `reply` (or a
    /// synthesized one), with values it can handle.
    fn deliver_cpr(&mut self, reply: Option<(u16, u16)>) {
        self.cpr_pending = self.cpr_pending.saturating_sub(1);
        let (r, c) = if self.cpr_seen == 0 {
            // Answer to "cursor to 999;999": the terminal size.
            let (r, c) = reply.unwrap_or((24, 80));
            self.rows = r.clamp(2, 500);
            (self.rows, c.clamp(20, 500))
        } else {
            // Position after the prompt: the column is known, the row
            // must lie inside the terminal.
            let r = reply.map_or(1, |x| x.0).clamp(1, self.rows);
            (r, self.prompt_len.saturating_add(1))
        };
        self.cpr_seen = self.cpr_seen.saturating_add(1);
        self.push(b"\x1b[");
        self.push_num(r);
        self.push(b";");
        self.push_num(c);
        self.push(b"R");
    }

    fn await_cpr(&mut self) {
        let start = self.sh.platform.now_us();
        let dur = self.sh.input.cpr_timeout_us;
        loop {
            match self.sh.wait_event(Some((start, dur)), true) {
                Wait::Event(ev) => match ev.cpr() {
                    Some(rc) => return self.deliver_cpr(Some(rc)),
                    None => self.sh.hold(ev),
                },
                Wait::Timeout => {
                    self.lost = true;
                    return self.deliver_cpr(None);
                }
                Wait::Eof => {
                    self.eof = true;
                    return self.deliver_cpr(None);
                }
            }
        }
    }

    /// Re-encode an input event in the form noline understands (or drop it).
    fn translate(&mut self, ev: Event) {
        let fin = match ev {
            Event::Key(b) => {
                if self.sh.crlf_keep(b) {
                    self.push(&[b]);
                }
                return;
            }
            Event::Csi { fin: b'~', p, .. } => match p[0] {
                1 | 7 => b'H',
                4 | 8 => b'F',
                3 => b'3',
                _ => return,
            },
            Event::Csi { fin, .. } | Event::Ss3(fin) => fin,
        };
        match fin {
            b'A' | b'B' | b'C' | b'D' => self.push(&[0x1b, b'[', fin]),
            b'H' => self.push(b"\x1b[1~"),
            b'F' => self.push(b"\x1b[4~"),
            b'3' => self.push(b"\x1b[3~"),
            // Unsolicited CPRs and everything else are dropped.
            _ => {}
        }
    }
}

impl<P: Platform> embedded_io::ErrorType for EditIo<'_, P> {
    type Error = Infallible;
}

impl<P: Platform> embedded_io::Write for EditIo<'_, P> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            if CPR_REQUEST.get(self.matched) == Some(&b) {
                self.matched += 1;
                if self.matched == CPR_REQUEST.len() {
                    self.cpr_pending = self.cpr_pending.saturating_add(1);
                    self.matched = 0;
                }
            } else {
                self.matched = usize::from(b == 0x1b);
            }
        }
        self.sh.platform.write_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<P: Platform> embedded_io::Read for EditIo<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let Some(slot) = buf.first_mut() else {
            return Ok(0);
        };
        loop {
            if let Some(b) = self.out.pop_front() {
                *slot = b;
                return Ok(1);
            }
            if self.cpr_pending > 0 {
                self.await_cpr();
                continue;
            }
            if self.eof {
                // Held input is still delivered; then end of input.
                match self.sh.input.events.pop_front() {
                    Some(ev) => self.translate(ev),
                    None => return Ok(0),
                }
                continue;
            }
            match self.sh.wait_event(None, false) {
                Wait::Event(ev) => self.translate(ev),
                Wait::Timeout => {}
                Wait::Eof => self.eof = true,
            }
        }
    }
}
