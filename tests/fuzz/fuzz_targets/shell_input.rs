//! Raw console bytes (typed keys, escape sequences, cursor position reports,
//! ctrl-C, overlong lines) through the shell's line input and prompt loop.
//!
//! First byte: 0 = probe the terminal first (the input may or may not carry
//! a CPR reply), 1 = line-editing mode, otherwise dumb mode. The rest is
//! queued as console input; the prompt loop runs until end of input.
//! Properties: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shell::LineMode;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, keys)) = data.split_first() else {
        return;
    };
    let mut sh = fuzz_common::fuzz_shell(2000);
    sh.platform.input.extend(keys.iter().copied());
    match mode {
        0 => {
            let _ = sh.probe_terminal(10);
        }
        1 => sh.set_line_mode(LineMode::Edit),
        _ => sh.set_line_mode(LineMode::Dumb),
    }
    let _ = sh.poll_key();
    sh.run_prompt_loop();
});
