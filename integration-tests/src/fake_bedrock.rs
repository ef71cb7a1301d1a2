//! A fake Amazon Bedrock runtime that speaks the wire format Claude Code uses on Bedrock:
//! `POST /model/{id}/invoke-with-response-stream` answered with AWS event-stream framing, each
//! message an `chunk` event whose payload is `{"bytes": base64(Anthropic stream event)}`, and
//! `POST /model/{id}/invoke` answered with one Anthropic message. It scripts one tool-using
//! turn: the first model call gets a `tool_use` of the `Write` tool; the call that carries the
//! `tool_result` gets a closing text.

use std::sync::Arc;

use crate::upstream::{base64_std, Canned, Received, Responder};

/// The responder: writes `content` to `file_path` through Claude Code's `Write` tool.
pub fn responder(file_path: String, content: String) -> Responder {
    Arc::new(move |r: &Received| {
        if r.method != "POST" || !r.path_and_query.starts_with("/model/") {
            return None;
        }
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let answered = body.to_string().contains("\"tool_result\"");
        let content_block = if answered {
            serde_json::json!({"type": "text", "text": "Done: the file is written."})
        } else {
            serde_json::json!({"type": "tool_use", "id": "toolu_it_0001", "name": "Write",
                               "input": {"file_path": file_path, "content": content}})
        };
        let stop = if answered { "end_turn" } else { "tool_use" };
        let path = r.path_and_query.split('?').next().unwrap_or_default();
        if path.ends_with("/invoke-with-response-stream") {
            Some(Canned {
                status: 200,
                headers: vec![(
                    "content-type".into(),
                    "application/vnd.amazon.eventstream".into(),
                )],
                body: stream(&content_block, stop),
            })
        } else if path.ends_with("/invoke") {
            let msg = serde_json::json!({
                "id": "msg_it_0001", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5", "content": [content_block],
                "stop_reason": stop, "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 8}
            });
            Some(Canned {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: msg.to_string().into_bytes(),
            })
        } else {
            None
        }
    })
}

/// The Anthropic stream events of one message with `block`, framed as Bedrock sends them.
fn stream(block: &serde_json::Value, stop: &str) -> Vec<u8> {
    let mut events = vec![serde_json::json!({"type": "message_start", "message": {
        "id": "msg_it_0001", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 1}}})];
    if block["type"] == "tool_use" {
        let mut start = block.clone();
        start["input"] = serde_json::json!({});
        events.push(
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": start}),
        );
        events.push(
            serde_json::json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": block["input"].to_string()}}),
        );
    } else {
        events.push(
            serde_json::json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        );
        events.push(
            serde_json::json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": block["text"]}}),
        );
    }
    events.push(serde_json::json!({"type": "content_block_stop", "index": 0}));
    events.push(serde_json::json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 8}}));
    events.push(serde_json::json!({"type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 8,
            "invocationLatency": 5, "firstByteLatency": 2}}));
    let mut out = Vec::new();
    for e in events {
        let payload = serde_json::json!({"bytes": base64_std(e.to_string().as_bytes())});
        out.extend(event_message(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        ));
    }
    out
}

/// One AWS event-stream message: prelude (total length, headers length, CRC), string-typed
/// headers, payload, message CRC (CRC-32, IEEE).
pub fn event_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7); // string
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&m);
    m.extend_from_slice(&prelude_crc.to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    let crc = crc32(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    m
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_message_frames_its_lengths() {
        let m = event_message(&[(":event-type", "chunk")], b"{}");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(headers, 1 + 11 + 1 + 2 + 5);
    }
}
