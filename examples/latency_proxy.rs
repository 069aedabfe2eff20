//! A TCP proxy that holds every chunk for a fixed delay in each direction:
//! the bench's stand-in for a Redis one network hop away (`--via-proxy`).
//!
//!   latency_proxy <target port> <delay µs>
//!
//! It listens on an ephemeral loopback port, prints `{"port":N}` once
//! listening, forwards to 127.0.0.1:<target port>, and exits when its stdin
//! closes (its parent ended). Written in Rust rather than Node because Node's
//! timers are millisecond-grained and its event loop would be the bottleneck
//! at concurrency 64; here each direction of a connection is a reader thread
//! that stamps chunks and a writer thread that sleeps until each is due.

use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What a reader hands its writer: bytes due at an instant, or the end.
enum Chunk {
    Due(Instant, Vec<u8>),
    End,
}

const READ_BUFFER_BYTES: usize = 64 * 1024;

fn main() {
    if let Err(err) = run() {
        eprintln!("latency_proxy: {err}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target_port, delay) = parse_args(&args).map_err(|msg| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{msg}; usage: latency_proxy <target port> <delay µs>"),
        )
    })?;
    precise_sleeps();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
    println!("{{\"port\":{}}}", listener.local_addr()?.port());
    io::stdout().flush()?;

    // The parent closing our stdin (or dying) ends the proxy.
    thread::spawn(|| {
        let mut sink = String::new();
        while matches!(io::stdin().lock().read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        std::process::exit(0);
    });

    for client in listener.incoming() {
        let client = match client {
            Ok(client) => client,
            Err(err) => {
                eprintln!("latency_proxy: accept: {err}");
                continue;
            }
        };
        match TcpStream::connect(target) {
            Ok(server) => {
                if let Err(err) = relay_both_ways(client, server, delay) {
                    eprintln!("latency_proxy: relay: {err}");
                }
            }
            // The client sees its connection close, as with an unreachable server.
            Err(err) => eprintln!("latency_proxy: connect {target}: {err}"),
        }
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<(u16, Duration), String> {
    let [port, delay_us] = args else {
        return Err("two arguments expected".into());
    };
    let port = port.parse::<u16>().map_err(|_| format!("bad target port {port:?}"))?;
    let delay_us = delay_us.parse::<u64>().map_err(|_| format!("bad delay {delay_us:?}"))?;
    Ok((port, Duration::from_micros(delay_us)))
}

fn relay_both_ways(client: TcpStream, server: TcpStream, delay: Duration) -> io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    relay(client.try_clone()?, server.try_clone()?, delay);
    relay(server, client, delay);
    Ok(())
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
fn relay(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<Chunk>();
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Chunk::Due(Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::End);
        let _ = from.shutdown(Shutdown::Read);
    });
    thread::spawn(move || {
        while let Ok(chunk) = rx.recv() {
            match chunk {
                Chunk::Due(due, bytes) => {
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                Chunk::End => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Linux lets a sleeping thread wake up to 50 µs late by default (timer
/// slack); 1 ns keeps a 500 µs delay at 500 µs. The setting is per thread and
/// inherited by the threads created after it, so it runs first.
#[cfg(target_os = "linux")]
fn precise_sleeps() {
    const PR_SET_TIMERSLACK: i32 = 29;
    extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches no memory of ours.
    let status = unsafe { prctl(PR_SET_TIMERSLACK, 1u64) };
    if status != 0 {
        eprintln!("latency_proxy: could not set timer slack; delays may run up to 50 µs long");
    }
}

#[cfg(not(target_os = "linux"))]
fn precise_sleeps() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_port_and_delay() {
        assert_eq!(
            parse_args(&args(&["6380", "500"])),
            Ok((6380, Duration::from_micros(500)))
        );
        assert!(parse_args(&args(&["6380"])).is_err());
        assert!(parse_args(&args(&["x", "500"])).is_err());
        assert!(parse_args(&args(&["6380", "0.5"])).is_err());
    }

    #[test]
    fn holds_each_direction_for_the_delay() -> io::Result<()> {
        // An echo server behind the proxy: a round trip crosses it twice.
        let echo = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let echo_port = echo.local_addr()?.port();
        thread::spawn(move || {
            if let Ok((mut conn, _)) = echo.accept() {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        });
        let proxy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let proxy_port = proxy.local_addr()?.port();
        let delay = Duration::from_millis(20);
        thread::spawn(move || {
            if let Ok((client, _)) = proxy.accept() {
                if let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, echo_port)) {
                    let _ = relay_both_ways(client, server, delay);
                }
            }
        });
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy_port))?;
        let started = Instant::now();
        conn.write_all(b"ping")?;
        let mut reply = [0u8; 4];
        conn.read_exact(&mut reply)?;
        assert_eq!(&reply, b"ping");
        assert!(
            started.elapsed() >= 2 * delay,
            "round trip {:?} shorter than twice {delay:?}",
            started.elapsed()
        );
        // Closing our side reaches the echo server, whose close comes back as EOF.
        conn.shutdown(Shutdown::Write)?;
        assert_eq!(conn.read(&mut reply)?, 0);
        Ok(())
    }
}
