//! Where a flow's data is processed: one typed value that a decision records, the flow log
//! carries (as its `region` field) and an approved diagram's `regions` judge.
//!
//! A region is either one place (a cloud region such as `eu-central-1`, or the label a rule
//! attests), a *geography* that a provider routes within (Bedrock's `eu.` cross-region
//! inference profiles and Vertex's `eu` multi-region are the EU geography, and may process a
//! request in any of a known set of EU regions; `us.` or `global.` profiles are geographies
//! outside the EU), or unknown. The flow log stores only the code ([`Region::field`]); the
//! set of regions a geography routes to is the catalog's, for the provider of the flow's host,
//! so a verifier reading a log rebuilds the very value the decision had
//! ([`Region::from_field`]).
//!
//! Display text ("EU (eu. inference profile)") belongs in a decision's reason, never in the
//! field: logs written before this type existed carry such text in the field, and
//! [`Region::from_field`] still reads them.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::catalog::{self, AWS_EU_REGIONS, GCP_EU_REGIONS};

/// Where data is processed, as the catalog or a rule's attestation places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Region {
    /// One place: a cloud region id (`eu-central-1`, `europe-west4`, `westeurope`) or the
    /// label a rule's `region = "..."` attests.
    One(String),
    /// A geography the provider routes requests within.
    Geography(Geography),
    /// The engine cannot place it (`unknown` in the log).
    Unknown,
}

/// A geography: several regions, any of which may process a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geography {
    /// The code the log records: `EU`, or a cross-region profile's prefix (`us`, `global`,
    /// `apac`, ...).
    pub code: String,
    /// `true` for the EU geography.
    pub in_eu: bool,
    /// The regions it may route to, where the catalog knows them (empty where it does not:
    /// an EU data-residency endpoint names no regions).
    pub routes_to: &'static [&'static str],
}

/// The code of the EU geography, as recorded.
pub const EU: &str = "EU";

impl Region {
    /// The EU geography as the provider of `host` routes it: any AWS EU region for Bedrock,
    /// any Google EU region for Vertex AI, no listed regions for other providers.
    pub fn eu_for_host(host: &str) -> Region {
        Region::eu_for_provider(catalog::place(host).map(|p| p.provider))
    }

    /// The EU geography as `provider` (the catalog's name) routes it.
    pub fn eu_for_provider(provider: Option<&str>) -> Region {
        let routes_to: &'static [&'static str] = match provider {
            Some(p) if p.starts_with("AWS Bedrock") => AWS_EU_REGIONS,
            Some("Google Vertex AI") => GCP_EU_REGIONS,
            _ => &[],
        };
        Region::Geography(Geography {
            code: EU.to_string(),
            in_eu: true,
            routes_to,
        })
    }

    /// A geography outside the EU (`global`, `us`, `apac`, ...), whose regions the engine
    /// does not list.
    pub fn outside_geography(code: &str) -> Region {
        Region::Geography(Geography {
            code: code.to_ascii_lowercase(),
            in_eu: false,
            routes_to: &[],
        })
    }

    /// Reads a recorded `region` field (and an attested or catalog region text) for a flow to
    /// `host`. Reads what this engine writes and what earlier versions wrote: a display
    /// suffix in parentheses (`EU (eu. inference profile)`) is ignored.
    pub fn from_field(field: &str, host: &str) -> Region {
        let code = match field.trim().split_once(" (") {
            Some((code, rest)) if rest.ends_with(')') => code.trim(),
            _ => field.trim(),
        };
        if code.eq_ignore_ascii_case(EU) {
            return Region::eu_for_host(host);
        }
        Region::from_code(code, None)
    }

    /// A region code (no display text) for a flow to a host of `provider`.
    pub(crate) fn from_code(code: &str, provider: Option<&str>) -> Region {
        if code.eq_ignore_ascii_case(EU) {
            return Region::eu_for_provider(provider);
        }
        if code.eq_ignore_ascii_case("unknown") || code.is_empty() {
            return Region::Unknown;
        }
        if catalog::is_outside_geography(code) {
            return Region::outside_geography(code);
        }
        Region::One(code.to_string())
    }

    /// What the log's `region` field holds: the region id, the geography's code, or
    /// `unknown`.
    pub fn field(&self) -> &str {
        match self {
            Region::One(r) => r,
            Region::Geography(g) => &g.code,
            Region::Unknown => "unknown",
        }
    }

    /// For people: the field, and for a geography the regions it may route to
    /// (`EU (may route to eu-central-1, eu-north-1, ...)`). Never compared.
    pub fn describe(&self) -> String {
        match self {
            Region::Geography(g) if !g.routes_to.is_empty() => {
                format!("{} (may route to {})", g.code, g.routes_to.join(", "))
            }
            Region::Geography(g) => format!("{} (a geography)", g.code),
            other => other.field().to_string(),
        }
    }

    /// `true` when every place this region stands for is inside the EU.
    pub fn is_eu(&self) -> bool {
        match self {
            Region::One(r) => catalog::region_is_eu(r),
            Region::Geography(g) => g.in_eu,
            Region::Unknown => false,
        }
    }

    /// Whether an approved diagram's `regions` entry covers this region. `EU` covers every
    /// region inside the EU and the EU geography; any other entry is a glob, which covers a
    /// region it matches, and a geography when it matches the code or every region the
    /// geography may route to (`eu-*` covers Bedrock's `eu.` profile; `eu-central-1` alone
    /// does not, since the profile may process the request in `eu-west-3`).
    pub fn covered_by(&self, entry: &str, glob_matches: impl Fn(&str, &str) -> bool) -> bool {
        if entry.eq_ignore_ascii_case(EU) {
            return self.is_eu();
        }
        if glob_matches(entry, self.field()) {
            return true;
        }
        match self {
            Region::Geography(g) if !g.routes_to.is_empty() => {
                g.routes_to.iter().all(|r| glob_matches(entry, r))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.field())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";

    fn glob(p: &str, s: &str) -> bool {
        match p.strip_suffix('*') {
            Some(prefix) => s.starts_with(prefix),
            None => p == s,
        }
    }

    #[test]
    fn old_display_text_reads_as_the_eu_geography() {
        let old = Region::from_field("EU (eu. inference profile)", BEDROCK);
        assert_eq!(old, Region::from_field("EU", BEDROCK));
        assert_eq!(old.field(), "EU");
        assert!(old.is_eu());
        let Region::Geography(g) = &old else {
            panic!("{old:?}")
        };
        assert_eq!(g.routes_to, AWS_EU_REGIONS);
    }

    #[test]
    fn fields_round_trip() {
        for (field, host) in [
            ("eu-central-1", BEDROCK),
            ("EU", BEDROCK),
            ("EU", "europe-west4-aiplatform.googleapis.com"),
            ("EU", "api.eu.mistral.ai"),
            ("europe-west4", "aiplatform.eu.rep.googleapis.com"),
            ("us", BEDROCK),
            ("global", BEDROCK),
            ("unknown", BEDROCK),
            ("westeurope", "x.openai.azure.com"),
        ] {
            let r = Region::from_field(field, host);
            assert_eq!(r.field(), field, "{r:?}");
            assert_eq!(Region::from_field(r.field(), host), r);
        }
    }

    #[test]
    fn geographies_are_judged_by_where_they_may_route() {
        let eu = Region::from_field("EU", BEDROCK);
        assert!(eu.covered_by("EU", glob));
        assert!(eu.covered_by("eu", glob));
        assert!(
            eu.covered_by("eu-*", glob),
            "every AWS EU region starts with eu-"
        );
        assert!(
            !eu.covered_by("eu-central-1", glob),
            "the profile may route elsewhere"
        );
        // a geography whose regions are not listed is covered only by its code or `EU`
        let openai = Region::from_field("EU", "eu.api.openai.com");
        assert!(openai.covered_by("EU", glob));
        assert!(!openai.covered_by("eu-*", glob));
        for outside in ["us", "global", "apac", "US", "GLOBAL"] {
            let r = Region::from_field(outside, BEDROCK);
            assert!(!r.is_eu(), "{outside}");
            assert!(!r.covered_by("EU", glob), "{outside}");
        }
        assert!(!Region::Unknown.covered_by("EU", glob));
        assert!(!Region::from_field("eu-west-2", BEDROCK).covered_by("EU", glob));
    }
}
