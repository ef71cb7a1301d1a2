//! Splitting an absolute `http(s)://` URL into the facts the engine decides on (for
//! `sandbox explain` and for absolute-form proxy requests).

use crate::decision::Scheme;

/// The parts of an absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host as written (brackets removed from IPv6 literals); not yet normalised.
    pub host: String,
    /// The explicit port, or 80/443 by scheme.
    pub port: u16,
    /// Path and query (`/` when the URL has no path).
    pub path_and_query: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL `{url}`: {why}")]
pub struct UrlError {
    /// The URL.
    pub url: String,
    /// What is wrong.
    pub why: &'static str,
}

/// Split `http(s)://host[:port][/path][?query]`. Refuses user information (`user@host`),
/// fragments, other schemes and malformed ports.
pub fn split_absolute(url: &str) -> Result<UrlParts, UrlError> {
    let err = |why| UrlError {
        url: url.to_string(),
        why,
    };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        (Scheme::Https, &url[8..])
    } else if lower.starts_with("http://") {
        (Scheme::Http, &url[7..])
    } else {
        return Err(err("the scheme must be http:// or https://"));
    };
    if rest.contains('#') {
        return Err(err("a fragment (#) is never sent to a server"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(err("user information (user@host) is refused"));
    }
    if authority.contains('\\') {
        return Err(err("a backslash in the authority is ambiguous"));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| err("unclosed `[` in the host"))?;
        let host = &after[..close];
        let port = match &after[close + 1..] {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err("junk after the IPv6 literal"))?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(err("the host is empty"));
    }
    let port = match port {
        None | Some("") => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("the port is not a number"));
            }
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err("the port is out of range"))?
        }
    };
    let path_and_query = if tail.is_empty() {
        "/".to_string()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    Ok(UrlParts {
        scheme,
        host: host.to_string(),
        port,
        path_and_query,
    })
}

/// Decode every valid `%XX` escape; invalid bytes become U+FFFD.
pub fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let u = split_absolute("https://api.eu.mistral.ai/v1/chat/completions?x=1").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.host, "api.eu.mistral.ai");
        assert_eq!(u.port, 443);
        assert_eq!(u.path_and_query, "/v1/chat/completions?x=1");
        let u = split_absolute("HTTP://[2001:db8::1]:8080").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path_and_query.as_str()),
            (Scheme::Http, "2001:db8::1", 8080, "/")
        );
        assert_eq!(
            split_absolute("https://h.example?q")
                .unwrap()
                .path_and_query,
            "/?q"
        );
    }

    #[test]
    fn refuses_tricky_urls() {
        for bad in [
            "ftp://x.example/",
            "https://user@evil.example@api.example/",
            "https://api.example#@evil.example/",
            "https://api.example:99999/",
            "https://api.example:x/",
            "https://:443/",
            "https://[::1/",
            "https://api.example\\@evil.example/",
            "api.example/v1",
        ] {
            assert!(split_absolute(bad).is_err(), "{bad}");
        }
    }
}
