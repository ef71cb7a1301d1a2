//! The agent's environment: an allowlist of the host's, the contract's `[env] pass`, the proxy
//! variables and the CA variables. Nothing else from the host gets in.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::jail::mounts::{CA_BUNDLE_PATH, SESSION_CA_PATH};

/// Host variables that always pass (plus every `LC_*`).
pub const ALLOWED: &[&str] = &["PATH", "HOME", "TERM", "LANG", "TZ", "USER", "SHELL"];

/// Variables that point at the CA bundle (session CA + host roots).
pub const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "AWS_CA_BUNDLE",
];

/// Proxy variables, set in both cases.
pub const PROXY_VARS: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"];

/// The PATH used when the host has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn allowed(name: &OsStr, pass: &[String]) -> bool {
    let bytes = name.as_bytes();
    ALLOWED.iter().any(|a| a.as_bytes() == bytes)
        || bytes.starts_with(b"LC_")
        || pass.iter().any(|p| p.as_bytes() == bytes)
}

/// Builds the agent's environment from `host` (the supervisor's environment).
///
/// `proxy_port` is `None` when the session has no network at all.
pub fn build(
    host: impl IntoIterator<Item = (OsString, OsString)>,
    pass: &[String],
    proxy_port: Option<u16>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = host
        .into_iter()
        .filter(|(k, _)| allowed(k, pass))
        .filter(|(k, _)| {
            // The proxy and CA variables are always ours, whatever `pass` says.
            let upper = k.to_string_lossy().to_ascii_uppercase();
            !PROXY_VARS.contains(&upper.as_str())
                && upper != "NO_PROXY"
                && !CA_BUNDLE_VARS.contains(&upper.as_str())
                && upper != "NODE_EXTRA_CA_CERTS"
                && upper != "NODE_USE_ENV_PROXY"
        })
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if let Some(port) = proxy_port {
        let url = format!("http://127.0.0.1:{port}");
        for var in PROXY_VARS {
            env.push(((*var).into(), url.clone().into()));
            env.push((var.to_ascii_lowercase().into(), url.clone().into()));
        }
        env.push(("NO_PROXY".into(), "".into()));
        env.push(("no_proxy".into(), "".into()));
        env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
        for var in CA_BUNDLE_VARS {
            env.push(((*var).into(), CA_BUNDLE_PATH.into()));
        }
        env.push(("NODE_EXTRA_CA_CERTS".into(), SESSION_CA_PATH.into()));
    }
    env.push(("SANDBOX".into(), "1".into()));
    env
}

/// `NAME=value` C strings for execve (entries with a NUL byte are dropped).
pub fn to_envp(env: &[(OsString, OsString)]) -> Vec<CString> {
    env.iter()
        .filter_map(|(k, v)| {
            let mut bytes = k.as_bytes().to_vec();
            bytes.push(b'=');
            bytes.extend_from_slice(v.as_bytes());
            CString::new(bytes).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("https_proxy", "http://evil:1"),
            ("MY_TOKEN", "t"),
            ("SSL_CERT_FILE", "/evil.pem"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn get<'a>(env: &'a [(OsString, OsString)], k: &str) -> Vec<&'a OsString> {
        env.iter().filter(|(n, _)| n == k).map(|(_, v)| v).collect()
    }

    #[test]
    fn secrets_stay_out_and_pass_lets_listed_names_in() {
        let env = build(host(), &["MY_TOKEN".into()], Some(3128));
        assert!(get(&env, "OPENAI_API_KEY").is_empty());
        assert!(get(&env, "AWS_SECRET_ACCESS_KEY").is_empty());
        assert_eq!(get(&env, "MY_TOKEN"), vec![&OsString::from("t")]);
        assert_eq!(get(&env, "LC_ALL"), vec![&OsString::from("C")]);
    }

    #[test]
    fn proxy_and_ca_variables_are_ours_even_when_passed() {
        let env = build(
            host(),
            &["https_proxy".into(), "SSL_CERT_FILE".into()],
            Some(3128),
        );
        assert_eq!(
            get(&env, "https_proxy"),
            vec![&OsString::from("http://127.0.0.1:3128")]
        );
        assert_eq!(
            get(&env, "SSL_CERT_FILE"),
            vec![&OsString::from(CA_BUNDLE_PATH)]
        );
        assert_eq!(
            get(&env, "NODE_EXTRA_CA_CERTS"),
            vec![&OsString::from(SESSION_CA_PATH)]
        );
        assert_eq!(get(&env, "NODE_USE_ENV_PROXY"), vec![&OsString::from("1")]);
    }

    #[test]
    fn no_network_means_no_proxy_variables() {
        let env = build(host(), &[], None);
        assert!(get(&env, "HTTPS_PROXY").is_empty());
        assert!(get(&env, "https_proxy").is_empty());
    }
}
