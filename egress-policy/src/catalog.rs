//! The built-in endpoint catalog: which provider a host belongs to, where it keeps data
//! (region) and under which jurisdiction, taken from the providers' published
//! endpoint and data-residency documentation (docs/contract.md, "Residency", lists it).
//!
//! A host the catalog cannot place is *unplaceable*: under `residency = "EU"` a rule for it
//! needs an explicit `region = "..."` attestation.

use std::sync::{LazyLock, OnceLock};

use regex::Regex;
use serde::Serialize;

use crate::region::Region;

/// AWS regions inside the EU. eu-central-2 (Zurich) and eu-west-2 (London) are not.
pub const AWS_EU_REGIONS: &[&str] = &[
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-3",
];
/// Google Cloud regions inside the EU. europe-west2 (London) and europe-west6 (Zurich) are not.
pub const GCP_EU_REGIONS: &[&str] = &[
    "europe-west1",
    "europe-west3",
    "europe-west4",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
    "europe-north1",
    "europe-north2",
    "europe-central2",
    "europe-southwest1",
];
/// Azure regions inside the EU (for attestations).
pub const AZURE_EU_REGIONS: &[&str] = &[
    "westeurope",
    "northeurope",
    "francecentral",
    "francesouth",
    "germanywestcentral",
    "germanynorth",
    "swedencentral",
    "swedensouth",
    "italynorth",
    "polandcentral",
    "spaincentral",
    "austriaeast",
    "belgiumcentral",
    "denmarkeast",
];

/// `true` when `region` names a location inside the EU: `EU`, an EU country code is not
/// enough; a cloud region from the lists above, or `EU`/`eu` itself.
pub fn region_is_eu(region: &str) -> bool {
    let r = region.trim();
    r.eq_ignore_ascii_case("eu")
        || AWS_EU_REGIONS.contains(&r)
        || GCP_EU_REGIONS.contains(&r)
        || AZURE_EU_REGIONS.contains(&r.to_ascii_lowercase().as_str())
}

/// How the request path can change where data goes, for hosts where that is the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerRequest {
    /// Nothing in the request changes the region.
    None,
    /// AWS Bedrock: the model id in `/model/{id}/...` may be a cross-region inference profile.
    BedrockModelId,
    /// Google Vertex AI: `locations/{loc}` in the path selects the region.
    VertexLocation,
    /// The model, and so possibly a cross-region inference profile, is named in the JSON
    /// body (`model`), as on Bedrock's OpenAI-compatible `bedrock-mantle` endpoints.
    BodyModel,
}

/// Whose model ids a body names, to place them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyModel {
    /// A Bedrock model id, inference profile or ARN.
    Bedrock,
    /// A Vertex model resource name (`projects/p/locations/l/publishers/...`).
    Vertex,
}

/// Where the catalog places a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The provider (`Mistral`, `AWS Bedrock`, ...).
    pub provider: &'static str,
    /// Region where data is processed (the EU geography, `eu-central-1`, `global` ...), or
    /// `None` when the catalog cannot say (the rule must attest it).
    pub region: Option<Region>,
    /// The provider's legal jurisdiction (`US`, `FR`, ...).
    pub jurisdiction: &'static str,
    /// `Some(true)` inside the EU, `Some(false)` outside, `None` unplaceable.
    pub in_eu: Option<bool>,
    /// Facts in each request that can move data elsewhere.
    pub per_request: PerRequest,
    /// Why the catalog says so, for messages.
    pub note: &'static str,
}

#[derive(Clone, Copy)]
enum HostRegion {
    /// A fixed region; `true` if inside the EU.
    Fixed(&'static str, bool),
    /// The first capture group of the host regex is the region; EU iff in the list.
    Captured(&'static [&'static str]),
    /// Cannot be known from the host.
    Unplaceable,
}

struct Entry {
    provider: &'static str,
    host: &'static str,
    region: HostRegion,
    jurisdiction: &'static str,
    per_request: PerRequest,
    note: &'static str,
}

const ENTRIES: &[Entry] = &[
    Entry { provider: "OpenAI", host: r"^api\.openai\.com$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "global endpoint, no residency guarantee; use eu.api.openai.com with an EU data-residency project" },
    Entry { provider: "OpenAI data residency", host: r"^eu\.api\.openai\.com$", region: HostRegion::Fixed("EU", true), jurisdiction: "US", per_request: PerRequest::None, note: "EU data-residency project (EEA + Switzerland)" },
    Entry { provider: "OpenAI data residency", host: r"^(us|au|in|jp|ae)\.api\.openai\.com$", region: HostRegion::Captured(&[]), jurisdiction: "US", per_request: PerRequest::None, note: "data-residency project outside the EU" },
    Entry { provider: "Azure OpenAI", host: r"^[a-z0-9-]+\.(?:openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)$", region: HostRegion::Unplaceable, jurisdiction: "US", per_request: PerRequest::None, note: "the region is the resource's location and deployment type, not in the host: attest it with `region`" },
    Entry { provider: "AWS Bedrock", host: r"^bedrock-runtime\.([a-z0-9-]+)\.amazonaws\.com$", region: HostRegion::Captured(AWS_EU_REGIONS), jurisdiction: "US", per_request: PerRequest::BedrockModelId, note: "region in the host; the model id may name a cross-region inference profile" },
    Entry { provider: "AWS Bedrock (OpenAI-compatible)", host: r"^bedrock-mantle\.([a-z0-9-]+)\.api\.aws$", region: HostRegion::Captured(AWS_EU_REGIONS), jurisdiction: "US", per_request: PerRequest::BodyModel, note: "region in the host; the body's `model` may name a cross-region inference profile" },
    Entry { provider: "Google Vertex AI", host: r"^aiplatform\.eu\.rep\.googleapis\.com$", region: HostRegion::Fixed("eu", true), jurisdiction: "US", per_request: PerRequest::VertexLocation, note: "EU multi-region endpoint" },
    Entry { provider: "Google Vertex AI", host: r"^([a-z0-9-]+)-aiplatform\.googleapis\.com$", region: HostRegion::Captured(GCP_EU_REGIONS), jurisdiction: "US", per_request: PerRequest::VertexLocation, note: "region in the host and in `locations/<region>`" },
    Entry { provider: "Google Vertex AI", host: r"^aiplatform\.googleapis\.com$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::VertexLocation, note: "global endpoint: region unknown by design" },
    Entry { provider: "Google Gemini API", host: r"^generativelanguage\.googleapis\.com$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "no residency option" },
    Entry { provider: "Anthropic", host: r"^api\.anthropic\.com$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "inference_geo is `global` or `us` only: no EU inference" },
    Entry { provider: "Anthropic", host: r"^(?:claude\.ai|statsig\.anthropic\.com)$", region: HostRegion::Fixed("US", false), jurisdiction: "US", per_request: PerRequest::None, note: "Claude Code non-inference endpoint" },
    Entry { provider: "OpenAI", host: r"^chatgpt\.com$", region: HostRegion::Fixed("US", false), jurisdiction: "US", per_request: PerRequest::None, note: "ChatGPT backend (Codex CLI with a ChatGPT login)" },
    Entry { provider: "Mistral", host: r"^api\.eu\.mistral\.ai$", region: HostRegion::Fixed("EU", true), jurisdiction: "FR", per_request: PerRequest::None, note: "EU endpoint" },
    Entry { provider: "Mistral", host: r"^api\.mistral\.ai$", region: HostRegion::Fixed("global", false), jurisdiction: "FR", per_request: PerRequest::None, note: "global endpoint; use api.eu.mistral.ai for EU residency" },
    Entry { provider: "Aleph Alpha", host: r"^api\.aleph-alpha\.com$", region: HostRegion::Unplaceable, jurisdiction: "DE", per_request: PerRequest::None, note: "processing location undocumented: attest it with `region`" },
    Entry { provider: "Cohere", host: r"^api\.cohere\.(?:com|ai)$", region: HostRegion::Fixed("global", false), jurisdiction: "CA", per_request: PerRequest::None, note: "no EU endpoint" },
    Entry { provider: "Groq", host: r"^api\.groq\.com$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "no EU endpoint documented" },
    Entry { provider: "DeepSeek", host: r"^api\.deepseek\.com$", region: HostRegion::Fixed("CN", false), jurisdiction: "CN", per_request: PerRequest::None, note: "data stored in the PRC" },
    Entry { provider: "GitHub Copilot", host: r"^(?:api\.githubcopilot\.com|api\.(?:individual|business|enterprise)\.githubcopilot\.com|copilot-proxy\.githubusercontent\.com)$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "no residency on github.com; GHE.com data-residency tenants are separate hosts" },
    Entry { provider: "GitHub Enterprise Cloud (data residency)", host: r"^(?:[a-z0-9-]+\.)+ghe\.com$", region: HostRegion::Unplaceable, jurisdiction: "US", per_request: PerRequest::None, note: "the tenant's region is not in the host: attest it with `region`" },
    Entry { provider: "OpenRouter", host: r"^openrouter\.ai$", region: HostRegion::Fixed("global", false), jurisdiction: "US", per_request: PerRequest::None, note: "global routing" },
    Entry { provider: "OpenRouter", host: r"^eu\.openrouter\.ai$", region: HostRegion::Fixed("Europe (EU/EEA, UK, CH)", false), jurisdiction: "US", per_request: PerRequest::None, note: "routes to European providers including UK and Swiss ones: Europe, not EU-only" },
    Entry { provider: "Hugging Face Inference Endpoints", host: r"^[a-z0-9-]+\.([a-z0-9-]+)\.(?:aws|azure|gcp)\.endpoints\.huggingface\.cloud$", region: HostRegion::Captured(&["eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9", "europe-north1", "europe-central2", "europe-southwest1", "westeurope", "northeurope", "francecentral", "germanywestcentral", "swedencentral"]), jurisdiction: "US", per_request: PerRequest::None, note: "region in the host" },
];

/// Each entry's regex, compiled the first time a host could match it: compiling the whole
/// catalog cost 0.6–0.8 ms of every `sandbox run` start (the contract's hosts are placed when
/// it is parsed), and a session's hosts reach only an entry or two.
static COMPILED: LazyLock<Vec<OnceLock<Regex>>> =
    LazyLock::new(|| ENTRIES.iter().map(|_| OnceLock::new()).collect());

/// The literal every host an entry matches ends with (see [`required_suffix`]).
static SUFFIXES: LazyLock<Vec<String>> =
    LazyLock::new(|| ENTRIES.iter().map(|e| required_suffix(e.host)).collect());

fn entry_regex(index: usize) -> &'static Regex {
    COMPILED[index]
        .get_or_init(|| Regex::new(ENTRIES[index].host).expect("built-in catalog pattern compiles"))
}

/// The literal text at the end of an anchored (`…$`) pattern: every string the pattern matches
/// ends with it, so a host that does not cannot match and its regex need not run (or even be
/// compiled). Empty when the pattern does not end in plain literal text (a group, a class, a
/// quantifier) or has a top-level alternation; the test
/// `required_suffixes_are_implied_by_their_patterns` checks every entry with the regex parser.
fn required_suffix(pattern: &str) -> String {
    let Some(body) = pattern.strip_suffix('$') else {
        return String::new();
    };
    let (mut depth, mut escaped, mut in_class) = (0i32, false, false);
    for c in body.chars() {
        match (escaped, in_class, c) {
            (true, _, _) => escaped = false,
            (false, _, '\\') => escaped = true,
            (false, true, ']') => in_class = false,
            (false, true, _) => {}
            (false, false, '[') => in_class = true,
            (false, false, '(') => depth += 1,
            (false, false, ')') => depth -= 1,
            (false, false, '|') if depth == 0 => return String::new(),
            _ => {}
        }
    }
    let chars: Vec<char> = body.chars().collect();
    let mut out: Vec<char> = Vec::new();
    let mut i = chars.len();
    while i > 0 {
        let c = chars[i - 1];
        let before = if i >= 2 { Some(chars[i - 2]) } else { None };
        if c == '.' && before == Some('\\') {
            out.push('.');
            i -= 2;
        } else if (c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && before != Some('\\')
        {
            out.push(c);
            i -= 1;
        } else {
            break;
        }
    }
    out.iter().rev().collect()
}

/// Hosts that stand for each catalog entry, used to check what a wildcard rule could reach.
pub const SAMPLE_HOSTS: &[&str] = &[
    "api.openai.com",
    "eu.api.openai.com",
    "us.api.openai.com",
    "example.openai.azure.com",
    "bedrock-runtime.eu-central-1.amazonaws.com",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "bedrock-runtime.eu-west-2.amazonaws.com",
    "bedrock-mantle.us-east-1.api.aws",
    "europe-west4-aiplatform.googleapis.com",
    "us-central1-aiplatform.googleapis.com",
    "aiplatform.googleapis.com",
    "aiplatform.eu.rep.googleapis.com",
    "generativelanguage.googleapis.com",
    "api.anthropic.com",
    "claude.ai",
    "statsig.anthropic.com",
    "chatgpt.com",
    "api.mistral.ai",
    "api.eu.mistral.ai",
    "api.cohere.com",
    "api.cohere.ai",
    "api.groq.com",
    "api.deepseek.com",
    "api.githubcopilot.com",
    "copilot-proxy.githubusercontent.com",
    "openrouter.ai",
    "eu.openrouter.ai",
    "x.us-east-1.aws.endpoints.huggingface.cloud",
];

/// Place a normalised host name (lowercase, no trailing dot). `None` when the catalog does
/// not know the host at all.
///
/// The proxy asks this on every request, for the few hosts of a session: answers are
/// remembered per thread (up to [`PLACE_MEMO_MAX`] hosts), which also spares the regexes'
/// shared cache pool.
pub fn place(host: &str) -> Option<Placement> {
    use crate::memo::BoundedMemo;
    use std::cell::RefCell;
    thread_local! {
        static MEMO: RefCell<BoundedMemo<String, Option<Placement>>> =
            RefCell::new(BoundedMemo::new(PLACE_MEMO_MAX));
    }
    if let Some(hit) = MEMO.with(|m| m.borrow().get(host).cloned()) {
        return hit;
    }
    let placed = place_uncached(host);
    // Only names a DNS name can be are kept, so the memo's memory stays bounded too.
    if host.len() <= 253 {
        MEMO.with(|m| m.borrow_mut().insert(host.to_string(), placed.clone()));
    }
    placed
}

/// How many hosts [`place`] remembers per thread before it starts over.
pub const PLACE_MEMO_MAX: usize = 256;

fn place_uncached(host: &str) -> Option<Placement> {
    for (index, entry) in ENTRIES.iter().enumerate() {
        if !host.ends_with(SUFFIXES[index].as_str()) {
            continue;
        }
        let Some(caps) = entry_regex(index).captures(host) else {
            continue;
        };
        let (region, in_eu) = match entry.region {
            HostRegion::Fixed(r, eu) => {
                (Some(Region::from_code(r, Some(entry.provider))), Some(eu))
            }
            HostRegion::Captured(eu_list) => {
                let r = caps.get(1).map_or("", |m| m.as_str());
                let eu = eu_list.contains(&r);
                (Some(Region::from_code(r, Some(entry.provider))), Some(eu))
            }
            HostRegion::Unplaceable => (None, None),
        };
        return Some(Placement {
            provider: entry.provider,
            region,
            jurisdiction: entry.jurisdiction,
            in_eu,
            per_request: entry.per_request,
            note: entry.note,
        });
    }
    None
}

/// The per-request facts to check for a host: the catalog's, or, for a host the catalog
/// does not place (a VPC or private endpoint, a FIPS or dual-stack name attested by the
/// rule), those of the service its name contains (`bedrock-runtime`, `aiplatform`), so that
/// an attested endpoint of the same API still gets its model ids and locations checked.
pub fn per_request_for(host: &crate::host::Host, placement: Option<&Placement>) -> PerRequest {
    if let Some(p) = placement.filter(|p| p.per_request != PerRequest::None) {
        return p.per_request;
    }
    let crate::host::Host::Name(name) = host else {
        return PerRequest::None;
    };
    if name.split('.').any(|l| l.starts_with("bedrock-runtime")) {
        PerRequest::BedrockModelId
    } else if name.split('.').any(|l| l.contains("aiplatform")) {
        PerRequest::VertexLocation
    } else {
        PerRequest::None
    }
}

/// `true` for the code of a geography outside the EU that a region field can hold: a Bedrock
/// cross-region profile prefix (`global`, `us`, `apac`, ...), compared case-insensitively.
pub fn is_outside_geography(code: &str) -> bool {
    BEDROCK_NON_EU_PROFILES.contains(&code.to_ascii_lowercase().as_str())
}

/// Bedrock geography prefixes of cross-region inference profiles that leave the EU.
const BEDROCK_NON_EU_PROFILES: &[&str] = &[
    "global", "us", "us-gov", "apac", "jp", "au", "ca", "in", "uk", "sa", "me", "af", "il", "mx",
];

/// The outcome of looking at one request's path for region-changing facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRegion {
    /// The path does not change the host's region.
    Unchanged,
    /// The path keeps data in the EU, in this (more precise) region or geography.
    Eu {
        /// Where it goes (`eu-central-1`, the EU geography of an `eu.` profile ...).
        region: Region,
        /// What in the path says so, for the decision's reason.
        why: String,
    },
    /// The region depends on a field of the request body, which the proxy reads (bounded)
    /// and places with [`body_model_region`] before the request is forwarded.
    InBody {
        /// The JSON field (`model`, `modelId`).
        field: &'static str,
        /// Whose model ids it holds.
        kind: BodyModel,
    },
    /// The path sends data outside the EU, or somewhere the engine cannot place.
    Outside {
        /// Where it goes (`global`, `us`, unknown...).
        region: Region,
        /// Why, for the decision's reason.
        why: String,
    },
}

/// Decide what a request path means for residency, for a host with [`PerRequest`] facts.
/// `path` is the normalised path without the query.
pub fn path_region(per_request: PerRequest, path: &str) -> PathRegion {
    match per_request {
        PerRequest::None => PathRegion::Unchanged,
        PerRequest::BedrockModelId => bedrock_model_region(path),
        PerRequest::VertexLocation => vertex_location_region(path),
        PerRequest::BodyModel => PathRegion::InBody {
            field: "model",
            kind: BodyModel::Bedrock,
        },
    }
}

/// Where the model `id` a request body names sends data (see [`PathRegion::InBody`]).
pub fn body_model_region(kind: BodyModel, id: &str) -> PathRegion {
    match kind {
        BodyModel::Bedrock => bedrock_id_region(id),
        BodyModel::Vertex => {
            let path = format!("/{}", id.trim_start_matches('/'));
            vertex_location_region(&path)
        }
    }
}

/// `s` without `prefix`, compared ASCII case-insensitively (a server that folds case must
/// not see a region-changing fact the engine missed).
fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn bedrock_model_region(path: &str) -> PathRegion {
    let Some(rest) = strip_prefix_ignore_case(path, "/model/") else {
        // The runtime APIs that take the model, and so a possible cross-region inference
        // profile, in the body, which the engine never sees: `/async-invoke` and the
        // OpenAI-compatible `/openai/v1/...`.
        if strip_prefix_ignore_case(path, "/async-invoke").is_some() {
            return PathRegion::InBody {
                field: "modelId",
                kind: BodyModel::Bedrock,
            };
        }
        if strip_prefix_ignore_case(path, "/openai/").is_some() {
            return PathRegion::InBody {
                field: "model",
                kind: BodyModel::Bedrock,
            };
        }
        return PathRegion::Unchanged;
    };
    let id = crate::url::percent_decode_lossy(rest.split('/').next().unwrap_or(""));
    bedrock_id_region(&id)
}

/// Where a Bedrock model id (bare, inference profile or ARN) sends data.
fn bedrock_id_region(id: &str) -> PathRegion {
    if let Some(arn) = strip_prefix_ignore_case(id, "arn:") {
        // arn:aws:bedrock:REGION:ACCOUNT:RESOURCE-TYPE/ID
        let parts: Vec<&str> = arn.splitn(5, ':').collect();
        let region = parts.get(2).copied().unwrap_or("");
        let resource = parts.get(4).copied().unwrap_or("");
        if !AWS_EU_REGIONS.contains(&region) {
            return PathRegion::Outside {
                region: Region::from_code(region, Some("AWS Bedrock")),
                why: format!("the model ARN names region `{region}`, which is not in the EU"),
            };
        }
        if let Some(model) = resource.strip_prefix("foundation-model/") {
            let _ = model;
            return PathRegion::Eu {
                region: Region::One(region.to_string()),
                why: format!("the model ARN names EU region `{region}`"),
            };
        }
        if let Some(profile) = resource.strip_prefix("inference-profile/") {
            return bedrock_profile(profile);
        }
        return PathRegion::Outside {
            region: Region::Unknown,
            why: format!(
                "the model ARN names a `{}` resource, whose routing the engine cannot place",
                resource.split('/').next().unwrap_or("")
            ),
        };
    }
    bedrock_profile(id)
}

/// Model providers of Bedrock's bare model ids (`anthropic.claude-...`): a model id whose
/// first label is one of these stays in the host's region.
const BEDROCK_PROVIDERS: &[&str] = &[
    "ai21",
    "amazon",
    "anthropic",
    "cohere",
    "deepseek",
    "google",
    "luma",
    "meta",
    "minimax",
    "mistral",
    "moonshot",
    "moonshotai",
    "nvidia",
    "openai",
    "qwen",
    "stability",
    "twelvelabs",
    "writer",
];

fn bedrock_profile(id: &str) -> PathRegion {
    let Some((first, _)) = id.split_once('.') else {
        return PathRegion::Unchanged;
    };
    // Compared case-insensitively: `GLOBAL.` must not slip past a list of `global.`.
    let prefix = first.to_ascii_lowercase();
    if prefix == "eu" {
        return PathRegion::Eu {
            region: Region::eu_for_provider(Some("AWS Bedrock")),
            why: "the model id is an `eu.` cross-region inference profile (EU regions only)".into(),
        };
    }
    if BEDROCK_NON_EU_PROFILES.contains(&prefix.as_str()) {
        return PathRegion::Outside {
            region: Region::outside_geography(&prefix),
            why: format!(
                "model id `{}` is a `{prefix}.` cross-region inference profile, which can process data outside the EU; use the `eu.` profile or a bare model id",
                id.escape_default()
            ),
        };
    }
    if BEDROCK_PROVIDERS.contains(&prefix.as_str()) {
        return PathRegion::Unchanged;
    }
    PathRegion::Outside {
        region: Region::Unknown,
        why: format!(
            "model id `{}` starts with `{}.`, which is neither a known model provider nor the `eu.` inference profile: it may be a cross-region profile the engine cannot place",
            id.escape_default(),
            first.escape_default()
        ),
    }
}

fn vertex_location_region(path: &str) -> PathRegion {
    let mut result = PathRegion::Unchanged;
    let segments: Vec<&str> = path.split('/').collect();
    for pair in segments.windows(2) {
        if !pair[0].eq_ignore_ascii_case("locations") {
            continue;
        }
        let loc = pair[1].split(':').next().unwrap_or("");
        if loc == "eu" || GCP_EU_REGIONS.contains(&loc) {
            result = PathRegion::Eu {
                region: Region::from_code(loc, Some("Google Vertex AI")),
                why: format!("the path names Vertex location `{loc}`"),
            };
        } else {
            return PathRegion::Outside {
                region: Region::from_code(loc, Some("Google Vertex AI")),
                why: format!("the path names Vertex location `{loc}`, which is not in the EU"),
            };
        }
    }
    // A batch job names its model (and so possibly another location) in the body.
    let batch = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("batchPredictionJobs"));
    if batch {
        return PathRegion::InBody {
            field: "model",
            kind: BodyModel::Vertex,
        };
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_suffixes_are_implied_by_their_patterns() {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        for entry in ENTRIES {
            let suffix = required_suffix(entry.host);
            let hir = regex_syntax::parse(entry.host).unwrap();
            let mut extractor = Extractor::new();
            extractor.kind(ExtractKind::Suffix);
            match extractor.extract(&hir).literals() {
                Some(lits) => {
                    for lit in lits {
                        assert!(
                            lit.as_bytes().ends_with(suffix.as_bytes()),
                            "{}: suffix {suffix:?} but the pattern can end with {:?}",
                            entry.host,
                            String::from_utf8_lossy(lit.as_bytes())
                        );
                    }
                }
                None => assert!(suffix.is_empty(), "{}: {suffix:?}", entry.host),
            }
        }
        // The parser of suffixes itself, on shapes the catalog does not (yet) use.
        assert_eq!(required_suffix(r"^api\.example\.com$"), "api.example.com");
        assert_eq!(required_suffix(r"^[a-z]+\.example\.com$"), ".example.com");
        assert_eq!(required_suffix(r"^a|b\.example\.com$"), "");
        assert_eq!(required_suffix(r"^(?:a|b)\.example\.com$"), ".example.com");
        assert_eq!(required_suffix(r"^[|(]x\.com$"), "x.com");
        assert_eq!(required_suffix(r"^x\.(?:com|ai)$"), "");
        assert_eq!(required_suffix(r"^x\d$"), "");
        assert_eq!(required_suffix(r"^xy?$"), "");
        assert_eq!(required_suffix(r"^x\.com"), "");
        // Skipping on the suffix never changes an answer.
        for host in SAMPLE_HOSTS
            .iter()
            .map(|h| h.to_string())
            .chain(SAMPLE_HOSTS.iter().map(|h| format!("x{h}")))
            .chain(SAMPLE_HOSTS.iter().map(|h| format!("{h}x")))
        {
            let brute = ENTRIES
                .iter()
                .position(|e| Regex::new(e.host).unwrap().is_match(&host));
            let fast = ENTRIES.iter().enumerate().position(|(i, _)| {
                host.ends_with(SUFFIXES[i].as_str()) && entry_regex(i).is_match(&host)
            });
            assert_eq!(brute, fast, "{host}");
        }
    }

    #[test]
    fn remembered_placements_equal_fresh_ones_and_the_memo_is_bounded() {
        for round in 0..2 {
            for host in SAMPLE_HOSTS
                .iter()
                .copied()
                .chain(["unknown.example", "api.eu.mistral.ai."])
            {
                assert_eq!(place(host), place_uncached(host), "{host}, round {round}");
            }
        }
        for i in 0..(PLACE_MEMO_MAX * 3) {
            let host = format!("h{i}.eu-central-1.example");
            assert_eq!(place(&host), None);
        }
        assert_eq!(
            place("api.eu.mistral.ai"),
            place_uncached("api.eu.mistral.ai")
        );
    }

    #[test]
    fn every_sample_host_is_placed() {
        for h in SAMPLE_HOSTS {
            assert!(place(h).is_some(), "{h}");
        }
        assert!(place("example.com").is_none());
    }

    /// One row per catalog provider: a host inside the EU and one outside (or unplaceable).
    #[test]
    fn providers_in_and_out_of_the_eu() {
        let cases: &[(&str, Option<bool>, &str)] = &[
            ("api.openai.com", Some(false), "US"),
            ("eu.api.openai.com", Some(true), "US"),
            ("us.api.openai.com", Some(false), "US"),
            ("jp.api.openai.com", Some(false), "US"),
            ("myres.openai.azure.com", None, "US"),
            ("myres.cognitiveservices.azure.com", None, "US"),
            ("myres.services.ai.azure.com", None, "US"),
            (
                "bedrock-runtime.eu-central-1.amazonaws.com",
                Some(true),
                "US",
            ),
            ("bedrock-runtime.eu-west-3.amazonaws.com", Some(true), "US"),
            (
                "bedrock-runtime.eu-central-2.amazonaws.com",
                Some(false),
                "US",
            ),
            ("bedrock-runtime.eu-west-2.amazonaws.com", Some(false), "US"),
            ("bedrock-runtime.us-east-1.amazonaws.com", Some(false), "US"),
            ("bedrock-mantle.eu-north-1.api.aws", Some(true), "US"),
            ("bedrock-mantle.us-west-2.api.aws", Some(false), "US"),
            ("europe-west4-aiplatform.googleapis.com", Some(true), "US"),
            ("europe-west2-aiplatform.googleapis.com", Some(false), "US"),
            ("europe-west6-aiplatform.googleapis.com", Some(false), "US"),
            ("us-central1-aiplatform.googleapis.com", Some(false), "US"),
            ("aiplatform.eu.rep.googleapis.com", Some(true), "US"),
            ("aiplatform.googleapis.com", Some(false), "US"),
            ("generativelanguage.googleapis.com", Some(false), "US"),
            ("api.anthropic.com", Some(false), "US"),
            ("claude.ai", Some(false), "US"),
            ("chatgpt.com", Some(false), "US"),
            ("api.eu.mistral.ai", Some(true), "FR"),
            ("api.mistral.ai", Some(false), "FR"),
            ("api.aleph-alpha.com", None, "DE"),
            ("api.cohere.com", Some(false), "CA"),
            ("api.cohere.ai", Some(false), "CA"),
            ("api.groq.com", Some(false), "US"),
            ("api.deepseek.com", Some(false), "CN"),
            ("api.githubcopilot.com", Some(false), "US"),
            ("api.business.githubcopilot.com", Some(false), "US"),
            ("copilot-proxy.githubusercontent.com", Some(false), "US"),
            ("copilot-api.acme.ghe.com", None, "US"),
            ("openrouter.ai", Some(false), "US"),
            ("eu.openrouter.ai", Some(false), "US"),
            (
                "abc123.eu-west-1.aws.endpoints.huggingface.cloud",
                Some(true),
                "US",
            ),
            (
                "abc123.us-east-1.aws.endpoints.huggingface.cloud",
                Some(false),
                "US",
            ),
        ];
        for (host, in_eu, jurisdiction) in cases {
            let p = place(host).unwrap_or_else(|| panic!("{host} not placed"));
            assert_eq!(p.in_eu, *in_eu, "{host}");
            assert_eq!(p.jurisdiction, *jurisdiction, "{host}");
            assert_eq!(p.region.is_none(), in_eu.is_none(), "{host}");
        }
    }

    #[test]
    fn bedrock_profiles() {
        let eu = |p: &str| bedrock_model_region(p);
        assert!(matches!(
            eu("/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse"),
            PathRegion::Eu { .. }
        ));
        assert_eq!(
            eu("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke"),
            PathRegion::Unchanged
        );
        assert_eq!(
            eu("/model/mistral.mistral-large-2402-v1:0/converse"),
            PathRegion::Unchanged
        );
        for bad in ["global", "us", "apac", "jp", "au", "us-gov"] {
            let p = format!("/model/{bad}.anthropic.claude-sonnet-4-5-20250929-v1:0/converse");
            assert!(matches!(eu(&p), PathRegion::Outside { .. }), "{p}");
        }
        // ARNs, percent-encoded as the SDKs send them
        assert!(matches!(
            eu("/model/arn%3Aaws%3Abedrock%3Aeu-central-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-v2/converse"),
            PathRegion::Eu { .. }
        ));
        assert!(matches!(
            eu("/model/arn%3Aaws%3Abedrock%3Aeu-central-1%3A123456789012%3Ainference-profile%2Fglobal.anthropic.claude-v2/converse"),
            PathRegion::Outside { .. }
        ));
        assert!(matches!(
            eu("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fanthropic.claude-v2/converse"),
            PathRegion::Outside { .. }
        ));
        assert!(matches!(
            eu("/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A%3Afoundation-model%2Fanthropic.claude-v2/converse"),
            PathRegion::Eu { .. }
        ));
        assert!(matches!(
            eu("/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123%3Aapplication-inference-profile%2Fabc/converse"),
            PathRegion::Outside { .. }
        ));
    }

    #[test]
    fn vertex_locations() {
        let v = |p: &str| vertex_location_region(p);
        assert!(matches!(v("/v1/projects/p/locations/europe-west4/publishers/anthropic/models/claude:rawPredict"), PathRegion::Eu { .. }));
        assert!(matches!(
            v("/v1/projects/p/locations/eu/publishers/google/models/gemini:generateContent"),
            PathRegion::Eu { .. }
        ));
        assert!(matches!(
            v("/v1/projects/p/locations/global/publishers/google/models/gemini:generateContent"),
            PathRegion::Outside { .. }
        ));
        assert!(matches!(
            v("/v1/projects/p/locations/us-central1/publishers/google/models/g:generateContent"),
            PathRegion::Outside { .. }
        ));
        assert!(matches!(
            v("/v1/projects/p/locations/europe-west2/x"),
            PathRegion::Outside { .. }
        ));
        assert_eq!(v("/v1/projects/p/models"), PathRegion::Unchanged);
    }

    #[test]
    fn attested_regions() {
        for r in [
            "EU",
            "eu",
            "eu-central-1",
            "europe-west4",
            "swedencentral",
            "SwedenCentral",
        ] {
            assert!(region_is_eu(r), "{r}");
        }
        for r in [
            "us-east-1",
            "eu-west-2",
            "eu-central-2",
            "europe-west6",
            "uksouth",
            "global",
            "Europe",
            "",
        ] {
            assert!(!region_is_eu(r), "{r}");
        }
    }
}
