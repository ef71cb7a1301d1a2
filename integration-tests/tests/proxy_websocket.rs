//! WebSocket through `sandbox proxy` (issue 13): an echo both ways with text and binary frames
//! (one large), a denied path refused with 403 before anything leaves, a refused upgrade
//! passed back, a secret in a client text frame closing both sides with 1008 before the frame
//! goes out, and one `end` record per WebSocket with bytes and messages each way and the close
//! code. A hand-rolled client over CONNECT, so every frame is under the test's control.
//! Loopback only.

use std::io::{Read, Write};

use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::rawclient::{connect, read_head, status_of, tls};
use integration_tests::upstream::TestCa;
use integration_tests::ws_upstream::{accept_key, WsUpstream};
use proxy::ws_frame::{Frame, FrameReader, OP_BINARY, OP_CLOSE, OP_TEXT};

const HOST: &str = "ws.example";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    proxy::ws_frame::encode(true, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

fn read_frame(s: &mut impl Read, reader: &mut FrameReader) -> Option<Frame> {
    let mut buf = [0u8; 65536];
    loop {
        if let Some(f) = reader.next_frame().expect("server frames") {
            return Some(f);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => reader.push(&buf[..n]),
        }
    }
}

fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
}

fn open(
    gw: &Gateway,
    path: &str,
) -> (
    String,
    rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
) {
    let (status, tcp) = connect(gw.port, &format!("{HOST}:443"));
    assert_eq!(status, 200);
    let mut s = tls(tcp, &gw.ca, Some(HOST));
    s.write_all(upgrade_request(path).as_bytes()).unwrap();
    s.flush().unwrap();
    let head = read_head(&mut s);
    (head, s)
}

#[test]
fn a_websocket_echoes_both_ways_and_denials_happen_before_anything_leaves() {
    let ca = TestCa::new();
    let up = WsUpstream::start(&ca, &[HOST]);
    let scratch = Scratch::new("proxy-websocket");
    let contract = format!(
        "version = 1\n[task]\nid = \"IT-13-ws\"\nclass = \"B\"\nobjective = \"o\"\ndone = []\nrollback = \"none\"\n[[network.allow]]\nname = \"ws\"\nhost = \"{HOST}\"\nmethods = [\"GET\"]\npaths = [\"/v1/realtime\", \"/v1/reject\", \"/v1/secret\"]\n"
    );
    let mut opts = GatewayOptions::new(&contract);
    opts.connect_to = vec![up.connect_to(HOST)];
    opts.upstream_ca = Some(ca.pem());
    let mut gw = Gateway::start(&scratch, opts);

    // the echo: text, a large binary frame, close
    let (head, mut s) = open(&gw, "/v1/realtime?model=x");
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("sec-websocket-accept: {}", accept_key(KEY)).to_ascii_lowercase()),
        "{head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    let mut reader = FrameReader::new(false, 1 << 24);
    s.write_all(&masked(OP_TEXT, b"hello through the proxy"))
        .unwrap();
    let f = read_frame(&mut s, &mut reader).expect("the text echo");
    assert_eq!(
        (f.opcode, f.payload()),
        (OP_TEXT, b"hello through the proxy".to_vec())
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&masked(OP_BINARY, &big)).unwrap();
    let f = read_frame(&mut s, &mut reader).expect("the binary echo");
    assert_eq!(f.opcode, OP_BINARY);
    assert_eq!(f.payload(), big);
    s.write_all(&masked(OP_CLOSE, &1000u16.to_be_bytes()))
        .unwrap();
    let f = read_frame(&mut s, &mut reader).expect("the close echo");
    assert_eq!(f.close_code(), Some(1000));
    drop(s);
    let seen = up.seen();
    assert_eq!(seen.upgrades.len(), 1);
    assert_eq!(
        seen.upgrades[0].header("sec-websocket-extensions"),
        None,
        "no compression: every frame stays readable"
    );
    assert_eq!(seen.frames.len(), 2);

    // a path no rule allows: 403 with the reason, nothing reached the upstream
    let (head, mut s) = open(&gw, "/v1/elsewhere");
    assert_eq!(status_of(&head), 403, "{head}");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(
        body.contains("egress_denied") || body.contains("no rule"),
        "{body}"
    );
    assert_eq!(up.seen().upgrades.len(), 1, "the denied upgrade never left");

    // the upstream refuses the upgrade: its answer comes back
    let (head, _s) = open(&gw, "/v1/reject");
    assert_eq!(status_of(&head), 403, "{head}");
    assert_eq!(up.seen().upgrades.len(), 2);

    // a secret in a client text frame: both sides closed with 1008, the frame never sent
    let (head, mut s) = open(&gw, "/v1/secret");
    assert_eq!(status_of(&head), 101, "{head}");
    let mut reader = FrameReader::new(false, 1 << 24);
    s.write_all(&masked(OP_TEXT, b"aws key AKIAIOSFODNN7EXAMPLF here"))
        .unwrap();
    let f = read_frame(&mut s, &mut reader).expect("the proxy's close");
    assert_eq!(f.close_code(), Some(1008));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !up.seen()
            .frames
            .iter()
            .any(|(_, p)| p.windows(4).any(|w| w == b"AKIA")),
        "the secret never reached the upstream"
    );
    drop(s);

    let records = gw.stop();
    let ends: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "end" && r["kind"] == "request" && r["status"] == 101)
        .collect();
    assert_eq!(ends.len(), 2, "one end record per WebSocket: {records:#?}");
    let echo = ends
        .iter()
        .find(|r| r["path"] == "/v1/realtime")
        .expect("the echo's end record");
    let ws = &echo["detail"]["websocket"];
    assert_eq!(ws["messages_out"], 2, "{echo}");
    assert_eq!(ws["messages_in"], 2, "{echo}");
    assert_eq!(ws["close_code"], 1000, "{echo}");
    assert_eq!(ws["closed_by"], "client", "{echo}");
    assert!(echo["bytes_out"].as_u64().unwrap() > 200_000, "{echo}");
    assert!(echo["bytes_in"].as_u64().unwrap() > 200_000, "{echo}");
    let secret = ends
        .iter()
        .find(|r| r["path"] == "/v1/secret")
        .expect("the secret's end record");
    assert_eq!(secret["detail"]["websocket"]["close_code"], 1008);
    assert_eq!(secret["detail"]["websocket"]["closed_by"], "proxy");
    assert!(
        secret["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("secret"),
        "{secret}"
    );
    let denied = records
        .iter()
        .find(|r| r["event"] == "decision" && r["path"] == "/v1/elsewhere")
        .expect("the denied upgrade's decision");
    assert_eq!(denied["decision"], "deny");
}
