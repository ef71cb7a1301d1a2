//! Request paths: splitting off the query, refusing ambiguous paths, and the normalised form
//! that `paths` regexes are matched against.

use unicode_normalization::UnicodeNormalization;

/// A request target the engine accepted as unambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    /// The path, percent-decoded (every `%XX` is decoded; the encodings that would change
    /// the path's structure are refused before), without the query.
    pub path: String,
    /// The names of the query parameters (never their values), for logs.
    pub query_keys: Vec<String>,
}

/// Why a request path was refused as ambiguous: servers and proxies could read it
/// differently, so a rule cannot be trusted to match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ambiguous path: {0}")]
pub struct AmbiguousPath(pub String);

/// Characters that Unicode compatibility normalisation (NFKC) maps to `.`, `/` or `\`, or
/// that servers are known to treat as such: refused when they appear percent-encoded.
const LOOKALIKES: &[char] = &[
    '\u{2024}', // ONE DOT LEADER
    '\u{2025}', // TWO DOT LEADER
    '\u{FE52}', // SMALL FULL STOP
    '\u{FF0E}', // FULLWIDTH FULL STOP
    '\u{3002}', // IDEOGRAPHIC FULL STOP
    '\u{FF61}', // HALFWIDTH IDEOGRAPHIC FULL STOP
    '\u{2044}', // FRACTION SLASH
    '\u{2215}', // DIVISION SLASH
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{29F8}', // BIG SOLIDUS
    '\u{FE68}', // SMALL REVERSE SOLIDUS
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
    '\u{2216}', // SET MINUS
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F9}', // BIG REVERSE SOLIDUS
];

/// Characters that give a path its structure, or that a server decodes into structure.
const STRUCTURAL: &[char] = &['.', '/', '\\', '%', ';', '?', '#'];

/// Does Unicode compatibility normalisation (NFKC, which some servers and frameworks apply
/// to decoded paths) turn this non-ASCII character into one that changes the path's
/// structure (`…` becomes `...`, `％` becomes `%`, `;` (U+037E) becomes `;`)?
fn folds_to_structural(c: char) -> bool {
    !c.is_ascii()
        && std::iter::once(c)
            .nfkc()
            .any(|n| STRUCTURAL.contains(&n) || n.is_control())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Split `path_and_query` and check the path. Refused: a target that does not start with
/// `/`; `..` anywhere (raw or encoded); `.` segments; empty segments (`//`); a backslash (raw
/// or `%5c`); an encoded `/` (`%2f`); NUL and other control characters (raw or encoded);
/// `%25` (double encoding); malformed `%` escapes; encoded bytes that are not UTF-8; `;`
/// (path parameters, `..;/`); `#`; spaces and non-ASCII bytes sent raw.
pub fn normalize(path_and_query: &str) -> Result<NormalizedPath, AmbiguousPath> {
    let (raw_path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if !raw_path.starts_with('/') {
        return Err(AmbiguousPath(
            "the request target must be a path starting with `/`".into(),
        ));
    }
    let bytes = raw_path.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(AmbiguousPath("malformed percent-encoding".into()));
                };
                let v = h * 16 + l;
                match v {
                    b'/' => return Err(AmbiguousPath("encoded slash (%2f)".into())),
                    b'\\' => return Err(AmbiguousPath("encoded backslash (%5c)".into())),
                    b'%' => return Err(AmbiguousPath("double percent-encoding (%25)".into())),
                    b';' => return Err(AmbiguousPath("encoded `;` (%3b)".into())),
                    b'?' | b'#' => {
                        return Err(AmbiguousPath("encoded `?` or `#` in the path".into()))
                    }
                    0x00..=0x1f | 0x7f => {
                        return Err(AmbiguousPath(format!(
                            "encoded control character (%{v:02x})"
                        )))
                    }
                    _ => decoded.push(v),
                }
                i += 3;
            }
            b'\\' => return Err(AmbiguousPath("backslash in the path".into())),
            b';' => return Err(AmbiguousPath("`;` path parameters".into())),
            b'#' => return Err(AmbiguousPath("`#` fragment in the request target".into())),
            0x21..=0x7e => {
                decoded.push(b);
                i += 1;
            }
            _ => {
                return Err(AmbiguousPath(
                    "a space, control character or non-ASCII byte sent unencoded".into(),
                ))
            }
        }
    }
    let path = String::from_utf8(decoded)
        .map_err(|_| AmbiguousPath("percent-encoded bytes that are not UTF-8".into()))?;
    if path.contains("..") {
        return Err(AmbiguousPath("`..` in the path (raw or encoded)".into()));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(AmbiguousPath("encoded control character".into()));
    }
    if path
        .chars()
        .any(|c| LOOKALIKES.contains(&c) || folds_to_structural(c))
    {
        return Err(AmbiguousPath(
            "an encoded look-alike of `.`, `/` or `\\` (Unicode normalisation could turn it into one)"
                .into(),
        ));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, seg) in segments.iter().enumerate() {
        if *seg == "." {
            return Err(AmbiguousPath("a `.` segment".into()));
        }
        if seg.is_empty() && n != last {
            return Err(AmbiguousPath("an empty segment (`//`)".into()));
        }
    }
    let query_keys = query
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split('=').next().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(NormalizedPath { path, query_keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_queries() {
        let n = normalize("/v1/chat/completions?api-version=2024&x=1&flag").unwrap();
        assert_eq!(n.path, "/v1/chat/completions");
        assert_eq!(n.query_keys, vec!["api-version", "x", "flag"]);
        assert_eq!(normalize("/").unwrap().path, "/");
        assert_eq!(normalize("/v1/models/").unwrap().path, "/v1/models/");
        assert_eq!(
            normalize("/v1/projects/p/locations/eu/models/g:generateContent")
                .unwrap()
                .path,
            "/v1/projects/p/locations/eu/models/g:generateContent"
        );
    }

    #[test]
    fn unreserved_encodings_are_decoded() {
        assert_eq!(normalize("/v1/ch%61t").unwrap().path, "/v1/chat");
        assert_eq!(normalize("/model/a%3Ab").unwrap().path, "/model/a:b");
        assert_eq!(normalize("/caf%C3%A9").unwrap().path, "/café");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/v1/chat/completions/../../admin",
            "/v1/..",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/.%2e/admin",
            "/v1/a..b",
            "/v1/./chat",
            "/v1/.",
            "/v1//chat",
            "//v1",
            "/v1%2fchat",
            "/v1%2Fchat",
            "/v1\\chat",
            "/v1%5cchat",
            "/v1%00",
            "/v1%0a",
            "/v1%7f",
            "/v1%252e%252e/",
            "/v1%",
            "/v1%zz",
            "/v1%c3",
            "/v1/%EF%BC%8E%EF%BC%8E/admin",
            "/v1%EF%BC%8Fadmin",
            "/v1%E2%88%95admin",
            "/v1%EF%BC%BCadmin",
            "/v1/%E2%80%A5/admin",
            "/v1/%C0%AE%C0%AE/admin",
            "/v1/..;/admin",
            "/v1;x=1",
            "/v1%3bx",
            "/v1#frag",
            "/v1 x",
            "/v1\u{e9}",
            "v1/chat",
            "*",
            "",
            "http://example.com/v1",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} should be ambiguous");
        }
    }

    #[test]
    fn query_is_not_checked_for_path_rules() {
        // `..` in the query does not change the path a server sees
        assert_eq!(normalize("/v1/x?a=../b").unwrap().path, "/v1/x");
    }
}
