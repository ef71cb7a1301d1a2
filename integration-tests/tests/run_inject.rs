//! Credential injection in every form the EU providers need, through `sandbox run`: AWS SigV4
//! for Bedrock (the agent signs with dummy keys; the proxy re-signs with the supervisor's, and
//! botocore, not the proxy's code, confirms the signature the fake Bedrock received), an
//! OpenAI-style bearer token for Mistral EU, and Azure OpenAI's `api-key`. In each case the real
//! credential reaches the upstream and is absent from the agent's environment, the files it can
//! write and the requests it built. Loopback only.

use std::collections::HashSet;

use integration_tests::sandbox_harness::{
    file_containing, run_command, tagged, wait_bounded, TestDir, RUN_TIMEOUT,
};
use integration_tests::sigv4_oracle::{verify, TestAwsKey};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";
const MISTRAL: &str = "api.eu.mistral.ai";
const AZURE: &str = "it-pilot.openai.azure.com";
const MODEL: &str = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0";

const AWS_KEY_ID: &str = "AKIAITREALKEY0000001";
const AWS_SECRET: &str = "itRealSecretKey/0123456789abcdefghijklmnop";
const AWS_TOKEN: &str = "itRealSessionToken+0123456789abcdef==";
const MISTRAL_KEY: &str = "it-real-mistral-key-0123456789abcdef";
const AZURE_KEY: &str = "it-real-azure-key-fedcba9876543210";

fn contract(dir: &TestDir) -> std::path::PathBuf {
    let text = format!(
        r#"version = 1
[task]
id = "IT-14"
class = "C"
objective = "credentials stay with the supervisor"
approved_by = "security: test"
ticket = "IT-14"
done = ["true"]
rollback = "nothing to roll back"
[files]
write = ["."]
[network]
residency = "EU"
[[network.allow]]
name = "bedrock-eu"
host = "{BEDROCK}"
methods = ["POST"]
paths = ["^/model/[^/]+/(invoke-with-response-stream|converse-stream)$"]
inject = {{ form = "aws-sigv4" }}
[[network.allow]]
name = "mistral-eu"
host = "{MISTRAL}"
methods = ["POST"]
paths = ["^/v1/chat/completions$"]
inject = {{ form = "bearer", env = "IT_MISTRAL_KEY" }}
[[network.allow]]
name = "azure-openai-eu"
host = "{AZURE}"
region = "swedencentral"
methods = ["POST"]
paths = ["^/openai/deployments/[^/]+/chat/completions$"]
inject = {{ form = "azure-api-key", env = "IT_AZURE_KEY" }}
[log]
path = "{}"
"#,
        dir.log_path().display()
    );
    dir.write("contract.toml", &text)
}

/// The agent's side: dummy keys only. curl signs the Bedrock requests itself with them.
const SCRIPT: &str = r#"
env > "$PWD/agent-env.txt"
body='{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
for op in invoke-with-response-stream converse-stream; do
  echo "BEDROCK-$op $(curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 'aws:amz:eu-central-1:bedrock' \
    --user 'AKIADUMMYDUMMYDUMMY0:dummy-secret' -H 'x-amz-security-token: dummy-token' \
    -H 'content-type: application/json' -d "$body" \
    "https://bedrock-runtime.eu-central-1.amazonaws.com/model/$MODEL/$op" 2>&1)"
done
echo "MISTRAL $(curl -sS -o /dev/null -w '%{http_code}' -H 'authorization: Bearer dummy-mistral' \
  -d '{}' https://api.eu.mistral.ai/v1/chat/completions 2>&1)"
echo "AZURE $(curl -sS -o /dev/null -w '%{http_code}' -H 'api-key: dummy-azure' \
  -d '{}' 'https://it-pilot.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21' 2>&1)"
"#;

#[test]
fn every_form_reaches_the_upstream_and_never_the_agent() {
    let key = TestAwsKey {
        key_id: AWS_KEY_ID.into(),
        secret: AWS_SECRET.into(),
        token: Some(AWS_TOKEN.into()),
    };
    let secrets = [AWS_KEY_ID, AWS_SECRET, AWS_TOKEN, MISTRAL_KEY, AZURE_KEY];
    for user in each_user() {
        let dir = TestDir::new(user, "inject");
        let ca = TestCa::new();
        // The fake Bedrock refuses (403) any request whose SigV4 signature botocore rejects.
        let bedrock_key = key.clone();
        let verifier: integration_tests::upstream::Responder =
            std::sync::Arc::new(move |r: &integration_tests::upstream::Received| {
                if !r.path_and_query.starts_with("/model/") {
                    return None;
                }
                verify(r, BEDROCK, &bedrock_key, "eu-central-1", "bedrock")
                    .err()
                    .map(|why| integration_tests::upstream::Canned {
                        status: 403,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: format!("{{\"message\":\"signature rejected: {why}\"}}").into_bytes(),
                    })
            });
        let upstream = Upstream::start_with(
            &ca,
            &[BEDROCK, MISTRAL, AZURE],
            &["h2", "http/1.1"],
            Some(verifier),
        );
        let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
        let contract = contract(&dir);
        let connects: Vec<String> = [BEDROCK, MISTRAL, AZURE]
            .iter()
            .map(|h| upstream.connect_to(h))
            .collect();
        let mut args = vec!["--contract", contract.to_str().unwrap()];
        for c in &connects {
            args.extend(["--connect-to", c.as_str()]);
        }
        args.extend(["--upstream-ca", ca_pem.to_str().unwrap()]);
        let mut cmd = run_command(user, &dir, &args, &SCRIPT.replace("$MODEL", MODEL));
        cmd.env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_TOKEN)
            .env("IT_MISTRAL_KEY", MISTRAL_KEY)
            .env("IT_AZURE_KEY", AZURE_KEY);
        let out = wait_bounded(cmd.spawn().expect("spawn sandbox run"), RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        for tag in [
            "BEDROCK-invoke-with-response-stream",
            "BEDROCK-converse-stream",
            "MISTRAL",
            "AZURE",
        ] {
            assert_eq!(tagged(&out.stdout, tag), format!("{tag} 200"), "{ctx}");
        }

        let received = upstream.received();
        assert_eq!(received.len(), 4, "{ctx}");
        let mut seen = HashSet::new();
        for r in &received {
            let auth = r.header("authorization").unwrap_or_default();
            if r.path_and_query.starts_with("/model/") {
                seen.insert("bedrock");
                // The proxy's signature, with the supervisor's keys, valid for botocore.
                verify(r, BEDROCK, &key, "eu-central-1", "bedrock")
                    .unwrap_or_else(|e| panic!("{e}\n{r:?}\n{ctx}"));
                assert!(
                    auth.contains(&format!("Credential={AWS_KEY_ID}/")),
                    "{auth}"
                );
                assert_eq!(r.header("x-amz-security-token"), Some(AWS_TOKEN));
                // The same request with one body byte changed would not verify.
                let mut tampered = r.clone();
                tampered.body.push(b' ');
                assert!(verify(&tampered, BEDROCK, &key, "eu-central-1", "bedrock").is_err());
            } else if r.path_and_query.starts_with("/v1/chat") {
                seen.insert("mistral");
                assert_eq!(auth, format!("Bearer {MISTRAL_KEY}"));
            } else {
                seen.insert("azure");
                assert_eq!(r.header("api-key"), Some(AZURE_KEY));
                assert_eq!(auth, "", "no stray authorization header to Azure");
            }
            // Nothing of the agent's dummy credentials went upstream.
            for (k, v) in &r.headers {
                assert!(!v.contains("dummy") && !v.contains("DUMMY"), "{k}: {v}");
            }
        }
        assert_eq!(seen.len(), 3, "{ctx}");

        // The agent never held a real credential: not in its environment, not in any file it
        // could write, not in its output.
        let agent_env = std::fs::read_to_string(dir.workspace.join("agent-env.txt")).unwrap();
        for s in secrets {
            assert!(!agent_env.contains(s), "{s} was in the agent's environment");
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "{s} in the output"
            );
            assert_eq!(file_containing(&dir.workspace, s), None, "{s} in a file");
        }
        // Nor is any real credential in the flow log.
        let log = std::fs::read_to_string(dir.log_path()).unwrap();
        for s in secrets {
            assert!(!log.contains(s), "{s} in the flow log");
        }
    }
}

/// A contract whose SigV4 rule has no AWS credentials on the host refuses to start, naming
/// what to set.
#[test]
fn missing_aws_credentials_stop_the_run_with_what_to_set() {
    let user = each_user()[0];
    let dir = TestDir::new(user, "inject-missing");
    let contract = contract(&dir);
    let mut cmd = run_command(
        user,
        &dir,
        &["--contract", contract.to_str().unwrap()],
        "true",
    );
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.root.join("no-such-credentials"),
        )
        .env("AWS_CONFIG_FILE", dir.root.join("no-such-config"))
        .env("IT_MISTRAL_KEY", MISTRAL_KEY)
        .env("IT_AZURE_KEY", AZURE_KEY);
    let out = wait_bounded(cmd.spawn().expect("spawn sandbox run"), RUN_TIMEOUT);
    assert_eq!(out.code, 125, "{}", out.both());
    assert!(
        out.stderr.contains("AWS SigV4") && out.stderr.contains("AWS_ACCESS_KEY_ID"),
        "{}",
        out.both()
    );
}

const VERTEX: &str = "europe-west4-aiplatform.googleapis.com";
const TOKEN_HOST: &str = "oauth2.googleapis.com";
const SA_EMAIL: &str = "pilot-agent@it-project.iam.gserviceaccount.com";

/// A fresh RSA key (openssl): the PKCS#8 PEM and the PKCS#1 public key DER.
fn rsa_key(dir: &TestDir) -> (String, Vec<u8>) {
    let key = dir.root.join("sa-key.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    let public = run(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-outform",
        "DER",
    ]);
    (std::fs::read_to_string(&key).unwrap(), public)
}

fn base64url_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alphabet.iter().position(|&a| a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// A fake Google token endpoint: verifies the JWT assertion's RS256 signature with the
/// service account's public key and its claims, then issues `ya29.it-minted-N`.
fn token_endpoint(public: Vec<u8>) -> integration_tests::upstream::Responder {
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    std::sync::Arc::new(move |r: &integration_tests::upstream::Received| {
        if r.path_and_query.contains(":rawPredict") {
            // The fake Vertex accepts only a token this endpoint issued.
            let ok = r
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer ya29.it-minted-"));
            return (!ok).then(|| integration_tests::upstream::Canned {
                status: 401,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#.to_vec(),
            });
        }
        if r.path_and_query != "/token" {
            return None;
        }
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let deny = |why: &str| integration_tests::upstream::Canned {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"error\":\"invalid_grant\",\"why\":\"{why}\"}}").into_bytes(),
        };
        let Some(assertion) = body.strip_prefix(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
        ) else {
            return Some(deny("grant"));
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        if parts.len() != 3 {
            return Some(deny("jwt"));
        }
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public.clone(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        if key
            .verify(signed.as_bytes(), &base64url_decode(parts[2]))
            .is_err()
        {
            return Some(deny("signature"));
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&base64url_decode(parts[1])).unwrap_or_default();
        if claims["iss"] != SA_EMAIL
            || claims["aud"] != "https://oauth2.googleapis.com/token"
            || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        {
            return Some(deny("claims"));
        }
        let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Some(integration_tests::upstream::Canned {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!("{{\"access_token\":\"ya29.it-minted-{n}\",\"expires_in\":3599,\"token_type\":\"Bearer\"}}").into_bytes(),
        })
    })
}

/// Vertex AI through a service account: the supervisor mints a token at a (fake) Google token
/// endpoint with the key it holds, once for both requests, logs the mint as its own flow, and
/// the agent holds neither the key nor the token. The drafted diagram covers the mint.
#[test]
fn vertex_gets_a_token_the_supervisor_minted() {
    for user in each_user() {
        let dir = TestDir::new(user, "inject-google");
        let (pem, public) = rsa_key(&dir);
        let sa = serde_json::json!({
            "type": "service_account", "project_id": "it-project", "private_key_id": "k1",
            "private_key": pem, "client_email": SA_EMAIL,
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        let sa_path = dir.write("sa.json", &sa.to_string());
        let ca = TestCa::new();
        let upstream = Upstream::start_with(
            &ca,
            &[VERTEX, TOKEN_HOST],
            &["h2", "http/1.1"],
            Some(token_endpoint(public)),
        );
        let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
        let text = format!(
            r#"version = 1
[task]
id = "IT-14-VERTEX"
class = "B"
objective = "Claude on Vertex EU with a supervisor-minted token"
done = ["true"]
rollback = "nothing"
[files]
write = ["."]
[network]
residency = "EU"
[[network.allow]]
name = "vertex-eu"
host = "{VERTEX}"
methods = ["POST"]
paths = ["^/v1/projects/[^/]+/locations/europe-west4/publishers/anthropic/models/[^/:]+:(rawPredict|streamRawPredict)$"]
inject = {{ form = "google-oauth", credentials = "{}" }}
[log]
path = "{}"
"#,
            sa_path.display(),
            dir.log_path().display()
        );
        let contract = dir.write("contract.toml", &text);
        let (v, t) = (upstream.connect_to(VERTEX), upstream.connect_to(TOKEN_HOST));
        let script = format!(
            r#"env > "$PWD/agent-env.txt"
for i in 1 2; do
  echo "VERTEX-$i $(curl -sS -o /dev/null -w '%{{http_code}}' -H 'authorization: Bearer dummy-token' -d '{{}}' https://{VERTEX}/v1/projects/it-project/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5:rawPredict 2>&1)"
done
echo "KEYFILE $(cat '{}' 2>&1 | head -c 40)"
"#,
            sa_path.display()
        );
        let args = [
            "--contract",
            contract.to_str().unwrap(),
            "--connect-to",
            &v,
            "--connect-to",
            &t,
            "--upstream-ca",
            ca_pem.to_str().unwrap(),
        ];
        let mut cmd = run_command(user, &dir, &args, &script);
        cmd.env_remove("GOOGLE_APPLICATION_CREDENTIALS");
        let out = wait_bounded(cmd.spawn().expect("spawn sandbox run"), RUN_TIMEOUT);
        let log = std::fs::read_to_string(dir.log_path()).unwrap_or_default();
        let ctx = format!("as {}:\n{}\n--- log\n{log}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert_eq!(tagged(&out.stdout, "VERTEX-1"), "VERTEX-1 200", "{ctx}");
        assert_eq!(tagged(&out.stdout, "VERTEX-2"), "VERTEX-2 200", "{ctx}");
        // The key file is not readable inside.
        assert!(!tagged(&out.stdout, "KEYFILE").contains("type"), "{ctx}");

        let received = upstream.received();
        let mints: Vec<_> = received
            .iter()
            .filter(|r| r.path_and_query == "/token")
            .collect();
        assert_eq!(
            mints.len(),
            1,
            "one token, cached for the second request: {ctx}"
        );
        let calls: Vec<_> = received
            .iter()
            .filter(|r| r.path_and_query.contains(":rawPredict"))
            .collect();
        assert_eq!(calls.len(), 2, "{ctx}");
        for c in &calls {
            assert_eq!(
                c.header("authorization"),
                Some("Bearer ya29.it-minted-1"),
                "{ctx}"
            );
        }
        // The mint is the supervisor's own flow in the log, before the token was used.
        let mint_line = log
            .lines()
            .find(|l| l.contains("mints a Google OAuth access token"))
            .unwrap_or_else(|| panic!("no mint record: {log}"));
        let mint: serde_json::Value = serde_json::from_str(mint_line).unwrap();
        assert_eq!(mint["host"], TOKEN_HOST);
        assert_eq!(mint["rule"], "vertex-eu");
        assert_eq!(mint["decision"], "allow");
        // Neither the key nor the token inside, nor in the log.
        let env = std::fs::read_to_string(dir.workspace.join("agent-env.txt")).unwrap();
        for s in ["ya29.it-minted", "BEGIN PRIVATE KEY"] {
            assert!(!env.contains(s), "{s} in the agent's environment");
            assert!(!log.contains(s), "{s} in the flow log");
            assert!(!out.stdout.contains(s), "{s} in the agent's output");
        }

        // The drafted diagram covers the mint, and the run conforms.
        let draft = integration_tests::bin::sandbox_output(&[
            "diagram",
            "--from-contract",
            contract.to_str().unwrap(),
        ]);
        let reviewed = String::from_utf8(draft.stdout).unwrap().replace(
            "TODO: name the data category (e.g. source code and prompts)",
            "prompts",
        );
        let diagram = dir.write("dataflow.toml", &reviewed);
        let verify = integration_tests::bin::sandbox_output(&[
            "verify",
            "--approved",
            diagram.to_str().unwrap(),
            dir.log_path().to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert_eq!(verify.status.code(), Some(0), "{text}\n{reviewed}");
        assert!(text.contains("VERDICT: CONFORMS"), "{text}");
    }
}

/// A key file the agent could read is refused before the sandbox starts.
#[test]
fn a_google_key_inside_the_workspace_is_refused() {
    let user = each_user()[0];
    let dir = TestDir::new(user, "inject-google-inside");
    let sa = dir.write(
        "ws/sa.json",
        r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
    );
    let text = format!(
        "version = 1\n[task]\nid = \"T\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n[files]\nwrite = [\".\"]\n[[network.allow]]\nname = \"vertex\"\nhost = \"{VERTEX}\"\ninject = {{ form = \"google-oauth\", credentials = \"{}\" }}\n",
        sa.display()
    );
    let contract = dir.write("contract.toml", &text);
    let out = wait_bounded(
        run_command(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            "true",
        )
        .spawn()
        .unwrap(),
        RUN_TIMEOUT,
    );
    assert_eq!(out.code, 125, "{}", out.both());
    assert!(
        out.stderr.contains("readable inside the sandbox"),
        "{}",
        out.both()
    );
}
