//! Attach errors: a clear message, a failure exit, and nothing left behind
//! (no port, no XDP program, no promiscuous mode), with the daemon still up.

use anyhow::Result;
use e2e_tests::nic::NicBed;
use switch_port::control::client::ClientError;
use switch_port::protocol::{ErrorCode, Request};

/// Runs `vswitch attach vale0 IFACE EXTRA...`, which must fail with a
/// message containing `needle`.
fn attach_fails(bed: &NicBed, iface: &str, extra: &[&str], needle: &str) -> Result<()> {
    let out = bed.try_attach(iface, extra)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "attach {iface} {extra:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(needle),
        "attach {iface} {extra:?}: expected {needle:?} in {stderr:?}"
    );
    Ok(())
}

#[test]
fn bad_attaches_fail_clearly_and_leave_nothing_behind() -> Result<()> {
    let mut bed = NicBed::new(&["a0"], None)?;
    attach_fails(
        &bed,
        "nope0",
        &[],
        "no network interface nope0 in the daemon's network namespace",
    )?;
    attach_fails(&bed, "bad/name", &[], "bad interface name")?;
    attach_fails(
        &bed,
        "a-very-long-interface-name",
        &[],
        "bad interface name",
    )?;
    attach_fails(&bed, "a0", &["--zero-copy"], "does not support zero-copy")?;
    attach_fails(
        &bed,
        "a0",
        &["--queues", "2"],
        "a0 has 1 receive queues, 2 asked for",
    )?;
    attach_fails(&bed, "a0", &["--pass", "0x0001"], "bad --pass entry")?;
    attach_fails(&bed, "a0", &["--busy-poll", "0"], "--busy-poll")?;
    attach_fails(&bed, "a0", &["--busy-poll", "65536"], "--busy-poll")?;
    // The daemon checks the budget itself (another client may send any).
    let refused = bed.daemon.connect()?.call(&Request::Attach {
        switch: "vale0".parse()?,
        iface: "a0".into(),
        queues: None,
        zero_copy: None,
        host: false,
        host_name: None,
        pass: vec![],
        checksum: None,
        vlan: None,
        host_vlan: None,
        busy_poll: Some(0),
    });
    match refused {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::BadRequest, "{message}");
            assert!(message.contains("bad --busy-poll 0"), "{message}");
        }
        other => panic!("busy_poll 0 was not refused: {other:?}"),
    }
    attach_fails(
        &bed,
        "a0",
        &["--host", "--host-name", "bad/tap"],
        "bad interface name",
    )?;
    // None of them left a port, a program or promiscuous mode.
    assert!(
        bed.daemon.port_names()?.is_empty(),
        "{:?}",
        bed.daemon.port_names()?
    );
    assert!(!bed.has_xdp("a0")?, "a failed attach left its XDP program");
    assert_eq!(bed.promiscuity("a0")?, 0);

    // The interface still attaches; a second attach and a detach of
    // something else are refused.
    bed.attach("a0", &["--copy"])?;
    attach_fails(&bed, "a0", &[], "a0 is already attached")?;
    let out = bed.daemon.cli(&["detach", "vale0", "nope0"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope0 is not attached to vale0"));
    assert!(
        bed.daemon.proc_mut().try_wait()?.is_none(),
        "the daemon exited"
    );
    Ok(())
}
