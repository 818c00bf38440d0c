//! Network commands in U-Boot syntax: `dhcp`, `bootp`, `ping`, `tftpboot`
//! (`tftp`), `wget`, `pxe get`, `pxe boot`. The protocols are
//! `drivers::net`'s (docs/network.md); the arguments, the placement of
//! downloads and the label boot are `loader::plan::net`'s.
//!
//! Every command opens the active interface (`Net::open`: device
//! initialised, fresh stack configured from `ipaddr`, `netmask`,
//! `gatewayip`, `serverip`, `dnsip`, MAC from `ethaddr`) and resets it
//! when it ends, as U-Boot's `eth_init` / `eth_halt` do.
//!
//! A download is placed like a `load`: the free RAM from the load address
//! up to the next claim is the most it may take; it is claimed while the
//! transfer runs (so nothing can be written past it or over anything
//! claimed) and released afterwards, whatever happened, so the claims end
//! as they were. The size the protocol announces is checked against it
//! before the first byte, and every write again.

use crate::arch::timer;
use crate::cmd_boot;
use crate::memory;
use crate::net::{Net, Stack};
use crate::platform::Sh;
use crate::stages;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use drivers::net::sink::{self, Sink, SinkError};
use drivers::net::tftp::{TftpOptions, TftpRequest};
use drivers::net::{self as dnet, dhcp, http, ping, pxe, tftp, Ctx, IpConfig, NetError};
use loader::bootconf;
use loader::memmap::Owner;
use loader::plan::load as loadplan;
use loader::plan::net::{self as netplan, BootSteps, Fetch, LabelPlan, NetbootArgs, PxeCmd};
use shell::{CmdError, CmdResult};

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

fn net_err(e: NetError) -> CmdError {
    msg(e.to_string())
}

/// The env as the network code reads it.
fn env_getter(sh: &Sh) -> impl Fn(&str) -> Option<String> + '_ {
    |n: &str| sh.env.get(n).map(String::from)
}

/// The shell as a network command's context: the timer, ctrl-C from the console (other
/// typed bytes are kept for the prompt), output.
struct ShCtx<'a> {
    sh: &'a mut Sh,
    next_check: u64,
}

/// How often a running command looks for ctrl-C: reading the UART takes QEMU's big lock,
/// which its I/O thread needs to move the frames the command waits for.
const CTRLC_EVERY_US: u64 = 10_000;

impl<'a> ShCtx<'a> {
    fn new(sh: &'a mut Sh) -> Self {
        Self { sh, next_check: 0 }
    }
}

impl Ctx for ShCtx<'_> {
    fn now_us(&mut self) -> u64 {
        timer::now_us()
    }

    fn interrupted(&mut self) -> bool {
        let now = timer::now_us();
        if now < self.next_check {
            return false;
        }
        self.next_check = now + CTRLC_EVERY_US;
        self.sh.ctrlc()
    }

    fn print(&mut self, s: &str) {
        self.sh.print(s);
    }
}

/// A download's destination: RAM from `addr`, at most `limit` bytes, all of it claimed by
/// [`download`] while the transfer runs.
struct MemSink {
    addr: u64,
    limit: u64,
}

impl Sink for MemSink {
    fn addr(&self) -> u64 {
        self.addr
    }

    fn limit(&self) -> u64 {
        self.limit
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        // `Download` only writes inside [0, limit).
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|e| e > self.limit) {
            return Err(SinkError::Overflow {
                end: end.unwrap_or(u64::MAX),
                limit: self.limit,
                addr: self.addr,
            });
        }
        // SAFETY: [addr, addr + limit) is free RAM that `download` claimed for this transfer;
        // the piece lies inside it (checked above).
        let dst = unsafe { memory::ram_mut(self.addr + offset, data.len() as u64) };
        sink::copy(dst, data);
        Ok(())
    }
}

/// Runs `run` with a sink at `addr`: the free RAM up to the next claim, claimed for the
/// transfer as `what` and released afterwards whatever happened.
fn download<T>(
    sh: &mut Sh,
    addr: u64,
    what: &str,
    run: impl FnOnce(&mut ShCtx<'_>, &mut MemSink) -> Result<T, NetError>,
) -> Result<T, CmdError> {
    let limit = netplan::download_limit(sh.platform.mem.map(), addr)
        .map_err(|e| msg(format!("{what}: {e}")))?;
    let id = sh
        .platform
        .mem
        .map_mut()
        .claim(addr, limit, Owner::Load(what.to_string()))
        .map_err(|e| msg(format!("{what}: {e}")))?;
    let mut sink = MemSink { addr, limit };
    let r = run(&mut ShCtx::new(sh), &mut sink);
    let _ = sh.platform.mem.map_mut().release(id);
    r.map_err(net_err)
}

/// Opens the active interface (`ethact`, else the first) for one command: MAC from
/// `ethaddr` (set from the device when unset, as U-Boot does), IP settings from the env.
fn open(sh: &mut Sh) -> Result<Box<Stack>, CmdError> {
    for n in sh.platform.ensure_net() {
        sh.print(&format!("{n}\n"));
    }
    let ethact = sh.env.get("ethact").map(String::from);
    let Some(netif) = sh.platform.net.active(ethact.as_deref()) else {
        return Err(msg("No ethernet found."));
    };
    let (name, rom) = (netif.name.clone(), netif.rom_mac);
    if sh.env.get("ethaddr").is_none() {
        let _ = sh.env.set("ethaddr", &dnet::format_mac(&rom));
    }
    let (mac, note) = dnet::choose_mac(&name, rom, sh.env.get("ethaddr"));
    if let Some(n) = note {
        if sh.platform.net.first_time(&n) {
            sh.print(&format!("{}\n", n.trim_matches('\n')));
        }
    }
    let cfg = IpConfig::from_env(&env_getter(sh)).map_err(net_err)?;
    let netif = sh
        .platform
        .net
        .active(ethact.as_deref())
        .ok_or_else(|| msg("No ethernet found."))?;
    let mut stack = Net::open(netif, mac).map_err(msg)?;
    stack.configure(&cfg);
    Ok(stack)
}

/// The TFTP options from the env (`tftpblocksize`, `tftpwindowsize`, `tftptimeout`,
/// `tftptimeoutcountmax`), their notes printed.
fn tftp_options(sh: &mut Sh) -> Result<TftpOptions, CmdError> {
    let (opts, notes) = TftpOptions::from_env(&env_getter(sh)).map_err(msg)?;
    for n in notes {
        sh.print(&format!("{n}\n"));
    }
    Ok(opts)
}

/// After a download of `bytes` to `addr` that took `us`: `filesize`, `fileaddr`, the bootstage
/// span and the loader's summary line (bytes, ms, MiB/s).
fn loaded(sh: &mut Sh, what: &'static str, addr: u64, bytes: u64, us: u64) {
    let _ = sh.env.set("filesize", &format!("{bytes:x}"));
    let _ = sh.env.set("fileaddr", &format!("{addr:x}"));
    let t1 = timer::ticks();
    let span = (u128::from(us) * u128::from(timer::freq()) / 1_000_000) as u64;
    stages::mark_span(what, t1.saturating_sub(span), t1, bytes);
    let us = us.max(1);
    let kib_s = (u128::from(bytes) * 1_000_000 / u128::from(us) / 1024) as u64;
    sh.print(&format!(
        "{what}: {bytes} bytes in {} ms, {}.{:02} MiB/s\n",
        us / 1000,
        kib_s / 1024,
        (kib_s % 1024) * 100 / 1024
    ));
}

/// `tftpboot`'s work: `[ip:]file` (else `bootfile`, else U-Boot's default name) from
/// `serverip` (or the `ip:`) to `addr`. Returns the file's size.
fn tftp_to(sh: &mut Sh, stack: &mut Stack, addr: u64, file: Option<&str>) -> Result<u64, CmdError> {
    let bootfile = sh.env.get("bootfile").map(String::from);
    let (server, filename, warning) =
        tftp::resolve_target(file, bootfile.as_deref(), stack.config()).map_err(net_err)?;
    if let Some(w) = warning {
        sh.print(&format!("{w}\n"));
    }
    let opts = tftp_options(sh)?;
    let req = TftpRequest {
        server,
        filename,
        opts,
    };
    let what = format!("tftp {}", req.filename);
    let t = download(sh, addr, &what, |ctx, sink| {
        tftp::tftp_get(stack, ctx, &req, sink)
    })?;
    loaded(sh, "tftp", addr, t.bytes, t.elapsed_us);
    Ok(t.bytes)
}

/// tftpboot [addr] [[ip:]file]
pub fn cmd_tftpboot(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = NetbootArgs::parse(args, sh.env.get("loadaddr"))?;
    let addr = a.load_addr(&args[0]).map_err(msg)?;
    let mut stack = open(sh)?;
    tftp_to(sh, &mut stack, addr, a.file.as_deref()).map(|_| ())
}

/// dhcp / bootp [addr] [[ip:]file]: an address and the boot parameters; then, unless
/// `autoload` says no, `bootfile` (or the file given) by TFTP.
pub fn cmd_dhcp(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = NetbootArgs::parse(args, sh.env.get("loadaddr"))?;
    let opts = dhcp::DhcpOptions::from_env(&env_getter(sh)).map_err(msg)?;
    let mut stack = open(sh)?;
    let lease = dhcp::dhcp(&mut stack, &mut ShCtx::new(sh), &opts).map_err(net_err)?;
    for (k, v) in lease.env() {
        let _ = sh.env.set(k, &v);
    }
    if !dhcp::autoload(sh.env.get("autoload")) {
        return Ok(());
    }
    let addr = a.load_addr(&args[0]).map_err(msg)?;
    tftp_to(sh, &mut stack, addr, a.file.as_deref()).map(|_| ())
}

/// ping <ip>
pub fn cmd_ping(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, ip] = args else {
        return Err(CmdError::Usage);
    };
    let ip =
        dnet::parse_ip(ip).ok_or_else(|| msg(format!("ping: '{ip}' is not an IPv4 address")))?;
    let mut stack = open(sh)?;
    ping::ping(&mut stack, &mut ShCtx::new(sh), ip, ping::TIMEOUT_MS).map_err(net_err)
}

/// wget [addr] [[ip:]path | http://ip[:port]/path]
pub fn cmd_wget(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = NetbootArgs::parse(args, sh.env.get("loadaddr"))?;
    let addr = a.load_addr(&args[0]).map_err(msg)?;
    let file = a
        .file
        .clone()
        .or_else(|| sh.env.get("bootfile").map(String::from))
        .ok_or_else(|| msg("wget: no file: give [[ip:]path] or set bootfile"))?;
    let mut stack = open(sh)?;
    let target =
        http::parse_target(&file, stack.config().server).map_err(|e| net_err(NetError::Http(e)))?;
    let req = http::HttpRequest::new(target);
    let what = format!("wget {}", req.target.path);
    let t = download(sh, addr, &what, |ctx, sink| {
        http::http_get(&mut stack, ctx, &req, sink)
    })?;
    loaded(sh, "wget", addr, t.bytes, t.elapsed_us);
    Ok(())
}

/// pxe get | pxe boot [addr]
pub fn cmd_pxe(sh: &mut Sh, args: &[String]) -> CmdResult {
    match PxeCmd::parse(args)? {
        PxeCmd::Get => pxe_get(sh),
        PxeCmd::Boot(addr) => pxe_boot(sh, addr),
    }
}

fn env_addr(sh: &Sh, name: &str) -> Result<u64, CmdError> {
    netplan::env_addr(name, sh.env.get(name)).map_err(msg)
}

/// The server and our address, as `pxe` needs them.
fn server_and_ip(stack: &Stack) -> Result<(dnet::Ipv4Addr, dnet::Ipv4Addr), CmdError> {
    let c = stack.config();
    let server = c
        .server
        .ok_or_else(|| net_err(NetError::NotSet("serverip")))?;
    let ip = c.ip.ok_or_else(|| net_err(NetError::NotSet("ipaddr")))?;
    Ok((server, ip))
}

/// `pxe get`: the first pxelinux.cfg file the server has, to `${pxefile_addr_r}`, with a NUL
/// after it as U-Boot leaves it.
fn pxe_get(sh: &mut Sh) -> CmdResult {
    let addr = env_addr(sh, "pxefile_addr_r")?;
    let opts = tftp_options(sh)?;
    let get = |n: &str| sh.env.get(n).map(String::from);
    let (bootfile, uuid, soc, board) = (get("bootfile"), get("pxeuuid"), get("soc"), get("board"));
    let mut stack = open(sh)?;
    let (server, ip) = server_and_ip(&stack)?;
    let id = pxe::Identity {
        uuid: uuid.as_deref(),
        mac: stack.mac(),
        ip,
        arch: pxe::ARCH,
        soc: soc.as_deref(),
        board: board.as_deref(),
    };
    let t0 = timer::now_us();
    let (path, size) = download(sh, addr, "pxe config", |ctx, sink| {
        let r = pxe::pxe_get(
            &mut stack,
            ctx,
            server,
            bootfile.as_deref(),
            &id,
            &opts,
            sink,
        )?;
        if r.1 < sink.limit {
            let _ = sink.write(r.1, &[0]);
        }
        Ok(r)
    })?;
    sh.print(&format!("Config file '{path}' found\n"));
    loaded(sh, "pxe", addr, size, timer::now_us().saturating_sub(t0));
    Ok(())
}

/// The most of a configuration (or an included file) `pxe boot` reads.
const MAX_CONFIG: u64 = 1 << 20;

/// The configuration at `addr`: `${filesize}` bytes when `pxe get` (or a load) put it there,
/// else up to its NUL within [`MAX_CONFIG`] (what is readable of it).
fn read_config(sh: &Sh, addr: u64) -> Result<Vec<u8>, CmdError> {
    let mem = &sh.platform.mem;
    let loaded = loadplan::loaded_len(sh.env.get("fileaddr"), sh.env.get("filesize"), addr);
    let (addr, len) = loadplan::script_range(addr, loaded.map(|n| n.min(MAX_CONFIG)), |a, n| {
        mem.check(a, n, false)
    })
    .map_err(|e| msg(e.replace("source:", "pxe boot:")))?;
    let mut v = mem
        .read_vec(addr, len)
        .map_err(|e| msg(format!("pxe boot: {e}")))?;
    if let Some(nul) = v.iter().position(|&b| b == 0) {
        v.truncate(nul);
    }
    Ok(v)
}

/// Fetches an included file by TFTP to `at` (after the configuration, as U-Boot does) and
/// reads it back.
fn fetch_include(sh: &mut Sh, path: &str, at: u64) -> Result<Vec<u8>, String> {
    sh.print(&format!("Retrieving file: {path}\n"));
    let size = tftp_file(sh, path, at).map_err(line)?;
    if size > MAX_CONFIG {
        return Err(format!("{path} is larger than {MAX_CONFIG} bytes"));
    }
    sh.platform.mem.read_vec(at, size)
}

/// `pxe boot [addr]`: parses the configuration (includes fetched by TFTP), then boots its
/// labels in U-Boot's order — the default, then the others — until one boots. The menu is
/// shown when the file asks for it, but not waited on: the default (or
/// `pxe_label_override`) boots.
fn pxe_boot(sh: &mut Sh, addr: Option<u64>) -> CmdResult {
    let addr = match addr {
        Some(a) => a,
        None => env_addr(sh, "pxefile_addr_r")?,
    };
    let text = read_config(sh, addr)?;
    let bootdir = pxe::bootdir(sh.env.get("bootfile")).to_string();
    let name = format!("pxe config at {addr:#x}");
    let (menu, notes) = {
        let mut next = (addr + text.len() as u64 + 1 + 0xfff) & !0xfff;
        let mut include = |p: &str| -> Result<Vec<u8>, String> {
            let path = bootconf::resolve(&bootdir, p, false)?;
            let data = fetch_include(sh, &path, next)?;
            next = (next + data.len() as u64 + 1 + 0xfff) & !0xfff;
            Ok(data)
        };
        bootconf::parse(&name, &text, &mut include).map_err(|e| msg(e.to_string()))?
    };
    for n in notes {
        sh.print(&format!("{}\n", n.0));
    }
    let over = sh.env.get("pxe_label_override").map(String::from);
    let (_, note) = menu.default_index(over.as_deref());
    if let Some(n) = note {
        sh.print(&format!("{n}\n"));
    }
    if menu.shows_menu() {
        sh.print(&menu.menu_text());
    }
    for idx in menu.boot_order(over.as_deref()) {
        let Some(label) = menu.labels.get(idx) else {
            continue;
        };
        sh.print(&format!("{}:\t{}\n", idx + 1, label.display_name()));
        let plan = netplan::plan_label(label, &bootdir, &env_getter(sh));
        match plan {
            Err(e) => sh.print(&format!("{e}\n")),
            Ok(LabelPlan::Local { bootargs, run }) => return localboot(sh, bootargs, run),
            Ok(LabelPlan::Boot(steps)) => {
                if let Err(e) = label_boot(sh, &label.name, &steps) {
                    sh.print(&format!("{e}\n"));
                }
            }
        }
    }
    Err(msg("pxe boot: no label booted"))
}

/// A `localboot` label: `bootargs` from `append`, then `${localcmd}` (U-Boot's
/// `label_localboot`).
fn localboot(sh: &mut Sh, bootargs: Option<String>, run: bool) -> CmdResult {
    if !run {
        return Ok(());
    }
    let cmd = sh
        .env
        .get("localcmd")
        .map(String::from)
        .ok_or_else(|| msg("missing environment variable: localcmd"))?;
    if let Some(b) = bootargs {
        let _ = sh.env.set("bootargs", &b);
    }
    sh.run_nested(&cmd)
}

/// One file by TFTP to `addr`, in a session of its own (the interface opened and reset, as
/// U-Boot's pxe runs `tftpboot` per file); its size.
fn tftp_file(sh: &mut Sh, path: &str, addr: u64) -> Result<u64, CmdError> {
    let mut stack = open(sh)?;
    tftp_to(sh, &mut stack, addr, Some(path))
}

/// A command error's line.
fn line(e: CmdError) -> String {
    match e {
        CmdError::Msg(m) => m,
        CmdError::Usage => "usage".into(),
        _ => "failed".into(),
    }
}

/// Fetches one file of a label to the address in its env variable; its size.
fn fetch(sh: &mut Sh, f: &Fetch) -> Result<u64, CmdError> {
    let addr = env_addr(sh, f.addr_var)?;
    sh.print(&format!("Retrieving file: {}\n", f.path));
    tftp_file(sh, &f.path, addr)
}

/// Boots one label: initrd, kernel and device tree fetched, `bootargs` set, then booti.
/// Returns only if it did not boot: the one line why.
fn label_boot(sh: &mut Sh, name: &str, steps: &BootSteps) -> Result<(), String> {
    let initrd = match &steps.initrd {
        Some(f) => Some(fetch(sh, f).map_err(|e| {
            sh.print(&format!("{}\n", line(e)));
            format!("Skipping {name} for failure retrieving initrd")
        })?),
        None => None,
    };
    fetch(sh, &steps.kernel).map_err(|e| {
        sh.print(&format!("{}\n", line(e)));
        format!("Skipping {name} for failure retrieving kernel")
    })?;
    let mut fdt = None;
    if let Some((f, required)) = &steps.fdt {
        match fetch(sh, f) {
            Ok(_) => fdt = sh.env.get("fdt_addr_r").map(String::from),
            Err(e) => {
                sh.print(&format!("{}\n", line(e)));
                if *required {
                    return Err(format!("Skipping {name} for failure retrieving FDT"));
                }
            }
        }
    }
    if let Some(b) = &steps.bootargs {
        let _ = sh.env.set("bootargs", b);
        sh.print(&format!("append: {b}\n"));
    }
    let fdt = fdt.or_else(|| sh.env.get("fdt_addr").map(String::from));
    let kernel = sh
        .env
        .get("kernel_addr_r")
        .map(String::from)
        .unwrap_or_default();
    let rd = sh
        .env
        .get("ramdisk_addr_r")
        .map(String::from)
        .unwrap_or_default();
    let args = netplan::booti_args(&kernel, initrd.map(|n| (rd.as_str(), n)), fdt.as_deref());
    cmd_boot::cmd_booti(sh, &args).map_err(line)
}
