//! One QEMU session of the bench: [`xtask::qemu::Serial`] started paused, released with a QMP
//! `cont` (the clock's zero), with errors that carry the transcript and a timed log on drop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xtask::qemu::{command_output, Serial, SerialOpts};

use super::{AUTOBOOT, WAIT};

pub(super) struct Session {
    pub(super) name: String,
    serial: Serial,
    /// When the guest started running (QMP `cont`): "start" of every measurement.
    pub(super) t0: Instant,
    /// spawn → `cont`: QEMU's own set-up (incl. -mem-prealloc), not the loader's.
    pub(super) setup_ms: f64,
    pub(super) log: PathBuf,
}

impl Session {
    /// Starts QEMU paused (`-S`) with a QMP socket at `qmp`, then lets the guest run with `cont`
    /// once QEMU is set up; all times count from that `cont`.
    pub(super) fn spawn(
        name: &str,
        args: &[String],
        log: PathBuf,
        qmp: &Path,
    ) -> Result<Session, String> {
        let _ = std::fs::remove_file(qmp);
        let mut c = Command::new("qemu-system-aarch64");
        c.args(args)
            .arg("-S")
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        let t_spawn = Instant::now();
        let opts = SerialOpts {
            answer_cursor_queries: false,
            capture_stderr: true,
        };
        let serial = Serial::spawn(c, opts)?;
        let mut s = Session {
            name: name.to_string(),
            serial,
            t0: t_spawn,
            setup_ms: 0.0,
            log,
        };
        let t0 = s.qmp_cont(qmp).map_err(|e| s.fail(&format!("QMP: {e}")))?;
        s.setup_ms = between(t_spawn, t0);
        s.t0 = t0;
        Ok(s)
    }

    /// Connects to QEMU's QMP socket (QEMU answers once its machine, RAM included, is set up),
    /// then sends `cont`. Returns when `cont` was sent.
    fn qmp_cont(&mut self, qmp: &Path) -> Result<Instant, String> {
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match UnixStream::connect(qmp) {
                Ok(st) => break st,
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(format!("cannot connect to {}: {e}", qmp.display()));
                    }
                    if let Ok(Some(st)) = self.serial.exited() {
                        return Err(format!("QEMU exited ({st})"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        stream
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        let mut w = stream.try_clone().map_err(|e| e.to_string())?;
        let mut rd = BufReader::new(stream);
        let mut expect = |what: &str| -> Result<(), String> {
            let mut l = String::new();
            loop {
                l.clear();
                match rd.read_line(&mut l) {
                    Ok(0) => return Err(format!("QMP closed while waiting for {what}")),
                    Ok(_) if l.contains(what) => return Ok(()),
                    Ok(_) if l.contains("\"error\"") => {
                        return Err(format!("QMP error: {}", l.trim()))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("QMP read ({what}): {e}")),
                }
            }
        };
        expect("\"QMP\"")?;
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .map_err(|e| e.to_string())?;
        expect("\"return\"")?;
        let t = Instant::now();
        w.write_all(b"{\"execute\":\"cont\"}\n")
            .map_err(|e| e.to_string())?;
        expect("\"return\"")?;
        Ok(t)
    }

    pub(super) fn ms_since_start(&self, t: Instant) -> f64 {
        ms(t.saturating_duration_since(self.t0))
    }

    /// The error text: what went wrong, QEMU's stderr and the transcript tail.
    pub(super) fn fail(&self, why: &str) -> String {
        let text = self.serial.transcript().replace('\r', "");
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        let err = self.serial.stderr();
        let mut s = format!(
            "{}: {why} (full transcript: {})\n----- serial tail -----\n{tail}\n-----",
            self.name,
            self.log.display()
        );
        if !err.is_empty() {
            s.push_str(&format!("\nQEMU stderr: {err}"));
        }
        s
    }

    /// Waits for the first of `pats` after the cursor. Returns (which, arrival time of the
    /// chunk that completed it, text from the cursor to the end of the match); the cursor moves
    /// past the match.
    pub(super) fn wait_any(
        &mut self,
        pats: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Instant, String), String> {
        match self.serial.wait_any(pats, timeout) {
            Ok(f) => Ok((f.which, f.at, f.text)),
            Err(e) => Err(self.fail(&e.to_string())),
        }
    }

    pub(super) fn wait(
        &mut self,
        pat: &str,
        timeout: Duration,
    ) -> Result<(Instant, String), String> {
        self.wait_any(&[pat], timeout).map(|(_, t, s)| (t, s))
    }

    /// Waits for `pat`, or fails early when `unless` comes first (e.g. the prompt after an
    /// error), then for the end of its line. Returns the whole line and when its end arrived.
    pub(super) fn wait_line(
        &mut self,
        pat: &str,
        unless: &str,
        timeout: Duration,
    ) -> Result<(Instant, String), String> {
        let (k, _, text) = self.wait_any(&[pat, unless], timeout)?;
        if k == 1 {
            return Err(self.fail(&format!("expected {pat:?}, got: {:?}", text.trim())));
        }
        let start = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let head = text[start..].to_string();
        let (t, rest) = self.wait("\n", timeout)?;
        Ok((
            t,
            format!("{head}{rest}").replace('\r', "").trim().to_string(),
        ))
    }

    pub(super) fn send(&mut self, text: &str) -> Result<Instant, String> {
        self.serial.send(text.as_bytes()).map_err(|e| self.fail(&e))
    }

    /// Types a command line (CR, as a terminal sends it).
    pub(super) fn line(&mut self, cmd: &str) -> Result<Instant, String> {
        self.send(&format!("{cmd}\r"))
    }

    /// Types `cmd` and waits for the next prompt; returns the output (without the echo).
    pub(super) fn cmd(&mut self, cmd: &str) -> Result<String, String> {
        self.line(cmd)?;
        let (_, out) = self.wait("\n=> ", WAIT)?;
        Ok(command_output(&out))
    }

    pub(super) fn wait_exit(&mut self, timeout: Duration) -> bool {
        self.serial.wait_exit(timeout)
    }

    /// CPU time the QEMU process has used so far (all its threads, user + system), from
    /// /proc/<pid>/stat.
    pub(super) fn cpu_time(&self) -> Result<Duration, String> {
        let pid = self.serial.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| self.fail(&format!("/proc/{pid}/stat: {e}")))?;
        process_cpu_time(&stat, clock_ticks()).ok_or_else(|| self.fail("cannot parse /proc stat"))
    }
}

/// utime + stime of a /proc/<pid>/stat line (fields 14 and 15, counted after the `(comm)`
/// field, which may contain spaces), at `hz` ticks per second.
pub(super) fn process_cpu_time(stat: &str, hz: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    if hz == 0 {
        return None;
    }
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// The kernel's USER_HZ (`getconf CLK_TCK`; 100 where it cannot be asked).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

impl Drop for Session {
    fn drop(&mut self) {
        let log = self.serial.timed_log(self.t0);
        let _ = std::fs::write(&self.log, log);
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn between(a: Instant, b: Instant) -> f64 {
    ms(b.saturating_duration_since(a))
}

/// Stops the countdown at the first "Hit any key" and waits for the prompt.
/// Returns (start→autoboot line, key→prompt, text up to the autoboot line).
pub(super) fn to_prompt(s: &mut Session) -> Result<(f64, f64, String), String> {
    let (t_ab, banner) = s.wait(AUTOBOOT, WAIT)?;
    let t_key = s.send(" ")?;
    let (t_p, _) = s.wait("=> ", WAIT)?;
    Ok((s.ms_since_start(t_ab), between(t_key, t_p), banner))
}

#[cfg(test)]
mod tests {
    use super::process_cpu_time;
    use std::time::Duration;

    #[test]
    fn proc_stat_cpu_time() {
        let s = "4242 (qemu-system-aar ch) S 1 4242 4242 0 -1 4194560 8000 0 0 0 250 75 0 0 20 0 9 0 100 0";
        assert_eq!(process_cpu_time(s, 100), Some(Duration::from_millis(3250)));
        assert_eq!(process_cpu_time("garbage", 100), None);
    }
}
