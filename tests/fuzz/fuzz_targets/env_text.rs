//! The environment's text forms on arbitrary bytes.
//!
//! 1. `shell::Env::from_text` (the saveenv format, read back from disk).
//!    Properties: no panic; an accepted text round-trips:
//!    `from_text(to_text(env)) == env`, and `to_text` is a fixed point.
//! 2. `env import` of the bytes from memory (U-Boot's formats: first byte
//!    picks `-t`, `-t -r`, `-d -t`, `-b`, `-c`, with or without a size).
//!    Properties: no panic; a refused import leaves the environment exactly
//!    as it was; an accepted one survives `env export -t` followed by
//!    `env import -d -t` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shell::Env;

fn env_import(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let rest = &rest[..rest.len().min(fuzz_common::MEM_SIZE / 2)];
    let mut sh = fuzz_common::fuzz_shell(10);
    sh.platform.mem[..rest.len()].copy_from_slice(rest);
    let before = sh.env.clone();
    let fmt = ["-t", "-t -r", "-d -t", "-b", "-c"][usize::from(mode & 7) % 5];
    let size = if mode & 0x80 != 0 {
        "-".to_string()
    } else {
        format!("{:x}", rest.len())
    };
    let ok = sh
        .run_script(&format!("env import {fmt} 40000000 {size}"))
        .is_ok();
    if !ok {
        assert!(sh.env == before, "a failed env import changed the env");
        return;
    }
    let env = sh.env.clone();
    // 8 KiB of fake RAM from 0x40002000: a bigger export fails, which is fine.
    if sh.run_script("env export -t -s 2000 40002000").is_ok() {
        assert!(
            sh.run_script("env import -d -t 40002000 2000").is_ok(),
            "env import of env export's text failed"
        );
        assert!(sh.env == env, "env export + import changed the env");
    }
}

fuzz_target!(|data: &[u8]| {
    env_import(data);
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    match Env::from_text(text) {
        Ok(env) => {
            for (k, v) in env.iter() {
                assert!(!k.is_empty() && !v.is_empty());
            }
            let out = env.to_text();
            let back = Env::from_text(&out)
                .unwrap_or_else(|e| panic!("to_text output does not re-parse: {e}\n{out:?}"));
            assert!(back == env, "round trip changed the env: {out:?}");
            assert_eq!(back.to_text(), out);
        }
        Err(e) => assert!(!format!("{e}").contains('\n'), "multi-line error: {e}"),
    }
});
