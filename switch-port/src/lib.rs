//! The client side of a vswitch port: what a VM, a packet generator or any
//! other application needs to move frames through a `vswitch` daemon, and
//! nothing of the daemon itself.
//!
//! A client connects to the daemon's control socket, opens a port by name
//! (`vale0:app`; the port is created on first open and removed when its
//! client leaves) and receives a memfd holding two netmap-style rings and
//! their buffers, plus two eventfds for kicks. Frames then move without
//! system calls: the client fills TX slots in place and publishes a batch
//! with one index store, and takes RX frames in place and returns their slots
//! with one store; a kick is only sent to a side that said it sleeps.
//!
//! The protocol this crate implements, control messages, port memory, ring
//! rules, kicks and the life cycle of a port, is specified in the
//! repository's `docs/port-protocol.md` (version 1), written so that a
//! client in any language can be implemented from it alone (a Python one in
//! `tests/python/` is); the names used here (`open_port`, `port_opened`,
//! `head`/`cur`/`tail`, `consumer_needs_kick`, `producer_needs_kick`,
//! `to_switch`, `to_client`, the region header) are the specification's.
//!
//! - [`client`]: [`PortClient`], the port API (`reserve`/`commit`/`publish`,
//!   `peek`/`consume`/`release_rx`, `wait` and the kick fd);
//! - [`layout`], [`region`], [`ring`], [`eventfd`]: the shared-memory layout
//!   (with a diagram), its mapping, the ring views and the kicks;
//! - [`protocol`] and [`control`]: the control protocol, its wire format and
//!   a connection to the daemon (listings, counters, persistent ports);
//! - [`names`], [`mac`]: switch and port names, MAC addresses;
//! - [`error_chain`]: an error and its causes on one line.
//!
//! Everything handed out by safe code borrows what it points into: a ring
//! view borrows its [`region::Region`], a frame borrows its [`PortClient`], so
//! none can be used after the memory is unmapped.
//!
//! # Example
//!
//! Two ports on the switch `vale0`: `app` sends a batch of broadcast frames
//! and `peer` receives it. (The example starts a `vswitch` daemon of this
//! workspace on a private socket; build it first with
//! `cargo build --release --bin vswitch`, which `cargo xtask test` does.)
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let daemon = doc_daemon::Daemon::start();
//! # std::env::set_var("VSWITCH_SOCKET", daemon.socket());
//! use std::time::{Duration, Instant};
//!
//! use switch_port::control::client::socket_path;
//! use switch_port::{Interest, PortClient, PortConfig};
//!
//! // --socket, else $VSWITCH_SOCKET, else /run/vswitch/vswitch.sock.
//! let socket = socket_path(None);
//! let mut app = PortClient::open(&socket, "vale0:app", PortConfig::default())?;
//! let mut peer = PortClient::open(&socket, "vale0:peer", PortConfig::default())?;
//!
//! // A 60-byte Ethernet frame: broadcast, from 02:00:00:00:00:01.
//! let mut frame = [0u8; 60];
//! frame[..6].fill(0xff);
//! frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
//! frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
//!
//! // Send a batch: fill free TX slots in place, then publish them at once
//! // (one index store, and a kick only if the switch sleeps).
//! const BATCH: usize = 32;
//! for _ in 0..BATCH {
//!     let Some(buf) = app.reserve() else { break }; // the ring is full
//!     buf[..frame.len()].copy_from_slice(&frame);
//!     app.commit(frame.len());
//! }
//! assert_eq!(app.publish(), BATCH);
//!
//! // Receive a batch: wait for frames (poll for 50 us, then sleep on the
//! // kick eventfd), handle up to 512 in place and return their slots at once.
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let mut received = 0;
//! while received < BATCH && Instant::now() < deadline {
//!     peer.wait(Interest::RX, Duration::from_micros(50), Some(Duration::from_millis(100)))?;
//!     received += peer.recv(512, |rx| assert_eq!(rx, &frame[..]));
//! }
//! assert_eq!(received, BATCH);
//! # Ok(())
//! # }
//! #
//! # /// Runs the workspace's `vswitch daemon` on a socket in a fresh directory
//! # /// and ends it by its PID when dropped (also when the example fails).
//! # mod doc_daemon {
//! #     use std::os::unix::net::UnixStream;
//! #     use std::path::{Path, PathBuf};
//! #     use std::process::{Child, Command, Stdio};
//! #     use std::time::{Duration, Instant};
//! #
//! #     pub struct Daemon {
//! #         child: Child,
//! #         dir: PathBuf,
//! #     }
//! #
//! #     /// `$VSWITCH_BIN`, else the newest of the workspace's
//! #     /// `target/{release,debug}/vswitch`.
//! #     fn binary() -> PathBuf {
//! #         if let Some(bin) = std::env::var_os("VSWITCH_BIN") {
//! #             return PathBuf::from(bin);
//! #         }
//! #         let target = std::env::var_os("CARGO_TARGET_DIR")
//! #             .map(PathBuf::from)
//! #             .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
//! #         let modified = |p: &PathBuf| p.metadata().and_then(|m| m.modified()).ok();
//! #         ["release", "debug"]
//! #             .iter()
//! #             .map(|profile| target.join(profile).join("vswitch"))
//! #             .filter(|p| p.exists())
//! #             .max_by_key(modified)
//! #             .unwrap_or_else(|| {
//! #                 panic!(
//! #                     "this example needs the vswitch binary, found neither {0}/release/vswitch \
//! #                      nor {0}/debug/vswitch: build it with `cargo build --release --bin vswitch` \
//! #                      (cargo xtask test does) or point VSWITCH_BIN at one",
//! #                     target.display()
//! #                 )
//! #             })
//! #     }
//! #
//! #     impl Daemon {
//! #         pub fn start() -> Daemon {
//! #             let bin = binary();
//! #             let dir = std::env::temp_dir().join(format!("switch-port-doc-{}", std::process::id()));
//! #             let _ = std::fs::remove_dir_all(&dir);
//! #             std::fs::create_dir_all(&dir).expect("create the example's temp dir");
//! #             let child = Command::new(&bin)
//! #                 .arg("daemon")
//! #                 .arg("--socket")
//! #                 .arg(dir.join("vswitch.sock"))
//! #                 .args(["--threads", "1"])
//! #                 .stdin(Stdio::null())
//! #                 .stdout(Stdio::null())
//! #                 .spawn()
//! #                 .unwrap_or_else(|e| {
//! #                     let _ = std::fs::remove_dir_all(&dir);
//! #                     panic!("cannot start {}: {e}", bin.display())
//! #                 });
//! #             let mut daemon = Daemon { child, dir };
//! #             let started = Instant::now();
//! #             while UnixStream::connect(daemon.socket()).is_err() {
//! #                 if let Ok(Some(status)) = daemon.child.try_wait() {
//! #                     panic!("{} exited ({status}) before listening", bin.display());
//! #                 }
//! #                 if started.elapsed() > Duration::from_secs(10) {
//! #                     panic!("{} did not listen on {} within 10 s", bin.display(), daemon.socket().display());
//! #                 }
//! #                 std::thread::sleep(Duration::from_millis(10));
//! #             }
//! #             daemon
//! #         }
//! #
//! #         pub fn socket(&self) -> PathBuf {
//! #             self.dir.join("vswitch.sock")
//! #         }
//! #     }
//! #
//! #     impl Drop for Daemon {
//! #         fn drop(&mut self) {
//! #             // Child::kill signals this child's PID only.
//! #             let _ = self.child.kill();
//! #             let _ = self.child.wait();
//! #             let _ = std::fs::remove_dir_all(&self.dir);
//! #         }
//! #     }
//! # }
//! ```

pub mod client;
pub mod control;
pub mod error_chain;
pub mod eventfd;
pub mod layout;
pub mod mac;
pub mod names;
pub mod protocol;
pub mod region;
pub mod ring;

pub use client::{ClientStats, Interest, OpenError, PortClient, PortConfig};
