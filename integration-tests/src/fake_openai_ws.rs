//! A fake OpenAI Responses API over WebSocket, as Codex CLI speaks it: each text message the
//! client sends is a `response.create`; the answer is the stream's events, one per message
//! (`response.created`, `response.output_item.added`/`.done`, `response.completed`). A prewarm
//! (`"generate": false`) gets an empty response. The first real turn gets Codex's `exec` tool
//! running `apply_patch` to add a file; the request that carries that call's output gets a
//! closing message.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::ws_upstream::WsResponder;

fn events(id: &str, items: Vec<Value>) -> Vec<String> {
    let created = json!({"type": "response.created", "response": {
        "id": id, "object": "response", "created_at": 1796650000, "status": "in_progress",
        "model": "gpt-it", "output": []}});
    let mut out = vec![created.to_string()];
    for (i, item) in items.iter().enumerate() {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        out.push(
            json!({"type": "response.output_item.added", "output_index": i, "item": added})
                .to_string(),
        );
        out.push(
            json!({"type": "response.output_item.done", "output_index": i, "item": item})
                .to_string(),
        );
    }
    out.push(
        json!({"type": "response.completed", "response": {
            "id": id, "object": "response", "created_at": 1796650000, "status": "completed",
            "model": "gpt-it", "output": items,
            "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 20}}})
        .to_string(),
    );
    out
}

/// The responder: adds `file` (relative to the workspace) with the line `content`.
pub fn responder(file: String, content: String) -> WsResponder {
    Arc::new(move |msg: &[u8]| {
        let req: Value = serde_json::from_slice(msg).ok()?;
        if req["type"] != "response.create" {
            return None;
        }
        if req["generate"] == json!(false) {
            return Some(events("resp_prewarm", vec![]));
        }
        let answered =
            req["input"].as_array().into_iter().flatten().any(|i| {
                i["type"] == "custom_tool_call_output" || i["type"] == "function_call_output"
            });
        if answered {
            return Some(events(
                "resp_2",
                vec![json!({
                    "type": "message", "id": "msg_it_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "Done: the file is written.", "annotations": []}]
                })],
            ));
        }
        let patch = format!("*** Begin Patch\n*** Add File: {file}\n+{content}\n*** End Patch\n");
        let code = format!(
            "await tools.apply_patch({});\ntext(\"patched\");",
            json!(patch)
        );
        Some(events(
            "resp_1",
            vec![json!({
                "type": "custom_tool_call", "id": "ctc_it_1", "call_id": "call_it_1",
                "namespace": "functions", "name": "exec", "input": code, "status": "completed"
            })],
        ))
    })
}
