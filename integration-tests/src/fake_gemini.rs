//! A fake Gemini API (`generativelanguage.googleapis.com`) that speaks what Gemini CLI uses:
//! `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`, each SSE `data:` one
//! `GenerateContentResponse`, and `:generateContent` with one (the CLI's routing classifier).
//! It scripts one tool-using turn: the first call gets a `write_file` function call; the call
//! that carries the `functionResponse` gets a closing text.

use std::sync::Arc;

use crate::upstream::{Canned, Received, Responder};

/// The responder: writes `content` to `file_path` through Gemini CLI's `write_file` tool.
pub fn responder(file_path: String, content: String) -> Responder {
    Arc::new(move |r: &Received| {
        if r.method != "POST" || !r.path_and_query.starts_with("/v1beta/models/") {
            return None;
        }
        let body = String::from_utf8_lossy(&r.body);
        let answered = body.contains("functionResponse");
        let part = if answered {
            serde_json::json!({"text": "Done: the file is written."})
        } else {
            serde_json::json!({"functionCall": {"name": "write_file",
                "args": {"file_path": file_path, "content": content}}})
        };
        let response = serde_json::json!({
            "candidates": [{"content": {"role": "model", "parts": [part]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 8, "totalTokenCount": 20},
            "modelVersion": "gemini-2.5-pro"
        });
        let path = r.path_and_query.split('?').next().unwrap_or_default();
        if path.ends_with(":streamGenerateContent") {
            Some(Canned {
                status: 200,
                headers: vec![("content-type".into(), "text/event-stream".into())],
                body: format!("data: {response}\r\n\r\n").into_bytes(),
            })
        } else if path.ends_with(":generateContent") {
            // the routing classifier asks for JSON: pick the main model
            let routed = serde_json::json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text":
                    "{\"reasoning\": \"simple\", \"model_choice\": \"pro\"}"}]},
                    "finishReason": "STOP", "index": 0}]
            });
            Some(Canned {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: routed.to_string().into_bytes(),
            })
        } else {
            None
        }
    })
}
