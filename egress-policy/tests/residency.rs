//! Residency under `residency = "EU"`: every catalog provider in and out of the EU, at
//! `check` time and per request.

use std::path::PathBuf;

use egress_policy::{PathContext, Policy, RequestFacts, Scheme, Verdict};

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

const HEAD_EU: &str = "version = 1\n[task]\nid = \"T-1\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n[network]\nresidency = \"EU\"\n";

fn rule(host: &str, extra: &str) -> String {
    format!("{HEAD_EU}[[network.allow]]\nname = \"r\"\nhost = \"{host}\"\n{extra}")
}

fn parse(src: &str) -> Result<Policy, egress_policy::ContractError> {
    Policy::parse(src, "eu.toml", &ctx())
}

fn post<'a>(host: &'a str, path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        method: "POST",
        scheme: Scheme::Https,
        host,
        port: 443,
        path_and_query: path,
        headers: &[],
    }
}

/// (provider, EU host accepted, non-EU host rejected)
const PROVIDERS: &[(&str, &str, &str)] = &[
    ("OpenAI", "eu.api.openai.com", "api.openai.com"),
    (
        "OpenAI data residency",
        "eu.api.openai.com",
        "us.api.openai.com",
    ),
    (
        "AWS Bedrock",
        "bedrock-runtime.eu-central-1.amazonaws.com",
        "bedrock-runtime.us-east-1.amazonaws.com",
    ),
    (
        "AWS Bedrock London",
        "bedrock-runtime.eu-west-1.amazonaws.com",
        "bedrock-runtime.eu-west-2.amazonaws.com",
    ),
    (
        "AWS Bedrock Zurich",
        "bedrock-runtime.eu-north-1.amazonaws.com",
        "bedrock-runtime.eu-central-2.amazonaws.com",
    ),
    (
        "Bedrock OpenAI-compatible",
        "bedrock-mantle.eu-west-3.api.aws",
        "bedrock-mantle.us-west-2.api.aws",
    ),
    (
        "Vertex regional",
        "europe-west4-aiplatform.googleapis.com",
        "us-central1-aiplatform.googleapis.com",
    ),
    (
        "Vertex London/Zurich",
        "europe-west1-aiplatform.googleapis.com",
        "europe-west2-aiplatform.googleapis.com",
    ),
    (
        "Vertex multi-region",
        "aiplatform.eu.rep.googleapis.com",
        "aiplatform.googleapis.com",
    ),
    (
        "Gemini API",
        "europe-west4-aiplatform.googleapis.com",
        "generativelanguage.googleapis.com",
    ),
    (
        "Anthropic",
        "bedrock-runtime.eu-central-1.amazonaws.com",
        "api.anthropic.com",
    ),
    ("Mistral", "api.eu.mistral.ai", "api.mistral.ai"),
    ("Cohere", "api.eu.mistral.ai", "api.cohere.com"),
    ("Groq", "api.eu.mistral.ai", "api.groq.com"),
    ("DeepSeek", "api.eu.mistral.ai", "api.deepseek.com"),
    (
        "GitHub Copilot",
        "api.eu.mistral.ai",
        "api.githubcopilot.com",
    ),
    ("OpenRouter", "api.eu.mistral.ai", "eu.openrouter.ai"),
    (
        "Hugging Face",
        "abc.eu-west-1.aws.endpoints.huggingface.cloud",
        "abc.us-east-1.aws.endpoints.huggingface.cloud",
    ),
];

#[test]
fn every_provider_in_and_out_of_the_eu() {
    for (provider, eu, non_eu) in PROVIDERS {
        let p = parse(&rule(eu, "")).unwrap_or_else(|e| panic!("{provider}: {eu} rejected: {e}"));
        let d = p.decide_request(&post(eu, "/"));
        assert_eq!(d.verdict, Verdict::Allow, "{provider}: {d:?}");
        assert!(
            d.region.is_some() && d.jurisdiction.is_some(),
            "{provider}: {d:?}"
        );
        assert!(!d.region_attested);
        let err = parse(&rule(non_eu, "")).expect_err(non_eu);
        let text = err.to_string();
        assert!(text.contains("outside the EU"), "{provider}: {text}");
        assert!(text.contains("eu.toml:12:8"), "{provider}: {text}");
        // without residency the same host is valid and reports where it goes
        let free = Policy::parse(
            &rule(non_eu, "").replace("residency = \"EU\"\n", ""),
            "x.toml",
            &ctx(),
        )
        .unwrap();
        let d = free.decide_request(&post(non_eu, "/"));
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(d.region.is_some(), "{provider}: {d:?}");
    }
}

#[test]
fn unplaceable_hosts_need_an_eu_attestation() {
    for host in [
        "acme.openai.azure.com",
        "acme.cognitiveservices.azure.com",
        "acme.services.ai.azure.com",
        "api.aleph-alpha.com",
        "copilot-api.acme.ghe.com",
        "llm.corp.example",
    ] {
        assert!(
            parse(&rule(host, "")).is_err(),
            "{host} without attestation"
        );
        assert!(
            parse(&rule(host, "region = \"eastus\"\n")).is_err(),
            "{host} with a non-EU attestation"
        );
        let p = parse(&rule(host, "region = \"swedencentral\"\n"))
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        let d = p.decide_request(&post(host, "/"));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.region_field(), Some("swedencentral"));
        assert!(d.region_attested, "{host}");
        assert!(d.reason.contains("attested"), "{}", d.reason);
    }
}

#[test]
fn wildcards_under_eu_are_placed_per_host() {
    let p = parse(&rule("*.openai.azure.com", "region = \"EU\"\n")).unwrap();
    let d = p.decide_request(&post(
        "acme.openai.azure.com",
        "/openai/deployments/x/chat/completions",
    ));
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(d.region_attested);
    assert!(parse(&rule("*.openai.azure.com", "")).is_err());
    // a wildcard that covers a non-EU catalog host is refused at check time
    assert!(parse(&rule("*.githubusercontent.com", "region = \"EU\"\n")).is_err());
}

#[test]
fn vertex_locations_per_request() {
    let host = "europe-west4-aiplatform.googleapis.com";
    let p = parse(&rule(host, "")).unwrap();
    let ok = p.decide_request(&post(host, "/v1/projects/p/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5:rawPredict"));
    assert_eq!(ok.verdict, Verdict::Allow, "{ok:?}");
    assert_eq!(ok.region_field(), Some("europe-west4"));
    for loc in [
        "global",
        "us-central1",
        "europe-west2",
        "europe-west6",
        "asia-northeast1",
    ] {
        let path = format!("/v1/projects/p/locations/{loc}/publishers/google/models/gemini-2.5-pro:generateContent");
        let d = p.decide_request(&post(host, &path));
        assert_eq!(d.verdict, Verdict::Deny, "{loc}");
        assert_eq!(d.rule.as_deref(), Some("r"));
        assert!(d.reason.contains(loc), "{}", d.reason);
    }
    let multi = "aiplatform.eu.rep.googleapis.com";
    let p = parse(&rule(multi, "")).unwrap();
    assert_eq!(
        p.decide_request(&post(
            multi,
            "/v1/projects/p/locations/eu/publishers/google/models/g:generateContent"
        ))
        .verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.decide_request(&post(
            multi,
            "/v1/projects/p/locations/global/publishers/google/models/g:generateContent"
        ))
        .verdict,
        Verdict::Deny
    );
}

#[test]
fn bedrock_profiles_per_request() {
    let host = "bedrock-runtime.eu-west-3.amazonaws.com";
    let p = parse(&rule(host, "")).unwrap();
    for (path, verdict) in [
        ("/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse", Verdict::Allow),
        ("/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream", Verdict::Allow),
        ("/model/mistral.mistral-large-2407-v1:0/invoke", Verdict::Allow),
        ("/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse", Verdict::Deny),
        ("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse", Verdict::Deny),
        ("/model/apac.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke", Verdict::Deny),
        ("/model/jp.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke", Verdict::Deny),
        ("/model/au.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke", Verdict::Deny),
        ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude/converse", Verdict::Deny),
    ] {
        assert_eq!(p.decide_request(&post(host, path)).verdict, verdict, "{path}");
    }
}
