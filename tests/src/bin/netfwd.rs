//! `netfwd PORT`: joins stdin/stdout to a TCP connection to 127.0.0.1:PORT, for QEMU's
//! `guestfwd=tcp:IP:PORT-cmd:netfwd PORT` (tests/tests/net.rs). QEMU runs the command once per
//! guest connection with the connection on its stdio, so the test's server on the host loopback
//! sees one TCP connection per guest connection, closed when either side closes (a `tcp:`
//! chardev target would be a single connection made when QEMU starts).
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

fn main() {
    let port: u16 = match std::env::args().nth(1).and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: netfwd PORT");
            std::process::exit(2);
        }
    };
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
        std::process::exit(1);
    };
    let Ok(mut to_server) = server.try_clone() else {
        std::process::exit(1);
    };
    // Guest -> server; the guest's close is passed on as a half-close.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    // Server -> guest; when the server closes, exiting closes the guest's connection.
    let mut from_server = server;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}
