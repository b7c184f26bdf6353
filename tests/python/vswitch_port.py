#!/usr/bin/env python3
"""A vswitch port client written from docs/port-protocol.md alone (version 1).

Standard library only. It opens a port over the control socket, maps the
port memory, and sends and receives frames in the repository's test frame
format (testframe), verifying each one. The section names in comments
("spec §N") refer to docs/port-protocol.md.

Usage (every run is bounded by --timeout):

  vswitch_port.py exchange --socket S --port vale0:py --mac M \
      [--send N --rate PPS --dst-mac D] [--receive N --from-mac F] \
      [--ring-size R] [--timeout SECS]
      prints one JSON summary line on stdout.

  vswitch_port.py version-probe --socket S --version V [--timeout SECS]
      sends a `status` request whose header carries version V and prints
      the response (and whether the daemon then closed the connection) as
      one JSON line.
"""

import argparse
import array
import errno
import fcntl
import json
import mmap
import os
import select
import socket
import struct
import sys
import time

# --- Control protocol (spec §2, §3) ---------------------------------------

MAGIC = b"VSWC"
VERSION = 1
HEADER = struct.Struct("<4sHHII")  # magic, version, direction, length, fds
DIR_REQUEST = 1
DIR_RESPONSE = 2
PORT_FDS = 3
MAX_RESPONSE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The daemon or the port memory broke a rule of the spec."""


class Refused(Exception):
    """The daemon answered with an error response."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Connection:
    """One control connection (spec §2). Every call is bounded by `timeout`."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def send(self, request, version=VERSION):
        payload = json.dumps(request, separators=(",", ":")).encode()
        header = HEADER.pack(MAGIC, version, DIR_REQUEST, len(payload), 0)
        self.sock.sendall(header + payload)

    def _read_exact(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ProtocolError("the daemon closed the connection mid-message")
            out += chunk
        return bytes(out)

    def receive(self):
        """Reads one response: (header version, JSON object, fds)."""
        fds = array.array("i")
        cmsg_space = socket.CMSG_SPACE(PORT_FDS * fds.itemsize)
        data, ancdata, flags, _ = self.sock.recvmsg(HEADER.size, cmsg_space)
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(cdata) - len(cdata) % fds.itemsize
                fds.frombytes(cdata[:usable])
        if not data:
            raise EOFError("the daemon closed the connection")
        if len(data) < HEADER.size:
            data += self._read_exact(HEADER.size - len(data))
        magic, version, direction, length, nfds = HEADER.unpack(data)
        try:
            if magic != MAGIC:
                raise ProtocolError(f"bad magic {magic!r}")
            if direction != DIR_RESPONSE:
                raise ProtocolError(f"unexpected direction {direction}")
            if length > MAX_RESPONSE:
                raise ProtocolError(f"response of {length} bytes is too long")
            if flags & socket.MSG_CTRUNC or nfds != len(fds) or nfds not in (0, PORT_FDS):
                raise ProtocolError(f"{nfds} fds announced, {len(fds)} received")
            body = json.loads(self._read_exact(length))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return version, body, list(fds)

    def call(self, request):
        """Sends `request`; returns (response, fds) or raises Refused."""
        self.send(request)
        version, body, fds = self.receive()
        if version != VERSION:
            for fd in fds:
                os.close(fd)
            raise ProtocolError(
                f"the daemon speaks control protocol version {version}, "
                f"this client speaks version {VERSION}: {body.get('message', body)}"
            )
        if body.get("response") == "error":
            raise Refused(body.get("code"), body.get("message"))
        return body, fds


# --- Port memory (spec §4, §5) ---------------------------------------------

REGION_MAGIC = b"VSWPORT1"
LAYOUT_VERSION = 2
REGION_HEADER = struct.Struct("<8sIIIIQQQQI")
REGION_HEADER_SIZE = 4096
RING_HEADER_SIZE = 320
SLOT_SIZE = 8
HEAD, CUR, TAIL, CONSUMER_NEEDS_KICK, PRODUCER_NEEDS_KICK = 0, 64, 128, 192, 256
F_SEAL_SHRINK, F_SEAL_GROW = 0x0002, 0x0004
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
MIN_FRAME = 14


def round_up(value, align):
    return (value + align - 1) // align * align


def expected_layout(ring_size, buf_size):
    """The layout every version-2 region has for these sizes (spec §4.2)."""
    if ring_size & (ring_size - 1) or not 64 <= ring_size <= 16384:
        raise ProtocolError(f"ring size {ring_size} is not valid")
    if buf_size % 64 or not 128 <= buf_size <= 16384:
        raise ProtocolError(f"buffer size {buf_size} is not valid")
    ring_bytes = round_up(RING_HEADER_SIZE + ring_size * SLOT_SIZE, 64)
    tx = REGION_HEADER_SIZE
    rx = tx + ring_bytes
    buffers = round_up(rx + ring_bytes, 4096)
    num_bufs = 2 * ring_size
    stride = buf_size + 64 if (buf_size // 64) % 2 == 0 else buf_size
    return {
        "num_bufs": num_bufs,
        "tx": tx,
        "rx": rx,
        "buffers": buffers,
        "region_len": buffers + num_bufs * stride,
        "stride": stride,
    }


def full_barrier():
    """A full memory barrier (spec §6.3). Python has no fence instruction;
    a system call that drops and retakes the interpreter lock executes
    locked instructions, which order earlier stores before later loads on
    x86-64. Every sleep of this client is also bounded (spec §6.4), so a
    kick lost on a weaker machine costs a bounded delay, not a hang."""
    os.sched_yield()


class Ring:
    """One ring: u32 indices and flags, u64 slots, native little-endian."""

    def __init__(self, words32, words64, offset, size):
        self.w32 = words32
        self.w64 = words64
        self.base = offset // 4
        self.slots = (offset + RING_HEADER_SIZE) // 8
        self.size = size
        self.mask = size - 1

    def load(self, field):
        return self.w32[self.base + field // 4]

    def store(self, field, value):
        self.w32[self.base + field // 4] = value

    def read_slot(self, index):
        bits = self.w64[self.slots + (index & self.mask)]
        return bits & 0xFFFFFFFF, (bits >> 32) & 0xFFFF

    def write_slot(self, index, buf, length):
        self.w64[self.slots + (index & self.mask)] = buf | (length << 32)


class Port:
    """An open port (spec §8): the control connection must stay open while
    the port is used; closing it releases the port."""

    def __init__(self, socket_path, name, timeout, ring_size=None, buf_size=None, mac=None):
        if sys.byteorder != "little":
            raise ProtocolError("the port memory is little-endian; this client maps it natively")
        self.conn = Connection(socket_path, timeout)
        request = {"request": "open_port", "port": name}
        if ring_size is not None:
            request["ring_size"] = ring_size
        if buf_size is not None:
            request["buf_size"] = buf_size
        if mac is not None:
            request["mac"] = mac
        response, fds = self.conn.call(request)
        try:
            if response.get("response") != "port_opened" or len(fds) != PORT_FDS:
                raise ProtocolError(f"unexpected answer to open_port: {response}")
            self._map(response, fds[0])
        except BaseException:
            for fd in fds:
                os.close(fd)
            self.conn.close()
            raise
        os.close(fds[0])  # the mapping keeps the memory
        self.to_switch, self.to_client = fds[1], fds[2]
        self.tx_head = self.tx.load(HEAD) & self.tx.mask
        self.tx_tail = self.tx.load(TAIL) & self.tx.mask
        self.rx_head = self.rx.load(HEAD) & self.rx.mask
        self.kicks_sent = 0

    def _map(self, response, memfd):
        # Spec §5.1: descriptors, seals, then size, then the header, then size, then the header.
        seals = fcntl.fcntl(memfd, F_GET_SEALS)
        if seals & (F_SEAL_SHRINK | F_SEAL_GROW) != F_SEAL_SHRINK | F_SEAL_GROW:
            raise ProtocolError(f"port memfd seals {seals:#x} lack shrink and grow")
        size = os.fstat(memfd).st_size
        ring_size, buf_size = response["ring_size"], response["buf_size"]
        layout = expected_layout(ring_size, buf_size)
        if response["region_len"] != layout["region_len"] or size < layout["region_len"]:
            raise ProtocolError(f"region of {size} bytes, answer {response}")
        self.mm = mmap.mmap(memfd, layout["region_len"], mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        fields = REGION_HEADER.unpack_from(self.mm, 0)
        want = (REGION_MAGIC, LAYOUT_VERSION, ring_size, buf_size, layout["num_bufs"],
                layout["tx"], layout["rx"], layout["buffers"], layout["region_len"],
                layout["stride"])
        if fields != want:
            raise ProtocolError(f"region header {fields} is not {want}")
        view = memoryview(self.mm)
        self.w32 = view.cast("I")
        self.w64 = view.cast("Q")
        self.ring_size, self.buf_size = ring_size, buf_size
        self.num_bufs, self.buffers = layout["num_bufs"], layout["buffers"]
        self.buf_stride = layout["stride"]
        self.tx = Ring(self.w32, self.w64, layout["tx"], ring_size)
        self.rx = Ring(self.w32, self.w64, layout["rx"], ring_size)

    def close(self):
        for fd in (self.to_switch, self.to_client):
            os.close(fd)
        self.w32.release()
        self.w64.release()
        self.mm.close()
        self.conn.close()

    def _buffer(self, index, home):
        """Offset of buffer `index`, or of the slot's home buffer when the
        index is out of range (spec §5.1)."""
        if index >= self.num_bufs:
            index = home
        return self.buffers + index * self.buf_stride

    # TX (spec §6.1): fill slots [head, tail), publish by storing head.

    def tx_free(self):
        self.tx_tail = self.tx.load(TAIL) & self.tx.mask
        return (self.tx_tail - self.tx_head) & self.tx.mask

    def send(self, frames):
        """Copies as many of `frames` as fit into free slots, publishes them
        and kicks the switch if it sleeps; returns how many were sent."""
        n = min(len(frames), self.tx_free())
        head = self.tx_head
        for frame in frames[:n]:
            buf, _ = self.tx.read_slot(head)
            if buf >= self.num_bufs:
                buf = head
            offset = self.buffers + buf * self.buf_stride
            self.mm[offset:offset + len(frame)] = frame
            self.tx.write_slot(head, buf, len(frame))
            head = (head + 1) & self.tx.mask
        if n:
            self.tx_head = head
            self.tx.store(CUR, head)
            self.tx.store(HEAD, head)  # x86-64: a plain store is a release
            full_barrier()
            if self.tx.load(CONSUMER_NEEDS_KICK):
                os.write(self.to_switch, struct.pack("<Q", 1))
                self.kicks_sent += 1
        return n

    # RX (spec §6.2): read slots [head, tail), return them by storing head.

    def receive(self, limit):
        """Returns up to `limit` received frames (copies) and releases their slots."""
        tail = self.rx.load(TAIL) & self.rx.mask
        head = self.rx_head
        out = []
        while head != tail and len(out) < limit:
            buf, length = self.rx.read_slot(head)
            offset = self._buffer(buf, self.ring_size + head)
            out.append(bytes(self.mm[offset:offset + min(length, self.buf_size)]))
            head = (head + 1) & self.rx.mask
        if out:
            self.rx_head = head
            self.rx.store(CUR, head)
            self.rx.store(HEAD, head)
        return out

    def rx_ready(self):
        return (self.rx.load(TAIL) - self.rx_head) & self.rx.mask

    def wait(self, rx, tx, timeout):
        """Sleeps until kicked for frames (rx) or free TX slots (tx), or
        `timeout` seconds pass (spec §6.4): set the flags, barrier, re-check,
        poll the eventfd, clear the flags, drain the eventfd."""
        if rx:
            self.rx.store(CONSUMER_NEEDS_KICK, 1)
        if tx:
            self.tx.store(PRODUCER_NEEDS_KICK, 1)
        full_barrier()
        if not ((rx and self.rx_ready()) or (tx and self.tx_free())):
            poller = select.poll()
            poller.register(self.to_client, select.POLLIN)
            # The control connection becomes readable (end of file) when the
            # daemon goes away: then the port is gone (spec §8).
            poller.register(self.conn.sock, select.POLLIN)
            for fd, _ in poller.poll(max(1, int(timeout * 1000))):
                if fd == self.conn.sock.fileno() and not self.conn.sock.recv(1, socket.MSG_PEEK):
                    raise ProtocolError("the daemon closed the control connection: the port is gone")
        self.rx.store(CONSUMER_NEEDS_KICK, 0)
        self.tx.store(PRODUCER_NEEDS_KICK, 0)
        try:
            os.read(self.to_client, 8)
        except BlockingIOError:
            pass


# --- Test frames (testframe/src/lib.rs) ----------------------------------

ETHERTYPE = b"\x88\xb5"
FRAME_MAGIC = b"VSPG"
KIND_DATA = 1
MASK64 = (1 << 64) - 1


def testframe_checksum(frame):
    """The test-frame checksum of `frame`, whose checksum field is zero."""
    words = (len(frame) + 7) // 8
    padded = bytes(frame) + bytes(words * 8 - len(frame))
    a = [0, 0, 0, 0]
    b = [0, 0, 0, 0]
    for j, w in enumerate(struct.unpack(f"<{words}Q", padded)):
        lane = j & 3
        a[lane] = (a[lane] + w) & MASK64
        b[lane] = (b[lane] + a[lane]) & MASK64
    x = 0
    for lane in range(4):
        x = ((x << 13) | (x >> 51)) & MASK64 ^ a[lane]
        x = ((x << 29) | (x >> 35)) & MASK64 ^ ((b[lane] * 0x9E3779B97F4A7C15) & MASK64)
    return (x ^ (x >> 32)) & 0xFFFFFFFF


def make_frame(dst, src, seq, size):
    frame = bytearray(size)
    frame[0:6] = dst
    frame[6:12] = src
    frame[12:14] = ETHERTYPE
    frame[14:18] = FRAME_MAGIC
    frame[18] = KIND_DATA
    struct.pack_into("<QQH", frame, 24, seq, time.monotonic_ns(), size)
    for i in range(42, size):
        frame[i] = ((i * 31) & 0xFF) ^ 0xA5
    struct.pack_into("<I", frame, 20, testframe_checksum(frame))
    return bytes(frame)


def parse_frame(frame):
    """(src, seq) of a valid test frame, else None."""
    if len(frame) < 60 or frame[12:14] != ETHERTYPE or frame[14:18] != FRAME_MAGIC:
        return None
    (stored,) = struct.unpack_from("<I", frame, 20)
    seq, _, length = struct.unpack_from("<QQH", frame, 24)
    if length != len(frame) or frame[18] not in (1, 2, 3):
        return None
    zeroed = frame[:20] + b"\0\0\0\0" + frame[24:]
    if testframe_checksum(zeroed) != stored:
        return None
    return frame[6:12], seq


def mac_bytes(text):
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return bytes(int(p, 16) for p in parts)


# --- Commands --------------------------------------------------------------

def exchange(args):
    deadline = time.monotonic() + args.timeout
    port = Port(args.socket, args.port, args.timeout, ring_size=args.ring_size, mac=args.mac)
    src, dst = mac_bytes(args.mac), mac_bytes(args.dst_mac)
    want_from = mac_bytes(args.from_mac) if args.from_mac else None
    sent = received = corrupt = foreign = out_of_order = 0
    expected = 0
    started = time.monotonic()
    timed_out = False
    try:
        while sent < args.send or received < args.receive:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            due = args.send if not args.rate else min(args.send, int((now - started) * args.rate) + 1)
            moved = 0
            if sent < due:
                count = min(due - sent, 256, port.tx_free())
                batch = [make_frame(dst, src, seq, args.size) for seq in range(sent, sent + count)]
                moved = port.send(batch)
                sent += moved
            frames = port.receive(1024)
            for frame in frames:
                parsed = parse_frame(frame)
                if parsed is None:
                    if len(frame) >= 18 and frame[12:14] == ETHERTYPE and frame[14:18] == FRAME_MAGIC:
                        corrupt += 1
                    else:
                        foreign += 1
                    continue
                frame_src, seq = parsed
                if want_from is not None and frame_src != want_from:
                    foreign += 1
                    continue
                if seq != expected:
                    out_of_order += 1
                expected = seq + 1
                received += 1
            if frames or moved:
                continue
            # Nothing moved: sleep until kicked (frames arrived, or TX slots
            # freed while frames are due and the ring is full) or until the
            # next frame is due; never longer than 10 ms.
            tx_full = sent < due
            if not tx_full and sent < args.send and args.rate:
                until_due = started + (sent + 1) / args.rate - time.monotonic()
            else:
                until_due = 0.01
            port.wait(rx=received < args.receive, tx=tx_full,
                      timeout=max(0.0005, min(until_due, 0.01, deadline - time.monotonic())))
    finally:
        kicks = port.kicks_sent
        port.close()
    print(json.dumps({
        "sent": sent, "received": received, "corrupt": corrupt, "foreign": foreign,
        "out_of_order": out_of_order, "kicks_sent": kicks, "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
    }), flush=True)
    return 0 if not timed_out and corrupt == 0 else 1


def version_probe(args):
    conn = Connection(args.socket, args.timeout)
    try:
        conn.send({"request": "status"}, version=args.version)
        version, body, fds = conn.receive()
        for fd in fds:
            os.close(fd)
        # A mismatch closes the connection; a good request leaves it open
        # (nothing more arrives within a second).
        conn.sock.settimeout(1.0)
        try:
            conn.receive()
            closed = False
        except EOFError:
            closed = True
        except socket.timeout:
            closed = False
        except OSError as e:
            closed = e.errno in (errno.ECONNRESET, errno.EPIPE)
    finally:
        conn.close()
    print(json.dumps({"header_version": version, "response": body, "closed": closed}), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exchange")
    ex.add_argument("--socket", required=True)
    ex.add_argument("--port", required=True)
    ex.add_argument("--mac", required=True)
    ex.add_argument("--dst-mac", default="ff:ff:ff:ff:ff:ff")
    ex.add_argument("--from-mac")
    ex.add_argument("--send", type=int, default=0)
    ex.add_argument("--receive", type=int, default=0)
    ex.add_argument("--rate", type=float, default=0.0)
    ex.add_argument("--size", type=int, default=60)
    ex.add_argument("--ring-size", type=int)
    ex.add_argument("--timeout", type=float, default=60.0)
    probe = sub.add_parser("version-probe")
    probe.add_argument("--socket", required=True)
    probe.add_argument("--version", type=int, required=True)
    probe.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.command == "exchange":
        return exchange(args)
    return version_probe(args)


if __name__ == "__main__":
    sys.exit(main())
