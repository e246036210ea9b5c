//! Output helpers: error formatting, JSON, tables.

use serde::Serialize;

/// Render an error chain as one line: `outer: inner: root`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for (i, cause) in e.chain().enumerate() {
        let text = cause.to_string();
        if i > 0 {
            if s.contains(&text) {
                continue;
            }
            s.push_str(": ");
        }
        s.push_str(&text);
    }
    s.replace('\n', " ")
}

/// `--format` values rkt accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable table.
    #[default]
    #[value(name = "")]
    Table,
    /// One-line JSON.
    Json,
    /// Indented JSON.
    #[value(name = "json-pretty")]
    JsonPretty,
}

/// Print `v` as JSON (pretty or not) on stdout.
pub fn print_json<T: Serialize>(v: &T, pretty: bool) -> anyhow::Result<()> {
    let s = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    println!("{s}");
    Ok(())
}

/// Print rows as a left-aligned table with tab-like padding (rkt's tabwriter look).
pub fn print_table(header: Option<&[&str]>, rows: &[Vec<String>]) {
    let ncol = header
        .map(|h| h.len())
        .unwrap_or_else(|| rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut width = vec![0usize; ncol];
    let all = header
        .map(|h| h.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .into_iter()
        .chain(rows.iter().cloned());
    let all: Vec<Vec<String>> = all.collect();
    for r in &all {
        for (i, c) in r.iter().enumerate().take(ncol) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    for r in &all {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate().take(ncol) {
            if i + 1 == r.len().min(ncol) {
                line.push_str(c);
            } else {
                line.push_str(&format!("{:<w$}\t", c, w = width[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_causes() {
        let e = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(one_line(&e), "outer: root cause");
    }
}
