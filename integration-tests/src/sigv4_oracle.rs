//! An independent check of the proxy's AWS SigV4 signatures: botocore (Debian's
//! `python3-botocore`, the library under the AWS CLI) recomputes the signature of a request the
//! upstream received, from the request alone and the test's key. The proxy's own signing code
//! is not used.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::upstream::Received;

const ORACLE: &str = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
d = json.load(sys.stdin)
req = AWSRequest(method=d["method"], url=d["url"], data=bytes.fromhex(d["body_hex"]), headers=d["headers"])
auth = SigV4Auth(Credentials(d["key_id"], d["secret"], d["token"]), d["service"], d["region"])
req.context["timestamp"] = d["amz_date"]
canonical = auth.canonical_request(req)
signature = auth.signature(auth.string_to_sign(req, canonical), req)
print(json.dumps({"signature": signature, "signed_headers": auth.signed_headers(auth.headers_to_sign(req))}))
"#;

/// The key the test's fake Bedrock holds (and the supervisor's environment).
#[derive(Debug, Clone)]
pub struct TestAwsKey {
    /// Access key id.
    pub key_id: String,
    /// Secret access key.
    pub secret: String,
    /// Session token.
    pub token: Option<String>,
}

/// Whether `received` (a request to `https://{host}`) carries a valid SigV4 signature for
/// `key`, `region` and `service`, as botocore computes it over the headers the request says it
/// signed. `Err` says what differs.
pub fn verify(
    received: &Received,
    host: &str,
    key: &TestAwsKey,
    region: &str,
    service: &str,
) -> Result<(), String> {
    let auth = received
        .header("authorization")
        .ok_or("no authorization header")?;
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .ok_or("no SignedHeaders")?;
    let claimed = auth.rsplit("Signature=").next().ok_or("no Signature")?;
    let mut headers = serde_json::Map::new();
    for name in signed.split(';') {
        let value = if name == "host" {
            received.header("host").unwrap_or(host).to_string()
        } else {
            received
                .header(name)
                .ok_or(format!("signed header {name} missing"))?
                .to_string()
        };
        headers.insert(name.to_string(), value.into());
    }
    let amz_date = received.header("x-amz-date").ok_or("no x-amz-date")?;
    // As AWS does: the signed body hash must be the hash of the body that arrived.
    use sha2::Digest;
    let body_hash = hex::encode(sha2::Sha256::digest(&received.body));
    match received.header("x-amz-content-sha256") {
        Some(h) if h == body_hash => {}
        Some(h) => {
            return Err(format!(
                "x-amz-content-sha256 {h} is not the body's {body_hash}"
            ))
        }
        None => {}
    }
    let input = serde_json::json!({
        "method": received.method,
        "url": format!("https://{host}{}", received.path_and_query),
        "body_hex": hex::encode(&received.body),
        "headers": headers,
        "key_id": key.key_id,
        "secret": key.secret,
        "token": key.token,
        "service": service,
        "region": region,
        "amz_date": amz_date,
    });
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(ORACLE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run /usr/bin/python3: {e}"))?;
    // A write error (the interpreter exited early: no botocore) is reported with its stderr.
    let written = child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.to_string().as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if let Err(e) = written {
        return Err(format!(
            "botocore did not read the request ({e}; install python3-botocore, .ci/test does): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !out.status.success() {
        return Err(format!(
            "botocore failed (install python3-botocore): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("oracle output: {e}"))?;
    if v["signed_headers"] != signed {
        return Err(format!(
            "botocore would sign {} but the request signed {signed}",
            v["signed_headers"]
        ));
    }
    if v["signature"] != claimed {
        return Err(format!(
            "signature {claimed} is not botocore's {}",
            v["signature"]
        ));
    }
    Ok(())
}
