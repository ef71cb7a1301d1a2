//! GraphQL bodies of code-forge APIs: every document of a single or batched request parsed,
//! and its mutations checked (GitHub: by name, through aliases, fragments and variables;
//! GitLab: any mutation). What cannot be parsed is refused.

use std::collections::{BTreeMap, HashSet};

use graphql_parser::query::{Definition, OperationDefinition, Selection, SelectionSet, Value};

/// The deepest nesting of a GraphQL document that is parsed (deeper is refused).
const MAX_GRAPHQL_DEPTH: usize = 64;

/// GraphQL mutations refused by name: exact names, and name parts.
pub const GRAPHQL_DENY: &[(&str, &str)] = &[
    ("mergePullRequest", "merging a pull request"),
    ("enablePullRequestAutoMerge", "turning on auto-merge"),
    (
        "enqueuePullRequest",
        "adding a pull request to the merge queue",
    ),
    ("mergeBranch", "merging a branch"),
    (
        "updatePullRequestBranch",
        "merging the base into a pull request's branch",
    ),
    ("dismissPullRequestReview", "dismissing a review"),
    ("updateRepository", "changing repository settings"),
    ("deleteRepository", "deleting the repository"),
    ("archiveRepository", "archiving the repository"),
    (
        "createRef",
        "writing a ref through the API (around push control)",
    ),
    (
        "updateRef",
        "writing a ref through the API (around push control)",
    ),
    (
        "updateRefs",
        "writing refs through the API (around push control)",
    ),
    ("deleteRef", "deleting a ref"),
    (
        "createCommitOnBranch",
        "committing through the API (around push control)",
    ),
];

/// Name parts: a mutation whose name contains one is refused.
pub const GRAPHQL_DENY_PARTS: &[(&str, &str)] = &[
    ("BranchProtectionRule", "changing branch protection"),
    ("Ruleset", "changing rulesets"),
    ("Collaborator", "changing collaborators"),
    ("DeployKey", "changing deploy keys"),
    ("Environment", "changing deployment environments"),
];

/// Mutations refused when they approve (their `event` is `APPROVE`, or cannot be told).
pub const GRAPHQL_REVIEW: &[&str] = &["addPullRequestReview", "submitPullRequestReview"];

/// Deepest `{`/`(`/`[` nesting outside strings and comments.
fn nesting_depth(doc: &str) -> usize {
    let b = doc.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// One GraphQL document of a request and its variables.
type Document = (String, serde_json::Map<String, serde_json::Value>);

/// The documents of a GraphQL request body (one object, or a batch), each with its
/// variables; `Err` with the reason when the body cannot be checked.
fn documents(body: &[u8]) -> Result<Vec<Document>, String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err("the GraphQL request is not JSON and cannot be checked".into());
    };
    let requests: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if requests.is_empty() {
        return Err("the GraphQL request is an empty batch".into());
    }
    requests
        .into_iter()
        .map(|r| {
            let query = r.get("query").and_then(|q| q.as_str()).ok_or_else(|| {
                "the GraphQL request has no `query` string (a persisted query cannot be checked)"
                    .to_string()
            })?;
            let variables = r
                .get("variables")
                .and_then(|v| v.as_object())
                .cloned()
                .unwrap_or_default();
            Ok((query.to_string(), variables))
        })
        .collect()
}

/// A document parsed, after the nesting bound; `Err` with the reason otherwise.
fn parse(query: &str) -> Result<graphql_parser::query::Document<'_, &str>, String> {
    if nesting_depth(query) > MAX_GRAPHQL_DEPTH {
        return Err(format!(
            "the GraphQL document nests deeper than {MAX_GRAPHQL_DEPTH} levels and is not parsed"
        ));
    }
    graphql_parser::query::parse_query::<&str>(query)
        .map_err(|_| "the GraphQL document cannot be parsed, so it cannot be checked".to_string())
}

/// The GraphQL body's denial, if any: every document of a single or batched request is
/// parsed and every mutation field (through aliases and fragments) checked; a body or a
/// document that cannot be parsed is refused.
pub fn graphql_denial(body: &[u8]) -> Option<String> {
    let docs = match documents(body) {
        Ok(d) => d,
        Err(why) => return Some(why),
    };
    docs.iter()
        .find_map(|(query, variables)| document_denial(query, variables))
}

/// A GitLab GraphQL body's denial: any mutation (GitLab's mutations are not listed one by
/// one here; reads go ahead), or a body or document that cannot be parsed.
pub fn gitlab_graphql_denial(body: &[u8]) -> Option<String> {
    let docs = match documents(body) {
        Ok(d) => d,
        Err(why) => return Some(why),
    };
    for (query, _) in &docs {
        let doc = match parse(query) {
            Ok(doc) => doc,
            Err(why) => return Some(why),
        };
        let mutates = doc
            .definitions
            .iter()
            .any(|d| matches!(d, Definition::Operation(OperationDefinition::Mutation(_))));
        if mutates {
            return Some("GitLab GraphQL mutations are refused (merging, approving and protection changes among them): use the REST API, whose calls are checked one by one".into());
        }
    }
    None
}

fn document_denial(
    query: &str,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    let doc = match parse(query) {
        Ok(doc) => doc,
        Err(why) => return Some(why),
    };
    let fragments: BTreeMap<&str, &SelectionSet<'_, &str>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name, &f.selection_set)),
            _ => None,
        })
        .collect();
    for def in &doc.definitions {
        if let Definition::Operation(OperationDefinition::Mutation(m)) = def {
            let mut seen = HashSet::new();
            if let Some(why) =
                selection_denial(&m.selection_set, &fragments, variables, &mut seen, 0)
            {
                return Some(why);
            }
        }
    }
    None
}

fn selection_denial<'a>(
    set: &'a SelectionSet<'a, &'a str>,
    fragments: &BTreeMap<&'a str, &'a SelectionSet<'a, &'a str>>,
    variables: &serde_json::Map<String, serde_json::Value>,
    seen: &mut HashSet<&'a str>,
    depth: usize,
) -> Option<String> {
    if depth > MAX_GRAPHQL_DEPTH {
        return Some("the GraphQL mutation's fragments nest too deep to check".into());
    }
    for item in &set.items {
        let found = match item {
            Selection::Field(f) => field_denial(f.name, &f.arguments, variables),
            Selection::FragmentSpread(s) => {
                if !seen.insert(s.fragment_name) {
                    continue;
                }
                match fragments.get(s.fragment_name) {
                    Some(inner) => selection_denial(inner, fragments, variables, seen, depth + 1),
                    None => Some(format!(
                        "the GraphQL mutation spreads an unknown fragment `{}`",
                        s.fragment_name
                    )),
                }
            }
            Selection::InlineFragment(i) => {
                selection_denial(&i.selection_set, fragments, variables, seen, depth + 1)
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn field_denial<'a>(
    name: &str,
    arguments: &[(&'a str, Value<'a, &'a str>)],
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    let refuse = |what: &str| {
        Some(format!(
            "the agent never merges or changes repository controls: GraphQL mutation `{name}` ({what}) is refused in every class"
        ))
    };
    if let Some((_, what)) = GRAPHQL_DENY.iter().find(|(n, _)| *n == name) {
        return refuse(what);
    }
    if let Some((_, what)) = GRAPHQL_DENY_PARTS.iter().find(|(p, _)| name.contains(p)) {
        return refuse(what);
    }
    if GRAPHQL_REVIEW.contains(&name) {
        return match review_event(arguments, variables) {
            Ok(Some(e)) if e.eq_ignore_ascii_case("APPROVE") => refuse("approving a pull request"),
            Ok(_) => None,
            Err(()) => refuse("a review whose event cannot be told from the document"),
        };
    }
    None
}

/// The `event` of a review mutation's `input` (literal or from variables): `Ok(None)` when it
/// has none (a pending review), `Err` when it cannot be told.
fn review_event<'a>(
    arguments: &[(&'a str, Value<'a, &'a str>)],
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<String>, ()> {
    let from_json = |v: Option<&serde_json::Value>| -> Result<Option<String>, ()> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(()),
        }
    };
    let Some((_, input)) = arguments.iter().find(|(n, _)| *n == "input") else {
        return Ok(None);
    };
    match input {
        Value::Variable(var) => match variables.get(*var) {
            Some(serde_json::Value::Object(o)) => from_json(o.get("event")),
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(_) => Err(()),
        },
        Value::Object(map) => match map.get("event") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Enum(e)) => Ok(Some(e.to_string())),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Variable(var)) => from_json(variables.get(*var)),
            Some(_) => Err(()),
        },
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gql(query: &str) -> Option<String> {
        graphql_denial(serde_json::json!({ "query": query }).to_string().as_bytes())
    }

    #[test]
    fn graphql_merges_and_approvals_are_refused_through_aliases_fragments_and_batches() {
        assert!(gql(
            "mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }"
        )
        .is_some());
        assert!(gql("mutation M { ok: addComment(input: {subjectId: \"x\", body: \"hi\"}) { clientMutationId } sneaky: mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }").is_some());
        assert!(gql("mutation { ...F } fragment F on Mutation { enablePullRequestAutoMerge(input: {pullRequestId: \"x\"}) { clientMutationId } }").is_some());
        assert!(gql("mutation { ... on Mutation { updateBranchProtectionRule(input: {}) { clientMutationId } } }").is_some());
        assert!(
            gql("mutation { createRepositoryRuleset(input: {}) { clientMutationId } }").is_some()
        );
        assert!(gql("mutation { addPullRequestReview(input: {pullRequestId: \"x\", event: APPROVE}) { clientMutationId } }").is_some());
        assert!(gql("mutation { addPullRequestReview(input: {pullRequestId: \"x\", event: COMMENT, body: \"b\"}) { clientMutationId } }").is_none());
        assert!(gql("mutation { addPullRequestReview(input: {pullRequestId: \"x\"}) { clientMutationId } }").is_none(), "pending");
        let with_vars = |vars: serde_json::Value| {
            graphql_denial(serde_json::json!({"query": "mutation($i: AddPullRequestReviewInput!) { addPullRequestReview(input: $i) { clientMutationId } }", "variables": vars}).to_string().as_bytes())
        };
        assert!(with_vars(serde_json::json!({"i": {"event": "APPROVE"}})).is_some());
        assert!(with_vars(serde_json::json!({"i": {"event": "REQUEST_CHANGES"}})).is_none());
        assert!(
            with_vars(serde_json::json!({"i": "weird"})).is_some(),
            "cannot tell"
        );
        let batch = serde_json::json!([
            {"query": "query { viewer { login } }"},
            {"query": "mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }"}
        ]);
        assert!(graphql_denial(batch.to_string().as_bytes()).is_some());
        // Reads, and mutations that open pull requests or comment, go ahead.
        assert!(gql("query { repository(owner: \"o\", name: \"r\") { pullRequests(first: 5) { nodes { title } } } }").is_none());
        assert!(gql("mutation { createPullRequest(input: {repositoryId: \"x\", baseRefName: \"main\", headRefName: \"pilot/x\", title: \"t\"}) { clientMutationId } }").is_none());
        assert!(gql("{ viewer { login } }").is_none());
    }

    #[test]
    fn what_cannot_be_parsed_is_refused() {
        assert!(graphql_denial(b"not json").is_some());
        assert!(graphql_denial(b"[]").is_some());
        assert!(graphql_denial(br#"{"id": "persisted"}"#).is_some());
        assert!(gql("mutation { mergePullRequest(").is_some());
        assert!(gql("mutation { ...Missing }").is_some());
        let deep = format!("query {}{}", "{ a ".repeat(200), "}".repeat(200));
        assert!(gql(&deep).is_some());
        // Nesting hidden in a string does not count.
        assert!(gql(&format!("query {{ a(s: \"{}\") }}", "{".repeat(500))).is_none());
        // A cycle of fragments terminates.
        assert!(gql(
            "mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { ...A }"
        )
        .is_none());
    }

    #[test]
    fn gitlab_graphql_reads_only() {
        let q = |d: &str| serde_json::json!({ "query": d }).to_string().into_bytes();
        assert!(gitlab_graphql_denial(&q("query { currentUser { username } }")).is_none());
        assert!(
            gitlab_graphql_denial(&q("mutation { mergeRequestAccept(input: {}) { errors } }"))
                .is_some()
        );
        assert!(
            gitlab_graphql_denial(&q("mutation { createNote(input: {}) { errors } }")).is_some()
        );
        assert!(gitlab_graphql_denial(b"nope").is_some());
    }
}
