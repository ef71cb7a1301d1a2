//! Plain-text output helpers: aligned tables, human byte counts, and colour only on a
//! terminal (never in a pipe, never with `NO_COLOR`).

use std::io::IsTerminal;

/// Colours for terminal output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Default text.
    Plain,
    /// Good news (allowed, intact, conforms).
    Good,
    /// Bad news (denied, broken, deviates).
    Bad,
    /// Needs attention (truncated, unknown region).
    Warn,
    /// Headings.
    Bold,
}

/// Whether to emit ANSI colour codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn for_stdout() -> Style {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Never colour.
    pub fn plain() -> Style {
        Style { colour: false }
    }

    /// `text` in `tone`.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.colour || tone == Tone::Plain {
            return text.to_string();
        }
        let code = match tone {
            Tone::Plain => "0",
            Tone::Good => "32",
            Tone::Bad => "31;1",
            Tone::Warn => "33",
            Tone::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Replaces control characters so that log content cannot drive the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// One table cell.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    tone: Tone,
    right: bool,
}

impl Cell {
    /// A left-aligned plain cell.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: sanitize(&text.into()),
            tone: Tone::Plain,
            right: false,
        }
    }

    /// A right-aligned number.
    pub fn num(value: impl ToString) -> Cell {
        Cell {
            text: value.to_string(),
            tone: Tone::Plain,
            right: true,
        }
    }

    /// The same cell in `tone`.
    pub fn tone(mut self, tone: Tone) -> Cell {
        self.tone = tone;
        self
    }
}

/// Renders rows under a header, columns padded to their widest cell.
pub fn table(style: &Style, header: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.text.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!("{h:<w$}"))
        .collect();
    out.push_str(&style.paint(Tone::Bold, head.join("  ").trim_end()));
    out.push('\n');
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let padded = if cell.right {
                format!("{:>w$}", cell.text)
            } else {
                format!("{:<w$}", cell.text)
            };
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(&style.paint(cell.tone, &padded));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_tables() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        let t = table(
            &Style::plain(),
            &["host", "flows"],
            &[
                vec![Cell::text("a.example"), Cell::num(12)],
                vec![Cell::text("b"), Cell::num(3)],
            ],
        );
        assert_eq!(t, "host       flows\na.example     12\nb              3\n");
        assert!(!Style::plain().paint(Tone::Bad, "x").contains('\x1b'));
        assert_eq!(sanitize("a\x1b[31mb"), "a\u{fffd}[31mb");
    }
}
