//! A typed line / script (boot.cmd, a variable run with `run`) through
//! `shell::Shell::run_script` on a fake platform (16 KiB of fake RAM at
//! 0x4000_0000, bounded idle budget: `sleep` beyond ~0.1 s is ended by a
//! simulated ctrl-C; see `fuzz_common::FakePlatform`).
//!
//! Properties: no panic; no hang (libFuzzer `-timeout`); the environment
//! stays serialisable and re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let script = String::from_utf8_lossy(data);
    let mut sh = fuzz_common::fuzz_shell(100);
    let _ = sh.run_script(&script);
    let _ = sh.last_status();
    // Whatever the script did to the environment must survive saveenv.
    let text = sh.env.to_text();
    let back = shell::Env::from_text(&text)
        .unwrap_or_else(|e| panic!("env written by the shell does not re-parse: {e}"));
    assert!(back == sh.env, "env changed through to_text/from_text");
});
