//! An EU run through `sandbox run` whose flows are all allowed by its EU contract, Claude on
//! Bedrock through the `eu.` cross-region inference profile included, is evidence that
//! conforms: `sandbox diagram --from-contract` drafts the diagram, and `sandbox verify` and
//! `sandbox report` on the run's flow log say CONFORMS. A `us.` profile in the same run is
//! denied and listed as a blocked attempt, not as a deviation. Loopback only: the allowed
//! endpoints are pointed at a local HTTPS upstream with `--connect-to`.

use integration_tests::bin::sandbox_output;
use integration_tests::sandbox_harness::{run, tagged, TestDir};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";
const VERTEX: &str = "europe-west4-aiplatform.googleapis.com";
const MISTRAL: &str = "api.eu.mistral.ai";
const MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

fn contract(dir: &TestDir) -> std::path::PathBuf {
    let text = format!(
        r#"version = 1
[task]
id = "IT-19"
class = "B"
objective = "Claude in the EU through Bedrock's eu. profile"
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
paths = ["^/model/[^/]+/(invoke|invoke-with-response-stream|converse|converse-stream)$"]
[[network.allow]]
name = "vertex-eu"
host = "{VERTEX}"
methods = ["POST"]
paths = ["^/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/[^/:]+:(rawPredict|streamRawPredict)$"]
[[network.allow]]
name = "mistral-eu"
host = "{MISTRAL}"
methods = ["POST"]
paths = ["^/v1/chat/completions$"]
[log]
path = "{}"
"#,
        dir.log_path().display()
    );
    dir.write("contract.toml", &text)
}

#[test]
fn an_eu_run_on_bedrock_eu_profiles_conforms_in_verify_and_report() {
    for user in each_user() {
        let dir = TestDir::new(user, "eu-profile");
        let ca = TestCa::new();
        let upstream = Upstream::start(&ca, &[BEDROCK, VERTEX, MISTRAL], &["h2", "http/1.1"]);
        let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
        let contract = contract(&dir);
        let script = format!(
            r#"
post() {{ echo "$1 $(curl -sS -o /dev/null -w '%{{http_code}}' -X POST -H 'content-type: application/json' -d '{{"messages":[]}}' "$2" 2>&1)"; }}
post EUSTREAM https://{BEDROCK}/model/eu.{MODEL}/invoke-with-response-stream
post EUCONVERSE https://{BEDROCK}/model/eu.{MODEL}/converse-stream
post REGIONAL https://{BEDROCK}/model/{MODEL}/invoke
post VERTEX https://{VERTEX}/v1/projects/acme/locations/europe-west4/publishers/anthropic/models/claude:streamRawPredict
post MISTRAL https://{MISTRAL}/v1/chat/completions
post USPROFILE https://{BEDROCK}/model/us.{MODEL}/invoke
"#
        );
        let (bedrock_to, vertex_to, mistral_to) = (
            upstream.connect_to(BEDROCK),
            upstream.connect_to(VERTEX),
            upstream.connect_to(MISTRAL),
        );
        let out = run(
            user,
            &dir,
            &[
                "--contract",
                contract.to_str().unwrap(),
                "--connect-to",
                &bedrock_to,
                "--connect-to",
                &vertex_to,
                "--connect-to",
                &mistral_to,
                "--upstream-ca",
                ca_pem.to_str().unwrap(),
            ],
            &script,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        for tag in ["EUSTREAM", "EUCONVERSE", "REGIONAL", "VERTEX", "MISTRAL"] {
            assert_eq!(tagged(&out.stdout, tag), format!("{tag} 200"), "{ctx}");
        }
        assert_eq!(tagged(&out.stdout, "USPROFILE"), "USPROFILE 403", "{ctx}");
        // Five requests reached the upstream; the us. profile did not.
        let received = upstream.received();
        assert_eq!(received.len(), 5, "{ctx}");
        assert!(!received.iter().any(|r| r.path_and_query.contains("/us.")));

        // The log records the eu. profile's region as the EU geography's code, with the
        // display text in the reason.
        let log = std::fs::read_to_string(dir.log_path()).expect("the flow log");
        let eu_profile: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| {
                r["event"] == "decision"
                    && r["path"].as_str().is_some_and(|p| p.contains("/model/eu."))
            })
            .collect();
        assert_eq!(eu_profile.len(), 2, "{log}");
        for r in &eu_profile {
            assert_eq!(r["decision"], "allow", "{r}");
            assert_eq!(r["region"], "EU", "{r}");
            assert!(
                r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("eu.` cross-region inference profile"),
                "{r}"
            );
        }

        // The pilot lead's steps: draft the diagram, name the data, verify, report.
        let draft = sandbox_output(&["diagram", "--from-contract", contract.to_str().unwrap()]);
        assert_eq!(draft.status.code(), Some(0), "{draft:?}");
        let reviewed = String::from_utf8(draft.stdout).unwrap().replace(
            "TODO: name the data category (e.g. source code and prompts)",
            "source code and prompts",
        );
        let diagram = dir.write("dataflow.toml", &reviewed);
        let log_path = dir.log_path();
        let verify = sandbox_output(&[
            "verify",
            "--approved",
            diagram.to_str().unwrap(),
            log_path.to_str().unwrap(),
        ]);
        let verify_text = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert_eq!(
            verify.status.code(),
            Some(0),
            "{verify_text}\n{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(verify_text.contains("VERDICT: CONFORMS"), "{verify_text}");
        assert!(!verify_text.contains("RESIDENCY"), "{verify_text}");
        assert!(verify_text.contains("1 blocked attempts"), "{verify_text}");

        let html = dir.root.join("report.html");
        let report = sandbox_output(&[
            "report",
            "--approved",
            diagram.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
            log_path.to_str().unwrap(),
        ]);
        assert_eq!(report.status.code(), Some(0), "{report:?}");
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(
            page.contains("Verdict: CONFORMS"),
            "the report does not conform"
        );
        assert!(!page.contains("DEVIATES"), "the report shows a deviation");
    }
}
