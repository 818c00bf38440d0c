//! Host tests with a fake platform.

extern crate std;

mod cmds;
mod env;
mod envcmd;
mod fuzz;
mod input;
mod lang;
mod loops;
mod setexpr;
mod testcmd;
mod uboot;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::{CmdResult, Command, Platform, Shell};

/// Fake RAM: 256 KiB at 0x4000_0000.
pub(crate) const MEM_BASE: u64 = 0x4000_0000;
pub(crate) const MEM_SIZE: usize = 256 * 1024;

pub(crate) struct Fake {
    pub out: Vec<u8>,
    pub input: VecDeque<u8>,
    pub time: Cell<u64>,
    /// µs added by each `idle()` call.
    pub tick: u64,
    pub mem: Vec<u8>,
    pub resets: u32,
    pub poweroffs: u32,
    /// What the fake terminal answers to `ESC[6n` (None: no terminal).
    pub cpr_reply: Option<Vec<u8>>,
    matched: usize,
    /// Number of `idle()` calls that report "more input may come"; after
    /// that, `idle()` reports end of input.
    pub idle_budget: u64,
    pub cpr_requests: usize,
    /// Files `test -e` finds, as `"iface dev[:part] path"`; interface
    /// `virtio` is known, others are "bad device" errors.
    pub files: Vec<String>,
}

impl Fake {
    pub(crate) fn new() -> Self {
        Fake {
            out: Vec::new(),
            input: VecDeque::new(),
            time: Cell::new(0),
            tick: 100,
            mem: vec![0; MEM_SIZE],
            resets: 0,
            poweroffs: 0,
            cpr_reply: None,
            matched: 0,
            idle_budget: 0,
            cpr_requests: 0,
            files: Vec::new(),
        }
    }

    fn offset(addr: u64) -> usize {
        usize::try_from(addr - MEM_BASE).expect("address checked")
    }
}

impl Platform for Fake {
    fn write_str(&mut self, s: &str) {
        self.write_bytes(s.as_bytes());
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        const REQ: &[u8] = b"\x1b[6n";
        for &b in bytes {
            self.out.push(b);
            if REQ.get(self.matched) == Some(&b) {
                self.matched += 1;
                if self.matched == REQ.len() {
                    self.matched = 0;
                    self.cpr_requests += 1;
                    if let Some(r) = &self.cpr_reply {
                        self.input.extend(r.iter().copied());
                    }
                }
            } else {
                self.matched = usize::from(b == 0x1b);
            }
        }
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.input.pop_front()
    }

    fn idle(&mut self) -> bool {
        self.time.set(self.time.get() + self.tick);
        if self.idle_budget > 0 {
            self.idle_budget -= 1;
            true
        } else {
            false
        }
    }

    fn now_us(&self) -> u64 {
        // Time also moves a little on every read, so busy loops progress.
        let t = self.time.get() + 1;
        self.time.set(t);
        t
    }

    fn mem_check(&self, addr: u64, len: u64, _write: bool) -> Result<(), String> {
        let end = addr.checked_add(len).ok_or("overflow")?;
        if addr >= MEM_BASE && end <= MEM_BASE + MEM_SIZE as u64 {
            Ok(())
        } else {
            Err(format!("{addr:#x}..{end:#x} is not RAM"))
        }
    }

    fn mem_read(&self, addr: u64, buf: &mut [u8]) {
        let o = Self::offset(addr);
        buf.copy_from_slice(&self.mem[o..o + buf.len()]);
    }

    fn mem_write(&mut self, addr: u64, data: &[u8]) {
        let o = Self::offset(addr);
        self.mem[o..o + data.len()].copy_from_slice(data);
    }

    fn reset(&mut self) {
        self.resets += 1;
    }

    fn poweroff(&mut self) {
        self.poweroffs += 1;
    }

    fn version(&self) -> String {
        "parkboot test 0.1".into()
    }

    fn file_exists(&mut self, iface: &str, dev_part: &str, path: &str) -> Result<bool, String> {
        if iface != "virtio" {
            return Err(format!("** Bad device specification {iface} {dev_part} **"));
        }
        let key = format!("{iface} {dev_part} {path}");
        Ok(self.files.contains(&key))
    }
}

/// Write `bytes` into the fake RAM at `addr`.
pub(crate) fn poke(sh: &mut Shell<Fake>, addr: u64, bytes: &[u8]) {
    let o = (addr - MEM_BASE) as usize;
    sh.platform.mem[o..o + bytes.len()].copy_from_slice(bytes);
}

/// Read `len` bytes of the fake RAM at `addr`.
pub(crate) fn peek(sh: &Shell<Fake>, addr: u64, len: usize) -> Vec<u8> {
    let o = (addr - MEM_BASE) as usize;
    sh.platform.mem[o..o + len].to_vec()
}

/// Test command: prints each argument in brackets, e.g. `[a][b c]`.
fn do_args(sh: &mut Shell<Fake>, args: &[String]) -> CmdResult {
    let mut s = String::new();
    for a in args.get(1..).unwrap_or(&[]) {
        s.push('[');
        s.push_str(a);
        s.push(']');
    }
    s.push('\n');
    sh.print(&s);
    Ok(())
}

/// A shell on a fresh fake, with the `args` test command.
pub(crate) fn shell() -> Shell<Fake> {
    let mut sh = Shell::new(Fake::new());
    sh.register(Command {
        name: "args",
        usage: "args [arg...]",
        help: "print arguments in brackets",
        run: do_args,
    });
    sh
}

/// Take the console output so far.
pub(crate) fn take(sh: &mut Shell<Fake>) -> String {
    let out = core::mem::take(&mut sh.platform.out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Run a script and return its output.
pub(crate) fn run(sh: &mut Shell<Fake>, script: &str) -> String {
    let _ = sh.run_script(script);
    take(sh)
}

/// Run a script on a fresh shell and return its output.
pub(crate) fn run1(script: &str) -> String {
    run(&mut shell(), script)
}

/// Queue console input.
pub(crate) fn feed(sh: &mut Shell<Fake>, bytes: &[u8]) {
    sh.platform.input.extend(bytes.iter().copied());
}
