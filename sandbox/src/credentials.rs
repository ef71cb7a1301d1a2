//! The credentials a contract's `inject` rules need, read once from the supervisor's own
//! environment and files when `sandbox run` or `sandbox proxy` starts: never from inside the
//! sandbox, never passed into it. A rule whose credential is missing stops the start with a
//! message that names the variable, profile or file to provide.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use egress_policy::{Inject, Policy};
use proxy::credentials::Credential;
use proxy::google_oauth::GoogleCredentials;
use proxy::sigv4::AwsCredentials;

/// Every credential the contract injects, by [`Inject::credential_key`]. `who` names the
/// command in messages (`sandbox run`).
pub fn load(policy: &Policy, who: &str) -> Result<HashMap<String, Credential>> {
    load_from(policy, who, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given, for tests.
pub fn load_from(
    policy: &Policy,
    who: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, Credential>> {
    let mut out = HashMap::new();
    for rule in &policy.contract().network.allow {
        let Some(inject) = &rule.inject else {
            continue;
        };
        let key = inject.credential_key();
        if out.contains_key(&key) {
            continue;
        }
        let credential = match inject {
            Inject::AwsSigv4 { profile, .. } => {
                Credential::Aws(aws_credentials(profile.as_deref(), env).with_context(|| {
                    format!("rule `{}` signs its requests with AWS SigV4", rule.name)
                })?)
            }
            Inject::GoogleOauth {
                credentials,
                scopes,
            } => Credential::Google(
                google_credentials(policy, credentials.as_deref(), scopes, env).with_context(
                    || format!("rule `{}` sends Google OAuth access tokens", rule.name),
                )?,
            ),
            other => {
                let name = other.env().unwrap_or_default();
                let value = env(name).filter(|v| !v.is_empty()).with_context(|| {
                    format!(
                        "rule `{}` injects ${name} but it is not set in the environment of `{who}`",
                        rule.name
                    )
                })?;
                Credential::Secret(value)
            }
        };
        out.insert(key, credential);
    }
    Ok(out)
}

/// AWS credentials as the AWS CLI and SDKs find them: with no profile named, the
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` variables first; then the
/// profile (`profile`, else `AWS_PROFILE`, else `default`) of the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) and of the config file
/// (`AWS_CONFIG_FILE`, else `~/.aws/config`). Only static keys are read: a profile that needs
/// SSO or a role to assume is refused with what to do.
pub fn aws_credentials(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsCredentials> {
    if profile.is_none() {
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            if !id.is_empty() && !secret.is_empty() {
                return Ok(AwsCredentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
                    source: "the environment (AWS_ACCESS_KEY_ID)".into(),
                });
            }
        }
    }
    let name = profile
        .map(str::to_string)
        .or_else(|| env("AWS_PROFILE").filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, rel: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config_file = file("AWS_CONFIG_FILE", ".aws/config");
    let mut tried = Vec::new();
    for (path, section) in [
        (credentials_file, name.clone()),
        (
            config_file,
            if name == "default" {
                name.clone()
            } else {
                format!("profile {name}")
            },
        ),
    ] {
        let Some(path) = path else { continue };
        tried.push(path.display().to_string());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let keys = ini_section(&text, &section);
        match (
            keys.get("aws_access_key_id"),
            keys.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => {
                return Ok(AwsCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: keys.get("aws_session_token").cloned(),
                    source: format!("profile `{name}` of {}", path.display()),
                })
            }
            _ if keys.contains_key("sso_session")
                || keys.contains_key("sso_start_url")
                || keys.contains_key("role_arn")
                || keys.contains_key("credential_process") =>
            {
                bail!(
                    "AWS profile `{name}` in {} needs SSO, a role or a credential process, which the proxy does not run: export static or temporary keys for the session (for example with `aws configure export-credentials --profile {name} --format env`)",
                    path.display()
                );
            }
            _ => {}
        }
    }
    bail!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), or put profile `{name}` with aws_access_key_id and aws_secret_access_key in {}",
        if tried.is_empty() {
            "~/.aws/credentials".to_string()
        } else {
            tried.join(" or ")
        }
    )
}

/// A Google key file: `path` (the contract's `credentials`), else
/// `GOOGLE_APPLICATION_CREDENTIALS`, else the application default credentials that
/// `gcloud auth application-default login` writes. A key file the sandbox could read is
/// refused: the agent must never hold the key.
pub fn google_credentials(
    policy: &Policy,
    path: Option<&std::path::Path>,
    scopes: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GoogleCredentials> {
    let (path, from) = match path {
        Some(p) => (p.to_path_buf(), "the contract's `credentials`"),
        None => match env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
            Some(p) => (PathBuf::from(p), "GOOGLE_APPLICATION_CREDENTIALS"),
            None => (
                env("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".config/gcloud/application_default_credentials.json"),
                "the application default credentials",
            ),
        },
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the Google credentials {} ({from}): set GOOGLE_APPLICATION_CREDENTIALS to a service-account key, run `gcloud auth application-default login`, or name the file with `credentials` in the rule's inject",
            path.display()
        )
    })?;
    let readable = policy.decide_file(&path, egress_policy::FileAccess::Read);
    if readable.allowed {
        bail!(
            "the Google credentials {} are readable inside the sandbox ({}): move the key outside the readable paths or add it to [files] deny",
            path.display(),
            readable.reason
        );
    }
    GoogleCredentials::from_json(&text, &path.display().to_string(), scopes.to_vec())
        .map_err(anyhow::Error::msg)
}

/// The `key = value` pairs of `[section]` in an INI text (keys lowercased).
fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_keys_come_first_then_the_profile() {
        let dir = std::env::temp_dir().join(format!("sandbox-aws-creds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIAFILEDEFAULT\naws_secret_access_key = s1\n\n[pilot]\naws_access_key_id=AKIAFILEPILOT\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[profile sso]\nsso_session = corp\n[profile cfg]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = s3\n",
        )
        .unwrap();
        let home = dir.to_string_lossy().into_owned();
        let with_env = env_of(&[
            ("HOME", home.clone()),
            ("AWS_ACCESS_KEY_ID", "AKIAENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "s0".into()),
            ("AWS_SESSION_TOKEN", "t0".into()),
        ]);
        let c = aws_credentials(None, &with_env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKIAENV", Some("t0"))
        );
        // a named profile wins over the environment
        let c = aws_credentials(Some("pilot"), &with_env).unwrap();
        assert_eq!(c.access_key_id, "AKIAFILEPILOT");
        assert_eq!(c.session_token.as_deref(), Some("t2"));
        let home_only = env_of(&[("HOME", home.clone())]);
        assert_eq!(
            aws_credentials(None, &home_only).unwrap().access_key_id,
            "AKIAFILEDEFAULT"
        );
        let profile_env = env_of(&[("HOME", home.clone()), ("AWS_PROFILE", "cfg".into())]);
        assert_eq!(
            aws_credentials(None, &profile_env).unwrap().access_key_id,
            "AKIACONFIG"
        );
        let sso = aws_credentials(Some("sso"), &home_only)
            .unwrap_err()
            .to_string();
        assert!(sso.contains("export-credentials"), "{sso}");
        let missing = aws_credentials(Some("nope"), &home_only)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("profile `nope`") && missing.contains(".aws/credentials"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
