//! A compiled contract and every decision made from it: network (CONNECT, request, resolved
//! addresses) and files.

use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::addr;
use crate::catalog::{self, PathRegion, Placement};
use crate::contract::{Contract, Parser, PathContext, Protocol, Residency, Rule, SecretAction};
use crate::decision::{Decision, RequestFacts, Scheme, Target, Verdict};
use crate::error::{ContractError, Warning};
use crate::files::{self, FileAccess, FileDecision, FilePlan, FileRule};
use crate::host::{normalize_host, Host};
use crate::region::Region;
use crate::request_path;
use crate::secrets;

/// A compiled, validated contract.
#[derive(Debug, Clone)]
pub struct Policy {
    contract: Contract,
    warnings: Vec<Warning>,
    sha256: String,
    ctx: PathContext,
}

/// The raw query of a request target (after `?`), if any.
fn query_of(path_and_query: &str) -> Option<&str> {
    path_and_query.split_once('?').map(|(_, q)| q)
}

/// Region facts attached to a decision.
struct Where {
    region: Option<Region>,
    jurisdiction: Option<String>,
    provider: Option<String>,
    attested: bool,
}

impl Where {
    fn none() -> Where {
        Where {
            region: None,
            jurisdiction: None,
            provider: None,
            attested: false,
        }
    }
}

fn deny(rule: Option<&str>, reason: impl Into<String>, w: Where) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        rule: rule.map(str::to_string),
        reason: reason.into(),
        region: w.region,
        jurisdiction: w.jurisdiction,
        provider: w.provider,
        region_attested: w.attested,
        intercept: true,
        body_check: None,
    }
}

fn allow(rule: &Rule, reason: impl Into<String>, w: Where) -> Decision {
    Decision {
        verdict: Verdict::Allow,
        rule: Some(rule.name.clone()),
        reason: reason.into(),
        region: w.region,
        jurisdiction: w.jurisdiction,
        provider: w.provider,
        region_attested: w.attested,
        intercept: rule.intercept,
        body_check: None,
    }
}

/// Request headers that servers and frameworks (Google APIs, Rails, Symfony, IIS URL
/// rewrite) obey instead of the request line's method or URL: a request carrying one is
/// refused, as the engine could not know what it decided.
const OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

const HOST_SECRET: &str =
    "the host name carries a secret (a DNS lookup alone would send it out); name not shown";

/// A secret spelled into a host name (`sk-ant-api03-....a.example` under a wildcard rule)
/// would leave in the DNS query before any request is decided. Names are case-folded on the
/// way, so every casing counts ([`secrets::scan_any_case`]).
fn host_carries_secret(raw: &str) -> bool {
    !secrets::scan_any_case(raw).is_empty()
}

/// TRACE and TRACK send the request back to the client, headers included: a rule allows
/// them only by listing them in `methods` (any casing is caught, as some servers fold it).
fn echoes_the_request(method: &str) -> bool {
    method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("TRACK")
}

fn scheme_str(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

impl Policy {
    /// Parse and validate a contract. `origin` names the file in messages; `ctx` says where
    /// relative and `~` paths resolve. Every problem found is reported, in source order.
    pub fn parse(source: &str, origin: &str, ctx: &PathContext) -> Result<Policy, ContractError> {
        let mut diags = Vec::new();
        for (what, p) in [("workspace", &ctx.workspace), ("home", &ctx.home)] {
            if !p.is_absolute() {
                diags.push(crate::error::Diagnostic {
                    origin: origin.to_string(),
                    location: crate::error::Location { line: 1, col: 1 },
                    key: String::new(),
                    message: format!("the {what} directory `{}` is not absolute", p.display()),
                    hint: Some("pass an absolute path".into()),
                });
            }
        }
        if !diags.is_empty() {
            return Err(ContractError { diagnostics: diags });
        }
        let ctx = PathContext {
            workspace: files::normalize_lexically(&ctx.workspace)
                .unwrap_or_else(|| ctx.workspace.clone()),
            home: files::normalize_lexically(&ctx.home).unwrap_or_else(|| ctx.home.clone()),
        };
        let (contract, diagnostics, warnings) = Parser::new(source, origin, &ctx).parse();
        match contract {
            Some(contract) if diagnostics.is_empty() => Ok(Policy {
                contract,
                warnings,
                sha256: hex::encode(Sha256::digest(source.as_bytes())),
                ctx,
            }),
            _ => Err(ContractError { diagnostics }),
        }
    }

    /// The validated contract model.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Warnings found while validating (the contract is usable).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.contract.network.allow.iter().find(|r| r.name == name)
    }

    /// Hex SHA-256 of the contract source.
    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }

    /// The paths the contract was resolved against.
    pub fn path_context(&self) -> &PathContext {
        &self.ctx
    }

    fn eu(&self) -> bool {
        self.contract.network.residency == Some(Residency::Eu)
    }

    /// Where a concrete host goes, for a rule that matched it.
    fn place(&self, rule: &Rule, host: &Host) -> (Where, Option<Placement>) {
        let placement = match host {
            Host::Name(n) => catalog::place(n),
            Host::Ip(_) => None,
        };
        let mut w = Where::none();
        if let Some(p) = &placement {
            w.provider = Some(p.provider.to_string());
            w.jurisdiction = Some(p.jurisdiction.to_string());
            w.region = p.region.clone();
        }
        if w.region.is_none() {
            if let Some(r) = &rule.region {
                w.region = Some(Region::from_code(r, w.provider.as_deref()));
                w.attested = true;
            }
        }
        (w, placement)
    }

    /// Residency check for a concrete host (wildcard rules match hosts the contract did not
    /// name). `None` when fine.
    fn residency_denial(
        &self,
        rule: &Rule,
        host: &Host,
        placement: Option<&Placement>,
    ) -> Option<String> {
        if !self.eu() {
            return None;
        }
        match placement.and_then(|p| p.in_eu) {
            Some(true) => None,
            Some(false) => {
                let p = placement.expect("in_eu implies a placement");
                Some(format!(
                    "residency EU: the catalog places {host} outside the EU ({}, region {})",
                    p.provider,
                    p.region.as_ref().map_or("?", Region::field)
                ))
            }
            None => match &rule.region {
                Some(r) if catalog::region_is_eu(r) => None,
                _ => Some(format!(
                    "residency EU: {host} cannot be placed and rule `{}` attests no EU region",
                    rule.name
                )),
            },
        }
    }

    fn host_port_rules<'s>(
        &'s self,
        host: &'s Host,
        port: u16,
    ) -> impl Iterator<Item = &'s Rule> + 's {
        self.contract
            .network
            .allow
            .iter()
            .filter(move |r| r.port == port && r.host.matches(host))
    }

    /// The CONNECT gate: could any rule allow this host:port (and scheme) at all? The answer's
    /// `intercept` tells the proxy whether to terminate TLS (`true`) or splice the tunnel
    /// after the SNI check (`false`, passthrough and `tcp` rules).
    pub fn decide_connect(&self, t: Target<'_>) -> Decision {
        if host_carries_secret(t.host) {
            return deny(None, HOST_SECRET, Where::none());
        }
        let host = match normalize_host(t.host) {
            Ok(h) => h,
            Err(e) => return deny(None, format!("invalid host: {e}"), Where::none()),
        };
        let mut candidate: Option<&Rule> = None;
        for rule in self.host_port_rules(&host, t.port) {
            let scheme_ok = rule.protocol == Protocol::Tcp || rule.schemes.contains(&t.scheme);
            if scheme_ok {
                candidate = Some(rule);
                break;
            }
        }
        let Some(rule) = candidate else {
            let near = self.host_port_rules(&host, t.port).next();
            let reason = match near {
                Some(r) => format!(
                    "rule `{}` matches {host}:{} but not scheme {}",
                    r.name,
                    t.port,
                    scheme_str(t.scheme)
                ),
                None => self.no_rule_reason(&host, t.port),
            };
            return deny(None, reason, Where::none());
        };
        let (w, placement) = self.place(rule, &host);
        if let Some(why) = self.residency_denial(rule, &host, placement.as_ref()) {
            return deny(Some(&rule.name), why, w);
        }
        let spliced = rule.protocol == Protocol::Tcp || !rule.intercept;
        let per_request =
            catalog::per_request_for(&host, placement.as_ref()) != catalog::PerRequest::None;
        if self.eu() && spliced && per_request {
            return deny(
                Some(&rule.name),
                format!(
                    "residency EU: the region of {host} depends on each request, which a spliced tunnel would not let the engine see"
                ),
                w,
            );
        }
        let how = match (rule.protocol, rule.intercept) {
            (Protocol::Tcp, _) => "raw TCP, spliced",
            (_, false) => "TLS passthrough after the SNI check",
            (_, true) => "TLS intercepted; each request is decided",
        };
        allow(
            rule,
            format!("{host}:{} allowed by rule `{}` ({how})", t.port, rule.name),
            w,
        )
    }

    fn no_rule_reason(&self, host: &Host, port: u16) -> String {
        let other_ports: Vec<u16> = self
            .contract
            .network
            .allow
            .iter()
            .filter(|r| r.host.matches(host))
            .map(|r| r.port)
            .collect();
        let reason = if other_ports.is_empty() {
            format!("no rule allows {host} (deny by default)")
        } else {
            format!("no rule allows {host} on port {port} (rules allow ports {other_ports:?})")
        };
        if port == 22 {
            format!("{reason}; SSH git cannot be checked: use git over HTTPS (git remote set-url origin https://...), whose pushes the proxy checks ref by ref")
        } else {
            reason
        }
    }

    /// Decide one HTTP request: host, port, scheme, method, path (without the query; an
    /// ambiguous path is refused), residency facts in the path, and secrets in the URL.
    /// The first rule that matches everything allows; otherwise deny.
    pub fn decide_request(&self, r: &RequestFacts<'_>) -> Decision {
        if host_carries_secret(r.host) {
            return deny(None, HOST_SECRET, Where::none());
        }
        let host = match normalize_host(r.host) {
            Ok(h) => h,
            Err(e) => return deny(None, format!("invalid host: {e}"), Where::none()),
        };
        let method_ok = !r.method.is_empty()
            && r.method.len() <= 32
            && r.method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !method_ok {
            return deny(None, "invalid method (not an HTTP token)", Where::none());
        }
        if !secrets::scan(r.method.as_bytes()).is_empty() {
            return deny(None, "the method carries a secret", Where::none());
        }
        if r.method.eq_ignore_ascii_case("CONNECT") {
            return deny(
                None,
                "CONNECT as a request (a tunnel inside a tunnel, or through a plain request) is never allowed",
                Where::none(),
            );
        }
        if let Some((name, _)) = r.headers.iter().find(|(name, _)| {
            OVERRIDE_HEADERS
                .iter()
                .any(|o| name.eq_ignore_ascii_case(o))
        }) {
            return deny(
                None,
                format!(
                    "header `{}` would make the server act on another method or URL than the one decided; remove it",
                    name.to_ascii_lowercase()
                ),
                Where::none(),
            );
        }
        let path = match request_path::normalize(r.path_and_query) {
            Ok(p) => p,
            Err(e) => return deny(None, e.to_string(), Where::none()),
        };
        // raw, percent-decoded (a key can be hidden as `%41KIA...` or `%2541KIA...` in the
        // query) and inside base64
        let findings = secrets::scan_encoded(r.path_and_query);
        // Reasons are logged and shown to the model: never copy a secret into one.
        let shown_path: &str = if findings.is_empty() {
            &path.path
        } else {
            "(a path carrying a secret, not shown)"
        };
        let mut nearest: Option<(&Rule, String)> = None;
        let mut matched: Option<&Rule> = None;
        for rule in self.host_port_rules(&host, r.port) {
            if rule.protocol == Protocol::Tcp {
                nearest.get_or_insert((
                    rule,
                    format!("rule `{}` allows raw TCP, not HTTP requests", rule.name),
                ));
                continue;
            }
            if !rule.schemes.contains(&r.scheme) {
                nearest.get_or_insert((
                    rule,
                    format!(
                        "rule `{}` does not allow scheme {}",
                        rule.name,
                        scheme_str(r.scheme)
                    ),
                ));
                continue;
            }
            if rule.methods.is_none() && echoes_the_request(r.method) {
                nearest.get_or_insert((
                    rule,
                    format!(
                        "method {} echoes the request (injected credentials included) and rule `{}` does not list it in `methods`",
                        r.method, rule.name
                    ),
                ));
                continue;
            }
            if let Some(methods) = &rule.methods {
                if !methods.iter().any(|m| m == r.method) {
                    nearest.get_or_insert((
                        rule,
                        format!(
                            "method {} is not allowed by rule `{}` (allowed: {})",
                            r.method,
                            rule.name,
                            methods.join(", ")
                        ),
                    ));
                    continue;
                }
            }
            if !rule.paths.is_empty() && !rule.paths.iter().any(|p| p.regex.is_match(&path.path)) {
                nearest.get_or_insert((
                    rule,
                    format!(
                        "path {} matches none of the paths of rule `{}`",
                        shown_path, rule.name
                    ),
                ));
                continue;
            }
            matched = Some(rule);
            break;
        }
        let Some(rule) = matched else {
            let reason = match nearest {
                Some((_, why)) => format!("{why} (deny by default)"),
                None => self.no_rule_reason(&host, r.port),
            };
            return deny(None, reason, Where::none());
        };
        let (mut w, placement) = self.place(rule, &host);
        if let Some(why) = self.residency_denial(rule, &host, placement.as_ref()) {
            return deny(Some(&rule.name), why, w);
        }
        let per_request = catalog::per_request_for(&host, placement.as_ref());
        let mut path_note = None;
        // Under EU residency, the JSON field of the body that names the model, when the URL
        // does not (read and placed by the proxy before forwarding).
        let mut model_in_body = None;
        {
            match catalog::path_region(per_request, &path.path) {
                PathRegion::Unchanged => {}
                PathRegion::InBody { field, kind } => {
                    let has_body = ["POST", "PUT", "PATCH"]
                        .iter()
                        .any(|m| r.method.eq_ignore_ascii_case(m));
                    if self.eu() {
                        path_note = Some(format!(
                            "the request body's `{field}` names the model, and is checked before the request is forwarded"
                        ));
                        if has_body {
                            model_in_body = Some(crate::forge::BodyCheck::Model {
                                field: field.to_string(),
                                kind,
                            });
                        }
                    }
                }
                PathRegion::Eu { region, why } => {
                    w.region = Some(region);
                    path_note = Some(why);
                }
                PathRegion::Outside { region, why } => {
                    let (region, why) = if findings.is_empty() {
                        (region, why)
                    } else {
                        (
                            Region::Unknown,
                            "the path names a region outside the EU (details not shown: the path carries a secret)".to_string(),
                        )
                    };
                    w.region = Some(region);
                    if self.eu() {
                        return deny(Some(&rule.name), format!("residency EU: {why}"), w);
                    }
                }
            }
        }
        let mut reason = format!(
            "{} {}://{host}:{}{} allowed by rule `{}`",
            r.method,
            scheme_str(r.scheme),
            r.port,
            shown_path,
            rule.name
        );
        if !findings.is_empty() {
            let kinds: Vec<&str> = findings.iter().map(|k| k.as_str()).collect();
            match self.contract.secrets.action {
                SecretAction::Block => {
                    return deny(
                        Some(&rule.name),
                        format!(
                            "the URL carries a secret ({}); [secrets] action = \"block\"",
                            kinds.join(", ")
                        ),
                        w,
                    );
                }
                SecretAction::Log => {
                    reason.push_str(&format!("; the URL carries a secret ({}), logged because [secrets] action = \"log\"", kinds.join(", ")));
                }
            }
        }
        let host_text = host.to_string();
        let forge = crate::forge::ForgeRequest {
            git: &self.contract.git,
            rule,
            host: &host_text,
            method: r.method,
            path: &path.path,
            query: query_of(r.path_and_query),
        };
        if let Some(why) = crate::forge::request_denial(&forge) {
            return deny(Some(&rule.name), why, w);
        }
        let body_check = crate::forge::body_check(&forge).or(model_in_body);
        if let Some(note) = path_note {
            reason.push_str("; ");
            reason.push_str(&note);
        }
        if w.attested {
            reason.push_str(&format!(
                "; region {} attested by the rule",
                w.region.as_ref().map_or("", Region::field)
            ));
        }
        Decision {
            body_check,
            ..allow(rule, reason, w)
        }
    }

    /// Decides the body a decision's [`Decision::body_check`] asked for: `body` is what has arrived, and
    /// `complete` says it is all of it.
    pub fn decide_body(
        &self,
        check: &crate::forge::BodyCheck,
        body: &[u8],
        complete: bool,
    ) -> crate::forge::BodyVerdict {
        crate::forge::decide_body(check, body, complete)
    }

    /// After the proxy's single DNS resolution of `host`: deny if any address is forbidden
    /// (loopback, private, CGNAT, link-local/metadata, ...; see [`addr::classify`]), whatever
    /// the rules say. Only global unicast addresses are ever allowed: internal gateways are
    /// reached through the operator's `--connect-to`, which bypasses resolution and this check.
    pub fn decide_addresses(&self, host: &str, addrs: &[IpAddr]) -> Decision {
        let h = match normalize_host(host) {
            Ok(h) => h,
            Err(e) => return deny(None, format!("invalid host: {e}"), Where::none()),
        };
        if addrs.is_empty() {
            return deny(None, format!("{h} resolved to no address"), Where::none());
        }
        if let Host::Ip(literal) = &h {
            if let Some(other) = addrs
                .iter()
                .find(|ip| ip.to_canonical() != literal.to_canonical())
            {
                return deny(
                    None,
                    format!("{h} is an IP literal but the address to dial is {other}; a literal is dialled as written or not at all"),
                    Where::none(),
                );
            }
        }
        for ip in addrs {
            if addr::is_metadata(*ip) {
                return deny(
                    None,
                    format!("{h} resolves to {ip}, a cloud metadata or platform service address, which is never dialled"),
                    Where::none(),
                );
            }
            let class = addr::classify(*ip);
            if class.is_forbidden() {
                return deny(
                    None,
                    format!(
                        "{h} resolves to {ip}, a {} address, which is never dialled",
                        class.as_str()
                    ),
                    Where::none(),
                );
            }
        }
        let rule = self
            .contract
            .network
            .allow
            .iter()
            .find(|r| r.host.matches(&h));
        match rule {
            Some(rule) => {
                let (w, _) = self.place(rule, &h);
                allow(rule, format!("every address of {h} is dialable"), w)
            }
            None => deny(
                None,
                format!("no rule allows {h} (deny by default)"),
                Where::none(),
            ),
        }
    }

    /// Decide a file access, lexically (the caller resolves symlinks). Precedence: `/proc`
    /// magic links, credential stores, the flow log, then `deny` entries, then (for writes) protected files, then `write`, then
    /// `read` (write implies read), then deny by default.
    pub fn decide_file(&self, path: &Path, access: FileAccess) -> FileDecision {
        let decided = |allowed: bool, rule: FileRule, reason: String, p: &Path| FileDecision {
            access,
            path: p.to_path_buf(),
            allowed,
            rule,
            reason,
        };
        let Some(p) = files::normalize_lexically(path) else {
            return decided(
                false,
                FileRule::Default,
                format!("`{}` is not an absolute path", path.display()),
                path,
            );
        };
        // checked before and after normalisation: `..` after a magic link climbs from
        // wherever the link points, not lexically
        if let Some(alias) = files::proc_alias_for(path).or_else(|| files::proc_alias_for(&p)) {
            return decided(
                false,
                FileRule::Default,
                format!(
                    "`{}` is a link to another place in the file system; decide the path it resolves to",
                    alias.display()
                ),
                &p,
            );
        }
        let home = &self.ctx.home;
        if let Some(store) = files::credential_store_for(&p, home) {
            return decided(
                false,
                FileRule::CredentialStore(store.clone()),
                format!(
                    "`{}` is a credential store, never accessible",
                    store.display()
                ),
                &p,
            );
        }
        if let Some(log) = self
            .contract
            .log
            .path
            .as_ref()
            .filter(|log| files::is_within(&p, log))
        {
            return decided(
                false,
                FileRule::FlowLog(log.clone()),
                format!(
                    "`{}` is the flow log, hidden from the agent in every class",
                    log.display()
                ),
                &p,
            );
        }
        let f = &self.contract.files;
        if let Some(g) = f.deny.iter().find(|g| files::is_within(&p, &g.path)) {
            return decided(
                false,
                FileRule::Deny(g.written.clone()),
                format!(
                    "denied by [files] deny `{}` (deny wins over read and write)",
                    g.written
                ),
                &p,
            );
        }
        if access == FileAccess::Write {
            if let Some(pat) = files::protected_pattern_for(&p) {
                return decided(
                    false,
                    FileRule::Protected(pat.pattern.to_string()),
                    format!("`{}` is protected in every class: {}", pat.pattern, pat.why),
                    &p,
                );
            }
            if let Some(hp) = files::protected_home_for(&p, home) {
                return decided(
                    false,
                    FileRule::ProtectedHome(hp.clone()),
                    format!(
                        "`{}` runs at login or in a shell: never writable",
                        hp.display()
                    ),
                    &p,
                );
            }
        }
        if let Some(g) = f.write.iter().find(|g| files::is_within(&p, &g.path)) {
            let how = if access == FileAccess::Read {
                "readable: write implies read"
            } else {
                "writable"
            };
            return decided(
                true,
                FileRule::Write(g.written.clone()),
                format!("{how}, by [files] write `{}`", g.written),
                &p,
            );
        }
        if access == FileAccess::Read {
            if let Some(g) = f.read.iter().find(|g| files::is_within(&p, &g.path)) {
                return decided(
                    true,
                    FileRule::Read(g.written.clone()),
                    format!("readable by [files] read `{}`", g.written),
                    &p,
                );
            }
        } else if let Some(g) = f.read.iter().find(|g| files::is_within(&p, &g.path)) {
            return decided(
                false,
                FileRule::Read(g.written.clone()),
                format!(
                    "only readable: [files] read `{}` grants no write",
                    g.written
                ),
                &p,
            );
        }
        decided(
            false,
            FileRule::Default,
            "no [files] entry covers it (deny by default)".to_string(),
            &p,
        )
    }

    /// Why a file a session changed (`path`, absolute) lies outside what the contract let the
    /// agent write, or `None` when it lies inside. The sandbox makes such a change impossible;
    /// one found after a session is a finding for the pilot lead. Beyond the `[files]`
    /// decision, a class A task covers only docs, tests and formatting config.
    pub fn change_out_of_scope(&self, path: &Path) -> Option<String> {
        let decision = self.decide_file(path, FileAccess::Write);
        if !decision.allowed {
            return Some(decision.reason);
        }
        if self.contract.task.class == crate::contract::Class::A {
            if let Ok(rel) = path.strip_prefix(&self.ctx.workspace) {
                if !files::looks_like_docs_tests_or_format(rel) {
                    return Some(format!(
                        "class A covers docs, tests and formatting only; `{}` is none of them",
                        rel.display()
                    ));
                }
            }
        }
        None
    }

    /// Absolute paths and patterns for the sandbox's mounts and Landlock rules.
    pub fn file_plan(&self) -> FilePlan {
        let f = &self.contract.files;
        let home = &self.ctx.home;
        let mut deny: Vec<_> = f.deny.iter().map(|g| g.path.clone()).collect();
        deny.extend(files::home_paths(home, files::CREDENTIAL_STORES));
        deny.extend(files::NEVER_ACCESSIBLE.iter().map(std::path::PathBuf::from));
        deny.sort();
        deny.dedup();
        FilePlan {
            read: f.read.iter().map(|g| g.path.clone()).collect(),
            write: f.write.iter().map(|g| g.path.clone()).collect(),
            deny,
            protected_patterns: files::PROTECTED_PATTERNS
                .iter()
                .map(|p| format!("**/{}", p.pattern))
                .collect(),
            protected_paths: files::home_paths(home, files::PROTECTED_HOME),
            unprotected: f.unprotect.iter().map(|g| g.path.clone()).collect(),
        }
    }
}
