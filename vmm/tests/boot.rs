//! Boots tiny hand-assembled guests (sources in tests/guests/*.S, built with
//! `as --32 X.S -o X.o && ld -m elf_i386 -Ttext=0x100000 --oformat binary X.o`)
//! in the real `vmm` binary: PVH entry state, serial, exit port, idle port,
//! interrupts through the in-kernel irqchip, bad images and crashes.

mod common;

use std::time::Duration;

use testbed::{Capture, Proc};

use common::*;

/// tests/guests/idle_irq.S: idles until a LAPIC timer interrupt, then until the
/// UART's THR-empty interrupt (GSI 4 irqfd, IOAPIC pin 4), prints "ok" and
/// exits with the number of idle-loop turns before the timer fired.
const IDLE_IRQ: &[u8] = &[
    0xbc, 0x00, 0x00, 0x08, 0x00, 0xb0, 0xff, 0xe6, 0x21, 0xe6, 0xa1, 0xb8, 0x9f, 0x00, 0x10, 0x00,
    0xbf, 0x98, 0x02, 0x10, 0x00, 0xe8, 0xdb, 0x00, 0x00, 0x00, 0xb8, 0xbd, 0x00, 0x10, 0x00, 0xbf,
    0xa0, 0x02, 0x10, 0x00, 0xe8, 0xcc, 0x00, 0x00, 0x00, 0x0f, 0x01, 0x1d, 0x10, 0x01, 0x10, 0x00,
    0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, 0xc7, 0x05, 0x50, 0x03, 0xe0, 0xfe,
    0x00, 0x00, 0x01, 0x00, 0xc7, 0x05, 0x60, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x01, 0x00, 0xc7, 0x05,
    0x00, 0x00, 0xc0, 0xfe, 0x18, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x10, 0x00, 0xc0, 0xfe, 0x31, 0x00,
    0x00, 0x00, 0xc7, 0x05, 0x00, 0x00, 0xc0, 0xfe, 0x19, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x10, 0x00,
    0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0xc7, 0x05, 0xe0, 0x03, 0xe0, 0xfe, 0x0b, 0x00, 0x00, 0x00,
    0xc7, 0x05, 0x20, 0x03, 0xe0, 0xfe, 0x30, 0x00, 0x00, 0x00, 0x31, 0xc9, 0xfb, 0xc7, 0x05, 0x80,
    0x03, 0xe0, 0xfe, 0x00, 0x2d, 0x31, 0x01, 0x41, 0x66, 0xba, 0x02, 0x05, 0xee, 0xeb, 0xf8, 0xbc,
    0x00, 0x00, 0x08, 0x00, 0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0xfb, 0x66,
    0xba, 0xf9, 0x03, 0xb0, 0x02, 0xee, 0x66, 0xba, 0x02, 0x05, 0xee, 0xeb, 0xf9, 0xbc, 0x00, 0x00,
    0x08, 0x00, 0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x66, 0xba, 0xf9, 0x03,
    0xb0, 0x00, 0xee, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x6f, 0xee, 0xb0, 0x6b, 0xee, 0xb0, 0x0a, 0xee,
    0x81, 0xf9, 0xc8, 0x00, 0x00, 0x00, 0x72, 0x05, 0xb9, 0xc8, 0x00, 0x00, 0x00, 0x88, 0xc8, 0x66,
    0xba, 0x01, 0x05, 0xee, 0xf4, 0x66, 0x89, 0x07, 0x66, 0xc7, 0x47, 0x02, 0x08, 0x00, 0x66, 0xc7,
    0x47, 0x04, 0x00, 0x8e, 0xc1, 0xe8, 0x10, 0x66, 0x89, 0x47, 0x06, 0xc3, 0x8d, 0x74, 0x26, 0x00,
    0x8f, 0x01, 0x18, 0x01, 0x10, 0x00, 0x66, 0x90,
];

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn serial_cmdline_and_exit_code() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("serial");
    let kernel = write_image(dir.path(), "a.elf", &pvh_elf(SERIAL_EXIT, 0));
    let serial = dir.path().join("serial.txt");
    let stats = dir.path().join("stats.json");
    let out = run_vmm(
        &[
            "--kernel",
            &kernel,
            "--mem",
            "16",
            "--serial",
            serial.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
            "--",
            "hello",
            "count=3",
        ],
        TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "stderr: {stderr}");
    let text = std::fs::read_to_string(&serial).unwrap();
    let line = text.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("hello count=3 tsc_khz="),
        "serial: {text:?}"
    );
    let khz: u64 = line.rsplit('=').next().unwrap().parse().unwrap();
    assert!(khz > 100_000, "tsc_khz {khz}");
    assert!(stderr.contains("vmm: exit code 42"), "stderr: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 42);
    // One exit per serial byte, one for the exit port.
    let serial_exits = json["exits"]["pio"]["0x3f8"].as_u64().unwrap();
    assert_eq!(serial_exits as usize, line.len() + 1);
    assert_eq!(json["exits"]["pio"]["0x501"], 1);
}

#[test]
fn stdout_serial_and_explicit_tsc_khz() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("stdout");
    let kernel = write_image(dir.path(), "a.elf", &pvh_elf(SERIAL_EXIT, 0));
    let out = run_vmm(
        &["--kernel", &kernel, "--mem", "8", "--", "x", "tsc_khz=1234"],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x tsc_khz=1234\n");
}

#[test]
fn idle_halts_until_interrupts_from_lapic_timer_and_irqfd() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("idle");
    let kernel = write_image(dir.path(), "b.elf", &pvh_elf(IDLE_IRQ, 0x1000));
    let stats = dir.path().join("stats.json");
    let out = run_vmm(
        &[
            "--kernel",
            &kernel,
            "--mem",
            "16",
            "--halt-poll-us",
            "0",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "stderr: {stderr}"
    );
    // The guest exits with the number of idle turns before the 20 ms timer
    // fired: with the vCPU halted on each idle write that is 1, spinning would
    // make it hundreds.
    let turns = code.expect("exit code");
    assert!(
        (1..=3).contains(&turns),
        "idle turns before the timer: {turns}; {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(json["exits"]["pio"]["0x502"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_images_are_rejected_with_a_clear_error() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text", b"not an elf at all".to_vec(), "not an ELF"),
        (
            "truncated",
            pvh_elf(SERIAL_EXIT, 0)[..100].to_vec(),
            "malformed ELF",
        ),
        ("huge-bss", pvh_elf(SERIAL_EXIT, 64 << 20), "does not fit"),
    ];
    for (name, image, expect) in cases {
        let kernel = write_image(dir.path(), name, &image);
        let out = run_vmm(&["--kernel", &kernel, "--mem", "16"], TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(124), "{name}: {stderr}");
        assert!(stderr.contains(expect), "{name}: {stderr}");
    }
    let missing = dir.path().join("missing.elf");
    let out = run_vmm(&["--kernel", missing.to_str().unwrap()], TIMEOUT);
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read kernel image"));
}

#[test]
fn triple_fault_ends_the_vm_with_an_error() {
    if !have_kvm() {
        return;
    }
    // lidt of a zero-limit IDT, then int3: #BP -> #GP -> #DF -> triple fault.
    let code = [
        0x0f, 0x01, 0x1d, 0x10, 0x00, 0x10, 0x00, // lidt [0x100010]
        0xcc, // int3
        0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, // pad to 0x10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // IDTR: limit 0, base 0
    ];
    let dir = scratch("crash");
    let kernel = write_image(dir.path(), "c.elf", &pvh_elf(&code, 0));
    let out = run_vmm(&["--kernel", &kernel, "--mem", "8"], TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("guest crashed"), "{stderr}");
}

#[test]
fn sigterm_stops_a_halted_guest_and_writes_stats() {
    if !have_kvm() {
        return;
    }
    // cli; mov dx, 0x502; 1: out dx, al; jmp 1b -- idles forever, no interrupts.
    let code = [0xfa, 0x66, 0xba, 0x02, 0x05, 0xee, 0xeb, 0xfd];
    let dir = scratch("sigterm");
    let kernel = write_image(dir.path(), "idle.elf", &pvh_elf(&code, 0));
    let stats = dir.path().join("stats.json");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vmm"));
    command.args([
        "--kernel",
        &kernel,
        "--mem",
        "8",
        "--halt-poll-us",
        "0",
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    let mut vmm = Proc::spawn("vmm", command, Capture::Files(dir.path().into())).unwrap();
    // The statistics are written once a second while the guest runs: the
    // VMM is up (its handler in place) and the guest halted by then. A
    // fixed sleep could signal a VMM that a loaded machine had not yet
    // started, which then died of the signal.
    testbed::wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        stats.exists()
    })
    .unwrap_or_else(|e| panic!("no statistics from the vmm: {e}: {:?}", vmm.read_stderr()));
    vmm.kill(libc::SIGTERM).unwrap();
    let status = vmm
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("vmm did not stop on SIGTERM");
    let stderr = vmm.read_stderr().unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by signal 15"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 143);
    // Halted, not spinning: one idle exit (a spinning guest would make thousands).
    let idle = json["exits"]["pio"]["0x502"].as_u64().unwrap();
    assert!(idle <= 2, "idle exits {idle}");
}
