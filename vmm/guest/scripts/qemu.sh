#!/usr/bin/env bash
# Runs the guest image under QEMU (the side-by-side reference for our VMM).
#
#   qemu.sh run  "ARGS"               one guest, its e1000 on an empty hub
#   qemu.sh pair "ARGS_A" "ARGS_B"    two guests joined by unix datagram sockets;
#                                     B starts once A is up (see below)
#
# Environment: GUEST_ELF (default: target/guest/guest.elf of this repository),
# TSC_KHZ (default: the host's, appended as tsc_khz= when ARGS lack it),
# QEMU_TIMEOUT (seconds per VM, default 120), OUT (directory for the serial
# logs, default a fresh temporary directory, kept).
#
# Prints each guest's serial log and its exit code (0 ok, 1 workload error,
# 2 setup error, 3 crash; QEMU's isa-debug-exit returns (code << 1) | 1).
# Exits non-zero if any guest did.
#
# QEMU 7.2's e1000 refuses to receive for one second after every RCTL write
# (its flush_queue_timer), so B starts 1.2 s after A printed its workload line.
# The datagram backend (unlike -netdev socket over TCP) applies back-pressure
# instead of flooding the receiver with what queued up meanwhile.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
elf=${GUEST_ELF:-$repo/target/guest/guest.elf}
timeout_s=${QEMU_TIMEOUT:-120}
[[ -f $elf ]] || { echo "no guest image at $elf (cargo xtask build-guest)" >&2; exit 2; }

host_tsc_khz() {
    if [[ -r /sys/devices/system/cpu/cpu0/tsc_freq_khz ]]; then
        cat /sys/devices/system/cpu/cpu0/tsc_freq_khz
        return
    fi
    # "tsc: Detected 2299.998 MHz processor" or the refined calibration line.
    local mhz
    mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: \(Refined TSC clocksource calibration:\|Detected\) *\([0-9.]*\) MHz.*/\2/p' | tail -1)
    [[ -n $mhz ]] && awk -v m="$mhz" 'BEGIN { printf "%d\n", m * 1000 }'
}
tsc_khz=${TSC_KHZ:-$(host_tsc_khz || true)}

with_tsc() {
    if [[ $1 == *tsc_khz=* || -z $tsc_khz ]]; then echo "$1"; else echo "$1 tsc_khz=$tsc_khz"; fi
}

out=${OUT:-$(mktemp -d /tmp/guest-qemu.XXXXXX)}
mkdir -p "$out"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -f "$out"/a.sock "$out"/b.sock
}
trap cleanup EXIT

qemu=(qemu-system-x86_64 -enable-kvm -m 64M -display none -monitor none -no-reboot
      -bios /usr/share/qemu/qboot.rom -kernel "$elf"
      -device isa-debug-exit,iobase=0x501,iosize=1)

# start NAME ARGS NETDEV...: runs one VM in the background, serial to $out/NAME.log.
start() {
    local name=$1 args=$2; shift 2
    : >"$out/$name.log"
    timeout "$timeout_s" "${qemu[@]}" -serial "file:$out/$name.log" -append "$(with_tsc "$args")" "$@" \
        2>"$out/$name.err" &
    pids+=($!)
}

# finish NAME PID: waits for the VM, prints its log and guest exit code.
finish() {
    local name=$1 pid=$2 status=0 code
    wait "$pid" || status=$?
    if (( status == 124 )); then code="timeout"; elif (( status & 1 )); then code=$(( status >> 1 )); else code="qemu:$status"; fi
    echo "=== $name (exit $code)"
    cat "$out/$name.log"
    [[ $code == 0 ]]
}

case ${1:-} in
run)
    start a "${2:?ARGS}" -netdev hubport,id=n0,hubid=0 -device e1000,netdev=n0
    finish a "${pids[0]}"
    ;;
pair)
    start a "${2:?ARGS_A}" \
        -netdev "dgram,id=n0,local.type=unix,local.path=$out/a.sock,remote.type=unix,remote.path=$out/b.sock" \
        -device e1000,netdev=n0,mac=52:54:00:00:00:0a
    for _ in $(seq 200); do
        grep -q '^guest: [a-z]* txmode=' "$out/a.log" 2>/dev/null && break
        sleep 0.05
    done
    sleep 1.2
    start b "${3:?ARGS_B}" \
        -netdev "dgram,id=n0,local.type=unix,local.path=$out/b.sock,remote.type=unix,remote.path=$out/a.sock" \
        -device e1000,netdev=n0,mac=52:54:00:00:00:0b
    ok=0
    finish b "${pids[1]}" || ok=1
    finish a "${pids[0]}" || ok=1
    exit $ok
    ;;
*)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
