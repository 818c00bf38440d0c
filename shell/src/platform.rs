//! The interface between the shell and the machine it runs on.

use alloc::format;
use alloc::string::String;

/// Everything the shell needs from the machine.
///
/// The loader implements it on the target (UART, timer, memory map, PSCI);
/// the unit tests implement it with a fake console and a fake memory.
pub trait Platform {
    /// Write text to the console.
    ///
    /// The shell ends lines with a bare `\n`; a serial console that needs
    /// `\r\n` must translate, as U-Boot's serial drivers do.
    fn write_str(&mut self, s: &str);

    /// Write raw bytes to the console (used by the line editor, whose
    /// output is ASCII escape sequences and UTF-8 text).
    ///
    /// The default forwards valid UTF-8 runs to [`Platform::write_str`] and
    /// replaces each invalid byte with `?`; a UART driver should override
    /// it to send the bytes unchanged.
    fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    self.write_str(s);
                    return;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    if let Ok(s) = core::str::from_utf8(good) {
                        self.write_str(s);
                    }
                    self.write_str("?");
                    let skip = e.error_len().unwrap_or(rest.len()).max(1);
                    bytes = rest.get(skip..).unwrap_or(&[]);
                }
            }
        }
    }

    /// Return the next received console byte, or `None` at once if there is
    /// none (never blocks).
    fn read_byte(&mut self) -> Option<u8>;

    /// Called while the shell busy-waits for input or time (no byte was
    /// available). The loader may relax the CPU or kick a watchdog here.
    ///
    /// Return `false` to say that no more input will ever arrive (end of
    /// input, e.g. a host simulation whose stdin is closed, or a test); the
    /// shell then stops waiting. The default spins and returns `true`.
    fn idle(&mut self) -> bool {
        core::hint::spin_loop();
        true
    }

    /// Monotonic time in microseconds (wrap-around is tolerated).
    fn now_us(&self) -> u64;

    /// May `len` bytes at physical address `addr` be read (or written, if
    /// `write`) by the memory commands? `Err` carries a one-line reason
    /// such as `"0x1000..0x2000 is not RAM"` that the shell prints.
    fn mem_check(&self, addr: u64, len: u64, write: bool) -> Result<(), String>;

    /// Read `buf.len()` bytes at `addr`. Only called for ranges that
    /// [`Platform::mem_check`] accepted.
    fn mem_read(&self, addr: u64, buf: &mut [u8]);

    /// Write `data` at `addr`. Only called for ranges that
    /// [`Platform::mem_check`] accepted with `write = true`.
    fn mem_write(&mut self, addr: u64, data: &[u8]);

    /// Reset the machine. Should not return; if it does, the `reset`
    /// command reports a failure.
    fn reset(&mut self);

    /// Power the machine off. Should not return; if it does, the
    /// `poweroff` command reports a failure.
    fn poweroff(&mut self);

    /// Version/banner string printed by the `version` command (one or more
    /// lines, without the final newline).
    fn version(&self) -> String;

    /// Does file `path` exist on interface `iface`, device and partition
    /// `dev_part` (`test -e virtio 0:1 /boot.scr`, U-Boot's
    /// `file_exists()`)? `Ok(false)` when it does not; `Err` carries a
    /// one-line reason why the question cannot be answered (no such
    /// device, unreadable filesystem ...), which `test` prints before
    /// counting the file as missing, as U-Boot does.
    ///
    /// The default answers that file tests are not supported here.
    fn file_exists(&mut self, iface: &str, dev_part: &str, path: &str) -> Result<bool, String> {
        let _ = (dev_part, path);
        Err(format!(
            "test -e: file tests are not supported on this platform (interface '{iface}')"
        ))
    }
}
