//! `shell::Env::from_text` (the saveenv format, read back from disk) on
//! arbitrary text. Properties: no panic; an accepted text round-trips:
//! `from_text(to_text(env)) == env`, and `to_text` is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shell::Env;

fuzz_target!(|data: &[u8]| {
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
