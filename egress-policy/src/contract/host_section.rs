//! `[sockets]` (the host unix sockets the agent may connect to, and whether its own programs
//! may use unix sockets among themselves) and `[limits]` (how many processes, how much memory
//! per process, what CPU priority the session gets).

use toml::de::{DeTable, DeValue};

use super::checks::parse_int;
use super::reader::*;
use super::{AgentSection, Limits, MemoryLimit, Network, Sockets};
use crate::files;

/// The fewest processes a contract may allow (the kernel's own floor for a pid namespace is
/// 301 pids, and a shell with a build needs more).
pub const MIN_PIDS: u64 = 300;
/// The most: beyond this the limit is no limit.
pub const MAX_PIDS: u64 = 4_194_303;
/// The smallest per-process memory limit (smaller breaks the dynamic loader of most tools).
pub const MIN_MEMORY_BYTES: u64 = 64 << 20;

impl Parser<'_> {
    pub(super) fn parse_sockets(&mut self, root: &DeTable<'_>) -> Option<Sockets> {
        let mut sockets = Sockets::default();
        let Some((t, _)) = self.table_at(
            root,
            "",
            "sockets",
            "a [sockets] section with `connect = [\"/run/user/1000/ssh-agent.sock\"]`",
        ) else {
            return (!root.contains_key("sockets")).then_some(sockets);
        };
        self.check_keys(t, "sockets", SOCKETS_KEYS);
        if let Some((list, _)) = self.str_list_at(
            t,
            "sockets",
            "connect",
            "connect = [\"/run/user/1000/ssh-agent.sock\"]",
        ) {
            for (i, (raw, span)) in list.into_iter().enumerate() {
                let key = format!("sockets.connect[{i}]");
                let Some(path) = self.resolve_path(&raw, &span, &key) else {
                    continue;
                };
                if let Some(store) = files::credential_store_for(&path, &self.ctx.home) {
                    self.err(
                        &span,
                        &key,
                        format!(
                            "`{raw}` is (inside) `{}`, which is never accessible in any class: a container runtime socket is a full escape to the host",
                            store.display()
                        ),
                        Some("remove it; run containers outside the agent's sandbox".into()),
                    );
                    continue;
                }
                self.warn(
                    Some(&span),
                    &key,
                    format!(
                        "the agent may connect to the host socket `{raw}`: whatever listens there acts for the agent on the host"
                    ),
                );
                sockets.connect.push(path);
            }
        }
        if let Some((b, span)) = self.bool_at(t, "sockets", "internal", "internal = true") {
            sockets.internal = b;
            if b {
                self.warn(
                    Some(&span),
                    "sockets.internal",
                    "the agent's programs may create unix sockets; on a kernel without Landlock ABI 8 (pathname socket scoping) only the host sockets present in the writable trees at the start are covered, not ones a host process creates there later",
                );
            }
        }
        Some(sockets)
    }

    pub(super) fn parse_limits(&mut self, root: &DeTable<'_>) -> Option<Limits> {
        let mut limits = Limits::default();
        let Some((t, _)) =
            self.table_at(root, "", "limits", "a [limits] section with `pids = 4096`")
        else {
            return (!root.contains_key("limits")).then_some(limits);
        };
        self.check_keys(t, "limits", LIMITS_KEYS);
        if let Some(v) = t.get("pids") {
            match v.get_ref() {
                DeValue::Integer(i) => match parse_int(i.as_str(), i.radix()) {
                    Some(n) if (MIN_PIDS as i64..=MAX_PIDS as i64).contains(&n) => {
                        limits.pids = n as u64
                    }
                    _ => self.err(
                        &v.span(),
                        "limits.pids",
                        format!("`{}` is not between {MIN_PIDS} and {MAX_PIDS}", i.as_str()),
                        Some("the number of processes and threads in the sandbox at once, for example: pids = 4096".into()),
                    ),
                },
                _ => self.wrong_type(v, "limits.pids", "an integer", "pids = 4096"),
            }
        }
        if let Some((text, span)) = self.str_at(t, "limits", "memory", "memory = \"8G\"") {
            match parse_memory(&text) {
                Some(MemoryLimit::Bytes(b)) if b < MIN_MEMORY_BYTES => self.err(
                    &span,
                    "limits.memory",
                    format!("`{text}` is below the smallest limit, 64M"),
                    Some("for example: memory = \"8G\" or memory = \"50%\"".into()),
                ),
                Some(m) => limits.memory = m,
                None => self.err(
                    &span,
                    "limits.memory",
                    format!("`{text}` is not a memory size"),
                    Some("write bytes with a unit (\"512M\", \"8G\") or a share of the machine's memory (\"50%\")".into()),
                ),
            }
        }
        if let Some(v) = t.get("nice") {
            match v.get_ref() {
                DeValue::Integer(i) => match parse_int(i.as_str(), i.radix()) {
                    Some(n) if (0..=19).contains(&n) => limits.nice = n as u8,
                    _ => self.err(
                        &v.span(),
                        "limits.nice",
                        format!("`{}` is not between 0 and 19", i.as_str()),
                        Some("a higher value gives the agent less CPU when the host is busy, for example: nice = 10".into()),
                    ),
                },
                _ => self.wrong_type(v, "limits.nice", "an integer", "nice = 10"),
            }
        }
        Some(limits)
    }
}

impl Parser<'_> {
    /// `[agent]`: `None` inside `Some` when absent.
    pub(super) fn parse_agent(
        &mut self,
        root: &DeTable<'_>,
        network: Option<&Network>,
    ) -> Option<Option<AgentSection>> {
        let Some((t, span)) = self.table_at(
            root,
            "",
            "agent",
            "an [agent] section with `name = \"claude\"`",
        ) else {
            return (!root.contains_key("agent")).then_some(None);
        };
        self.check_keys(t, "agent", AGENT_KEYS);
        let names = crate::agents::names().join(", ");
        let Some((name, name_span)) = self.str_at(t, "agent", "name", "name = \"claude\"") else {
            if !t.contains_key("name") {
                self.err(
                    &span,
                    "agent.name",
                    "missing required key `name`",
                    Some(format!("one of: {names}")),
                );
            }
            return None;
        };
        let Some(preset) = crate::agents::preset(&name) else {
            self.err(
                &name_span,
                "agent.name",
                format!("no preset for the agent `{name}`"),
                Some(format!("one of: {names}")),
            );
            return None;
        };
        let provider = match self.str_at(t, "agent", "provider", "provider = \"bedrock\"") {
            None => preset.providers[0],
            Some((p, pspan)) => {
                let supported: Vec<&str> = preset.providers.iter().map(|p| p.name()).collect();
                match crate::agents::Provider::parse(&p) {
                    Some(p) if preset.providers.contains(&p) => p,
                    _ => {
                        self.err(
                            &pspan,
                            "agent.provider",
                            format!("{} does not support the provider `{p}`", preset.cli),
                            Some(format!("one of: {}", supported.join(", "))),
                        );
                        return None;
                    }
                }
            }
        };
        if network.is_some_and(|n| n.residency.is_some()) {
            if let Err(why) = provider.eu() {
                self.err(
                    &span,
                    "agent.provider",
                    format!(
                        "{} on `{}` cannot keep data in the EU: {why}",
                        preset.cli,
                        provider.name()
                    ),
                    Some("choose an EU provider (`sandbox init --agent NAME --residency eu` picks one)".into()),
                );
                return None;
            }
        }
        Some(Some(AgentSection {
            name: preset.name.to_string(),
            provider,
        }))
    }
}

/// `"512M"`, `"8G"`, `"1T"`, `"1048576"` (bytes) or `"50%"` (1 to 100).
pub fn parse_memory(text: &str) -> Option<MemoryLimit> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: u8 = p.trim().parse().ok()?;
        return (1..=100).contains(&p).then_some(MemoryLimit::Percent(p));
    }
    let (digits, shift) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 10),
        (i, 'M' | 'm') => (&t[..i], 20),
        (i, 'G' | 'g') => (&t[..i], 30),
        (i, 'T' | 't') => (&t[..i], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift).map(MemoryLimit::Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_and_shares() {
        assert_eq!(parse_memory("512M"), Some(MemoryLimit::Bytes(512 << 20)));
        assert_eq!(parse_memory("8g"), Some(MemoryLimit::Bytes(8 << 30)));
        assert_eq!(parse_memory("1048576"), Some(MemoryLimit::Bytes(1 << 20)));
        assert_eq!(parse_memory("50%"), Some(MemoryLimit::Percent(50)));
        for bad in [
            "",
            "%",
            "0%",
            "101%",
            "-5G",
            "1.5G",
            "G",
            "99999999999T",
            "8 GB",
        ] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn machine_share_resolves_against_the_total() {
        assert_eq!(MemoryLimit::Percent(50).bytes(8 << 30), 4 << 30);
        assert_eq!(MemoryLimit::Bytes(1 << 30).bytes(8 << 30), 1 << 30);
    }
}
