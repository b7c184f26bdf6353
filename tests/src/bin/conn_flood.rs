//! `conn_flood SOCKET COUNT HOLD_SECS`: opens COUNT connections to a control
//! socket, prints `ready N` (N connected), holds them for HOLD_SECS and
//! exits. The access tests run it as an unprivileged user to check that one
//! user's connections cannot lock out root.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: conn_flood SOCKET COUNT HOLD_SECS");
        std::process::exit(2);
    }
    let count: usize = args[2].parse().expect("COUNT");
    let hold: u64 = args[3].parse().expect("HOLD_SECS");
    raise_nofile_limit();
    let mut held = Vec::with_capacity(count);
    let mut failed = 0usize;
    for _ in 0..count {
        match UnixStream::connect(&args[1]) {
            Ok(s) => held.push(s),
            Err(_) => failed += 1,
        }
    }
    println!("ready {} ({failed} failed)", held.len());
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(hold));
}

fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
