//! The shell's view of the machine: `shell::Platform` as a thin adapter,
//! each method handed to one part of the [`Machine`].

use crate::arch::timer;
use crate::firmware;
use crate::machine::Machine;
use alloc::string::String;
use shell::{Platform, Shell};

/// The shell, as every loader command receives it.
pub type Sh = Shell<Machine>;

impl Platform for Machine {
    fn write_str(&mut self, s: &str) {
        self.console.write_str(s);
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        self.console.write_bytes(bytes);
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.console.read_byte()
    }

    fn idle(&mut self) -> bool {
        self.console.idle();
        true
    }

    fn now_us(&self) -> u64 {
        timer::now_us()
    }

    fn mem_check(&self, addr: u64, len: u64, write: bool) -> Result<(), String> {
        self.mem.check(addr, len, write)
    }

    fn mem_read(&self, addr: u64, buf: &mut [u8]) {
        self.mem.read(addr, buf);
    }

    fn mem_write(&mut self, addr: u64, data: &[u8]) {
        self.mem.write(addr, data);
    }

    fn reset(&mut self) {
        self.fw.reset();
    }

    fn poweroff(&mut self) {
        self.fw.poweroff();
    }

    fn version(&self) -> String {
        firmware::version()
    }

    fn file_exists(&mut self, iface: &str, dev_part: &str, path: &str) -> Result<bool, String> {
        Machine::file_exists(self, iface, dev_part, path)
    }
}
