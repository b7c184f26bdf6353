//! The VMM's side of the offloaded data path (`--e1000 offload=on`) against
//! a fake switch daemon: a thread on a Unix socket that opens the port
//! (a real port region and eventfds), then answers `offload_port` with
//! `done` (or a refusal) and `reclaim_port` with the hand-back the test
//! sets, and reports what it received (the hand-over, the four
//! descriptors), and in one test walks the guest's rings itself through the
//! memfd it was handed. The test plays the guest on guest RAM and drives
//! the device through its entry points (register accesses, the net
//! worker's poll, the call eventfds) as the vCPU and I/O threads do. The
//! last test does the same against the real `vswitch` daemon (built with
//! the workspace; skipped without it).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e1000_spec::csb::{field, CSBAH, CSBAL};
use e1000_spec::regs as r;
use kvm_ioctls::Kvm;
use switch_port::control::wire;
use switch_port::eventfd::EventFd as PortEventFd;
use switch_port::layout::Layout;
use switch_port::protocol::{ErrorCode, Request, Response, DIR_REQUEST, DIR_RESPONSE};
use switch_port::region::Region;
use switch_port::ring::Slot;
use vmm::e1000::offload::OffloadedRings;
use vmm::e1000::offload::{HandBack, Handover};
use vmm::e1000::{Dma, DmaError, QueueBackend};
use vmm::io_thread::{IoSources, IoThread};
use vmm::irq::{IrqLine, IrqMode};
use vmm::memory::GuestRam;
use vmm::net::backend::sink::SinkPort;
use vmm::net::backend::{switch, BackendSpec};
use vmm::net::device::DataPath;
use vmm::net::dma::GuestDma;
use vmm::net::link::{LinkTarget, LinkWatch};
use vmm::net::worker::Pollable;
use vmm::net::{NetConfig, NetDevice};
use vmm::stats::Stats;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const PORT: &str = "vale0:vm1";
const RAM: u64 = 8 << 20;
const CSB: u64 = 0x8000;
const TX_RING: u64 = 0x10000;
const RX_RING: u64 = 0x20000;
const TX_BUFS: u64 = 0x100000;
const RX_BUFS: u64 = 0x300000;
const RING: u32 = 256;
const ICR_TXDW: u32 = 0x01;
const ICR_RXT0: u32 = 0x80;
/// Upper bound for every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(20);

// ------------------------------------------------------------ fake daemon

/// What the fake daemon received.
#[derive(Debug)]
enum Seen {
    /// `offload_port`, with its descriptors.
    Offload {
        memory_size: u64,
        handover: Handover,
        fds: Vec<OwnedFd>,
    },
    /// `reclaim_port`.
    Reclaim,
    /// The VMM closed the connection.
    Closed,
}

/// How the fake daemon answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answers {
    /// `done` to an offload, the hand-back to a reclaim.
    Serve,
    /// An error to an offload, as a daemon without offload support.
    Refuse,
    /// `reclaimed` to an offload: not the answer the VMM waits for.
    GarbleOffload,
    /// `done` to a reclaim: not the answer the VMM waits for.
    GarbleReclaim,
}

/// A daemon serving one connection: `open_port`, then offload exchanges.
struct FakeDaemon {
    _dir: testbed::TempDir,
    socket: PathBuf,
    seen: Receiver<Seen>,
    /// The answer to the next `reclaim_port`.
    hand_back: Arc<Mutex<HandBack>>,
    /// The port's region, as the switch side sees it.
    region: Arc<Mutex<Option<Region>>>,
    /// The daemon's end of the connection, to hang up on the VMM.
    connection: Arc<Mutex<Option<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    /// Starts the daemon.
    fn start(answers: Answers) -> FakeDaemon {
        let dir = testbed::unique_temp_dir("vmm-offload").unwrap();
        let socket = dir.path().join("vswitch.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let (tell, seen) = mpsc::channel();
        let hand_back = Arc::new(Mutex::new(HandBack::default()));
        let region = Arc::new(Mutex::new(None));
        let connection = Arc::new(Mutex::new(None));
        let thread = {
            let (hand_back, region, connection) = (
                Arc::clone(&hand_back),
                Arc::clone(&region),
                Arc::clone(&connection),
            );
            std::thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                *connection.lock().unwrap() = Some(stream.try_clone().unwrap());
                let mut eventfds = Vec::new();
                while let Ok((payload, fds)) = wire::receive(&stream, DIR_REQUEST) {
                    let request: Request = serde_json::from_slice(&payload).unwrap();
                    let (response, out): (Response, Vec<RawFd>) = match request {
                        Request::OpenPort {
                            port,
                            ring_size,
                            buf_size,
                            ..
                        } => {
                            let layout =
                                Layout::new(ring_size.unwrap_or(1024), buf_size.unwrap_or(2048))
                                    .unwrap();
                            let created = Region::create("fake", layout).unwrap();
                            let to_switch = PortEventFd::new().unwrap();
                            let to_client = PortEventFd::new().unwrap();
                            let out =
                                vec![created.fd().as_raw_fd(), to_switch.raw(), to_client.raw()];
                            let response = Response::PortOpened {
                                port,
                                ring_size: layout.ring_size,
                                buf_size: layout.buf_size,
                                region_len: created.len() as u64,
                                created: true,
                            };
                            *region.lock().unwrap() = Some(created);
                            eventfds.extend([to_switch, to_client]);
                            (response, out)
                        }
                        Request::OffloadPort {
                            port,
                            memory_size,
                            handover,
                        } => {
                            let _ = tell.send(Seen::Offload {
                                memory_size,
                                handover,
                                fds,
                            });
                            let response = match answers {
                                Answers::Refuse => Response::Error {
                                    code: ErrorCode::BadRequest,
                                    message: "unknown request offload_port".into(),
                                },
                                Answers::GarbleOffload => Response::Reclaimed {
                                    port,
                                    hand_back: HandBack::default(),
                                },
                                _ => Response::Done,
                            };
                            (response, vec![])
                        }
                        Request::ReclaimPort { .. } if answers == Answers::GarbleReclaim => {
                            let _ = tell.send(Seen::Reclaim);
                            (Response::Done, vec![])
                        }
                        Request::ReclaimPort { port } => {
                            let _ = tell.send(Seen::Reclaim);
                            let hand_back = hand_back.lock().unwrap().clone();
                            (Response::Reclaimed { port, hand_back }, vec![])
                        }
                        other => panic!("the fake daemon got {other:?}"),
                    };
                    let payload = serde_json::to_vec(&response).unwrap();
                    if wire::send(&stream, DIR_RESPONSE, &payload, &out).is_err() {
                        break;
                    }
                }
                let _ = tell.send(Seen::Closed);
            })
        };
        FakeDaemon {
            _dir: dir,
            socket,
            seen,
            hand_back,
            region,
            connection,
            thread: Some(thread),
        }
    }

    /// The next thing the daemon received (waiting, bounded).
    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(PATIENCE)
            .expect("the fake daemon received nothing")
    }

    /// Nothing more was received.
    fn nothing_more(&self) {
        if let Ok(seen) = self.seen.try_recv() {
            panic!("the fake daemon also received {seen:?}");
        }
    }

    /// Puts `count` frames for the NIC in the port's RX ring, as the
    /// switch does, numbered from 0.
    fn deliver(&self, count: u32) {
        self.deliver_numbered(0..u64::from(count));
    }

    /// Puts frames numbered `seqs` for the NIC in the port's RX ring.
    fn deliver_numbered(&self, seqs: std::ops::Range<u64>) {
        let region = self.region.lock().unwrap();
        let region = region.as_ref().expect("the port is open");
        let template = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, 60).unwrap();
        let rx = region.rx_ring();
        let ring_size = region.layout().ring_size;
        let tail = rx.tail().load(Ordering::Acquire);
        let count = (seqs.end - seqs.start) as u32;
        for (i, seq) in (0..count).zip(seqs) {
            let index = rx.advance(tail, i);
            let buf = ring_size + index;
            let ptr = region.buffer(buf).unwrap().as_ptr();
            // SAFETY: the buffer is inside the mapping, 2048 bytes long, and
            // belongs to the switch side until the tail moves past it.
            let frame = unsafe { std::slice::from_raw_parts_mut(ptr, 2048) };
            let len = template.write(frame, seq, 0);
            rx.write_slot(
                index,
                Slot {
                    buf,
                    len: len as u16,
                    flags: 0,
                },
            );
        }
        rx.tail().store(rx.advance(tail, count), Ordering::Release);
    }

    /// Takes the frames the VMM published in the port's TX ring, as the
    /// switch does; returns their sequence numbers.
    fn take_transmitted(&self) -> Vec<u64> {
        let region = self.region.lock().unwrap();
        let region = region.as_ref().expect("the port is open");
        let tx = region.tx_ring();
        let head = tx.head().load(Ordering::Acquire);
        let mut tail = tx.tail().load(Ordering::Relaxed);
        let mut seqs = Vec::new();
        loop {
            let next = tx.advance(tail, 1);
            if next == head {
                break;
            }
            let slot = tx.read_slot(next);
            let ptr = region.buffer(slot.buf).unwrap().as_ptr();
            // SAFETY: a buffer inside the mapping, the slot's length at most
            // the buffer size, owned by the switch side until tail moves.
            let frame = unsafe { std::slice::from_raw_parts(ptr, usize::from(slot.len)) };
            seqs.push(testframe::parse(frame).unwrap().seq);
            tail = next;
        }
        tx.tail().store(tail, Ordering::Release);
        seqs
    }

    /// Closes the connection, as a daemon that exits does.
    fn hang_up(&self) {
        if let Some(stream) = self.connection.lock().unwrap().take() {
            stream.shutdown(std::net::Shutdown::Both).unwrap();
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.hang_up();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// -------------------------------------------------------------------- rig

/// A NIC with `offload=on` on the fake daemon's port, played by the test.
struct Rig {
    dma: GuestDma,
    net: Arc<NetDevice>,
    stats: Arc<Stats>,
    _vm: Arc<kvm_ioctls::VmFd>,
}

fn rig(daemon: &FakeDaemon) -> Option<Rig> {
    rig_on(&daemon.socket)
}

/// A NIC with `offload=on` on port [`PORT`] of the daemon at `socket`.
fn rig_on(socket: &Path) -> Option<Rig> {
    let Ok(kvm) = Kvm::new() else {
        testbed::skip_or_fail("no /dev/kvm");
        return None;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    vm.create_irq_chip().unwrap();
    let ram = Arc::new(GuestRam::new(RAM).unwrap());
    let stats = Arc::new(Stats::new());
    let irq = Arc::new(IrqLine::new(&vm, 11, IrqMode::Edge, Arc::clone(&stats)).unwrap());
    let mut config = NetConfig::new(BackendSpec::Switch(PORT.into()), socket.to_owned(), MAC);
    config.mitigation = false;
    config.offload = true;
    let port = switch::open(socket, PORT, MAC).unwrap();
    // No VM for the device: the TDT ioeventfd stays unregistered and TDT
    // writes reach the device as exits (the offload passes them on).
    let net = NetDevice::with_port(
        &config,
        Box::new(port),
        None,
        Arc::clone(&ram),
        irq,
        Arc::clone(&stats),
    )
    .unwrap();
    Some(Rig {
        dma: GuestDma::new(ram),
        net: Arc::new(net),
        stats,
        _vm: vm,
    })
}

impl Rig {
    fn write_reg(&self, offset: u32, value: u32) {
        assert!(self
            .net
            .mmio_write(0, u64::from(offset), &value.to_le_bytes()));
    }

    fn read_reg(&self, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        assert!(self.net.mmio_read(0, u64::from(offset), &mut data));
        u32::from_le_bytes(data)
    }

    fn set_csb(&self, f: usize, value: u32) {
        self.dma.write_u32(CSB + f as u64, value).unwrap();
    }

    fn csb(&self, f: usize) -> u32 {
        self.dma.read_u32(CSB + f as u64).unwrap()
    }

    /// Rings, `rx_buffers` free RX buffers, interrupts enabled, then the
    /// CSB (guest_csb_on set).
    fn init(&self, rx_buffers: u32) {
        for i in 0..u64::from(RING) {
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&(RX_BUFS + i * 2048).to_le_bytes());
            self.dma.write(RX_RING + i * 16, &desc).unwrap();
        }
        self.write_reg(r::TDBAL, TX_RING as u32);
        self.write_reg(r::TDLEN, RING * 16);
        self.write_reg(r::RDBAL, RX_RING as u32);
        self.write_reg(r::RDLEN, RING * 16);
        self.write_reg(r::IMS, ICR_TXDW | ICR_RXT0);
        self.write_reg(r::TCTL, 0x2 | 0x8);
        self.write_reg(r::RCTL, 0x2 | 0x8000 | (1 << 26)); // EN | BAM | SECRC
        self.set_csb(field::GUEST_TDT, 0);
        self.set_csb(field::GUEST_RDT, rx_buffers);
        self.set_csb(field::GUEST_TXKICK_AT, u32::MAX);
        self.set_csb(field::GUEST_CSB_ON, 1);
        self.write_reg(CSBAH, 0);
        self.write_reg(CSBAL, CSB as u32);
        // Mapped (and with an I/O thread running, maybe handed over).
        assert!(self.net.csb_mapped(), "{:?}", self.net.data_path());
    }

    /// One net worker round, as the I/O thread runs it; true if the data
    /// path was handed over (the worker stops).
    fn worker_round(&self) -> bool {
        self.net.begin_polling();
        let handed_over = self.net.poll().is_none();
        assert_eq!(
            handed_over,
            self.net.data_path() == DataPath::Offloaded(CSB),
            "{:?}",
            self.net.data_path()
        );
        assert_eq!(handed_over, self.net.offloaded());
        handed_over
    }

    /// Hands over and returns what the daemon received.
    fn hand_over(&self, daemon: &FakeDaemon) -> (u64, Handover, Vec<OwnedFd>) {
        assert!(self.worker_round(), "handed over");
        match daemon.next() {
            Seen::Offload {
                memory_size,
                handover,
                fds,
            } => (memory_size, handover, fds),
            other => panic!("expected an offload, got {other:?}"),
        }
    }
}

/// The value of register `offset` in a hand-over.
fn register(handover: &Handover, offset: u32) -> u32 {
    handover
        .registers
        .iter()
        .find(|&&(o, _)| o == offset)
        .map_or(0, |&(_, v)| v)
}

/// Writes 1 to eventfd `fd`.
fn signal(fd: RawFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write from our buffer to an eventfd.
    assert_eq!(unsafe { libc::write(fd, one.as_ptr().cast(), 8) }, 8);
}

/// Reads eventfd `fd` without waiting: its count (0 when not signalled).
fn take(fd: RawFd) -> u64 {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own, no wait.
    if unsafe { libc::poll(&mut pfd, 1, 0) } != 1 {
        return 0;
    }
    let mut count = [0u8; 8];
    // SAFETY: an 8-byte read into our buffer from a readable eventfd.
    assert_eq!(unsafe { libc::read(fd, count.as_mut_ptr().cast(), 8) }, 8);
    u64::from_ne_bytes(count)
}

// ------------------------------------------------------- the daemon's walk

/// Guest memory as the daemon sees it: the memfd it was handed, mapped.
struct MappedMemory {
    ptr: *mut u8,
    len: usize,
}

impl MappedMemory {
    fn map(fd: &OwnedFd, len: u64) -> MappedMemory {
        let len = len as usize;
        // SAFETY: a new shared mapping of a memfd of at least `len` bytes
        // (sealed at its size); checked below, unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mapping guest memory");
        MappedMemory {
            ptr: ptr.cast(),
            len,
        }
    }

    /// The range `gpa..gpa + len` as an offset, if inside.
    fn offset(&self, gpa: u64, len: usize) -> Result<usize, DmaError> {
        let error = DmaError { gpa, len };
        let start = usize::try_from(gpa).map_err(|_| error)?;
        match start.checked_add(len) {
            Some(end) if end <= self.len => Ok(start),
            _ => Err(error),
        }
    }
}

impl Drop for MappedMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `map`, used no more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

impl Dma for MappedMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let at = self.offset(gpa, buf.len())?;
        // SAFETY: `at..at + len` is inside the mapping (checked).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(at), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError> {
        let at = self.offset(gpa, data.len())?;
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(at), data.len()) };
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.offset(gpa, len as usize).is_ok()
    }
}

/// The guest's driver on its rings: numbered frames out, numbered frames in.
#[derive(Default)]
struct Guest {
    tx_tail: u32,
    tx_seq: u64,
    rx_next: u32,
    received: Vec<u64>,
}

impl Guest {
    /// Queues `count` frames, publishes guest_tdt and kicks if the device
    /// (the VMM's worker or the daemon) sleeps.
    fn send_and_kick(&mut self, rig: &Rig, count: u32) {
        self.send(rig, count);
        std::sync::atomic::fence(Ordering::SeqCst);
        if rig.csb(field::HOST_NEED_TXKICK) != 0 {
            rig.net.signal_tdt_kick();
        }
    }

    /// Queues `count` frames and publishes guest_tdt.
    fn send(&mut self, rig: &Rig, count: u32) {
        let template = testframe::FrameTemplate::new(PEER, MAC, testframe::Kind::Data, 60).unwrap();
        for _ in 0..count {
            let clean = rig.csb(field::HOST_TDH);
            assert_ne!((clean + RING - self.tx_tail - 1) % RING, 0, "TX ring full");
            let i = u64::from(self.tx_tail);
            let buf = TX_BUFS + i * 2048;
            let mut frame = [0u8; 60];
            template.write(&mut frame, self.tx_seq, 0);
            rig.dma.write(buf, &frame).unwrap();
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&buf.to_le_bytes());
            desc[8..10].copy_from_slice(&60u16.to_le_bytes());
            desc[11] = 0x01 | 0x02 | 0x08; // EOP | IFCS | RS
            rig.dma.write(TX_RING + i * 16, &desc).unwrap();
            self.tx_tail = (self.tx_tail + 1) % RING;
            self.tx_seq += 1;
        }
        rig.set_csb(field::GUEST_TDT, self.tx_tail);
    }

    /// Takes every received frame and gives its buffer back (guest_rdt).
    fn receive(&mut self, rig: &Rig) {
        loop {
            let desc = RX_RING + u64::from(self.rx_next) * 16;
            let mut bytes = [0u8; 16];
            rig.dma.read(desc, &mut bytes).unwrap();
            if bytes[12] & 1 == 0 {
                break;
            }
            let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            let mut frame = vec![0u8; len];
            let buf = RX_BUFS + u64::from(self.rx_next) * 2048;
            rig.dma.read(buf, &mut frame).unwrap();
            self.received.push(testframe::parse(&frame).unwrap().seq);
            rig.dma.write(desc + 12, &[0]).unwrap();
            self.rx_next = (self.rx_next + 1) % RING;
        }
        rig.set_csb(field::GUEST_RDT, (self.rx_next + RING - 1) % RING);
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn the_data_path_goes_to_the_daemon_and_comes_back_whole() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    // The guest has buffers for 2 frames, the switch has 5 waiting: 2 go
    // into the guest at the hand-over, 3 are dropped and counted.
    rig.init(2);
    daemon.deliver(5);
    let (memory_size, handover, fds) = rig.hand_over(&daemon);
    assert_eq!(rig.stats.offload.handovers.get(), 1);
    assert_eq!(rig.stats.offload.handover_drops.get(), 3);
    assert_eq!(rig.stats.rx.packets.get(), 2);
    assert_eq!(
        rig.csb(field::HOST_RDH),
        2,
        "delivered before the hand-over"
    );

    // What the daemon got: guest memory sealed at its size, the state.
    assert_eq!(memory_size, RAM);
    assert_eq!(fds.len(), 4, "memfd, kick, rx-call, tx-call");
    // SAFETY: F_GET_SEALS on a descriptor the test owns.
    let seals = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GET_SEALS) };
    assert_ne!(seals & libc::F_SEAL_SHRINK, 0, "seals {seals:#x}");
    assert_ne!(seals & libc::F_SEAL_GROW, 0, "seals {seals:#x}");
    assert_eq!(handover.csb_address, CSB);
    assert_eq!(register(&handover, r::TDBAL), TX_RING as u32);
    assert_eq!(register(&handover, r::RDLEN), RING * 16);
    assert_eq!(register(&handover, r::RDH), 2);
    for (offset, _) in &handover.registers {
        assert!(
            vmm::e1000::offload::is_data_path_register(*offset),
            "{offset:#x}"
        );
    }

    // The kick the daemon sleeps on is the device's TDT eventfd; a TDT
    // write that exits is passed on to it.
    let kick = fds[1].as_raw_fd();
    signal(kick);
    assert_eq!(take(rig.net.tdt_kick_fd()), 1, "the same eventfd");
    rig.write_reg(r::TDT, 3);
    assert_eq!(take(kick), 1, "a TDT write is a kick for the daemon");
    assert_eq!(rig.stats.offload.kicks_passed.get(), 1);
    // Registers the VMM serves alone keep the data path offloaded.
    rig.write_reg(r::IMS, ICR_TXDW | ICR_RXT0);
    assert_eq!(rig.read_reg(r::STATUS) & 2, 2, "link up");
    assert_eq!(rig.net.data_path(), DataPath::Offloaded(CSB));

    // The daemon's calls raise the guest's interrupts.
    let injected = rig.stats.irq.injected.get();
    signal(fds[2].as_raw_fd());
    assert!(!rig.net.on_offload_call(), "still offloaded: no polling");
    assert_eq!(rig.stats.offload.rx_calls.get(), 1);
    assert!(rig.stats.irq.injected.get() > injected, "an interrupt");
    assert_eq!(rig.read_reg(r::ICR) & ICR_RXT0, ICR_RXT0);
    signal(fds[3].as_raw_fd());
    assert!(!rig.net.on_offload_call());
    assert_eq!(rig.stats.offload.tx_calls.get(), 1);
    assert_eq!(rig.read_reg(r::ICR) & ICR_TXDW, ICR_TXDW);
    daemon.nothing_more();

    // A register the daemon's walk owns takes the data path back first:
    // the hand-back's heads and statistics are the device's again.
    let mut statistics = vec![0u32; 64];
    statistics[((e1000_spec::stats::GPRC - e1000_spec::stats::START) / 4) as usize] = 5;
    *daemon.hand_back.lock().unwrap() = HandBack {
        tdh: 7,
        tdt: 7,
        rdh: 9,
        rdt: 200,
        statistics,
        ..HandBack::default()
    };
    assert_eq!(rig.read_reg(r::TDH), 7);
    assert!(matches!(daemon.next(), Seen::Reclaim));
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
    assert!(!rig.net.offloaded());
    assert_eq!(rig.stats.offload.reclaims.get(), 1);
    assert_eq!(rig.read_reg(r::RDH), 9);
    assert_eq!(
        rig.read_reg(e1000_spec::stats::GPRC),
        2 + 5,
        "the VMM's receptions and the daemon's"
    );

    // The next hand-over carries the state that came back.
    let (_, again, _) = rig.hand_over(&daemon);
    assert_eq!(register(&again, r::TDH), 7);
    assert_eq!(register(&again, r::RDH), 9);
    assert_eq!(rig.stats.offload.handovers.get(), 2);

    // The daemon goes away: the link watcher's port change takes the data
    // path back from the heads the daemon last published in the CSB.
    rig.set_csb(field::HOST_TDH, 11);
    rig.set_csb(field::HOST_RDH, 12);
    daemon.hang_up();
    let down = SinkPort::link_down(Arc::clone(&rig.stats)).unwrap();
    rig.net.replace_port(Box::new(down), false);
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
    assert_eq!(rig.stats.offload.abandoned.get(), 1);
    assert_eq!(rig.read_reg(r::TDH), 11);
    assert_eq!(rig.read_reg(r::RDH), 12);
    assert!(!rig.worker_round(), "the link-down port cannot offload");
}

#[test]
fn a_refusing_daemon_is_asked_once_and_the_device_stays_in_csb_mode() {
    let daemon = FakeDaemon::start(Answers::Refuse);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    for _ in 0..5 {
        assert!(!rig.worker_round(), "stays in CSB mode");
    }
    assert!(matches!(daemon.next(), Seen::Offload { .. }));
    daemon.nothing_more();
    assert_eq!(rig.stats.offload.refusals.get(), 1);
    assert_eq!(rig.stats.offload.handovers.get(), 0);
    // Remapping the CSB elsewhere is worth another try.
    rig.write_reg(CSBAL, 0);
    assert_eq!(rig.net.data_path(), DataPath::Registers);
    rig.write_reg(CSBAL, CSB as u32);
    assert!(!rig.worker_round());
    assert!(matches!(daemon.next(), Seen::Offload { .. }));
    assert_eq!(rig.stats.offload.refusals.get(), 2);
}

#[test]
fn the_guest_leaving_csb_mode_or_resetting_takes_the_data_path_back() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    let (_, _, fds) = rig.hand_over(&daemon);
    // The guest clears guest_csb_on; the daemon stops and calls.
    rig.set_csb(field::GUEST_CSB_ON, 0);
    signal(fds[3].as_raw_fd());
    assert!(rig.net.on_offload_call(), "the worker resumes");
    assert!(matches!(daemon.next(), Seen::Reclaim));
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
    assert!(!rig.worker_round(), "no hand-over without guest_csb_on");
    daemon.nothing_more();

    // Back in CSB mode, handed over again; a device reset takes it back.
    rig.set_csb(field::GUEST_CSB_ON, 1);
    rig.hand_over(&daemon);
    rig.write_reg(r::CTRL, 1 << 26); // RST
    assert!(matches!(daemon.next(), Seen::Reclaim));
    assert_eq!(rig.net.data_path(), DataPath::Registers);
    assert_eq!(rig.stats.offload.reclaims.get(), 2);
}

#[test]
fn bus_mastering_off_takes_the_data_path_back() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    rig.hand_over(&daemon);
    rig.net.set_bus_master(false);
    assert!(matches!(daemon.next(), Seen::Reclaim));
    assert!(!rig.net.offloaded());
    assert!(!rig.worker_round(), "no DMA, no hand-over");
}

#[test]
fn the_link_watcher_takes_no_exchange_for_a_dead_daemon() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    let target = LinkTarget {
        socket: daemon.socket.clone(),
        port: PORT.into(),
        mac: MAC,
    };
    let control_fd = rig.net.control_fd().unwrap();
    let watch = LinkWatch::spawn_sandboxed(
        Arc::clone(&rig.net),
        target,
        control_fd,
        Arc::clone(&rig.stats),
        None,
    )
    .unwrap();
    for round in 0..20 {
        rig.hand_over(&daemon);
        assert_eq!(rig.read_reg(r::TDH), 0, "round {round}");
        assert!(matches!(daemon.next(), Seen::Reclaim));
    }
    // The watcher had every answer under its nose and let them be.
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        assert_eq!(rig.stats.link.down.get(), 0, "the link stayed up");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A daemon that really goes away is still noticed.
    daemon.hang_up();
    wait_until("link down", || rig.stats.link.down.get() > 0);
    watch.stop();
}

#[test]
fn frames_cross_hand_overs_both_ways_once_and_in_order() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    let mut guest = Guest::default();
    let mut sent = Vec::new();
    let mut rx_seq = 0u64;
    let mut switch_rx = |count: u64| {
        let seqs = rx_seq..rx_seq + count;
        rx_seq += count;
        seqs
    };
    for round in 0..6 {
        // The VMM walks the rings (the vCPU thread's rounds at a poll-port
        // exit, which never hand over).
        guest.send(&rig, 7);
        daemon.deliver_numbered(switch_rx(5));
        assert!(rig.net.poll_once(), "round {round}: the VMM moved frames");
        sent.extend(daemon.take_transmitted());
        guest.receive(&rig);

        // More waits on both sides; the worker hands over: the port's RX
        // frames go into the guest first, the guest's TX frames go to the
        // daemon.
        guest.send(&rig, 9);
        daemon.deliver_numbered(switch_rx(4));
        let (memory_size, handover, fds) = rig.hand_over(&daemon);
        guest.receive(&rig);
        let memory = MappedMemory::map(&fds[0], memory_size);
        let mut rings = OffloadedRings::new(&handover, &memory).unwrap();
        let mut backend = QueueBackend::new(2048, 1024);

        // The daemon walks: the queued frames and more, both ways.
        guest.send(&rig, 3);
        for seq in switch_rx(6) {
            let mut frame = [0u8; 60];
            testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, 60)
                .unwrap()
                .write(&mut frame, seq, 0);
            backend.push_rx(&frame);
        }
        rings.transmit(&memory, &mut backend);
        rings.receive(&memory, &mut backend);
        assert!(backend.receive_queue.is_empty(), "round {round}");
        sent.extend(
            backend
                .transmitted
                .drain(..)
                .map(|frame| testframe::parse(&frame).unwrap().seq),
        );
        guest.receive(&rig);
        // The guest queues frames the daemon will not walk before it is
        // asked back: the VMM sends them.
        guest.send(&rig, 2);
        *daemon.hand_back.lock().unwrap() = rings.hand_back();
        assert_eq!(rig.read_reg(r::TDH), rings.hand_back().tdh);
        assert!(matches!(daemon.next(), Seen::Reclaim));
    }
    assert!(rig.net.poll_once());
    sent.extend(daemon.take_transmitted());
    guest.receive(&rig);
    let all_sent: Vec<u64> = (0..guest.tx_seq).collect();
    assert_eq!(sent, all_sent, "transmitted once each, in order");
    let all_received: Vec<u64> = (0..rx_seq).collect();
    assert_eq!(guest.received, all_received, "received once each, in order");
    assert_eq!(rig.stats.offload.handover_drops.get(), 0);
    assert_eq!(rig.stats.offload.handovers.get(), 6);
    assert_eq!(rig.stats.offload.reclaims.get(), 6);
    daemon.nothing_more();
}

#[test]
fn the_io_thread_hands_over_and_notices_a_departed_daemon_by_itself() {
    let daemon = FakeDaemon::start(Answers::Serve);
    let Some(rig) = rig(&daemon) else { return };
    let io = IoThread::spawn(IoSources {
        net: Some(Arc::clone(&rig.net)),
        stats: Arc::clone(&rig.stats),
        stats_json: None,
    })
    .unwrap();
    // Mapping the CSB wakes the net worker, which hands over.
    rig.init(RING - 1);
    assert!(matches!(daemon.next(), Seen::Offload { .. }));
    wait_until("the hand-over", || rig.net.offloaded());
    // No link watcher (`--no-reconnect`): the I/O thread sees the
    // connection end and takes the data path back from the CSB.
    daemon.hang_up();
    wait_until("the data path back", || !rig.net.offloaded());
    assert_eq!(rig.stats.offload.abandoned.get(), 1);
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
    io.stop();
}

/// Waits (bounded) until `done`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The `vswitch` binary built with the workspace, if there is one.
fn vswitch() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_vmm")).with_file_name("vswitch");
    if path.exists() {
        Some(path)
    } else {
        testbed::skip_or_fail(format_args!(
            "needs {} (cargo build -p switch-user)",
            path.display()
        ));
        None
    }
}

/// The same exchange with the real daemon, whose forwarding thread walks
/// the guest's rings between a hand-over and a reclaim: frames between the
/// guest and a peer port cross five hand-overs and reclaims both ways,
/// once each and in order.
#[test]
fn frames_cross_hand_overs_through_a_real_daemon() {
    let Some(vswitch) = vswitch() else { return };
    let daemon = testbed::Daemon::builder()
        .binary(&vswitch)
        .args(["--threads", "1"])
        .start()
        .expect("start vswitch daemon");
    let Some(rig) = rig_on(daemon.socket()) else {
        return;
    };
    let mut peer = switch_port::PortClient::open(
        daemon.socket(),
        "vale0:peer",
        switch_port::PortConfig {
            mac: Some(switch_port::mac::MacAddr(PEER)),
            ..Default::default()
        },
    )
    .unwrap();
    rig.init(RING - 1);
    let mut guest = Guest::default();
    let mut peer_got = Vec::new();
    let mut peer_seq = 0u64;
    let template = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, 60).unwrap();
    let log = |rig: &Rig| format!("{}\n{}", rig.stats.summary(0), daemon.log());
    for round in 0..5 {
        // Offloaded: the daemon carries the guest's frames to the peer and
        // the peer's into the guest's RX ring.
        if !rig.net.offloaded() {
            assert!(rig.worker_round(), "round {round}: {}", log(&rig));
        }
        guest.send_and_kick(&rig, 20);
        let want = guest.tx_seq;
        wait_until("the guest's frames at the peer", || {
            peer.recv(64, |frame| {
                peer_got.push(testframe::parse(frame).unwrap().seq);
            });
            peer_got.len() as u64 >= want
        });
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|i| {
                let mut frame = vec![0u8; 60];
                template.write(&mut frame, peer_seq + i, 0);
                frame
            })
            .collect();
        assert_eq!(peer.send(frames.iter().map(Vec::as_slice)), 10);
        peer_seq += 10;
        wait_until("the peer's frames in the guest", || {
            guest.receive(&rig);
            guest.received.len() as u64 >= peer_seq
        });

        // A register the daemon's walk owns: the data path comes back with
        // the heads the guest sees in the CSB.
        let tdh = rig.read_reg(r::TDH);
        assert!(!rig.net.offloaded(), "round {round}: reclaimed");
        assert_eq!(tdh, rig.csb(field::HOST_TDH), "round {round}");
        assert_eq!(tdh, guest.tx_tail, "round {round}: all sent");

        // The VMM carries frames itself (the vCPU's poll-port rounds).
        guest.send(&rig, 5);
        assert!(rig.net.poll_once());
        let want = guest.tx_seq;
        wait_until("the VMM's frames at the peer", || {
            peer.recv(64, |frame| {
                peer_got.push(testframe::parse(frame).unwrap().seq);
            });
            peer_got.len() as u64 >= want
        });
    }
    assert_eq!(peer_got, (0..guest.tx_seq).collect::<Vec<_>>());
    assert_eq!(guest.received, (0..peer_seq).collect::<Vec<_>>());
    assert_eq!(rig.stats.offload.reclaims.get(), 5, "{}", log(&rig));
    assert_eq!(rig.stats.offload.refusals.get(), 0);
    assert_eq!(rig.stats.offload.abandoned.get(), 0);
}

#[test]
fn a_reclaim_gone_wrong_ends_the_connection_and_takes_the_csb_heads() {
    let daemon = FakeDaemon::start(Answers::GarbleReclaim);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    rig.hand_over(&daemon);
    rig.set_csb(field::HOST_TDH, 4);
    // The daemon may still hold the rings: the VMM hangs up on it (a real
    // daemon then lets go of the guest's memory) and trusts the CSB.
    assert_eq!(rig.read_reg(r::TDH), 4);
    assert!(matches!(daemon.next(), Seen::Reclaim));
    assert!(matches!(daemon.next(), Seen::Closed));
    assert_eq!(rig.stats.offload.reclaims.get(), 0);
    assert_eq!(rig.stats.offload.abandoned.get(), 1);
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
}

#[test]
fn a_hand_over_gone_wrong_ends_the_connection() {
    let daemon = FakeDaemon::start(Answers::GarbleOffload);
    let Some(rig) = rig(&daemon) else { return };
    rig.init(RING - 1);
    // The daemon may have taken the rings without the VMM knowing it: the
    // VMM hangs up (a real daemon then lets go) and keeps them.
    assert!(!rig.worker_round());
    assert!(matches!(daemon.next(), Seen::Offload { .. }));
    assert!(matches!(daemon.next(), Seen::Closed));
    assert_eq!(rig.stats.offload.refusals.get(), 1);
    assert_eq!(rig.net.data_path(), DataPath::Csb(CSB));
}
