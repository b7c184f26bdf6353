//! `docs/port-protocol.md` against this crate: the byte-exact examples are
//! what the code sends and accepts, every message kind and error code has
//! one, and the tables of offsets are the layout's constants. A change to
//! either side that the other does not follow fails here.

use std::collections::BTreeSet;

use switch_port::layout::{self, header_field, ring_field, Layout};
use switch_port::protocol::{
    ErrorCode, Header, Request, Response, DIR_REQUEST, DIR_RESPONSE, HEADER_LEN, OFFLOAD_FDS,
    PORT_FDS, VERSION,
};

const SPEC: &str = include_str!("../../docs/port-protocol.md");

/// One example of §3.4: its header bytes and payload.
struct Example {
    header: [u8; HEADER_LEN],
    payload: String,
}

/// Every "header `..`" line followed by a fenced payload.
fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = SPEC.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.split_once("header `").map(|(_, r)| r) else {
            continue;
        };
        let Some((hex, _)) = rest.split_once('`') else {
            continue;
        };
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        let header: [u8; HEADER_LEN] = bytes.try_into().expect("16 header bytes");
        let fence = lines
            .by_ref()
            .find(|l| l.starts_with("```"))
            .expect("fence");
        assert_eq!(fence, "```json", "after {line}");
        let payload = lines.next().expect("payload").to_owned();
        assert_eq!(lines.next(), Some("```"), "one payload line after {line}");
        out.push(Example { header, payload });
    }
    out
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::OpenPort { .. } => "open_port",
        Request::CreatePort { .. } => "create_port",
        Request::DeletePort { .. } => "delete_port",
        Request::List {} => "list",
        Request::Stats { .. } => "stats",
        Request::Fdb { .. } => "fdb",
        Request::Status {} => "status",
        Request::ShowConfig {} => "show_config",
        Request::Attach { .. } => "attach",
        Request::Detach { .. } => "detach",
        Request::Capture { .. } => "capture",
        Request::MirrorAdd { .. } => "mirror_add",
        Request::MirrorDel { .. } => "mirror_del",
        Request::MirrorList {} => "mirror_list",
        Request::TunnelAdd { .. } => "tunnel_add",
        Request::TunnelDel { .. } => "tunnel_del",
        Request::TunnelList {} => "tunnel_list",
        Request::OffloadPort { .. } => "offload_port",
        Request::ReclaimPort { .. } => "reclaim_port",
    }
}

const REQUESTS: usize = 19;

fn response_name(r: &Response) -> &'static str {
    match r {
        Response::PortOpened { .. } => "port_opened",
        Response::Done => "done",
        Response::List { .. } => "list",
        Response::Stats { .. } => "stats",
        Response::Fdb { .. } => "fdb",
        Response::Status { .. } => "status",
        Response::Attached { .. } => "attached",
        Response::Config { .. } => "config",
        Response::Tunnels { .. } => "tunnels",
        Response::Error { .. } => "error",
        Response::CaptureStarted { .. } => "capture_started",
        Response::Mirrors { .. } => "mirrors",
        Response::Reclaimed { .. } => "reclaimed",
    }
}

const RESPONSES: usize = 13;

/// Every error code (a new one fails to compile here until it is listed,
/// and then fails the test until the spec's table has it).
fn error_codes() -> Vec<ErrorCode> {
    let all = [
        ErrorCode::BadRequest,
        ErrorCode::BadName,
        ErrorCode::NoSuchPort,
        ErrorCode::NoSuchSwitch,
        ErrorCode::PortBusy,
        ErrorCode::PortExists,
        ErrorCode::SwitchFull,
        ErrorCode::BadConfig,
        ErrorCode::WrongPortKind,
        ErrorCode::Internal,
        ErrorCode::BadInterface,
        ErrorCode::Unsupported,
        ErrorCode::PermissionDenied,
        ErrorCode::LimitExceeded,
        ErrorCode::UnsupportedVersion,
    ];
    for code in all {
        match code {
            ErrorCode::BadRequest
            | ErrorCode::BadName
            | ErrorCode::NoSuchPort
            | ErrorCode::NoSuchSwitch
            | ErrorCode::PortBusy
            | ErrorCode::PortExists
            | ErrorCode::SwitchFull
            | ErrorCode::BadConfig
            | ErrorCode::WrongPortKind
            | ErrorCode::Internal
            | ErrorCode::BadInterface
            | ErrorCode::Unsupported
            | ErrorCode::PermissionDenied
            | ErrorCode::LimitExceeded
            | ErrorCode::UnsupportedVersion => {}
        }
    }
    all.to_vec()
}

#[test]
fn every_example_is_byte_exact_and_every_message_kind_has_one() {
    let mut requests = BTreeSet::new();
    let mut responses = BTreeSet::new();
    let examples = examples();
    assert!(examples.len() >= REQUESTS + RESPONSES, "{}", examples.len());
    for ex in &examples {
        let direction = u16::from_le_bytes([ex.header[6], ex.header[7]]);
        let header =
            Header::decode(&ex.header, direction).unwrap_or_else(|e| panic!("{}: {e}", ex.payload));
        assert_eq!(
            u16::from_le_bytes([ex.header[4], ex.header[5]]),
            VERSION,
            "{}",
            ex.payload
        );
        assert_eq!(header.payload_len, ex.payload.len(), "{}", ex.payload);
        assert_eq!(
            header.encode(),
            ex.header,
            "the header of {} is not what this crate sends",
            ex.payload
        );
        if direction == DIR_REQUEST {
            let request: Request =
                serde_json::from_str(&ex.payload).unwrap_or_else(|e| panic!("{}: {e}", ex.payload));
            let fds = if matches!(request, Request::OffloadPort { .. }) {
                OFFLOAD_FDS
            } else {
                0
            };
            assert_eq!(header.fds as usize, fds, "{}", ex.payload);
            requests.insert(request_name(&request));
        } else {
            assert_eq!(direction, DIR_RESPONSE);
            let response: Response =
                serde_json::from_str(&ex.payload).unwrap_or_else(|e| panic!("{}: {e}", ex.payload));
            // The daemon writes responses exactly so.
            assert_eq!(
                serde_json::to_string(&response).unwrap(),
                ex.payload,
                "not the daemon's serialization"
            );
            let fds = if matches!(response, Response::PortOpened { .. }) {
                PORT_FDS as u32
            } else {
                0
            };
            assert_eq!(header.fds, fds, "{}", ex.payload);
            responses.insert(response_name(&response));
        }
    }
    assert_eq!(
        requests.len(),
        REQUESTS,
        "requests with examples: {requests:?}"
    );
    assert_eq!(
        responses.len(),
        RESPONSES,
        "responses with examples: {responses:?}"
    );
}

#[test]
fn the_error_code_table_is_complete() {
    let section = SPEC
        .split("### 3.3 Error codes")
        .nth(1)
        .and_then(|s| s.split("### 3.4").next())
        .expect("section 3.3");
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(code, _)| code.to_owned()))
        .collect();
    let known: BTreeSet<String> = error_codes()
        .into_iter()
        .map(|c| {
            serde_json::to_value(c)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(documented, known);
}

/// The rows `| offset | width | field ...` of the table after `marker`.
fn table_after(marker: &str) -> Vec<(usize, usize, String)> {
    let rest = SPEC.split(marker).nth(1).expect(marker);
    rest.lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let offset = cells.get(1)?.parse().ok()?;
            let width = cells.get(2)?.parse().ok()?;
            Some((offset, width, cells.get(3)?.to_string()))
        })
        .collect()
}

#[test]
fn the_layout_tables_are_the_layout() {
    let header = table_after("Region header, at offset 0");
    let expected = [
        (header_field::MAGIC, 8),
        (header_field::VERSION, 4),
        (header_field::RING_SIZE, 4),
        (header_field::BUF_SIZE, 4),
        (header_field::NUM_BUFS, 4),
        (header_field::TX_RING_OFFSET, 8),
        (header_field::RX_RING_OFFSET, 8),
        (header_field::BUFFERS_OFFSET, 8),
        (header_field::REGION_LEN, 8),
        (header_field::BUF_STRIDE, 4),
    ];
    let got: Vec<(usize, usize)> = header.iter().map(|(o, w, _)| (*o, *w)).collect();
    assert_eq!(got, expected);
    assert!(header[0]
        .2
        .contains(std::str::from_utf8(&layout::REGION_MAGIC).unwrap()));
    assert!(header[1]
        .2
        .contains(&format!(": {}", layout::LAYOUT_VERSION)));

    let ring = table_after("| offset in the ring |");
    let got: Vec<(usize, usize)> = ring.iter().map(|(o, w, _)| (*o, *w)).collect();
    assert_eq!(
        got,
        [
            (ring_field::HEAD, 4),
            (ring_field::CUR, 4),
            (ring_field::TAIL, 4),
            (ring_field::CONSUMER_NEEDS_KICK, 4),
            (ring_field::PRODUCER_NEEDS_KICK, 4),
        ]
    );
    assert_eq!(layout::RING_HEADER_SIZE, 320);
    assert_eq!(layout::SLOT_SIZE, 8);
    assert_eq!(layout::REGION_HEADER_SIZE, 4096);

    let l = Layout::new(1024, 2048).unwrap();
    let example = format!(
        "ring_size 1024, buf_size 2048 give tx_ring_offset {},\nrx_ring_offset {}, buffers_offset {}, region_len {}.",
        l.tx_ring_offset, l.rx_ring_offset, l.buffers_offset, l.region_len
    );
    assert!(SPEC.contains(&example), "{example}");
    for limit in [
        format!(
            "a power of two, {} to {} (default {})",
            layout::MIN_RING_SIZE,
            layout::MAX_RING_SIZE,
            layout::DEFAULT_RING_SIZE
        ),
        format!(
            "a multiple of 64, {} to {} (default {})",
            layout::MIN_BUF_SIZE,
            layout::MAX_BUF_SIZE,
            layout::DEFAULT_BUF_SIZE
        ),
    ] {
        assert!(SPEC.contains(&limit), "{limit}");
    }
}
