//! The network clients against the test servers of `netsim` over an
//! in-memory wire: normal transfers, option negotiation, loss, duplicates,
//! reordering, error packets, silent servers, malformed answers, lying sizes
//! and sinks that are too small. Each bad case checks the one line the user
//! gets and what was (not) written.

mod netsim;

use drivers::net::dhcp::{dhcp, DhcpOptions};
use drivers::net::http::{http_get, parse_target, HttpRequest};
use drivers::net::ping::ping;
use drivers::net::pxe;
use drivers::net::sink::VecSink;
use drivers::net::stack::NetStack;
use drivers::net::tftp::{tftp_get, TftpOptions, TftpRequest};
use drivers::net::{IpConfig, NetError};
use netsim::*;
use std::net::Ipv4Addr;

const LOAD: u64 = 0x4040_0000;

fn stack(apps: Vec<Box<dyn App>>, clock: &Clock) -> NetStack<FakeNic> {
    let peer = Peer::new(clock, apps);
    let mut s = NetStack::new(FakeNic::new(peer), "virtio-net#0", None, clock.now_us());
    s.configure(&IpConfig {
        ip: Some(CLIENT_IP),
        netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        gateway: Some(SERVER_IP),
        server: Some(SERVER_IP),
        dns: None,
    });
    s
}

/// A file whose every 4-byte word is its own offset: a misplaced block shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4) as u32).to_le_bytes()[i % 4])
        .collect()
}

fn tftp_setup(files: &[(&str, Vec<u8>)], b: TftpBehaviour) -> (NetStack<FakeNic>, TestCtx, Clock) {
    let clock = Clock::default();
    let st = stack(vec![Box::new(TftpServer::new(files, b))], &clock);
    let ctx = TestCtx::new(&clock);
    (st, ctx, clock)
}

fn req(name: &str, blksize: u16, window: u16) -> TftpRequest {
    TftpRequest {
        server: SERVER_IP,
        filename: name.into(),
        opts: TftpOptions {
            blksize,
            windowsize: window,
            ..TftpOptions::default()
        },
    }
}

/// The TFTP server, after it has processed what the client sent last.
fn server(st: &mut NetStack<FakeNic>) -> &mut TftpServer {
    let peer = &mut st.device_mut().peer;
    peer.run();
    peer.app::<TftpServer>(0)
}

// ---------------------------------------------------------------- TFTP

#[test]
fn tftp_transfer_with_tsize_and_blksize_prints_u_boots_transcript() {
    let file = pattern(100_000);
    let (mut st, mut ctx, _) = tftp_setup(&[("Image", file.clone())], TftpBehaviour::default());
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t = tftp_get(&mut st, &mut ctx, &req("Image", 1468, 1), &mut sink).unwrap();
    assert_eq!(t.bytes, 100_000);
    assert_eq!(t.blksize, 1468);
    assert_eq!(sink.data, file);
    let lines: Vec<&str> = ctx.out.lines().collect();
    assert_eq!(lines[0], "Using virtio-net#0 device");
    assert_eq!(
        lines[1],
        "TFTP from server 10.0.2.2; our IP address is 10.0.2.15"
    );
    assert_eq!(lines[2], "Filename 'Image'.");
    assert_eq!(lines[3], "Load address: 0x40400000");
    assert_eq!(
        lines[4],
        format!("Loading: *\x08{}  97.7 KiB", "#".repeat(50))
    );
    assert!(
        lines[5].starts_with("\t ") && lines[5].ends_with("/s"),
        "{}",
        lines[5]
    );
    assert_eq!(lines[6], "done");
    assert_eq!(lines[7], "Bytes transferred = 100000 (186a0 hex)");
    assert_eq!(lines.len(), 8);
    // The request asked for the options; the server saw ACK 0 then 69
    // block ACKs.
    let srv = server(&mut st);
    assert!(srv.requests[0].ends_with(b"tsize\x000\x00blksize\x001468\x00timeout\x005\x00"));
    assert_eq!(srv.acks.len(), 1 + 69);
}

#[test]
fn tftp_server_without_options_gets_plain_rfc1350() {
    let file = pattern(512 * 30);
    let b = TftpBehaviour {
        ignore_options: true,
        same_port: true,
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("f", file.clone())], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t = tftp_get(&mut st, &mut ctx, &req("f", 1468, 4), &mut sink).unwrap();
    assert_eq!((t.bytes, t.blksize, t.window), (15_360, 512, 1));
    assert_eq!(sink.data, file);
    // Without a size: a mark every ten blocks (31 blocks, the last empty).
    assert!(ctx.out.contains("Loading: *\x08####\n"), "{}", ctx.out);
}

#[test]
fn tftp_blksize_is_capped_by_the_server_and_windowsize_negotiated() {
    let file = pattern(300_000);
    let b = TftpBehaviour {
        max_blksize: 1024,
        windowsize: true,
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("w", file.clone())], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t = tftp_get(&mut st, &mut ctx, &req("w", 1468, 8), &mut sink).unwrap();
    assert_eq!((t.blksize, t.window), (1024, 8));
    assert_eq!(sink.data, file);
    // 293 blocks of a window of 8: about 37 ACKs, not 293.
    let acks = server(&mut st).acks.len();
    assert!((37..=40).contains(&acks), "{acks} ACKs");
}

#[test]
fn tftp_blocks_larger_than_the_mtu_arrive_as_ip_fragments() {
    let file = pattern(200_000);
    let (mut st, mut ctx, _) = tftp_setup(&[("big", file.clone())], TftpBehaviour::default());
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t = tftp_get(&mut st, &mut ctx, &req("big", 8192, 1), &mut sink).unwrap();
    assert_eq!(t.blksize, 8192);
    assert_eq!(sink.data, file);
}

#[test]
fn tftp_windows_of_fragmented_blocks() {
    for (blksize, window) in [(16352u16, 2u16), (8192, 4), (4096, 8)] {
        let file = pattern(300_000);
        let b = TftpBehaviour {
            windowsize: true,
            ..Default::default()
        };
        let (mut st, mut ctx, _) = tftp_setup(&[("f", file.clone())], b);
        let mut sink = VecSink::new(LOAD, 1 << 20);
        let t = tftp_get(&mut st, &mut ctx, &req("f", blksize, window), &mut sink)
            .unwrap_or_else(|e| panic!("{blksize}/{window}: {e}"));
        assert_eq!((t.blksize, t.window, t.timeouts), (blksize, window, 0));
        assert_eq!(sink.data, file);
        let blocks = 300_000 / blksize as usize + 1;
        assert_eq!(
            server(&mut st).acks.len(),
            1 + blocks.div_ceil(window as usize)
        );
    }
}

#[test]
fn tftp_lost_blocks_are_recovered_in_lock_step_and_in_windows() {
    for (window, lose) in [(1u16, vec![3u64, 10]), (8, vec![1, 5, 17, 40])] {
        let file = pattern(60_000);
        let b = TftpBehaviour {
            windowsize: true,
            lose: lose.clone(),
            ..Default::default()
        };
        let (mut st, mut ctx, _) = tftp_setup(&[("l", file.clone())], b);
        let mut sink = VecSink::new(LOAD, 1 << 20);
        let t = tftp_get(&mut st, &mut ctx, &req("l", 1024, window), &mut sink)
            .unwrap_or_else(|e| panic!("window {window}: {e}\n{}", ctx.out));
        assert_eq!(t.bytes, 60_000);
        // The server's retransmission (1 s) or the client's re-ACK recovered
        // each loss before the client's own 5 s timeout.
        assert_eq!(t.timeouts, 0, "{}", ctx.out);
        assert_eq!(sink.data, file, "window {window}");
    }
}

#[test]
fn tftp_lost_acks_and_duplicated_frames_on_the_wire() {
    let file = pattern(40_000);
    let (mut st, mut ctx, _) = tftp_setup(&[("a", file.clone())], TftpBehaviour::default());
    // Lose the client's 5th and 6th frames to the server (ACKs), duplicate
    // every 7th frame to the client.
    let mut to_server = 0;
    let mut to_client = 0;
    st.device_mut().peer.fault = Some(Box::new(move |dir, _frame: &[u8]| match dir {
        Dir::ToServer => {
            to_server += 1;
            if (5..=6).contains(&to_server) {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
        Dir::ToClient => {
            to_client += 1;
            if to_client % 7 == 0 {
                Verdict::Duplicate
            } else {
                Verdict::Pass
            }
        }
    }));
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t = tftp_get(&mut st, &mut ctx, &req("a", 1024, 1), &mut sink).unwrap();
    assert_eq!(t.bytes, 40_000);
    assert_eq!(sink.data, file);
}

#[test]
fn tftp_duplicate_blocks_are_stored_once() {
    for window in [1u16, 4] {
        let file = pattern(20_000);
        let b = TftpBehaviour {
            duplicate: true,
            windowsize: true,
            ..Default::default()
        };
        let (mut st, mut ctx, _) = tftp_setup(&[("d", file.clone())], b);
        let mut sink = VecSink::new(LOAD, 1 << 20);
        let t = tftp_get(&mut st, &mut ctx, &req("d", 512, window), &mut sink).unwrap();
        assert_eq!(t.bytes, 20_000);
        assert_eq!(sink.data, file);
    }
}

#[test]
fn tftp_out_of_order_blocks_restart_the_window() {
    let file = pattern(50_000);
    let b = TftpBehaviour {
        swap_first_two: true,
        windowsize: true,
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("o", file.clone())], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    tftp_get(&mut st, &mut ctx, &req("o", 1024, 8), &mut sink).unwrap();
    assert_eq!(sink.data, file);
    // Block 2 before block 1: the client acknowledged block 0 again at once
    // (not after a timeout).
    let acks = &server(&mut st).acks;
    assert_eq!(&acks[..2], &[0, 0]);
    assert!(!ctx.out.contains("T "));
}

#[test]
fn tftp_file_not_found_is_one_line() {
    let (mut st, mut ctx, _) = tftp_setup(&[], TftpBehaviour::default());
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("nope", 1468, 1), &mut sink).unwrap_err();
    assert_eq!(e.to_string(), "TFTP error: 'File not found' (1)");
    assert!(sink.data.is_empty());
    assert!(ctx.out.ends_with("Loading: *\x08\n"), "{:?}", ctx.out);
}

#[test]
fn tftp_error_packet_in_the_middle_stops_the_transfer() {
    let b = TftpBehaviour {
        error_at: Some((20, 0, "disk on fire".into())),
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("e", pattern(50_000))], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("e", 1024, 1), &mut sink).unwrap_err();
    assert_eq!(e.to_string(), "TFTP error: 'disk on fire' (0)");
    assert_eq!(sink.data.len(), 19 * 1024);
}

#[test]
fn tftp_server_that_stops_answering_times_out_with_one_line() {
    let b = TftpBehaviour {
        stop_after: Some(10),
        ..Default::default()
    };
    let (mut st, mut ctx, clock) = tftp_setup(&[("s", pattern(50_000))], b);
    ctx.step_us = 2000;
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let mut r = req("s", 1024, 1);
    r.opts.timeout_ms = 1000;
    r.opts.max_timeouts = 3;
    let t0 = clock.now_us();
    let e = tftp_get(&mut st, &mut ctx, &r, &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: retry count exceeded (3 timeouts of 1000 ms); giving up"
    );
    assert!(ctx.out.contains("T T T "), "{}", ctx.out);
    assert!(ctx.out.ends_with('\n'));
    // Four waits of a second (the fourth ends it), not more.
    let waited = (clock.now_us() - t0) / 1000;
    assert!((4000..4500).contains(&waited), "{waited} ms");
    assert_eq!(sink.data.len(), 10 * 1024);
}

#[test]
fn tftp_tsize_larger_than_the_sink_is_refused_before_a_byte() {
    let (mut st, mut ctx, _) = tftp_setup(&[("k", pattern(70_000))], TftpBehaviour::default());
    let mut sink = VecSink::new(LOAD, 65_536);
    let e = tftp_get(&mut st, &mut ctx, &req("k", 1468, 1), &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: file is 70000 bytes but only 65536 bytes are free at 0x40400000; nothing loaded"
    );
    assert!(sink.data.is_empty());
    // The server was told.
    assert_eq!(
        server(&mut st).errors_seen,
        vec![(3, "File too large".to_string())]
    );
}

#[test]
fn tftp_growing_past_the_sink_without_tsize_stops_at_the_limit() {
    let b = TftpBehaviour {
        ignore_options: true,
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("g", pattern(10_000))], b);
    let mut sink = VecSink::new(LOAD, 5000);
    let e = tftp_get(&mut st, &mut ctx, &req("g", 1468, 1), &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: transfer grew past the 5000 bytes free at 0x40400000 (to 5120 bytes); stopped, nothing written past the limit"
    );
    assert_eq!(sink.data, pattern(4608));
    assert_eq!(
        server(&mut st).errors_seen,
        vec![(3, "File too large".to_string())]
    );
}

#[test]
fn tftp_lying_tsize_is_caught() {
    // Announces less than it sends.
    let b = TftpBehaviour {
        tsize_lie: Some(3000),
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("t", pattern(5000))], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("t", 1024, 1), &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: server sent more than the 3000 bytes it announced (to 3072 bytes); stopped"
    );
    assert_eq!(sink.data.len(), 2048);
    // Announces more than it sends.
    let b = TftpBehaviour {
        tsize_lie: Some(9000),
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("t", pattern(5000))], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("t", 1024, 1), &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: transfer ended after 5000 of the 9000 bytes announced"
    );
}

#[test]
fn tftp_oack_with_a_larger_blksize_than_asked_is_refused() {
    let b = TftpBehaviour {
        oack: vec![("blksize".into(), "4096".into())],
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("x", pattern(5000))], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("x", 1468, 1), &mut sink).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TFTP error: option negotiation failed: blksize 4096, asked for at most 1468"
    );
    assert!(sink.data.is_empty());
    assert_eq!(
        server(&mut st).errors_seen,
        vec![(8, "Option Negotiation Failed".to_string())]
    );
}

#[test]
fn tftp_stray_packets_from_another_port_get_unknown_tid() {
    let b = TftpBehaviour {
        stray_after: Some(3),
        ..Default::default()
    };
    let file = pattern(20_000);
    let (mut st, mut ctx, _) = tftp_setup(&[("p", file.clone())], b);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    tftp_get(&mut st, &mut ctx, &req("p", 1024, 1), &mut sink).unwrap();
    assert_eq!(sink.data, file);
    assert_eq!(
        server(&mut st).errors_seen,
        vec![(5, "Unknown transfer ID".to_string())]
    );
}

#[test]
fn tftp_ctrl_c_aborts_and_tells_the_server() {
    let b = TftpBehaviour {
        stop_after: Some(5),
        ..Default::default()
    };
    let (mut st, mut ctx, _) = tftp_setup(&[("c", pattern(50_000))], b);
    ctx.interrupt_after = Some(500);
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let e = tftp_get(&mut st, &mut ctx, &req("c", 1024, 1), &mut sink).unwrap_err();
    assert_eq!(e, NetError::Aborted);
    assert_eq!(e.to_string(), "Abort");
    assert_eq!(
        server(&mut st).errors_seen,
        vec![(0, "Transfer aborted by user".to_string())]
    );
}

#[test]
fn tftp_needs_an_address() {
    let (mut st, mut ctx, _) = tftp_setup(&[], TftpBehaviour::default());
    st.configure(&IpConfig::default());
    let mut sink = VecSink::new(LOAD, 100);
    let e = tftp_get(&mut st, &mut ctx, &req("x", 512, 1), &mut sink).unwrap_err();
    assert_eq!(e.to_string(), "*** ERROR: `ipaddr' not set");
    assert!(ctx.out.is_empty());
}

// ---------------------------------------------------------------- pxe get

#[test]
fn pxe_get_tries_names_until_one_exists() {
    let cfg = b"default linux\nlabel linux\n kernel Image\n".to_vec();
    let (mut st, mut ctx, _) = tftp_setup(
        &[("boot/pxelinux.cfg/default-arm", cfg.clone())],
        TftpBehaviour::default(),
    );
    let id = pxe::Identity {
        uuid: None,
        mac: CLIENT_MAC,
        ip: CLIENT_IP,
        arch: pxe::ARCH,
        soc: None,
        board: None,
    };
    let mut sink = VecSink::new(0x4010_0000, 1 << 20);
    let (path, size) = pxe::pxe_get(
        &mut st,
        &mut ctx,
        SERVER_IP,
        Some("boot/pxelinux.0"),
        &id,
        &TftpOptions::default(),
        &mut sink,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", ctx.out));
    assert_eq!(path, "boot/pxelinux.cfg/default-arm");
    assert_eq!(size, cfg.len() as u64);
    assert_eq!(sink.data, cfg);
    let tried: Vec<&str> = ctx
        .out
        .lines()
        .filter_map(|l| l.strip_prefix("Retrieving file: "))
        .collect();
    assert_eq!(tried.len(), 10);
    assert_eq!(tried[0], "boot/pxelinux.cfg/01-52-54-00-12-34-56");
    assert_eq!(
        ctx.out
            .lines()
            .filter(|l| *l == "TFTP error: 'File not found' (1)")
            .count(),
        9
    );
    // None there: U-Boot's line.
    let (mut st, mut ctx, _) = tftp_setup(&[], TftpBehaviour::default());
    let e = pxe::pxe_get(
        &mut st,
        &mut ctx,
        SERVER_IP,
        None,
        &id,
        &TftpOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "Config file not found");
}

// ---------------------------------------------------------------- DHCP

fn dhcp_setup(srv: DhcpServer) -> (NetStack<FakeNic>, TestCtx, Clock) {
    let clock = Clock::default();
    let mut st = stack(vec![Box::new(srv)], &clock);
    st.configure(&IpConfig::default());
    let mut ctx = TestCtx::new(&clock);
    ctx.step_us = 1000;
    (st, ctx, clock)
}

#[test]
fn dhcp_binds_and_reports_the_environment() {
    let (mut st, mut ctx, _) = dhcp_setup(DhcpServer::new("boot/Image"));
    let lease = dhcp(&mut st, &mut ctx, &DhcpOptions::default()).unwrap();
    assert_eq!(lease.ip, CLIENT_IP);
    assert!(!lease.bootp);
    assert!(ctx.out.starts_with("BOOTP broadcast 1\n"), "{}", ctx.out);
    assert!(
        ctx.out.contains("DHCP client bound to address 10.0.2.15 ("),
        "{}",
        ctx.out
    );
    let env: Vec<(&str, String)> = lease.env();
    assert_eq!(
        env,
        vec![
            ("gatewayip", "10.0.2.2".to_string()),
            ("netmask", "255.255.255.0".to_string()),
            ("ipaddr", "10.0.2.15".to_string()),
            ("serverip", "10.0.2.2".to_string()),
            ("dnsip", "10.0.2.3".to_string()),
            ("bootfile", "boot/Image".to_string()),
        ]
    );
    // The stack now uses the lease: a ping of the server works.
    assert_eq!(st.config().ip, Some(CLIENT_IP));
    assert_eq!(st.device_mut().peer.app::<DhcpServer>(0).seen, vec![2, 5]);
}

#[test]
fn bootp_only_server_is_accepted() {
    let mut srv = DhcpServer::new("pxelinux.0");
    srv.bootp_only = true;
    let (mut st, mut ctx, _) = dhcp_setup(srv);
    let lease = dhcp(&mut st, &mut ctx, &DhcpOptions::default()).unwrap();
    assert!(lease.bootp);
    assert!(ctx.out.contains("BOOTP client bound to address 10.0.2.15"));
    assert_eq!(lease.bootfile.as_deref(), Some("pxelinux.0"));
}

#[test]
fn malformed_dhcp_offer_gets_one_line_each_and_then_a_timeout() {
    let mut srv = DhcpServer::new("Image");
    // Subnet mask option with length 3: the rest of the options shift.
    srv.mangle = Some(Box::new(|_, p: &mut Vec<u8>| {
        let at = p.windows(2).position(|w| w == [1, 4]).unwrap();
        p[at + 1] = 3;
    }));
    let (mut st, mut ctx, clock) = dhcp_setup(srv);
    let opts = DhcpOptions {
        total_ms: 3000,
        ..DhcpOptions::default()
    };
    let t0 = clock.now_us();
    let e = dhcp(&mut st, &mut ctx, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Retry time exceeded: no usable DHCP/BOOTP answer in 3750 ms (4 malformed)"
    );
    let bad: Vec<&str> = ctx
        .out
        .lines()
        .filter(|l| l.starts_with("DHCP: "))
        .collect();
    assert_eq!(bad.len(), 4);
    assert_eq!(
        bad[0],
        "DHCP: ignoring malformed reply from 10.0.2.2: option 1 (subnet mask) has length 3, not 4"
    );
    assert!((clock.now_us() - t0) / 1000 < 4000);
    assert_eq!(st.config().ip, None);
}

#[test]
fn dhcp_without_a_server_gives_up() {
    let clock = Clock::default();
    let mut st = stack(vec![], &clock);
    let mut ctx = TestCtx::new(&clock);
    ctx.step_us = 1000;
    let e = dhcp(
        &mut st,
        &mut ctx,
        &DhcpOptions {
            total_ms: 1000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Retry time exceeded: no DHCP/BOOTP answer in 1750 ms"
    );
}

#[test]
fn dhcp_lost_ack_starts_again_and_ctrl_c_stops_it() {
    let mut srv = DhcpServer::new("Image");
    srv.silent_ack = true;
    let (mut st, mut ctx, _) = dhcp_setup(srv);
    ctx.interrupt_after = Some(8000);
    let e = dhcp(&mut st, &mut ctx, &DhcpOptions::default()).unwrap_err();
    assert_eq!(e, NetError::Aborted);
    // OFFER, REQUEST unanswered for 5 s, DISCOVER again.
    assert!(ctx.out.contains("BOOTP broadcast 2\n"), "{}", ctx.out);
    let seen = &st.device_mut().peer.app::<DhcpServer>(0).seen;
    assert!(seen.len() >= 4, "{seen:?}");
}

// ---------------------------------------------------------------- ping

#[test]
fn ping_alive_and_not_alive() {
    let clock = Clock::default();
    let mut st = stack(vec![], &clock);
    let mut ctx = TestCtx::new(&clock);
    ping(&mut st, &mut ctx, SERVER_IP, 10_000).unwrap();
    assert_eq!(
        ctx.out,
        "Using virtio-net#0 device\nhost 10.0.2.2 is alive\n"
    );
    let mut ctx = TestCtx::new(&clock);
    ctx.step_us = 2000;
    let e = ping(&mut st, &mut ctx, Ipv4Addr::new(10, 0, 2, 99), 3000).unwrap_err();
    assert_eq!(e.to_string(), "ping failed; host 10.0.2.99 is not alive");
}

// ---------------------------------------------------------------- HTTP

fn http_setup(srv: HttpServer) -> (NetStack<FakeNic>, TestCtx, Clock) {
    let clock = Clock::default();
    let st = stack(vec![Box::new(srv)], &clock);
    let ctx = TestCtx::new(&clock);
    (st, ctx, clock)
}

fn wget(
    st: &mut NetStack<FakeNic>,
    ctx: &mut TestCtx,
    limit: u64,
) -> (Result<u64, NetError>, Vec<u8>) {
    let t = parse_target("/boot/Image", Some(SERVER_IP)).unwrap();
    let mut sink = VecSink::new(LOAD, limit);
    let r = http_get(st, ctx, &HttpRequest::new(t), &mut sink).map(|t| t.bytes);
    (r, sink.data)
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn http_get_with_content_length() {
    let body = pattern(300_000);
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(ok_response(&body)));
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(r, Ok(300_000));
    assert_eq!(data, body);
    let req = &st.device_mut().peer.app::<HttpServer>(0).requests[0];
    assert_eq!(
        req,
        "GET /boot/Image HTTP/1.1\r\nHost: 10.0.2.2\r\nUser-Agent: parkboot\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let lines: Vec<&str> = ctx.out.lines().collect();
    assert_eq!(
        lines[0],
        "HTTP from server 10.0.2.2:80; our IP address is 10.0.2.15"
    );
    assert_eq!(lines[1], "Filename '/boot/Image'.");
    assert_eq!(
        lines[4 - 1],
        format!("Loading: *\x08{}  293 KiB", "#".repeat(50))
    );
    assert_eq!(
        lines.last(),
        Some(&"Bytes transferred = 300000 (493e0 hex)")
    );
}

#[test]
fn http_get_chunked() {
    let body = pattern(100_000);
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(7000) {
        resp.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        resp.extend_from_slice(c);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(resp));
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(r, Ok(100_000));
    assert_eq!(data, body);
}

#[test]
fn http_lying_content_length_short_body() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n".to_vec();
    resp.extend_from_slice(&pattern(20_000));
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(resp));
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(
        r.unwrap_err().to_string(),
        "HTTP error: connection closed after 20000 of the 50000 bytes of its Content-Length"
    );
    assert_eq!(data.len(), 20_000);
}

#[test]
fn http_lying_content_length_long_body() {
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    resp.extend_from_slice(&pattern(20_000));
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(resp));
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(
        r.unwrap_err().to_string(),
        "HTTP error: server sent more than the 1000 bytes it announced; stopped"
    );
    assert_eq!(data, pattern(1000));
}

#[test]
fn http_content_length_over_the_sink_is_refused_before_a_byte() {
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(ok_response(&pattern(5000))));
    let (r, data) = wget(&mut st, &mut ctx, 4096);
    assert_eq!(
        r.unwrap_err().to_string(),
        "HTTP error: file is 5000 bytes but only 4096 bytes are free at 0x40400000; nothing loaded"
    );
    assert!(data.is_empty());
}

#[test]
fn http_stream_without_length_stops_at_the_sink_limit() {
    let mut resp = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    resp.extend_from_slice(&pattern(50_000));
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(resp));
    let (r, data) = wget(&mut st, &mut ctx, 30_000);
    let e = r.unwrap_err().to_string();
    assert!(
        e.starts_with("HTTP error: transfer grew past the 30000 bytes free at 0x40400000"),
        "{e}"
    );
    assert!(data.len() <= 30_000);
    assert_eq!(data, pattern(data.len()));
}

#[test]
fn http_errors_are_one_line() {
    let (mut st, mut ctx, _) = http_setup(HttpServer::new(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec(),
    ));
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(
        r.unwrap_err().to_string(),
        "HTTP error: server answered 404 Not Found"
    );
    assert!(data.is_empty());

    let mut srv = HttpServer::new(vec![]);
    srv.refuse = true;
    let (mut st, mut ctx, _) = http_setup(srv);
    let (r, _) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(r.unwrap_err().to_string(), "HTTP error: connection refused");
}

#[test]
fn http_server_that_stalls_hits_the_idle_timeout() {
    let mut srv = HttpServer::new(ok_response(&pattern(100_000)));
    srv.stall_after = Some(10_000);
    let (mut st, mut ctx, clock) = http_setup(srv);
    ctx.step_us = 2000;
    let t = parse_target("/x", Some(SERVER_IP)).unwrap();
    let mut r = HttpRequest::new(t);
    r.idle_timeout_ms = 3000;
    let mut sink = VecSink::new(LOAD, 1 << 20);
    let t0 = clock.now_us();
    let e = http_get(&mut st, &mut ctx, &r, &mut sink).unwrap_err();
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".len();
    let got = 10_000 - head;
    assert_eq!(
        e.to_string(),
        format!("HTTP error: nothing received for 3000 ms (after {got} bytes)")
    );
    assert!((clock.now_us() - t0) / 1000 < 5000);
}

#[test]
fn http_keep_alive_server_is_fine_after_a_complete_body() {
    let body = pattern(10_000);
    let mut srv = HttpServer::new(ok_response(&body));
    srv.keep_open = true;
    let (mut st, mut ctx, _) = http_setup(srv);
    let (r, data) = wget(&mut st, &mut ctx, 1 << 20);
    assert_eq!(r, Ok(10_000));
    assert_eq!(data, body);
}

#[test]
fn stack_size_is_known() {
    // The interface holds the 16 KiB IPv4 reassembly buffer inline: the
    // loader keeps the stack in a Box (docs/network.md).
    let n = std::mem::size_of::<NetStack<FakeNic>>() - std::mem::size_of::<FakeNic>();
    println!("NetStack without its device: {n} bytes");
    assert!(n < 24 * 1024, "{n}");
}

/// Host CPU cost of the stack: a 16 MiB TFTP transfer through both ends
/// (client stack + test server stack) on the in-memory wire, for a few block
/// and window sizes. Run in release:
///   cargo test -p parkboot-drivers --release --test net -- --ignored --nocapture
#[test]
#[ignore]
fn tftp_throughput_on_the_host() {
    let file = pattern(16 << 20);
    for (blksize, window) in [(1468u16, 1u16), (1468, 8), (8192, 1), (16352, 4)] {
        let b = TftpBehaviour {
            windowsize: true,
            ..Default::default()
        };
        let (mut st, mut ctx, _) = tftp_setup(&[("big", file.clone())], b);
        ctx.step_us = 1;
        let mut sink = VecSink::new(LOAD, 32 << 20);
        let t0 = std::time::Instant::now();
        let t = tftp_get(&mut st, &mut ctx, &req("big", blksize, window), &mut sink).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(t.bytes, 16 << 20);
        let stats = st.stats();
        println!(
            "blksize {blksize:5} window {window}: {:6.1} MiB/s wall, {} frames in, {} out",
            16.0 / secs,
            stats.rx_frames,
            stats.tx_frames
        );
    }
}
