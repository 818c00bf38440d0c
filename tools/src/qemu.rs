//! The one QEMU serial driver: the integration tests (tests/src/lib.rs) and `cargo xtask bench`
//! both drive qemu-system-aarch64 through [`Serial`].
//!
//! QEMU runs with the guest's serial console on its stdio pipes. A reader thread appends every
//! chunk QEMU writes to one buffer and notes when it arrived (host clock), so a pattern's time
//! is the arrival of the chunk that completed it. Waits look for text after a cursor, with a
//! timeout; sends type bytes into the console. Dropping a [`Serial`] kills QEMU.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The bytes QEMU wrote so far and when they arrived.
#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// (end offset of a chunk, when it arrived), in order.
    stamps: Vec<(usize, Instant)>,
    eof: bool,
}

struct Shared {
    buf: Mutex<Buf>,
    cv: Condvar,
}

/// How to start QEMU.
#[derive(Clone, Copy, Debug, Default)]
pub struct SerialOpts {
    /// Answer `ESC[6n` cursor-position queries like a real terminal would.
    pub answer_cursor_queries: bool,
    /// Keep QEMU's stderr (for error reports) instead of passing it through.
    pub capture_stderr: bool,
}

/// A running QEMU with its serial console on pipes.
pub struct Serial {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    shared: Arc<Shared>,
    stderr: Option<Arc<Mutex<Vec<u8>>>>,
    cursor: usize,
    /// What was typed, and when.
    sent: Vec<(Instant, String)>,
}

/// A pattern found by [`Serial::wait_any`].
#[derive(Clone, Debug)]
pub struct Found {
    /// Index of the pattern that matched first.
    pub which: usize,
    /// When the chunk that completed the match arrived.
    pub at: Instant,
    /// The text from the cursor to the end of the match.
    pub text: String,
}

/// Why a wait ended without its pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    TimedOut {
        after: Duration,
        waiting_for: String,
    },
    Exited {
        waiting_for: String,
    },
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            WaitError::TimedOut { after, waiting_for } => {
                write!(f, "timed out after {after:?} waiting for {waiting_for}")
            }
            WaitError::Exited { waiting_for } => {
                write!(f, "QEMU exited while waiting for {waiting_for}")
            }
        }
    }
}

fn describe(pats: &[&str]) -> String {
    match pats {
        [one] => format!("{one:?}"),
        _ => format!("{pats:?}"),
    }
}

/// The arguments for a QEMU board whose serial console is on stdio and nothing else is shown:
/// `-M machine -cpu cpu -smp smp -m mem`, no display, no monitor, no reboot (a guest reset ends
/// QEMU).
pub fn board_args(machine: &str, cpu: &str, smp: u32, mem: &str) -> Vec<String> {
    let smp = smp.to_string();
    [
        "-M",
        machine,
        "-cpu",
        cpu,
        "-smp",
        &smp,
        "-m",
        mem,
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Where `needle` first occurs in `hay` (an empty needle at 0).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// When byte `i` arrived.
fn arrival(stamps: &[(usize, Instant)], i: usize) -> Instant {
    let k = stamps.partition_point(|&(end, _)| end <= i);
    stamps
        .get(k)
        .or(stamps.last())
        .map(|s| s.1)
        .unwrap_or_else(Instant::now)
}

/// A command's output from what the console showed between typing `line` and the next prompt
/// (`text` ends with "\n=> "): without the echoed line, the prompt and carriage returns.
pub fn command_output(text: &str) -> String {
    let text = text.replace('\r', "");
    let body = text.split_once('\n').map(|x| x.1).unwrap_or("");
    body.trim_end_matches("=> ").trim_end().to_string()
}

impl Serial {
    /// Starts `cmd` (qemu-system-aarch64 with `-serial stdio` or `-nographic`) with its stdio on
    /// pipes and a reader thread on its stdout.
    pub fn spawn(mut cmd: Command, opts: SerialOpts) -> Result<Serial, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if opts.capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().map_err(|e| {
            format!("cannot start qemu-system-aarch64 ({e}): apt-get install qemu-system-arm")
        })?;
        let stdin = Arc::new(Mutex::new(child.stdin.take().ok_or("no stdin pipe")?));
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let shared = Arc::new(Shared {
            buf: Mutex::new(Buf::default()),
            cv: Condvar::new(),
        });
        let answer = opts.answer_cursor_queries.then(|| stdin.clone());
        let sh = shared.clone();
        std::thread::spawn(move || read_console(out, &sh, answer));
        let stderr = match child.stderr.take() {
            Some(mut err) => {
                let keep = Arc::new(Mutex::new(Vec::new()));
                let k2 = keep.clone();
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = err.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        k2.lock().unwrap().extend_from_slice(&chunk[..n]);
                    }
                });
                Some(keep)
            }
            None => None,
        };
        Ok(Serial {
            child,
            stdin,
            shared,
            stderr,
            cursor: 0,
            sent: Vec::new(),
        })
    }

    /// The QEMU process's id (for its CPU time in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the first of `pats` to complete after the cursor; the cursor moves past it.
    pub fn wait_any(&mut self, pats: &[&str], timeout: Duration) -> Result<Found, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut b = self.shared.buf.lock().unwrap();
        loop {
            let mut best: Option<(usize, usize)> = None; // (end, which)
            for (k, p) in pats.iter().enumerate() {
                if let Some(i) = find(&b.bytes[self.cursor..], p.as_bytes()) {
                    let end = self.cursor + i + p.len();
                    if best.is_none_or(|(e, _)| end < e) {
                        best = Some((end, k));
                    }
                }
            }
            if let Some((end, which)) = best {
                let at = arrival(&b.stamps, end.saturating_sub(1));
                let text = String::from_utf8_lossy(&b.bytes[self.cursor..end]).into_owned();
                self.cursor = end;
                return Ok(Found { which, at, text });
            }
            if b.eof {
                return Err(WaitError::Exited {
                    waiting_for: describe(pats),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut {
                    after: timeout,
                    waiting_for: describe(pats),
                });
            }
            b = self
                .shared
                .cv
                .wait_timeout(b, (deadline - now).min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }

    /// [`Serial::wait_any`] for one pattern.
    pub fn wait(&mut self, pat: &str, timeout: Duration) -> Result<Found, WaitError> {
        self.wait_any(&[pat], timeout)
    }

    /// Whether `pat` appeared between the cursor and now.
    pub fn seen(&self, pat: &str) -> bool {
        let b = self.shared.buf.lock().unwrap();
        find(&b.bytes[self.cursor..], pat.as_bytes()).is_some()
    }

    /// Whether `pat` appeared anywhere in the output so far (cursor or not).
    pub fn seen_anywhere(&self, pat: &str) -> bool {
        let b = self.shared.buf.lock().unwrap();
        find(&b.bytes, pat.as_bytes()).is_some()
    }

    /// Types `bytes` into the console; returns when they were written.
    pub fn send(&mut self, bytes: &[u8]) -> Result<Instant, String> {
        let t = Instant::now();
        let mut w = self.stdin.lock().unwrap();
        w.write_all(bytes)
            .and_then(|_| w.flush())
            .map_err(|e| format!("cannot write to QEMU's serial input: {e}"))?;
        drop(w);
        self.sent
            .push((t, String::from_utf8_lossy(bytes).into_owned()));
        Ok(t)
    }

    /// Everything the board printed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.shared.buf.lock().unwrap().bytes).into_owned()
    }

    /// What QEMU wrote to stderr (with [`SerialOpts::capture_stderr`]).
    pub fn stderr(&self) -> String {
        self.stderr
            .as_ref()
            .map(|e| {
                String::from_utf8_lossy(&e.lock().unwrap())
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// Whether QEMU has exited.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>, String> {
        self.child.try_wait().map_err(|e| e.to_string())
    }

    /// Waits for QEMU to exit on its own (e.g. poweroff); returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The transcript with each line prefixed by the arrival time of its first byte (ms since
    /// `t0`), then what was typed and when.
    pub fn timed_log(&self, t0: Instant) -> String {
        use std::fmt::Write as _;
        let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1000.0;
        let b = self.shared.buf.lock().unwrap();
        let mut s = String::new();
        let mut at_line_start = true;
        let mut prev = 0usize;
        for &(end, t) in &b.stamps {
            for &c in &b.bytes[prev..end] {
                if at_line_start {
                    let _ = write!(s, "[{:>10.3}] ", since(t));
                    at_line_start = false;
                }
                if c == b'\n' {
                    s.push('\n');
                    at_line_start = true;
                } else if c != b'\r' {
                    s.push(c as char);
                }
            }
            prev = end;
        }
        s.push_str("\n----- typed -----\n");
        for (t, text) in &self.sent {
            let _ = writeln!(s, "[{:>10.3}] {:?}", since(*t), text);
        }
        s
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader thread: appends QEMU's output with arrival times; answers cursor queries when
/// `answer` is given.
fn read_console(mut out: impl Read, sh: &Shared, answer: Option<Arc<Mutex<ChildStdin>>>) {
    let mut chunk = [0u8; 4096];
    let mut scanned = 0usize;
    loop {
        match out.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let now = Instant::now();
                let mut b = sh.buf.lock().unwrap();
                b.bytes.extend_from_slice(&chunk[..n]);
                let end = b.bytes.len();
                b.stamps.push((end, now));
                if let Some(w) = &answer {
                    // Reply to every new cursor-position query.
                    while let Some(i) = find(&b.bytes[scanned..], b"\x1b[6n") {
                        scanned += i + 4;
                        let _ = w.lock().unwrap().write_all(b"\x1b[24;1R");
                    }
                }
                sh.cv.notify_all();
            }
        }
    }
    sh.buf.lock().unwrap().eof = true;
    sh.cv.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_times() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let st = [(4, t0), (10, t1)];
        assert_eq!(arrival(&st, 0), t0);
        assert_eq!(arrival(&st, 3), t0);
        assert_eq!(arrival(&st, 4), t1);
        assert_eq!(arrival(&st, 9), t1);
    }

    #[test]
    fn command_output_drops_echo_and_prompt() {
        assert_eq!(
            command_output("printenv x\r\nx=1\r\ny\r\n=> "),
            "x=1\ny".to_string()
        );
        assert_eq!(command_output("true\r\n=> "), "");
        assert_eq!(command_output("no newline"), "");
    }

    /// `cat` stands in for QEMU: what is typed comes back on the "console".
    fn cat() -> Serial {
        Serial::spawn(Command::new("cat"), SerialOpts::default()).unwrap()
    }

    #[test]
    fn waits_find_the_earliest_pattern_and_move_the_cursor() {
        let mut s = cat();
        s.send(b"one two three\n").unwrap();
        let f = s
            .wait_any(&["three", "two"], Duration::from_secs(5))
            .unwrap();
        assert_eq!((f.which, f.text.as_str()), (1, "one two"));
        assert!(s.seen("three"));
        assert!(!s.seen("one"));
        // Before the cursor: only the whole-transcript search finds it.
        assert!(s.seen_anywhere("one"));
        assert!(!s.seen_anywhere("four"));
        let e = s.wait("one", Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.to_string(), "timed out after 300ms waiting for \"one\"");
        assert!(s.timed_log(Instant::now()).contains("\"one two three\\n\""));
    }

    #[test]
    fn an_exited_qemu_ends_the_wait() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo bye"]);
        let mut s = Serial::spawn(c, SerialOpts::default()).unwrap();
        let e = s.wait("never", Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            e,
            WaitError::Exited {
                waiting_for: "\"never\"".into()
            }
        );
        assert!(s.wait_exit(Duration::from_secs(5)));
        assert_eq!(s.transcript(), "bye\n");
    }
}
