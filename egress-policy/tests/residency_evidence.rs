//! The decision and the evidence agree on residency, over the whole catalog: for every host the
//! catalog knows and every per-request form (Bedrock regional models, `eu.`/`us.`/`global.`
//! and other cross-region profiles, model ARNs, Vertex `locations/...`, attested Azure and
//! unplaceable regions, Mistral EU ...), a request that `decide_request` allows under
//! `residency = "EU"` yields a flow that conforms to the diagram `diagram --from-contract`
//! drafts from the same contract, and a request it denies for residency would deviate from it.

use std::path::PathBuf;

use egress_policy::catalog::{self, SAMPLE_HOSTS};
use egress_policy::diagram::from_contract::diagram_toml_from_policy;
use egress_policy::diagram::matching::glob_matches;
use egress_policy::diagram::{ApprovedDiagram, EdgeMatch, ObservedFlow, ObservedKind};
use egress_policy::{Decision, PathContext, Policy, Region, RequestFacts, Scheme, Verdict};

const HEAD_EU: &str = "version = 1\n[task]\nid = \"T-19\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n[network]\nresidency = \"EU\"\n";

/// Regions a rule may attest for a host the catalog cannot place.
const ATTESTED: &[&str] = &[
    "EU",
    "swedencentral",
    "westeurope",
    "eu-west-1",
    "europe-west4",
];

const MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

/// Every request path worth asking for `host`: the per-request forms of its API.
fn paths_for(host: &str) -> Vec<String> {
    let per_request = catalog::per_request_for(
        &egress_policy::Host::Name(host.into()),
        catalog::place(host).as_ref(),
    );
    match per_request {
        catalog::PerRequest::BedrockModelId => {
            let mut ids: Vec<String> = vec![MODEL.into()];
            for prefix in ["eu", "EU", "us", "global", "apac", "jp", "us-gov", "zz"] {
                ids.push(format!("{prefix}.{MODEL}"));
            }
            for region in ["eu-central-1", "eu-west-3", "us-east-1", "eu-west-2"] {
                ids.push(format!(
                    "arn%3Aaws%3Abedrock%3A{region}%3A123456789012%3Ainference-profile%2Feu.{MODEL}"
                ));
                ids.push(format!(
                    "arn%3Aaws%3Abedrock%3A{region}%3A123456789012%3Afoundation-model%2F{MODEL}"
                ));
            }
            let mut out = Vec::new();
            for id in ids {
                for op in ["invoke", "invoke-with-response-stream", "converse", "converse-stream"] {
                    out.push(format!("/model/{id}/{op}"));
                }
            }
            out.push("/async-invoke".into());
            out
        }
        catalog::PerRequest::VertexLocation => [
            "europe-west4",
            "europe-west1",
            "eu",
            "us-central1",
            "us",
            "global",
            "europe-west2",
        ]
        .iter()
        .map(|loc| {
            format!("/v1/projects/p/locations/{loc}/publishers/anthropic/models/claude-sonnet-4-5:streamRawPredict")
        })
        .collect(),
        catalog::PerRequest::None | catalog::PerRequest::BodyModel => {
            vec!["/v1/chat/completions".into(), "/v1/messages".into()]
        }
    }
}

/// The EU contracts for `host`: one without attestation where the catalog places it in the
/// EU, one per attested region where it cannot place it, none where it places it outside.
fn contracts_for(host: &str) -> Vec<String> {
    let rule = |extra: &str| {
        format!("{HEAD_EU}[[network.allow]]\nname = \"r\"\nhost = \"{host}\"\n{extra}")
    };
    match catalog::place(host).and_then(|p| p.in_eu) {
        Some(true) => vec![rule("")],
        Some(false) => vec![],
        None => ATTESTED
            .iter()
            .map(|r| rule(&format!("region = \"{r}\"\n")))
            .collect(),
    }
}

/// The catalog's sample hosts, and its regional endpoints in every EU region.
fn hosts() -> Vec<String> {
    let mut hosts: Vec<String> = SAMPLE_HOSTS.iter().map(|h| h.to_string()).collect();
    for r in catalog::AWS_EU_REGIONS {
        hosts.push(format!("bedrock-runtime.{r}.amazonaws.com"));
        hosts.push(format!("bedrock-mantle.{r}.api.aws"));
    }
    for r in catalog::GCP_EU_REGIONS {
        hosts.push(format!("{r}-aiplatform.googleapis.com"));
    }
    hosts
}

fn flow<'a>(d: &'a Decision, host: &'a str, path: &'a str) -> ObservedFlow<'a> {
    ObservedFlow {
        kind: ObservedKind::Request,
        host,
        port: Some(443),
        method: Some("POST"),
        path: Some(path),
        region: d.region_field(),
        jurisdiction: d.jurisdiction.as_deref(),
    }
}

fn drafted(policy: &Policy) -> ApprovedDiagram {
    let toml = diagram_toml_from_policy(policy, "c.toml").replace(
        "TODO: name the data category (e.g. source code and prompts)",
        "source code and prompts",
    );
    ApprovedDiagram::parse(&toml, "draft.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

#[test]
fn every_allowed_eu_flow_conforms_and_every_residency_denial_would_deviate() {
    let (mut allowed, mut denied, mut eu_profiles, mut other) = (0, 0, 0, 0);
    for host in &hosts() {
        let host = host.as_str();
        for contract in contracts_for(host) {
            let policy = Policy::parse(&contract, "c.toml", &ctx())
                .unwrap_or_else(|e| panic!("{host}: {e}\n{contract}"));
            let diagram = drafted(&policy);
            for path in paths_for(host) {
                let d = policy.decide_request(&RequestFacts {
                    method: "POST",
                    scheme: Scheme::Https,
                    host,
                    port: 443,
                    path_and_query: &path,
                    headers: &[],
                });
                let what = format!("POST https://{host}{path} under\n{contract}\n{d:?}");
                // The recorded field reads back as the very value the decision had.
                if let Some(r) = &d.region {
                    assert_eq!(&Region::from_field(r.field(), host), r, "{what}");
                }
                let m = diagram.match_flow(&flow(&d, host, &path));
                match d.verdict {
                    Verdict::Allow => {
                        allowed += 1;
                        if path.contains("/eu.") || path.contains("/EU.") {
                            eu_profiles += 1;
                        }
                        assert!(d.region.as_ref().is_some_and(Region::is_eu), "{what}");
                        assert!(matches!(m, EdgeMatch::Approved(_)), "{what}\n{m:?}");
                    }
                    // Not a residency form: a model ARN with an encoded `/` is refused as an
                    // ambiguous path before residency is looked at.
                    Verdict::Deny if !d.reason.starts_with("residency EU") => {
                        assert!(d.reason.starts_with("ambiguous path"), "{what}");
                        other += 1;
                    }
                    Verdict::Deny => {
                        denied += 1;
                        assert!(
                            matches!(m, EdgeMatch::OutsideResidency { .. }),
                            "a denied form must deviate if it were let through: {what}\n{m:?}"
                        );
                    }
                }
            }
        }
    }
    // Not vacuous: the catalog's forms were really exercised both ways.
    assert!(allowed >= 100, "{allowed} allowed");
    assert!(denied >= 40, "{denied} denied");
    assert!(eu_profiles >= 40, "{eu_profiles} eu. profiles allowed");
    assert!(other > 0, "the encoded-ARN forms were asked");
}

/// Hosts the catalog places outside the EU are refused at `check`; a flow to one would be
/// judged outside an EU-only edge by the same typed value.
#[test]
fn hosts_placed_outside_the_eu_would_deviate_from_an_eu_edge() {
    let mut outside = 0;
    for host in &hosts() {
        let host = host.as_str();
        let Some(p) = catalog::place(host) else {
            continue;
        };
        if p.in_eu != Some(false) {
            continue;
        }
        outside += 1;
        let contract = format!("{HEAD_EU}[[network.allow]]\nname = \"r\"\nhost = \"{host}\"\n");
        assert!(
            Policy::parse(&contract, "c.toml", &ctx()).is_err(),
            "{host}"
        );
        let region = p.region.as_ref().map_or("unknown", Region::field);
        assert!(
            !Region::from_field(region, host).covered_by("EU", glob_matches),
            "{host}: {region}"
        );
    }
    assert!(outside >= 8, "{outside}");
}

/// Logs written before the typed region carried display text in the field; they still verify.
#[test]
fn a_log_written_with_the_old_display_text_still_conforms() {
    let host = "bedrock-runtime.eu-central-1.amazonaws.com";
    let contract = format!("{HEAD_EU}[[network.allow]]\nname = \"r\"\nhost = \"{host}\"\n");
    let policy = Policy::parse(&contract, "c.toml", &ctx()).unwrap();
    let diagram = drafted(&policy);
    let path = format!("/model/eu.{MODEL}/invoke-with-response-stream");
    let old = ObservedFlow {
        kind: ObservedKind::Request,
        host,
        port: Some(443),
        method: Some("POST"),
        path: Some(&path),
        region: Some("EU (eu. inference profile)"),
        jurisdiction: Some("US"),
    };
    assert!(matches!(diagram.match_flow(&old), EdgeMatch::Approved(_)));
}
