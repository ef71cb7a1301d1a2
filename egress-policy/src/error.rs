//! Contract diagnostics: every error and warning names `file:line:col`, the key, what is wrong
//! and what would be valid.

use std::fmt;

use serde::Serialize;

/// A position in the contract source, 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters, not bytes).
    pub col: usize,
}

impl Location {
    /// The line and column of byte offset `offset` in `source` (clamped to the end).
    pub fn of_offset(source: &str, offset: usize) -> Location {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Location { line, col }
    }
}

/// One problem in a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The contract's file name, as the caller gave it.
    pub origin: String,
    /// Where in the file (the start of the offending key or value).
    pub location: Location,
    /// The dotted key, e.g. `network.allow[1].paths[0]` (empty for document-level errors).
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What would be valid, or the key that was probably meant.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.origin, self.location.line, self.location.col
        )?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A contract that cannot be used: one or more [`Diagnostic`]s, in source order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContractError {
    /// Every problem found (at least one).
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        if n > 1 {
            write!(f, "\n{n} errors")?;
        }
        Ok(())
    }
}

/// Something valid but probably not what the author meant, or a fact the reader must know
/// (e.g. the log file lies inside the workspace and will be hidden from the agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The contract's file name.
    pub origin: String,
    /// Where in the file, when the warning is about one key.
    pub location: Option<Location>,
    /// The dotted key (empty when the warning is about the whole contract).
    pub key: String,
    /// The warning text.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(f, "{}:{}:{}: ", self.origin, l.line, l.col)?,
            None => write!(f, "{}: ", self.origin)?,
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// The candidate closest to `input`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (c, strsim::jaro_winkler(&lower, &c.to_ascii_lowercase())))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(Location::of_offset(src, 0), Location { line: 1, col: 1 });
        assert_eq!(Location::of_offset(src, 6), Location { line: 2, col: 1 });
        // byte 10 is after "bé " (é is two bytes): column 4
        assert_eq!(Location::of_offset(src, 10), Location { line: 2, col: 4 });
        assert_eq!(Location::of_offset(src, 999), Location { line: 3, col: 1 });
    }

    #[test]
    fn did_you_mean_finds_typos_and_ignores_noise() {
        assert_eq!(
            did_you_mean("methds", &["methods", "paths"]),
            Some("methods")
        );
        assert_eq!(did_you_mean("HOST", &["host", "port"]), Some("host"));
        assert_eq!(did_you_mean("zzzzzz", &["methods", "paths"]), None);
    }
}
