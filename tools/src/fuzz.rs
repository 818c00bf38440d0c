//! `cargo xtask fuzz`: run the cargo-fuzz targets in `tests/fuzz`.
//!
//! ```text
//! cargo xtask fuzz list                      the targets
//! cargo xtask fuzz [TARGET...] [--time N]    run each target (default: all, one
//!                                            after the other) for N seconds
//!                                            (default 60); prints execs, exec/s
//!                                            and the result of each
//! cargo xtask fuzz cmin [TARGET...]          minimise the corpora (before committing;
//!                                            keeps every covered edge)
//! cargo xtask fuzz repro TARGET FILE...      run a target on saved inputs only
//! options: --timeout S  an input that runs longer than S seconds is a hang
//!                   (default 10; raise it when the machine is shared, since
//!                   libFuzzer's clock is wall time and a starved process
//!                   reports spurious timeouts)
//!          --asan   build with AddressSanitizer (default: no sanitizer; the
//!                   fuzzed crates have no `unsafe`, and overflow checks and
//!                   debug assertions are on either way)
//!          --verbose  show all of libFuzzer's output
//! ```
//!
//! cargo-fuzz needs nightly compiler flags; on the pinned stable toolchain
//! they are enabled with `RUSTC_BOOTSTRAP=1`. The fuzz build goes to
//! `$CARGO_TARGET_DIR` if set, else `target/fuzz` (kept apart from the main
//! build, whose flags differ). One libFuzzer process at a time. Full logs go to
//! `target/fuzz-logs/<target>.log`; new corpus entries to
//! `tests/fuzz/corpus/<target>/`; crashes to `tests/fuzz/artifacts/<target>/`.
//! See docs/robustness.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fuzz_dir() -> PathBuf {
    xtask::root().join("tests/fuzz")
}

struct Opts {
    time: u64,
    timeout: u64,
    asan: bool,
    verbose: bool,
    names: Vec<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        time: 60,
        timeout: 10,
        asan: false,
        verbose: false,
        names: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" | "-t" => {
                let v = it.next().ok_or("--time needs a number of seconds")?;
                o.time = v
                    .parse()
                    .map_err(|_| format!("--time: '{v}' is not a number of seconds"))?;
            }
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a number of seconds")?;
                o.timeout = v
                    .parse()
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(|| format!("--timeout: '{v}' is not a number of seconds"))?;
            }
            "--asan" => o.asan = true,
            "--verbose" | "-v" => o.verbose = true,
            s if s.starts_with('-') => return Err(format!("fuzz: unknown option {s}")),
            s => o.names.push(s.to_string()),
        }
    }
    Ok(o)
}

/// `cargo fuzz ...` in tests/fuzz with the environment it needs.
fn cargo_fuzz() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.arg("fuzz").current_dir(fuzz_dir());
    c.env("RUSTC_BOOTSTRAP", "1");
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        c.env("CARGO_TARGET_DIR", xtask::root().join("target/fuzz"));
    }
    c
}

fn sanitizer_args(o: &Opts) -> [&'static str; 2] {
    ["--sanitizer", if o.asan { "address" } else { "none" }]
}

fn check_cargo_fuzz() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["fuzz", "--version"])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err("cargo-fuzz is not installed: install with `cargo install cargo-fuzz`".into())
    }
}

fn targets() -> Result<Vec<String>, String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".rs").map(String::from)
        })
        .collect();
    v.sort();
    Ok(v)
}

fn selected(o: &Opts) -> Result<Vec<String>, String> {
    let all = targets()?;
    if o.names.is_empty() || o.names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    for n in &o.names {
        if !all.contains(n) {
            return Err(format!(
                "fuzz: no target '{n}' (targets: {})",
                all.join(", ")
            ));
        }
    }
    Ok(o.names.clone())
}

/// What one libFuzzer run reported.
#[derive(Default)]
struct Outcome {
    execs: Option<u64>,
    exec_per_sec: Option<u64>,
    new_units: Option<u64>,
    cov: Option<String>,
    artifact: Option<String>,
    reason: Option<String>,
    ok: bool,
}

fn stat(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?
        .trim()
        .trim_start_matches(':')
        .trim()
        .parse()
        .ok()
}

/// Runs `cargo fuzz <args>`, streaming its stderr to `log` and (filtered)
/// to the console, and collects the statistics.
fn run_logged(mut cmd: Command, log: &Path, verbose: bool) -> Result<Outcome, String> {
    eprintln!("xtask: {cmd:?}");
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut logf = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo fuzz: {e}"))?;
    let mut o = Outcome::default();
    let stderr = child.stderr.take().expect("piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| format!("reading cargo fuzz output: {e}"))?;
        let _ = writeln!(logf, "{line}");
        if let Some(v) = stat(&line, "stat::number_of_executed_units") {
            o.execs = Some(v);
        } else if let Some(v) = stat(&line, "stat::average_exec_per_sec") {
            o.exec_per_sec = Some(v);
        } else if let Some(v) = stat(&line, "stat::new_units_added") {
            o.new_units = Some(v);
        }
        if line.starts_with('#') {
            if let Some(c) = line.split_whitespace().skip_while(|w| *w != "cov:").nth(1) {
                o.cov = Some(c.to_string());
            }
        }
        if let Some(p) = line.split("Test unit written to ").nth(1) {
            o.artifact = Some(p.trim().to_string());
        }
        let interesting = line.contains("panicked at")
            || line.contains("ERROR: libFuzzer")
            || line.contains("==ERROR")
            || line.contains("SUMMARY:")
            || line.contains("Test unit written")
            || line.contains("DONE")
            || line.contains("pulse")
            || line.starts_with("error");
        if line.contains("panicked at") || line.contains("ERROR: libFuzzer") {
            o.reason.get_or_insert_with(|| line.trim().to_string());
        }
        if verbose || interesting {
            eprintln!("{line}");
        }
    }
    let st = child.wait().map_err(|e| format!("cargo fuzz: {e}"))?;
    o.ok = st.success();
    Ok(o)
}

fn run_targets(o: &Opts) -> Result<(), String> {
    let names = selected(o)?;
    let logs = xtask::root().join("target/fuzz-logs");
    let mut results = Vec::new();
    for t in &names {
        let mut c = cargo_fuzz();
        c.arg("run").args(sanitizer_args(o)).arg(t).arg("--").args([
            format!("-max_total_time={}", o.time),
            format!("-timeout={}", o.timeout),
            "-rss_limit_mb=2048".into(),
            "-print_final_stats=1".into(),
        ]);
        let out = run_logged(c, &logs.join(format!("{t}.log")), o.verbose)?;
        let summary = format!(
            "{t:<14} {:>12} execs {:>8} exec/s  cov {:>6}  new {:>5}  {}",
            out.execs.map_or("?".into(), |v| v.to_string()),
            out.exec_per_sec.map_or("?".into(), |v| v.to_string()),
            out.cov.clone().unwrap_or_else(|| "?".into()),
            out.new_units.map_or("?".into(), |v| v.to_string()),
            if out.ok {
                "ok".to_string()
            } else {
                format!(
                    "FAILED: {} {}",
                    out.reason.clone().unwrap_or_default(),
                    out.artifact
                        .clone()
                        .map(|a| format!("(reproducer: {a})"))
                        .unwrap_or_default()
                )
            }
        );
        eprintln!("xtask: {summary}");
        results.push((out.ok, summary));
    }
    eprintln!(
        "\nxtask: fuzz summary ({} s per target; logs in {}):",
        o.time,
        logs.display()
    );
    for (_, s) in &results {
        eprintln!("  {s}");
    }
    let failed = results.iter().filter(|(ok, _)| !ok).count();
    if failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{failed} fuzz target(s) failed; minimise with `cargo fuzz tmin` in tests/fuzz and \
             add the reproducer under tests/fuzz/regressions/<target>/"
        ))
    }
}

fn cmin(o: &Opts) -> Result<(), String> {
    for t in selected(o)? {
        let mut c = cargo_fuzz();
        // Edge coverage only (no hit-count buckets): every covered edge is
        // kept, with a corpus several times smaller than a full-feature
        // merge; small enough to commit.
        c.arg("cmin").args(sanitizer_args(o)).arg(&t).args([
            "--",
            "-use_counters=0",
            &format!("-timeout={}", o.timeout),
        ]);
        eprintln!("xtask: {c:?}");
        let st = c.status().map_err(|e| format!("cargo fuzz: {e}"))?;
        if !st.success() {
            return Err(format!("cargo fuzz cmin {t} failed: {st}"));
        }
    }
    Ok(())
}

fn repro(o: &Opts) -> Result<(), String> {
    let (t, files) = o
        .names
        .split_first()
        .ok_or("usage: cargo xtask fuzz repro TARGET FILE...")?;
    if !targets()?.contains(t) {
        return Err(format!("fuzz: no target '{t}'"));
    }
    let mut c = cargo_fuzz();
    c.arg("run").args(sanitizer_args(o)).arg(t);
    for f in files {
        // cargo fuzz runs in tests/fuzz: make paths absolute.
        let p = std::fs::canonicalize(f).map_err(|e| format!("{f}: {e}"))?;
        c.arg(p);
    }
    // A hang must show up as a failure, not as a 20-minute wait.
    c.args(["--".into(), format!("-timeout={}", o.timeout)]);
    eprintln!("xtask: {c:?}");
    let st = c.status().map_err(|e| format!("cargo fuzz: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{t} fails on the given input(s): {st}"))
    }
}

/// Entry point for `cargo xtask fuzz ...`.
pub fn cli(args: &[String]) -> Result<(), String> {
    let (sub, rest) = match args.first().map(String::as_str) {
        Some(s @ ("list" | "cmin" | "repro" | "run")) => (s, &args[1..]),
        _ => ("run", args),
    };
    let o = parse_opts(rest)?;
    if sub == "list" {
        for t in targets()? {
            println!("{t}");
        }
        return Ok(());
    }
    check_cargo_fuzz()?;
    match sub {
        "cmin" => cmin(&o),
        "repro" => repro(&o),
        _ => run_targets(&o),
    }
}
