//! What the remote commands print: lines on stdout, tables.

use std::io::Write;

/// Output ended because the reader went away (`herald events tail | head`): not an error.
#[derive(Debug, thiserror::Error)]
#[error("output closed")]
pub struct OutputClosed;

/// Writes one line to stdout; a closed pipe ends the command quietly instead of panicking.
pub(super) fn out(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(e) => Err(e.into()),
    }
}

/// A table cell or summary field: the value, or `-` when the answer has none.
pub(super) fn text(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Prints rows as columns padded to their widest cell (the last column is not padded).
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
    };
    out(&line(header.iter().map(|h| h.to_string()).collect()))?;
    for row in rows {
        out(&line(row.clone()))?;
    }
    Ok(())
}
