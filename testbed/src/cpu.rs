//! Pinning the calling thread to a CPU.

use crate::{Error, Result};

/// Moves the calling thread to CPU `cpu` (a multi-queue veth then
/// transmits what the thread sends on queue `cpu`).
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(Error::io(
            format!("pin to CPU {cpu}"),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is valid;
    // CPU_SET writes inside it (cpu is below CPU_SETSIZE) and
    // sched_setaffinity(0) reads it for the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(Error::io(
            format!("pin to CPU {cpu}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
