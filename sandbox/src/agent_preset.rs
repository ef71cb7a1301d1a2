//! The `[agent]` preset of a session (or `sandbox run --agent NAME`'s): the environment and
//! the private `$HOME` files egress-policy's preset gives the agent's CLI.

use std::path::Path;

use anyhow::{bail, Context, Result};
use egress_policy::Policy;

/// The `[agent]` preset (or `--agent`'s) for this session: its name and what it sets up.
pub fn for_session(
    flag: Option<&str>,
    policy: &Policy,
    home: &Path,
) -> Result<Option<(String, egress_policy::agents::AgentSetup)>> {
    let section = policy.contract().agent.as_ref();
    let (name, provider) = match (flag, section) {
        (None, None) => return Ok(None),
        (Some(flag), Some(s)) if flag != s.name => bail!(
            "--agent {flag} and the contract's [agent] name = \"{}\" disagree; drop --agent",
            s.name
        ),
        (_, Some(s)) => (s.name.clone(), s.provider),
        (Some(flag), None) => {
            let Some(p) = egress_policy::agents::preset(flag) else {
                bail!(
                    "--agent {flag}: no such preset; the presets are {}",
                    egress_policy::agents::names().join(", ")
                );
            };
            (flag.to_owned(), p.providers[0])
        }
    };
    let preset = egress_policy::agents::preset(&name).context("the preset exists")?;
    let eu = policy.contract().network.residency.is_some();
    // The Azure resource the contract allows, for a CLI whose provider settings name it.
    let azure_host = policy.contract().network.allow.iter().find_map(|r| {
        let h = r.host.to_string();
        h.ends_with(".openai.azure.com").then_some(h)
    });
    Ok(Some((
        name,
        egress_policy::agents::setup_with_host(
            preset,
            provider,
            eu,
            &home.display().to_string(),
            azure_host.as_deref(),
        ),
    )))
}
