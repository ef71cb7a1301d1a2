//! Reading `[network]` and its `[[network.allow]]` rules: hosts, ports, methods, paths,
//! injection, and the residency check of each rule against the catalog.

use toml::de::{DeTable, DeValue};

use super::checks::*;
use super::reader::*;
use super::*;
use crate::catalog::{self, Placement};
use crate::decision::Scheme;
use crate::error::did_you_mean;
use crate::host::HostPattern;
use crate::region::Region;

impl Parser<'_> {
    pub(super) fn parse_network(
        &mut self,
        root: &DeTable<'_>,
        class: Option<Class>,
        env: &Option<Env>,
    ) -> Option<Network> {
        let Some((t, _)) = self.table_at(
            root,
            "",
            "network",
            "a [network] section with `residency = \"EU\"`",
        ) else {
            return if root.contains_key("network") {
                None
            } else {
                Some(Network::default())
            };
        };
        self.check_keys(t, "network", NETWORK_KEYS);
        let mut residency = None;
        if let Some((r, span)) = self.str_at(t, "network", "residency", "residency = \"EU\"") {
            if r == "EU" {
                residency = Some(Residency::Eu);
            } else {
                let hint = if r.eq_ignore_ascii_case("eu") {
                    "write `residency = \"EU\"` (upper case)".to_string()
                } else {
                    "the only residency is \"EU\"; remove the key for none".to_string()
                };
                self.err(
                    &span,
                    "network.residency",
                    format!("unknown residency `{r}`"),
                    Some(hint),
                );
            }
        }
        let mut rules: Vec<(Rule, Span)> = Vec::new();
        if let Some(v) = t.get("allow") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("network.allow[{i}]");
                        match item.get_ref() {
                            DeValue::Table(rt) => {
                                if let Some(rule) = self.parse_rule(rt, &item.span(), &key, class, residency, env) {
                                    rules.push((rule, item.span()));
                                }
                            }
                            _ => self.wrong_type(item, &key, "a table", "a [[network.allow]] section with `name = \"mistral-eu\"` and `host = \"api.eu.mistral.ai\"`"),
                        }
                    }
                }
                _ => self.wrong_type(
                    v,
                    "network.allow",
                    "an array of tables ([[network.allow]])",
                    "a [[network.allow]] section with `name = \"mistral-eu\"` and `host = \"api.eu.mistral.ai\"`",
                ),
            }
        }
        // unique names, and no two rules that cover the same host:port but carry it differently
        for i in 0..rules.len() {
            for j in 0..i {
                let (a, _) = &rules[j];
                let (b, bspan) = &rules[i];
                if a.name == b.name {
                    let (name, span) = (b.name.clone(), bspan.clone());
                    self.err(
                        &span,
                        &format!("network.allow[{i}].name"),
                        format!("rule name `{name}` is used twice"),
                        Some("give every rule a unique name; decisions report it".into()),
                    );
                    continue;
                }
                let overlap =
                    a.port == b.port && (a.host.covers(&b.host) || b.host.covers(&a.host));
                if overlap && (a.intercept != b.intercept || a.protocol != b.protocol) {
                    let msg = format!("rules `{}` and `{}` both cover {}:{} but one intercepts TLS (or carries HTTP) and the other does not", a.name, b.name, b.host, b.port);
                    let span = bspan.clone();
                    self.err(&span, &format!("network.allow[{i}]"), msg, Some("a host:port is either inspected or passed through: make `intercept` and `protocol` agree".into()));
                }
                if overlap && a.inject != b.inject && (a.inject.is_some() || b.inject.is_some()) {
                    let msg = format!(
                        "rules `{}` and `{}` both cover {}:{} with different `inject` settings",
                        a.name, b.name, b.host, b.port
                    );
                    let span = bspan.clone();
                    self.err(&span, &format!("network.allow[{i}]"), msg, Some("the credential a host receives must not depend on which rule matches first: give both the same `inject`".into()));
                }
            }
        }
        Some(Network {
            residency,
            allow: rules.into_iter().map(|(r, _)| r).collect(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn parse_rule(
        &mut self,
        t: &DeTable<'_>,
        span: &Span,
        key: &str,
        class: Option<Class>,
        residency: Option<Residency>,
        env: &Option<Env>,
    ) -> Option<Rule> {
        self.check_keys(t, key, RULE_KEYS);
        let k = |s: &str| format!("{key}.{s}");
        let errs_before = self.diags.len();

        let name = self.str_at(t, key, "name", "name = \"mistral-eu\"");
        let name = self.required(
            name,
            t.contains_key("name"),
            span,
            &k("name"),
            "name = \"mistral-eu\"",
        );
        if let Some((n, nspan)) = &name {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                self.err(
                    nspan,
                    &k("name"),
                    format!("rule name `{n}` is not valid"),
                    Some("use 1-64 letters, digits, `-`, `_` or `.`".into()),
                );
            }
        }
        let host = self.str_at(t, key, "host", "host = \"api.eu.mistral.ai\"");
        let host = self.required(
            host,
            t.contains_key("host"),
            span,
            &k("host"),
            "host = \"api.eu.mistral.ai\"",
        );
        let host = host.and_then(|(h, hspan)| match HostPattern::parse(&h) {
            Ok(HostPattern::Ip(ip)) if never_dialled(ip) => {
                let class = crate::addr::classify(ip);
                self.err(&hspan, &k("host"), format!("`{h}` is a {} address, which the proxy never dials", class.as_str()), Some("only global unicast addresses can be named; loopback, link-local, metadata and other special addresses are never reached".into()));
                None
            }
            Ok(HostPattern::Ip(ip)) if is_internal(ip) => {
                let class = crate::addr::classify(ip);
                self.err(&hspan, &k("host"), format!("`{h}` is a {} address: a contract never opens a private or CGNAT address", class.as_str()), Some("name the host (`gateway.corp.example`) and have the operator map it to the internal address with `--connect-to HOST:PORT:ADDR:PORT`, the only way to reach internal gateways".into()));
                None
            }
            Ok(p) => Some((p, hspan)),
            Err(why) => {
                self.err(&hspan, &k("host"), why, Some("write an exact host (`api.eu.mistral.ai`), a leading wildcard (`*.example.com`) or a global IP literal".into()));
                None
            }
        });

        let protocol = match self.str_at(t, key, "protocol", "protocol = \"tcp\"") {
            None => Protocol::Http,
            Some((p, pspan)) => match p.as_str() {
                "http" => Protocol::Http,
                "tcp" => Protocol::Tcp,
                other => {
                    self.err(&pspan, &k("protocol"), format!("unknown protocol `{other}`"), Some("valid: \"http\" (default: HTTP(S) requests) or \"tcp\" (a raw TCP stream such as ssh)".into()));
                    Protocol::Http
                }
            },
        };

        let mut port = 443u16;
        if let Some(v) = t.get("port") {
            match v.get_ref() {
                DeValue::Integer(i) => match parse_int(i.as_str(), i.radix())
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0)
                {
                    Some(p) => port = p,
                    None => self.err(
                        &v.span(),
                        &k("port"),
                        format!("port {} is out of range", i.as_str()),
                        Some("a port is 1..=65535 (default 443)".into()),
                    ),
                },
                _ => self.wrong_type(v, &k("port"), "an integer", "port = 443"),
            }
        }

        let mut schemes = vec![Scheme::Https];
        let mut schemes_span = span.clone();
        if let Some((list, sspan)) = self.str_list_at(t, key, "schemes", "schemes = [\"https\"]") {
            schemes_span = sspan.clone();
            let before = self.diags.len();
            let mut out = Vec::new();
            for (s, ispan) in list {
                match s.as_str() {
                    "https" => out.push(Scheme::Https),
                    "http" => out.push(Scheme::Http),
                    other => {
                        let hint = match did_you_mean(other, &["https", "http"]) {
                            Some(m) => format!("did you mean \"{m}\"? valid: \"https\", \"http\""),
                            None => "valid: \"https\" (default), \"http\" (plain text, must be explicit)".into(),
                        };
                        self.err(
                            &ispan,
                            &k("schemes"),
                            format!("unknown scheme `{other}`"),
                            Some(hint),
                        );
                    }
                }
            }
            out.dedup();
            if out.is_empty() && self.diags.len() == before {
                self.err(
                    &sspan,
                    &k("schemes"),
                    "`schemes` is empty",
                    Some("write `schemes = [\"https\"]` or remove the key".into()),
                );
            }
            schemes = out;
        }

        let mut methods = None;
        if let Some((list, mspan)) = self.str_list_at(t, key, "methods", "methods = [\"POST\"]") {
            let before = self.diags.len();
            let mut out = Vec::new();
            for (m, ispan) in list {
                let token = !m.is_empty()
                    && m.bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
                if m == "CONNECT" {
                    self.err(
                        &ispan,
                        &k("methods"),
                        "CONNECT is never forwarded as a request (a tunnel inside a tunnel)",
                        Some("remove it: tunnels are decided by the rule's host and port".into()),
                    );
                } else if token {
                    out.push(m);
                } else {
                    let up = m.to_ascii_uppercase();
                    self.err(
                        &ispan,
                        &k("methods"),
                        format!("`{m}` is not an HTTP method as sent on the wire"),
                        Some(format!(
                            "methods are case-sensitive upper-case tokens: write \"{up}\""
                        )),
                    );
                }
            }
            if out.is_empty() && self.diags.len() == before {
                self.err(
                    &mspan,
                    &k("methods"),
                    "`methods` is empty: the rule could never match",
                    Some(
                        "list the methods (`methods = [\"POST\"]`) or remove the key to allow any"
                            .into(),
                    ),
                );
            }
            methods = Some(out);
        }

        let mut paths = Vec::new();
        if let Some((list, _)) =
            self.str_list_at(t, key, "paths", "paths = [\"^/v1/chat/completions$\"]")
        {
            for (i, (p, pspan)) in list.into_iter().enumerate() {
                // The pattern must be a whole regex on its own: otherwise `a)|(.*` would close
                // the anchoring group and match every path. Parsing it alone (the regex
                // crate's own parser and defaults) checks that without compiling it twice; the
                // size limit is enforced on the anchored build.
                let alone = regex_syntax::Parser::new()
                    .parse(&p)
                    .map(|_| ())
                    .map_err(|e| regex::Error::Syntax(e.to_string()));
                let anchored = format!("^(?:{p})$");
                let built = alone.and_then(|()| {
                    regex::RegexBuilder::new(&anchored)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                });
                match built {
                    Ok(regex) => paths.push(PathPattern { source: p, regex }),
                    Err(e) => {
                        let detail = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        self.err(&pspan, &format!("{key}.paths[{i}]"), format!("`{p}` is not a valid regex: {detail}"), Some("paths are Rust regexes matched against the whole path, e.g. \"^/v1/models/[^/]+$\"; escape literal `.`, `(` and `[` with `\\\\`".into()));
                    }
                }
            }
        }

        let github_api = self
            .bool_at(t, key, "github_api", "github_api = true")
            .is_some_and(|(b, _)| b);
        let gitlab_api = self
            .bool_at(t, key, "gitlab_api", "gitlab_api = true")
            .is_some_and(|(b, _)| b);
        let intercept_v = self.bool_at(t, key, "intercept", "intercept = false");
        let intercept = match (protocol, intercept_v.as_ref()) {
            (Protocol::Tcp, Some((true, ispan))) => {
                self.err(
                    ispan,
                    &k("intercept"),
                    "a `tcp` rule cannot intercept",
                    Some(
                        "remove `intercept` (tcp streams are spliced after the host:port check)"
                            .into(),
                    ),
                );
                false
            }
            (Protocol::Tcp, _) => false,
            (_, Some((b, _))) => *b,
            (_, None) => true,
        };

        let mut region = None;
        let mut region_span = None;
        if let Some((r, rspan)) = self.str_at(t, key, "region", "region = \"swedencentral\"") {
            if r.trim().is_empty() {
                self.err(
                    &rspan,
                    &k("region"),
                    "`region` is empty",
                    Some(
                        "name the region the endpoint processes data in, e.g. \"swedencentral\""
                            .into(),
                    ),
                );
            } else {
                region = Some(r);
            }
            region_span = Some(rspan);
        }

        let mut inject = None;
        if let Some((it, ispan)) = self.table_at(
            t,
            key,
            "inject",
            "inject = { header = \"x-api-key\", env = \"ANTHROPIC_API_KEY\" }",
        ) {
            let ik = k("inject");
            inject = self.parse_inject(it, &ispan, &ik, env, host.as_ref().map(|(h, _)| h));
        }

        // combinations
        if protocol == Protocol::Tcp {
            for (present, what) in [
                (t.contains_key("methods"), "methods"),
                (t.contains_key("paths"), "paths"),
                (t.contains_key("inject"), "inject"),
                (t.contains_key("schemes"), "schemes"),
            ] {
                if present {
                    let sp = t.get(what).map(|v| v.span()).unwrap_or(span.clone());
                    self.err(
                        &sp,
                        &k(what),
                        format!("`{what}` does not apply to a `tcp` rule: the stream is not HTTP"),
                        Some(format!("remove `{what}`, or use `protocol = \"http\"`")),
                    );
                }
            }
        } else if !intercept {
            for (present, what) in [
                (t.contains_key("methods"), "methods"),
                (t.contains_key("paths"), "paths"),
                (t.contains_key("inject"), "inject"),
            ] {
                if present {
                    let sp = t.get(what).map(|v| v.span()).unwrap_or(span.clone());
                    self.err(&sp, &k(what), format!("`{what}` needs the proxy to see requests, but `intercept = false` passes TLS through unopened"), Some(format!("remove `{what}` or `intercept = false`")));
                }
            }
            if schemes.contains(&Scheme::Http) {
                self.err(
                    &schemes_span,
                    &k("schemes"),
                    "`intercept = false` is TLS passthrough: it cannot carry plain `http`",
                    Some("use `schemes = [\"https\"]`".into()),
                );
            }
        }
        if let (Some(_), Some((h, hspan))) = (&inject, &host) {
            if h.is_wildcard() {
                self.err(
                    hspan,
                    &k("inject"),
                    format!("a credential would be injected into requests to every host under `{h}`, including names other tenants can create"),
                    Some("inject only on a rule with an exact host".into()),
                );
            }
        }
        if inject.is_some() && schemes.contains(&Scheme::Http) {
            self.err(
                &schemes_span,
                &k("schemes"),
                "a credential is never injected over plain http",
                Some("use `schemes = [\"https\"]` on a rule with `inject`".into()),
            );
        }

        // class baselines
        if let Some(c) = class {
            if c != Class::B {
                let who = format!("class {c}");
                if let Some((h, hspan)) = &host {
                    if c == Class::C && h.is_wildcard() {
                        self.err(
                            hspan,
                            &k("host"),
                            format!("{who} forbids wildcard hosts (`{h}`)"),
                            Some("name every host exactly".into()),
                        );
                    }
                }
                if protocol == Protocol::Tcp {
                    self.err(
                        span,
                        &k("protocol"),
                        format!("{who} forbids raw `tcp` rules"),
                        Some("only class B may splice raw TCP streams".into()),
                    );
                } else if !intercept {
                    let sp = intercept_v
                        .as_ref()
                        .map(|(_, s)| s.clone())
                        .unwrap_or(span.clone());
                    self.err(&sp, &k("intercept"), format!("{who} forbids TLS passthrough (`intercept = false`): requests must be inspected"), Some("remove `intercept = false`; only class B may pass TLS through".into()));
                }
                if schemes.contains(&Scheme::Http) {
                    self.err(
                        &schemes_span,
                        &k("schemes"),
                        format!("{who} forbids plain `http`"),
                        Some("use `schemes = [\"https\"]`; only class B may use plain http".into()),
                    );
                }
            }
        }
        if protocol == Protocol::Http && intercept && schemes.contains(&Scheme::Http) {
            self.warn(
                Some(&schemes_span),
                &k("schemes"),
                "plain http: request and response travel unencrypted beyond the proxy",
            );
        }
        if protocol == Protocol::Http && !intercept {
            self.warn(Some(span), key, "TLS passthrough: methods, paths, secrets and per-request residency are not checked inside this tunnel");
        }

        // residency
        let (host, hspan) = host?;
        let placement = match &host {
            HostPattern::Exact(n) => catalog::place(n),
            _ => None,
        };
        if let Some(Residency::Eu) = residency {
            self.check_residency(
                &host,
                &hspan,
                placement.as_ref(),
                region.as_deref(),
                region_span.as_ref(),
                key,
            );
            let spliced = protocol == Protocol::Tcp || !intercept;
            let per_request = match &host {
                HostPattern::Exact(n) => catalog::per_request_for(
                    &crate::host::Host::Name(n.clone()),
                    placement.as_ref(),
                ),
                _ => catalog::PerRequest::None,
            };
            if spliced && per_request != catalog::PerRequest::None {
                self.err(span, key, format!("residency = \"EU\", but where `{host}` sends data depends on each request (the model id or location in its path), and this rule splices the tunnel unseen"), Some("remove `intercept = false` / `protocol = \"tcp\"` so that each request is decided".into()));
            }
        } else if let (Some(p), Some(r), Some(rs)) =
            (placement.as_ref(), region.as_ref(), region_span.as_ref())
        {
            if p.region.is_some() {
                self.warn(Some(rs), &k("region"), format!("the catalog already places `{host}` ({}, {}); the attestation `{r}` is ignored", p.provider, p.region.as_ref().map_or("", Region::field)));
            }
        }

        if self.diags.len() > errs_before {
            return None;
        }
        Some(Rule {
            name: name?.0,
            host,
            port,
            schemes,
            methods,
            paths,
            intercept,
            region,
            protocol,
            inject,
            placement,
            github_api,
            gitlab_api,
        })
    }

    pub(super) fn check_residency(
        &mut self,
        host: &HostPattern,
        hspan: &Span,
        placement: Option<&Placement>,
        region: Option<&str>,
        region_span: Option<&Span>,
        key: &str,
    ) {
        let rkey = format!("{key}.region");
        let hkey = format!("{key}.host");
        if let HostPattern::Wildcard(_) = host {
            for sample in catalog::SAMPLE_HOSTS {
                let Ok(h) = crate::host::normalize_host(sample) else {
                    continue;
                };
                if host.matches(&h) {
                    if let Some(p) = catalog::place(sample) {
                        if p.in_eu == Some(false) {
                            self.err(hspan, &hkey, format!("`{host}` covers `{sample}`, which the catalog places outside the EU ({}, region {})", p.provider, p.region.as_ref().map_or("?", Region::field)), Some("under residency = \"EU\", name the EU hosts exactly".into()));
                            return;
                        }
                    }
                }
            }
        }
        match placement.and_then(|p| p.in_eu.map(|eu| (p, eu))) {
            Some((p, false)) => {
                let region_s = p.region.as_ref().map_or("", Region::field);
                let hint = eu_alternative(p.provider);
                self.err(hspan, &hkey, format!("residency = \"EU\", but the catalog places `{host}` outside the EU: {} ({}), region {region_s}, jurisdiction {}", p.provider, p.note, p.jurisdiction), Some(hint));
            }
            Some((p, true)) => {
                if let (Some(r), Some(rs)) = (region, region_span) {
                    if !catalog::region_is_eu(r) {
                        self.err(rs, &rkey, format!("the attested region `{r}` is not in the EU, and the catalog places `{host}` in {}", p.region.as_ref().map_or("the EU", Region::field)), Some("remove `region`: the catalog already places this host".into()));
                    }
                }
            }
            None => {
                let what = match (placement, host) {
                    (Some(p), _) => format!(
                        "the catalog knows `{host}` ({}) but cannot place it: {}",
                        p.provider, p.note
                    ),
                    (None, HostPattern::Wildcard(_)) => {
                        format!("the catalog cannot place every host under `{host}`")
                    }
                    (None, _) => format!("the catalog cannot place `{host}`"),
                };
                match (region, region_span) {
                    (None, _) => self.err(hspan, &rkey, format!("residency = \"EU\" and {what}"), Some("add `region = \"<EU region>\"` to attest where it processes data (e.g. \"swedencentral\", \"eu-central-1\", \"EU\"), or remove the rule".into())),
                    (Some(r), Some(rs)) if !catalog::region_is_eu(r) => {
                        self.err(rs, &rkey, format!("residency = \"EU\", but the attested region `{r}` is not an EU region"), Some(format!("valid attestations: \"EU\", AWS {}, Google {}, Azure {}", catalog::AWS_EU_REGIONS.join("/"), catalog::GCP_EU_REGIONS.join("/"), catalog::AZURE_EU_REGIONS.join("/"))));
                    }
                    _ => {}
                }
            }
        }
    }

    /// `inject = { ... }`: the raw header form (`header` and `env`), or a named `form`:
    /// `bearer`, `azure-api-key` (each with `env`) or `aws-sigv4` (`service`, `region`,
    /// `profile`, all optional).
    pub(super) fn parse_inject(
        &mut self,
        it: &DeTable<'_>,
        ispan: &Span,
        ik: &str,
        env: &Option<Env>,
        host: Option<&HostPattern>,
    ) -> Option<Inject> {
        self.check_keys(it, ik, INJECT_KEYS);
        let form = self.str_at(it, ik, "form", "form = \"bearer\"");
        let form_name = form
            .as_ref()
            .map_or("header", |(f, _)| f.as_str())
            .to_string();
        let allowed: &[&str] = match form_name.as_str() {
            "header" => &["form", "header", "env"],
            "bearer" | "azure-api-key" => &["form", "env"],
            "aws-sigv4" => &["form", "service", "region", "profile"],
            "google-oauth" => &["form", "credentials", "scopes"],
            other => {
                let (_, fspan) = form.as_ref().expect("a named form was given");
                let hint = match did_you_mean(other, INJECT_FORMS) {
                    Some(s) => format!("did you mean `{s}`? forms: {}", INJECT_FORMS.join(", ")),
                    None => format!("forms: {}", INJECT_FORMS.join(", ")),
                };
                self.err(
                    fspan,
                    &format!("{ik}.form"),
                    format!("unknown inject form `{other}`"),
                    Some(hint),
                );
                return None;
            }
        };
        let mut ok = true;
        for (k, _) in it.iter() {
            let name: &str = k.get_ref();
            if INJECT_KEYS.contains(&name) && !allowed.contains(&name) {
                self.err(
                    &k.span(),
                    &format!("{ik}.{name}"),
                    format!("`{name}` does not apply to the `{form_name}` inject form"),
                    Some(format!("keys of this form: {}", allowed.join(", "))),
                );
                ok = false;
            }
        }
        let example_env = match form_name.as_str() {
            "bearer" => "env = \"OPENAI_API_KEY\"",
            "azure-api-key" => "env = \"AZURE_OPENAI_API_KEY\"",
            _ => "env = \"ANTHROPIC_API_KEY\"",
        };
        let mut env_name = None;
        if form_name != "aws-sigv4" && form_name != "google-oauth" {
            let envv = self.str_at(it, ik, "env", example_env);
            let envv = self.required(
                envv,
                it.contains_key("env"),
                ispan,
                &format!("{ik}.env"),
                example_env,
            );
            if let Some((e, espan)) = envv {
                if !valid_env_name(&e) {
                    self.err(
                        &espan,
                        &format!("{ik}.env"),
                        format!("`{e}` is not an environment variable name"),
                        Some("use letters, digits and `_`".into()),
                    );
                    ok = false;
                }
                if env.as_ref().is_some_and(|env| env.pass.contains(&e)) {
                    self.err(&espan, &format!("{ik}.env"), format!("`{e}` is injected by the proxy and also passed into the sandbox by [env] pass"), Some(format!("remove `{e}` from [env] pass: the point of `inject` is that the agent never holds the credential")));
                    ok = false;
                }
                env_name = Some(e);
            } else {
                ok = false;
            }
        }
        let inject = match form_name.as_str() {
            "header" => {
                let header = self.str_at(it, ik, "header", "header = \"x-api-key\"");
                let (h, hspan) = self.required(
                    header,
                    it.contains_key("header"),
                    ispan,
                    &format!("{ik}.header"),
                    "header = \"x-api-key\"",
                )?;
                let hl = h.to_ascii_lowercase();
                if hl.is_empty()
                    || !hl
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    self.err(
                        &hspan,
                        &format!("{ik}.header"),
                        format!("`{h}` is not a header name"),
                        Some("e.g. \"x-api-key\" or \"authorization\"".into()),
                    );
                    ok = false;
                }
                if NOT_A_CREDENTIAL_HEADER.contains(&hl.as_str()) {
                    self.err(&hspan, &format!("{ik}.header"), format!("`{h}` cannot carry an injected credential"), Some("inject into the header the API expects, e.g. \"x-api-key\", \"authorization\", \"api-key\"".into()));
                    ok = false;
                }
                Inject::Header {
                    header: hl,
                    env: env_name?,
                }
            }
            "bearer" => Inject::Bearer { env: env_name? },
            "azure-api-key" => Inject::AzureApiKey { env: env_name? },
            "google-oauth" => {
                let credentials = match self.str_at(
                    it,
                    ik,
                    "credentials",
                    "credentials = \"~/.config/sandbox/vertex-sa.json\"",
                ) {
                    Some((c, cspan)) => self.resolve_path(&c, &cspan, &format!("{ik}.credentials")),
                    None => None,
                };
                let scopes = match self.str_list_at(
                    it,
                    ik,
                    "scopes",
                    "scopes = [\"https://www.googleapis.com/auth/cloud-platform\"]",
                ) {
                    Some((list, lspan)) => {
                        if list.is_empty() {
                            self.err(
                                &lspan,
                                &format!("{ik}.scopes"),
                                "`scopes` is empty",
                                Some(
                                    "leave it out for the cloud-platform scope Vertex AI needs"
                                        .into(),
                                ),
                            );
                            ok = false;
                        }
                        for (sc, sspan) in &list {
                            if !sc.starts_with("https://") || sc.contains(char::is_whitespace) {
                                self.err(
                                    sspan,
                                    &format!("{ik}.scopes"),
                                    format!("`{sc}` is not an OAuth scope URL"),
                                    Some(
                                        "e.g. \"https://www.googleapis.com/auth/cloud-platform\""
                                            .into(),
                                    ),
                                );
                                ok = false;
                            }
                        }
                        list.into_iter().map(|(s, _)| s).collect()
                    }
                    None => vec!["https://www.googleapis.com/auth/cloud-platform".to_string()],
                };
                Inject::GoogleOauth {
                    credentials,
                    scopes,
                }
            }
            _ => {
                let service = match self.str_at(it, ik, "service", "service = \"bedrock\"") {
                    Some((s, sspan)) => {
                        if s.is_empty()
                            || !s
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        {
                            self.err(
                                &sspan,
                                &format!("{ik}.service"),
                                format!("`{s}` is not an AWS signing name"),
                                Some("e.g. service = \"bedrock\"".into()),
                            );
                            ok = false;
                        }
                        s
                    }
                    None => "bedrock".to_string(),
                };
                let region = match self.str_at(it, ik, "region", "region = \"eu-central-1\"") {
                    Some((r, rspan)) => {
                        if !is_aws_region(&r) {
                            self.err(
                                &rspan,
                                &format!("{ik}.region"),
                                format!("`{r}` is not an AWS region"),
                                Some("e.g. region = \"eu-central-1\"".into()),
                            );
                            ok = false;
                        }
                        Some(r)
                    }
                    None => {
                        if host
                            .and_then(|h| aws_region_of_host(&h.to_string()))
                            .is_none()
                        {
                            self.err(
                                ispan,
                                &format!("{ik}.region"),
                                "the signing region cannot be read from this rule's host",
                                Some(
                                    "add region = \"eu-central-1\" (the region the endpoint is in)"
                                        .into(),
                                ),
                            );
                            ok = false;
                        }
                        None
                    }
                };
                let profile = match self.str_at(it, ik, "profile", "profile = \"pilot\"") {
                    Some((p, pspan)) => {
                        if p.is_empty()
                            || !p
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.@+".contains(&b))
                        {
                            self.err(
                                &pspan,
                                &format!("{ik}.profile"),
                                format!("`{p}` is not an AWS profile name"),
                                Some("profile names use letters, digits and - _ . @ +".into()),
                            );
                            ok = false;
                        }
                        Some(p)
                    }
                    None => None,
                };
                Inject::AwsSigv4 {
                    service,
                    region,
                    profile,
                }
            }
        };
        ok.then_some(inject)
    }
}
