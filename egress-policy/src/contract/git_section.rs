//! `[git]`: the refs the agent may push, whether it may fetch, and whether SSH git (unchecked
//! pushes) is accepted at all.

use toml::de::DeTable;

use super::reader::*;
use super::{Git, Network, Protocol};

/// Hosts of code forges whose pushes and API calls the proxy checks.
const FORGE_HOSTS: &[&str] = &["github.com", "api.github.com", "gitlab.com"];

impl Parser<'_> {
    pub(super) fn parse_git(
        &mut self,
        root: &DeTable<'_>,
        network: Option<&Network>,
    ) -> Option<Git> {
        let mut git = Git::default();
        let table = self.table_at(
            root,
            "",
            "git",
            "a [git] section with `push = [\"refs/heads/pilot/*\"]`",
        );
        match table {
            None if root.contains_key("git") => return None,
            None => {}
            Some((t, _)) => {
                self.check_keys(t, "git", GIT_KEYS);
                if let Some((list, _)) =
                    self.str_list_at(t, "git", "push", "push = [\"refs/heads/pilot/*\"]")
                {
                    git.push = Vec::new();
                    for (i, (pattern, span)) in list.into_iter().enumerate() {
                        let concrete = pattern.replace('*', "x");
                        if !crate::git::valid_refname(&concrete) {
                            self.err(
                                &span,
                                &format!("git.push[{i}]"),
                                format!("`{pattern}` is not a ref pattern"),
                                Some("write a full ref name, `*` for any run of characters: \"refs/heads/pilot/*\"".into()),
                            );
                            continue;
                        }
                        git.push.push(pattern);
                    }
                }
                if let Some((b, _)) = self.bool_at(t, "git", "fetch", "fetch = true") {
                    git.fetch = b;
                }
                if let Some((b, span)) =
                    self.bool_at(t, "git", "unchecked_ssh", "unchecked_ssh = true")
                {
                    git.unchecked_ssh = b;
                    if b {
                        self.warn(
                            Some(&span),
                            "git.unchecked_ssh",
                            "SSH git is accepted: pushes over SSH are encrypted end to end and cannot be checked against [git] push",
                        );
                    }
                }
            }
        }
        if let Some(network) = network {
            for rule in &network.allow {
                let forge = rule.github_api
                    || rule.gitlab_api
                    || FORGE_HOSTS.iter().any(|h| {
                        rule.host
                            .matches(&crate::host::Host::Name((*h).to_string()))
                    });
                let unseen = !rule.intercept && rule.protocol == Protocol::Http;
                if forge && unseen {
                    self.warn(
                        None,
                        &format!("network.allow `{}`", rule.name),
                        format!(
                            "rule `{}` passes TLS to a code forge through unopened: git pushes and API calls through it are not checked against [git] and the merge controls",
                            rule.name
                        ),
                    );
                }
            }
            for (i, rule) in network.allow.iter().enumerate() {
                if rule.protocol == Protocol::Tcp && rule.port == 22 && !git.unchecked_ssh {
                    self.err(
                        &(0..0),
                        &format!("network.allow[{i}]"),
                        format!(
                            "rule `{}` opens SSH (port 22) to {}: a push over SSH cannot be checked against [git] push",
                            rule.name, rule.host
                        ),
                        Some("use git over HTTPS (git remote set-url origin https://...), which the proxy checks ref by ref; or accept unchecked pushes with [git] unchecked_ssh = true".into()),
                    );
                }
            }
        }
        Some(git)
    }
}
