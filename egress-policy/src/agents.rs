//! Agent presets: what each coding-agent CLI needs to run unchanged under `sandbox run`, as
//! data. For each agent: the providers it can use and, per provider, the endpoint rule its
//! model traffic needs, the credential the proxy injects (and the host variable it is read
//! from, the one the CLI itself documents), the placeholder the CLI needs to start, the
//! environment that points it at the provider (EU model ids under EU residency), and the
//! switches that turn its telemetry, update checks and error reports off. `sandbox init`
//! renders a contract from a preset ([`render_contract`]); `[agent] name` makes the supervisor
//! apply its environment and files ([`AgentSetup`]).
//!
//! Nothing here opens network access by itself: a preset's endpoints reach the contract only
//! as the rules `sandbox init` writes, which `check` and `explain` show like any other.

use std::fmt::Write as _;

/// A model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Anthropic's API (`api.anthropic.com`): global, no EU option.
    Anthropic,
    /// AWS Bedrock (EU regions, `eu.` inference profiles).
    Bedrock,
    /// Google Vertex AI (a `europe-*` region).
    Vertex,
    /// OpenAI (`eu.api.openai.com` with an EU data-residency project).
    Openai,
    /// Azure OpenAI (an EU resource, attested).
    Azure,
    /// Mistral (`api.eu.mistral.ai`).
    Mistral,
    /// Google's Gemini API (`generativelanguage.googleapis.com`): global, no EU option.
    Gemini,
}

impl Provider {
    /// Every provider, in `--provider` order.
    pub const ALL: [Provider; 7] = [
        Provider::Anthropic,
        Provider::Bedrock,
        Provider::Vertex,
        Provider::Openai,
        Provider::Azure,
        Provider::Mistral,
        Provider::Gemini,
    ];

    /// The `--provider` name.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Bedrock => "bedrock",
            Provider::Vertex => "vertex",
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Mistral => "mistral",
            Provider::Gemini => "gemini",
        }
    }

    /// The provider named `name`.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The provider can keep data in the EU, and how.
    pub fn eu(self) -> Result<&'static str, &'static str> {
        match self {
            Provider::Anthropic => Err("Anthropic's API has no EU inference option; reach Claude through Bedrock (`eu.` inference profiles) or Vertex AI in a `europe-*` region"),
            Provider::Gemini => Err("the Gemini API has no residency option; use Vertex AI in a `europe-*` region"),
            Provider::Bedrock => Ok("an EU region (eu-central-1) and `eu.` cross-region inference profiles, which stay in EU regions"),
            Provider::Vertex => Ok("a regional `europe-*` endpoint (europe-west4)"),
            Provider::Openai => Ok("`eu.api.openai.com` with a project created with EU data residency"),
            Provider::Azure => Ok("an Azure OpenAI resource in an EU region (attested in the rule)"),
            Provider::Mistral => Ok("`api.eu.mistral.ai`"),
        }
    }
}

/// One agent CLI.
#[derive(Debug)]
pub struct Preset {
    /// The `[agent] name` / `--agent` value.
    pub name: &'static str,
    /// The product.
    pub cli: &'static str,
    /// How it is installed (the package the compatibility tests pin).
    pub package: &'static str,
    /// The version the compatibility tests ran.
    pub tested_version: &'static str,
    /// The command, as the contract's `[task] done` and the docs show it.
    pub command: &'static str,
    /// A non-interactive one-turn invocation (docs, `sandbox init`'s comment).
    pub one_turn: &'static str,
    /// Providers it supports, the default first.
    pub providers: &'static [Provider],
    /// Set inside whatever the provider: telemetry, update checks, error reports off.
    pub env: &'static [(&'static str, &'static str)],
    /// Files written into the sandbox's private `$HOME` (path relative to it, contents):
    /// settings that have no environment switch.
    pub home_files: &'static [(&'static str, &'static str)],
    /// Hosts it calls besides the model (denied unless a rule allows them), and what they are.
    pub other_hosts: &'static [(&'static str, &'static str)],
    /// Known limits.
    pub limits: &'static [&'static str],
}

/// A placeholder the CLI holds in place of the real key (the proxy removes it).
pub const PLACEHOLDER: &str = "sandbox-placeholder-the-proxy-injects-the-key";

/// The EU region the presets pick for AWS.
pub const AWS_EU_REGION: &str = "eu-central-1";
/// The EU region the presets pick for Google Cloud.
pub const GCP_EU_REGION: &str = "europe-west4";

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "claude",
        cli: "Claude Code",
        package: "npm @anthropic-ai/claude-code",
        tested_version: "2.1.328",
        command: "claude",
        one_turn: "claude -p \"PROMPT\" --allowedTools Write,Edit,Read --permission-mode acceptEdits",
        providers: &[Provider::Anthropic, Provider::Bedrock, Provider::Vertex],
        env: &[
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
        ],
        home_files: &[],
        other_hosts: &[
            ("api.anthropic.com /api/claude_code/settings, /api/claude_code/policy_limits", "settings and policy fetches (also with non-essential traffic off)"),
            ("bedrock.<region>.amazonaws.com", "the Bedrock control plane (model listing), on Bedrock"),
        ],
        limits: &["a denied settings fetch is retried once per start; the turn goes on"],
    },
    Preset {
        name: "codex",
        cli: "Codex CLI",
        package: "npm @openai/codex",
        tested_version: "0.169.0",
        command: "codex",
        one_turn: "codex exec --skip-git-repo-check -s danger-full-access \"PROMPT\"",
        providers: &[Provider::Openai, Provider::Azure],
        env: &[("CODEX_HOME", "$HOME/.codex")],
        home_files: &[],
        other_hosts: &[
            ("chatgpt.com", "ChatGPT account features"),
            ("api.github.com", "release checks"),
        ],
        limits: &["`-s danger-full-access`: Codex's own sandbox would nest Landlock and seccomp inside this one; this sandbox is the boundary"],
    },
    Preset {
        name: "gemini",
        cli: "Gemini CLI",
        package: "npm @google/gemini-cli",
        tested_version: "0.61.0",
        command: "gemini",
        one_turn: "gemini -m gemini-2.5-pro -p \"PROMPT\" --yolo",
        providers: &[Provider::Gemini, Provider::Vertex],
        env: &[("GEMINI_CLI_TRUST_WORKSPACE", "true")],
        home_files: &[(
            ".gemini/settings.json",
            "{\"privacy\": {\"usageStatisticsEnabled\": false}, \"usageStatisticsEnabled\": false, \"general\": {\"disableAutoUpdate\": true, \"disableUpdateNag\": true}}\n",
        )],
        other_hosts: &[("play.googleapis.com", "usage statistics (switched off in settings)")],
        limits: &["without `-m` it first asks a routing model, which the same rule allows"],
    },
    Preset {
        name: "aider",
        cli: "Aider",
        package: "PyPI aider-chat",
        tested_version: "0.86.2 (not run by the tests)",
        command: "aider",
        one_turn: "aider --yes-always --message \"PROMPT\" FILES",
        providers: &[Provider::Openai, Provider::Anthropic, Provider::Mistral, Provider::Bedrock, Provider::Vertex, Provider::Gemini],
        env: &[
            ("AIDER_ANALYTICS", "false"),
            ("AIDER_CHECK_UPDATE", "false"),
            ("AIDER_SHOW_RELEASE_NOTES", "false"),
            ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        ],
        home_files: &[],
        other_hosts: &[
            ("pypi.org", "version check (switched off)"),
            ("raw.githubusercontent.com", "litellm's model price map (switched off)"),
        ],
        limits: &["not exercised by the compatibility tests yet"],
    },
    Preset {
        name: "opencode",
        cli: "opencode",
        package: "npm opencode-ai",
        tested_version: "1.18.33 (not run by the tests)",
        command: "opencode",
        one_turn: "opencode run \"PROMPT\"",
        providers: &[Provider::Anthropic, Provider::Openai, Provider::Bedrock],
        env: &[("OPENCODE_DISABLE_AUTOUPDATE", "true"), ("OPENCODE_DISABLE_MODELS_FETCH", "true")],
        home_files: &[],
        other_hosts: &[("models.dev", "its model catalog (switched off)")],
        limits: &["not exercised by the compatibility tests yet"],
    },
];

/// The preset named `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names of every preset, for messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// What the supervisor sets up inside for `agent` on `provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSetup {
    /// Environment variables (`$HOME` in a value is the sandbox's home).
    pub env: Vec<(String, String)>,
    /// Files for the private `$HOME` (relative path, contents).
    pub home_files: Vec<(String, String)>,
}

/// The environment and files for `preset` on `provider` (with `eu`: EU model ids), for a
/// sandbox whose `$HOME` is `home`.
pub fn setup(preset: &Preset, provider: Provider, eu: bool, home: &str) -> AgentSetup {
    setup_with_host(preset, provider, eu, home, None)
}

/// [`setup`] for a contract whose provider rule names `host` (an Azure OpenAI resource's
/// `NAME.openai.azure.com`, which the CLI's provider settings must name too).
pub fn setup_with_host(
    preset: &Preset,
    provider: Provider,
    eu: bool,
    home: &str,
    host: Option<&str>,
) -> AgentSetup {
    let mut env: Vec<(String, String)> = preset
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace("$HOME", home)))
        .collect();
    let mut files: Vec<(String, String)> = preset
        .home_files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
    match (preset.name, provider) {
        ("claude", Provider::Anthropic) => set("ANTHROPIC_API_KEY", PLACEHOLDER),
        ("claude", Provider::Bedrock) => {
            set("CLAUDE_CODE_USE_BEDROCK", "1");
            set("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1");
            set("AWS_REGION", AWS_EU_REGION);
            if eu {
                set(
                    "ANTHROPIC_MODEL",
                    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
                );
                set(
                    "ANTHROPIC_SMALL_FAST_MODEL",
                    "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
                );
            }
        }
        ("claude", Provider::Vertex) => {
            set("CLAUDE_CODE_USE_VERTEX", "1");
            set("CLAUDE_CODE_SKIP_VERTEX_AUTH", "1");
            set("CLOUD_ML_REGION", GCP_EU_REGION);
        }
        ("codex", Provider::Openai) => {
            set("OPENAI_API_KEY", PLACEHOLDER);
            let base = if eu {
                "https://eu.api.openai.com/v1"
            } else {
                "https://api.openai.com/v1"
            };
            // The built-in OpenAI provider (its Responses WebSocket transport included) at
            // the chosen base URL; no update check, no analytics.
            files.push((
                ".codex/config.toml".into(),
                format!(
                    "# written by sandbox for this session (the [agent] preset)\nopenai_base_url = \"{base}\"\ncheck_for_update_on_startup = false\n\n[analytics]\nenabled = false\n"
                ),
            ));
        }
        ("codex", Provider::Azure) => {
            set("AZURE_OPENAI_API_KEY", PLACEHOLDER);
            // A provider of Codex's own for the resource (Azure's v1 Responses API); the
            // proxy puts the key in `api-key`.
            if let Some(host) = host {
                files.push((
                    ".codex/config.toml".into(),
                    format!(
                        "# written by sandbox for this session (the [agent] preset)\nmodel_provider = \"azure\"\ncheck_for_update_on_startup = false\n\n[model_providers.azure]\nname = \"Azure OpenAI via sandbox\"\nbase_url = \"https://{host}/openai/v1\"\nenv_key = \"AZURE_OPENAI_API_KEY\"\nwire_api = \"responses\"\n\n[analytics]\nenabled = false\n"
                    ),
                ));
            }
        }
        ("gemini", Provider::Gemini) => set("GEMINI_API_KEY", PLACEHOLDER),
        ("gemini", Provider::Vertex) => {
            set("GOOGLE_GENAI_USE_VERTEXAI", "true");
            set("GOOGLE_CLOUD_LOCATION", GCP_EU_REGION);
            set("GOOGLE_API_KEY", PLACEHOLDER);
        }
        ("aider" | "opencode", Provider::Openai) => set("OPENAI_API_KEY", PLACEHOLDER),
        ("aider" | "opencode", Provider::Anthropic) => set("ANTHROPIC_API_KEY", PLACEHOLDER),
        ("aider", Provider::Mistral) => set("MISTRAL_API_KEY", PLACEHOLDER),
        ("aider", Provider::Gemini) => set("GEMINI_API_KEY", PLACEHOLDER),
        ("aider" | "opencode", Provider::Bedrock) => {
            set("AWS_REGION", AWS_EU_REGION);
            set("AWS_ACCESS_KEY_ID", "AKIASANDBOXPLACEHOLD");
            set("AWS_SECRET_ACCESS_KEY", PLACEHOLDER);
        }
        ("aider", Provider::Vertex) => {
            set("VERTEXAI_LOCATION", GCP_EU_REGION);
        }
        _ => {}
    }
    AgentSetup {
        env,
        home_files: files,
    }
}

/// Why `sandbox init` cannot write a contract for this combination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// No such agent.
    #[error("no preset for the agent `{0}`; the presets are: {1}")]
    UnknownAgent(String, String),
    /// The agent does not speak to that provider.
    #[error("{cli} does not support the provider `{provider}`; it supports: {supported}")]
    Unsupported {
        /// The CLI.
        cli: &'static str,
        /// The provider asked for.
        provider: &'static str,
        /// What it supports.
        supported: String,
    },
    /// The combination cannot stay in the EU.
    #[error("{cli} on `{provider}` cannot keep data in the EU: {why}")]
    NotEu {
        /// The CLI.
        cli: &'static str,
        /// The provider.
        provider: &'static str,
        /// Why, and the alternative.
        why: &'static str,
    },
    /// The agent has no EU-capable provider.
    #[error("{0} has no provider that keeps data in the EU")]
    NoEuProvider(&'static str),
    /// Azure needs the resource name.
    #[error("the provider `azure` needs the resource name: pass --azure-resource NAME (the NAME of NAME.openai.azure.com)")]
    AzureResource,
}

/// What `sandbox init` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRequest {
    /// `--agent`.
    pub agent: String,
    /// `--provider`, if given.
    pub provider: Option<Provider>,
    /// `--residency eu`.
    pub eu: bool,
    /// `--class`.
    pub class: char,
    /// `--azure-resource`.
    pub azure_resource: Option<String>,
    /// Directories outside the system trees the CLI is installed in (read grants).
    pub cli_dirs: Vec<String>,
}

/// A rendered contract and what was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The TOML text.
    pub text: String,
    /// The provider used.
    pub provider: Provider,
    /// Why that provider (when it was not asked for).
    pub chosen_because: Option<String>,
}

/// The provider for `req`: the one asked for (checked), else the agent's default, else under
/// EU residency its first EU-capable provider.
pub fn choose_provider(
    preset: &'static Preset,
    req: &InitRequest,
) -> Result<(Provider, Option<String>), InitError> {
    let supported = || {
        preset
            .providers
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match req.provider {
        Some(p) => {
            if !preset.providers.contains(&p) {
                return Err(InitError::Unsupported {
                    cli: preset.cli,
                    provider: p.name(),
                    supported: supported(),
                });
            }
            if req.eu {
                if let Err(why) = p.eu() {
                    return Err(InitError::NotEu {
                        cli: preset.cli,
                        provider: p.name(),
                        why,
                    });
                }
            }
            Ok((p, None))
        }
        None if !req.eu => Ok((
            preset.providers[0],
            Some(format!("{}'s default provider", preset.cli)),
        )),
        None => preset
            .providers
            .iter()
            .copied()
            .find(|p| p.eu().is_ok())
            .map(|p| {
                (
                    p,
                    Some(format!(
                        "the first provider of {} that keeps data in the EU: {}",
                        preset.cli,
                        p.eu().unwrap_or_default()
                    )),
                )
            })
            .ok_or(InitError::NoEuProvider(preset.cli)),
    }
}

/// The `[[network.allow]]` rule of `provider` (TOML), with `eu` choosing the EU endpoint.
fn rule_toml(
    provider: Provider,
    eu: bool,
    azure_resource: Option<&str>,
) -> Result<String, InitError> {
    let r = AWS_EU_REGION;
    let g = GCP_EU_REGION;
    Ok(match provider {
        Provider::Anthropic => "[[network.allow]]\nname = \"anthropic\"\nhost = \"api.anthropic.com\"\nmethods = [\"POST\"]\npaths = [\"^/v1/messages(/count_tokens)?$\"]\n# the real key: $ANTHROPIC_API_KEY on the host, put on each request by the proxy\ninject = { form = \"header\", header = \"x-api-key\", env = \"ANTHROPIC_API_KEY\" }\n".to_string(),
        Provider::Bedrock => format!("[[network.allow]]\nname = \"bedrock-eu\"\nhost = \"bedrock-runtime.{r}.amazonaws.com\"\nmethods = [\"POST\"]\npaths = [\"^/model/[^/]+/(invoke|invoke-with-response-stream|converse|converse-stream)$\"]\n# signed by the proxy with the host's AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,\n# AWS_PROFILE or ~/.aws); the agent holds none\ninject = {{ form = \"aws-sigv4\" }}\n"),
        Provider::Vertex => format!("[[network.allow]]\nname = \"vertex-eu\"\nhost = \"{g}-aiplatform.googleapis.com\"\nmethods = [\"POST\"]\npaths = [\"^/v1(beta1)?/projects/[^/]+/locations/{g}/publishers/(anthropic|google)/models/[^/]+:[A-Za-z]+$\"]\n# an access token minted by the supervisor from Google application default credentials\n# (GOOGLE_APPLICATION_CREDENTIALS or gcloud's ADC file); the agent holds none\ninject = {{ form = \"google-oauth\" }}\n"),
        Provider::Openai => {
            let host = if eu { "eu.api.openai.com" } else { "api.openai.com" };
            format!("[[network.allow]]\nname = \"openai\"\nhost = \"{host}\"\nmethods = [\"GET\", \"POST\"]\n# POST for HTTP, GET for the Responses WebSocket\npaths = [\"^/v1/(responses|chat/completions|models)(/.*)?$\"]\n# the real key: $OPENAI_API_KEY on the host{}\ninject = {{ form = \"bearer\", env = \"OPENAI_API_KEY\" }}\n", if eu { " (a project with EU data residency)" } else { "" })
        }
        Provider::Azure => {
            let res = azure_resource.ok_or(InitError::AzureResource)?;
            format!("[[network.allow]]\nname = \"azure-openai\"\nhost = \"{res}.openai.azure.com\"\nmethods = [\"GET\", \"POST\"]\npaths = [\"^/openai/\"]\n# the resource's location, which the host does not show: attested here\nregion = \"swedencentral\"\ninject = {{ form = \"azure-api-key\", env = \"AZURE_OPENAI_API_KEY\" }}\n")
        }
        Provider::Mistral => {
            let host = if eu { "api.eu.mistral.ai" } else { "api.mistral.ai" };
            format!("[[network.allow]]\nname = \"mistral\"\nhost = \"{host}\"\nmethods = [\"POST\"]\npaths = [\"^/v1/(chat|fim)/completions$\"]\ninject = {{ form = \"bearer\", env = \"MISTRAL_API_KEY\" }}\n")
        }
        Provider::Gemini => "[[network.allow]]\nname = \"gemini\"\nhost = \"generativelanguage.googleapis.com\"\nmethods = [\"POST\"]\npaths = [\"^/v1beta/models/[^/]+:(generateContent|streamGenerateContent|countTokens)$\"]\ninject = { form = \"header\", header = \"x-goog-api-key\", env = \"GEMINI_API_KEY\" }\n".to_string(),
    })
}

/// Renders the commented contract `sandbox init` writes.
pub fn render_contract(req: &InitRequest) -> Result<Rendered, InitError> {
    let preset = preset(&req.agent)
        .ok_or_else(|| InitError::UnknownAgent(req.agent.clone(), names().join(", ")))?;
    let (provider, chosen_because) = choose_provider(preset, req)?;
    let rule = rule_toml(provider, req.eu, req.azure_resource.as_deref())?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Contract for {} ({}) on {}, written by `sandbox init`.",
        preset.cli,
        preset.name,
        provider.name()
    );
    let _ = writeln!(
        t,
        "# Check it with `sandbox check THIS-FILE`; run the agent with"
    );
    let _ = writeln!(
        t,
        "#   sandbox run --contract THIS-FILE -- {}",
        preset.one_turn
    );
    if req.eu {
        let _ = writeln!(t, "# EU residency: {}.", provider.eu().unwrap_or_default());
    }
    let _ = writeln!(t, "version = 1\n");
    let _ = writeln!(
        t,
        "[task]\n# Fill these in: what the agent is asked to do, and how you know it is done."
    );
    let _ = writeln!(t, "id = \"TASK-1\"");
    let _ = writeln!(t, "class = \"{}\"  # A: docs/tests/formatting, B: feature code (human review), C: security-critical", req.class);
    let _ = writeln!(t, "objective = \"describe the task\"");
    let _ = writeln!(
        t,
        "done = []        # commands that must pass after the agent, e.g. [\"cargo test\"]"
    );
    let _ = writeln!(t, "rollback = \"git reset --hard HEAD\"");
    if req.class == 'C' {
        let _ = writeln!(
            t,
            "approved_by = \"name of the approver\"\nticket = \"TICKET-1\""
        );
    }
    let _ = writeln!(
        t,
        "\n[agent]\n# Applies the {} preset: {}",
        preset.cli,
        describe_setup(preset, provider, req.eu)
    );
    let _ = writeln!(
        t,
        "name = \"{}\"\nprovider = \"{}\"",
        preset.name,
        provider.name()
    );
    let _ = writeln!(t, "\n[files]");
    if req.class == 'A' {
        let _ = writeln!(
            t,
            "read = [\".\"]\nwrite = [\"docs\", \"tests\", \"README.md\"]"
        );
    } else {
        let _ = writeln!(t, "write = [\".\"]  # the workspace; protected paths (.git/hooks, CI files) stay read-only");
    }
    if !req.cli_dirs.is_empty() {
        let _ = writeln!(
            t,
            "# where {} is installed (outside the system directories)",
            preset.cli
        );
        let list: Vec<String> = req.cli_dirs.iter().map(|d| format!("\"{d}\"")).collect();
        let _ = writeln!(t, "read = [{}]", list.join(", "));
    }
    let _ = writeln!(t, "\n[network]");
    if req.eu {
        let _ = writeln!(t, "residency = \"EU\"");
    }
    let _ = writeln!(
        t,
        "# Only the model endpoint. What {} calls besides is denied and logged:",
        preset.cli
    );
    for (host, what) in preset.other_hosts {
        let _ = writeln!(t, "#   {host}: {what}");
    }
    t.push_str(&rule);
    let _ = writeln!(
        t,
        "\n[log]\npath = \"~/.local/state/sandbox/{}-flows.jsonl\"",
        preset.name
    );
    Ok(Rendered {
        text: t,
        provider,
        chosen_because,
    })
}

/// One line saying what the preset sets up.
pub fn describe_setup(preset: &Preset, provider: Provider, eu: bool) -> String {
    let s = setup(preset, provider, eu, "~");
    let vars: Vec<String> = s.env.iter().map(|(k, _)| k.clone()).collect();
    let files: Vec<String> = s.home_files.iter().map(|(p, _)| format!("~/{p}")).collect();
    let mut out = format!("sets {}", vars.join(", "));
    if !files.is_empty() {
        out.push_str(&format!("; writes {}", files.join(", ")));
    }
    out.push_str(" (placeholders only: the proxy injects the real key)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(agent: &str, provider: Option<Provider>, eu: bool) -> InitRequest {
        InitRequest {
            agent: agent.into(),
            provider,
            eu,
            class: 'B',
            azure_resource: Some("pilot".into()),
            cli_dirs: vec![],
        }
    }

    #[test]
    fn eu_picks_the_first_eu_provider_and_refuses_the_impossible() {
        let r = render_contract(&req("claude", None, true)).unwrap();
        assert_eq!(r.provider, Provider::Bedrock);
        assert!(r
            .text
            .contains("bedrock-runtime.eu-central-1.amazonaws.com"));
        let r = render_contract(&req("gemini", None, true)).unwrap();
        assert_eq!(r.provider, Provider::Vertex);
        let r = render_contract(&req("codex", None, true)).unwrap();
        assert!(r.text.contains("eu.api.openai.com"));
        let e = render_contract(&req("claude", Some(Provider::Anthropic), true)).unwrap_err();
        assert!(matches!(e, InitError::NotEu { .. }), "{e}");
        assert!(e.to_string().contains("Bedrock"), "{e}");
        let e = render_contract(&req("gemini", Some(Provider::Gemini), true)).unwrap_err();
        assert!(e.to_string().contains("Vertex"), "{e}");
        let e = render_contract(&req("codex", Some(Provider::Bedrock), false)).unwrap_err();
        assert!(matches!(e, InitError::Unsupported { .. }), "{e}");
        let e = render_contract(&req("vim", None, false)).unwrap_err();
        assert!(
            e.to_string()
                .contains("claude, codex, gemini, aider, opencode"),
            "{e}"
        );
        let mut az = req("codex", Some(Provider::Azure), true);
        az.azure_resource = None;
        assert_eq!(render_contract(&az).unwrap_err(), InitError::AzureResource);
    }

    #[test]
    fn claude_on_bedrock_in_the_eu_gets_eu_model_ids_and_no_key() {
        let s = setup(
            preset("claude").unwrap(),
            Provider::Bedrock,
            true,
            "/home/u",
        );
        let get = |k: &str| s.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert!(get("ANTHROPIC_MODEL").unwrap().starts_with("eu."));
        assert!(get("ANTHROPIC_SMALL_FAST_MODEL")
            .unwrap()
            .starts_with("eu."));
        assert_eq!(get("CLAUDE_CODE_SKIP_BEDROCK_AUTH"), Some("1"));
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), None);
        let s = setup_with_host(
            preset("codex").unwrap(),
            Provider::Azure,
            true,
            "/home/u",
            Some("pilot.openai.azure.com"),
        );
        assert!(s.home_files[0]
            .1
            .contains("base_url = \"https://pilot.openai.azure.com/openai/v1\""));
        let s = setup(preset("codex").unwrap(), Provider::Openai, true, "/home/u");
        assert!(s
            .env
            .contains(&("CODEX_HOME".into(), "/home/u/.codex".into())));
        assert!(s.home_files[0].1.contains("https://eu.api.openai.com/v1"));
    }
}
