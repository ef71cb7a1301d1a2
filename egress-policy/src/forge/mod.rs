//! The agent never merges: controls on code forges that hold whatever rule allowed the host.
//!
//! - git smart HTTP ([`crate::git`]): a push only where `[git] push` names refs, its ref
//!   updates read from the body before the pack leaves; a fetch only with `[git] fetch`;
//! - the GitHub API (`api.github.com`, or a rule with `github_api = true` for GitHub
//!   Enterprise Server under `/api/v3` and `/api/graphql`): the calls in [`GITHUB_DENY`]
//!   (merging, approving, weakening protection, rulesets, workflow runs, settings,
//!   collaborators, secrets, deploy keys, writing refs or commits around push control) are
//!   refused in every class; GraphQL documents are parsed and their mutations checked
//!   ([`GRAPHQL_DENY`]); a document that cannot be parsed is refused.
//!
//! Pure: the proxy reads bodies and asks here ([`BodyCheck`]).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::contract::{Git, Rule};
use crate::git::{self, GitService, PushHead, RefVerdict};

mod graphql;
pub use graphql::{
    gitlab_graphql_denial, graphql_denial, GRAPHQL_DENY, GRAPHQL_DENY_PARTS, GRAPHQL_REVIEW,
};

/// The largest body read whole for a check (a GraphQL document, a review): beyond it the
/// request is refused, not passed.
pub const MAX_CHECKED_BODY: usize = 1024 * 1024;

/// Which methods a [`ForgeDenial`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Methods {
    /// Exactly this method.
    Only(&'static str),
    /// Every method but GET and HEAD (a change).
    Changes,
}

/// One GitHub REST call that is refused: its methods, its path (regex over the REST path,
/// `/api/v3` stripped for GitHub Enterprise Server) and the reason shown to the model.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ForgeDenial {
    /// The methods.
    pub methods: Methods,
    /// The path pattern, anchored.
    pub path: &'static str,
    /// What the call would do, for the reason.
    pub what: &'static str,
}

const fn d(methods: Methods, path: &'static str, what: &'static str) -> ForgeDenial {
    ForgeDenial {
        methods,
        path,
        what,
    }
}

use Methods::{Changes, Only};

/// The refused GitHub REST calls (`docs/contract.md` has the table).
pub const GITHUB_DENY: &[ForgeDenial] = &[
    d(
        Only("PUT"),
        r"^/repos/[^/]+/[^/]+/pulls/[^/]+/merge$",
        "merging a pull request",
    ),
    d(
        Only("PUT"),
        r"^/repos/[^/]+/[^/]+/pulls/[^/]+/merge-async$",
        "merging a pull request",
    ),
    d(
        Only("POST"),
        r"^/repos/[^/]+/[^/]+/merges$",
        "merging a branch",
    ),
    d(
        Only("PUT"),
        r"^/repos/[^/]+/[^/]+/pulls/[^/]+/update-branch$",
        "merging the base into a pull request's branch",
    ),
    d(
        Only("PUT"),
        r"^/repos/[^/]+/[^/]+/pulls/[^/]+/reviews/[^/]+/dismissals$",
        "dismissing a review",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/branches/.+/protection(/.*)?$",
        "changing branch protection",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/rulesets(/.*)?$",
        "changing repository rulesets",
    ),
    d(
        Changes,
        r"^/orgs/[^/]+/rulesets(/.*)?$",
        "changing organisation rulesets",
    ),
    d(
        Only("POST"),
        r"^/repos/[^/]+/[^/]+/actions/workflows/[^/]+/dispatches$",
        "starting a workflow",
    ),
    d(
        Only("POST"),
        r"^/repos/[^/]+/[^/]+/dispatches$",
        "starting workflows (repository dispatch)",
    ),
    d(
        Only("POST"),
        r"^/repos/[^/]+/[^/]+/actions/(runs|jobs)/[^/]+/(rerun|rerun-failed-jobs)$",
        "re-running a workflow",
    ),
    d(
        Only("PATCH"),
        r"^/repos/[^/]+/[^/]+$",
        "changing repository settings",
    ),
    d(
        Only("DELETE"),
        r"^/repos/[^/]+/[^/]+$",
        "deleting the repository",
    ),
    d(
        Only("POST"),
        r"^/repos/[^/]+/[^/]+/transfer$",
        "transferring the repository",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/(collaborators|invitations)(/.*)?$",
        "changing collaborators",
    ),
    d(
        Changes,
        r"^/orgs/[^/]+/(members|memberships|outside_collaborators|teams|invitations)(/.*)?$",
        "changing organisation members or teams",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/(actions|dependabot|codespaces)/(secrets|variables)(/.*)?$",
        "changing secrets or variables",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/environments(/.*)?$",
        "changing deployment environments, their protection or secrets",
    ),
    d(
        Changes,
        r"^/orgs/[^/]+/(actions|dependabot|codespaces)/(secrets|variables)(/.*)?$",
        "changing organisation secrets or variables",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/keys(/.*)?$",
        "changing deploy keys",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/hooks(/.*)?$",
        "changing webhooks",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/actions/permissions(/.*)?$",
        "changing Actions permissions",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/git/refs(/.*)?$",
        "writing a ref through the API (around push control)",
    ),
    d(
        Changes,
        r"^/repos/[^/]+/[^/]+/contents/.*$",
        "committing through the contents API (around push control)",
    ),
    d(
        Only("GET"),
        r"^/graphql$",
        "a GraphQL request over GET (not inspected; use POST)",
    ),
];

/// A deny table's path patterns, compiled (built-in: they compile, which a test checks).
fn compile(table: &[ForgeDenial]) -> Vec<Regex> {
    table
        .iter()
        .map(|d| Regex::new(d.path).expect("built-in forge deny patterns compile"))
        .collect()
}

static GITHUB_DENY_RE: LazyLock<Vec<Regex>> = LazyLock::new(|| compile(GITHUB_DENY));

/// The refused GitLab REST calls (paths after `/api/v4`; `docs/contract.md` has the table).
pub const GITLAB_DENY: &[ForgeDenial] = &[
    d(
        Only("PUT"),
        r"^/projects/[^/]+/merge_requests/[^/]+/merge$",
        "merging a merge request",
    ),
    d(
        Only("POST"),
        r"^/projects/[^/]+/merge_requests/[^/]+/approve$",
        "approving a merge request",
    ),
    d(
        Changes,
        r"^/projects/[^/]+/protected_(branches|tags)(/.*)?$",
        "changing branch or tag protection",
    ),
    d(
        Changes,
        r"^/projects/[^/]+/(approval_rules|approvals|push_rule)(/.*)?$",
        "changing approval or push rules",
    ),
    d(
        Only("PUT"),
        r"^/projects/[^/]+$",
        "changing project settings",
    ),
    d(Only("DELETE"), r"^/projects/[^/]+$", "deleting the project"),
    d(
        Changes,
        r"^/projects/[^/]+/(variables|deploy_keys|deploy_tokens|members|hooks|access_tokens)(/.*)?$",
        "changing variables, keys, tokens, members or webhooks",
    ),
    d(
        Only("POST"),
        r"^/projects/[^/]+/(pipeline|pipelines|trigger/pipeline)$",
        "starting a pipeline",
    ),
    d(
        Only("POST"),
        r"^/projects/[^/]+/(pipelines|jobs)/[^/]+/(retry|play)$",
        "re-running a pipeline or job",
    ),
    d(
        Changes,
        r"^/projects/[^/]+/repository/(branches|tags)(/.*)?$",
        "writing a branch or tag through the API (around push control)",
    ),
    d(
        Changes,
        r"^/projects/[^/]+/repository/(commits|files/.*)$",
        "committing through the API (around push control)",
    ),
    d(
        Only("GET"),
        r"^/graphql$",
        "a GraphQL request over GET (not inspected; use POST)",
    ),
];

static GITLAB_DENY_RE: LazyLock<Vec<Regex>> = LazyLock::new(|| compile(GITLAB_DENY));

/// What the proxy must read of a request's body before it may go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "check")]
pub enum BodyCheck {
    /// A `git-receive-pack` request: its command list, against these ref patterns.
    Push {
        /// The refs the agent may push.
        allowed: Vec<String>,
    },
    /// A GitHub GraphQL document (whole body, at most [`MAX_CHECKED_BODY`]).
    GraphQl,
    /// A GitLab GraphQL document (whole body): any mutation is refused (reads go ahead).
    GitlabGraphQl,
    /// A pull request review (whole body): refused when it approves.
    Review,
    /// Residency read from the body: its JSON `field` names the model, placed by the catalog
    /// under an EU contract (whole body, at most [`MAX_MODEL_BODY`]).
    Model {
        /// The JSON field (`model`, `modelId`).
        field: String,
        /// Whose model ids it holds.
        kind: crate::catalog::BodyModel,
    },
}

/// The largest body read whole to find its model (an LLM request with a long context):
/// beyond it the request is refused under an EU contract, not passed.
pub const MAX_MODEL_BODY: usize = 32 * 1024 * 1024;

impl BodyCheck {
    /// The most bytes read before deciding.
    pub fn limit(&self) -> usize {
        match self {
            BodyCheck::Push { .. } => git::MAX_COMMAND_BYTES,
            BodyCheck::GraphQl | BodyCheck::GitlabGraphQl | BodyCheck::Review => MAX_CHECKED_BODY,
            BodyCheck::Model { .. } => MAX_MODEL_BODY,
        }
    }
}

/// What a body check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    /// More bytes are needed (the body has not ended and the head is not complete).
    NeedMore,
    /// The request may go ahead.
    Allow,
    /// Refused, with the reason.
    Deny(String),
    /// A push with its ref verdicts; refused unless every update is allowed.
    Push {
        /// The command list.
        head: PushHead,
        /// One verdict per update.
        verdicts: Vec<RefVerdict>,
    },
}

/// Is `host` (normalised) a GitHub API under `rule`, and the REST path (prefix stripped)?
fn github_path<'p>(rule: &Rule, host: &str, path: &'p str) -> Option<&'p str> {
    if host == "api.github.com" {
        return Some(path);
    }
    if !rule.github_api {
        return None;
    }
    if path == "/api/graphql" {
        return Some("/graphql");
    }
    path.strip_prefix("/api/v3").filter(|p| p.starts_with('/'))
}

/// Is `host` a GitLab API under `rule` (`gitlab.com`, or `gitlab_api = true`), and the REST
/// path after `/api/v4` (`/graphql` for `/api/graphql`)?
fn gitlab_path<'p>(rule: &Rule, host: &str, path: &'p str) -> Option<&'p str> {
    if host != "gitlab.com" && !rule.gitlab_api {
        return None;
    }
    if path == "/api/graphql" {
        return Some("/graphql");
    }
    path.strip_prefix("/api/v4").filter(|p| p.starts_with('/'))
}

/// The first denial of `table` that `method` and `rest` hit.
fn table_denial(
    table: &[ForgeDenial],
    patterns: &[Regex],
    method: &str,
    rest: &str,
) -> Option<String> {
    let m = method.to_ascii_uppercase();
    for (denial, re) in table.iter().zip(patterns.iter()) {
        let method_hit = match denial.methods {
            Only(x) => m == x,
            Changes => m != "GET" && m != "HEAD",
        };
        if method_hit && re.is_match(rest) {
            return Some(format!(
                "the agent never merges or changes repository controls: {} ({m} {rest}) is refused in every class",
                denial.what
            ));
        }
    }
    None
}

/// A request the rules allowed, as the forge controls see it.
#[derive(Debug, Clone, Copy)]
pub struct ForgeRequest<'a> {
    /// The contract's `[git]`.
    pub git: &'a Git,
    /// The rule that allowed it.
    pub rule: &'a Rule,
    /// The normalised host.
    pub host: &'a str,
    /// The method as sent.
    pub method: &'a str,
    /// The normalised path, without the query.
    pub path: &'a str,
    /// The raw query, if any.
    pub query: Option<&'a str>,
}

/// The forge denial of a request the rules allowed, if any: git services the contract does
/// not allow, and GitHub calls in [`GITHUB_DENY`].
pub fn request_denial(r: &ForgeRequest<'_>) -> Option<String> {
    let ForgeRequest {
        git,
        rule,
        host,
        method,
        path,
        query,
    } = *r;
    match git::git_service(method, path, query) {
        Some(GitService::Push | GitService::PushAdvertisement) if git.push.is_empty() => {
            return Some(
                "git push is not allowed: the contract's [git] push names no ref".to_string(),
            )
        }
        Some(GitService::Fetch) if !git.fetch => {
            return Some("git fetch is not allowed: the contract sets [git] fetch = false".into())
        }
        _ => {}
    }
    if let Some(rest) = gitlab_path(rule, host, path) {
        return table_denial(GITLAB_DENY, &GITLAB_DENY_RE, method, rest);
    }
    let rest = github_path(rule, host, path)?;
    table_denial(GITHUB_DENY, &GITHUB_DENY_RE, method, rest)
}

/// The body check a request the rules allowed needs, if any.
pub fn body_check(r: &ForgeRequest<'_>) -> Option<BodyCheck> {
    let ForgeRequest {
        git,
        rule,
        host,
        method,
        path,
        query,
    } = *r;
    if git::git_service(method, path, query) == Some(GitService::Push)
        && method.eq_ignore_ascii_case("POST")
    {
        return Some(BodyCheck::Push {
            allowed: git.push.clone(),
        });
    }
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    if gitlab_path(rule, host, path) == Some("/graphql") {
        return Some(BodyCheck::GitlabGraphQl);
    }
    let rest = github_path(rule, host, path)?;
    if rest == "/graphql" {
        return Some(BodyCheck::GraphQl);
    }
    static REVIEW: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^/repos/[^/]+/[^/]+/pulls/[^/]+/reviews(/[^/]+/events)?$")
            .expect("built-in review pattern compiles")
    });
    REVIEW.is_match(rest).then_some(BodyCheck::Review)
}

/// Decides `body` (what has arrived; `complete` when it has all arrived) for `check`.
pub fn decide_body(check: &BodyCheck, body: &[u8], complete: bool) -> BodyVerdict {
    match check {
        BodyCheck::Push { allowed } => match git::parse_push_head(body, complete) {
            Ok(None) => BodyVerdict::NeedMore,
            Ok(Some(head)) => {
                let verdicts = git::decide_updates(&head.updates, allowed);
                BodyVerdict::Push { head, verdicts }
            }
            Err(e) => BodyVerdict::Deny(format!("the push cannot be checked: {e}")),
        },
        BodyCheck::GraphQl
        | BodyCheck::GitlabGraphQl
        | BodyCheck::Review
        | BodyCheck::Model { .. }
            if !complete =>
        {
            if body.len() > check.limit() {
                BodyVerdict::Deny(format!(
                    "the request body is larger than {} KiB, the most that is checked",
                    check.limit() / 1024
                ))
            } else {
                BodyVerdict::NeedMore
            }
        }
        BodyCheck::Model { field, kind } => match model_denial(body, field, *kind) {
            Some(why) => BodyVerdict::Deny(why),
            None => BodyVerdict::Allow,
        },
        BodyCheck::GitlabGraphQl => match gitlab_graphql_denial(body) {
            Some(why) => BodyVerdict::Deny(why),
            None => BodyVerdict::Allow,
        },
        BodyCheck::GraphQl => match graphql_denial(body) {
            Some(why) => BodyVerdict::Deny(why),
            None => BodyVerdict::Allow,
        },
        BodyCheck::Review => match review_denial(body) {
            Some(why) => BodyVerdict::Deny(why),
            None => BodyVerdict::Allow,
        },
    }
}

/// The residency denial of a body whose `field` names the model, if any (EU contracts).
pub fn model_denial(body: &[u8], field: &str, kind: crate::catalog::BodyModel) -> Option<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some(format!(
            "residency EU: the request body is not JSON, so its `{field}` (the model, which decides the region) cannot be checked"
        ));
    };
    let Some(id) = v.get(field).and_then(|m| m.as_str()) else {
        return Some(format!(
            "residency EU: the request body names no `{field}`, so the region its model runs in cannot be checked"
        ));
    };
    match crate::catalog::body_model_region(kind, id) {
        crate::catalog::PathRegion::Outside { why, .. } => Some(format!("residency EU: {why}")),
        _ => None,
    }
}

fn approves(event: Option<&serde_json::Value>) -> bool {
    event
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("APPROVE"))
}

/// A REST review body that approves is refused; a body that is not a JSON object too.
pub fn review_denial(body: &[u8]) -> Option<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some("the review request is not JSON and cannot be checked".into());
    };
    let Some(obj) = v.as_object() else {
        return Some("the review request is not a JSON object and cannot be checked".into());
    };
    approves(obj.get("event")).then(|| {
        "the agent never approves: a pull request review with event APPROVE is refused in every class".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_reviews() {
        assert!(review_denial(br#"{"event":"APPROVE","body":"lgtm"}"#).is_some());
        assert!(review_denial(br#"{"event":"approve"}"#).is_some());
        assert!(review_denial(br#"{"event":"COMMENT","body":"x"}"#).is_none());
        assert!(review_denial(br#"{"body":"pending"}"#).is_none());
        assert!(review_denial(b"event=APPROVE").is_some());
    }
}
