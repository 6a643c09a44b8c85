//! The `$n` parameters of script statements: scanning, renumbering, and turning them into
//! SQLite's anonymous `?`. Every rewrite goes through one scanner, [`scan_params`].

use std::fmt::Write as _;

/// A piece of SQL text as [`scan_params`] splits it.
enum Piece<'a> {
    Text(&'a str),
    /// `$n`, by its number.
    Param(usize),
}

/// Splits `sql` into plain text and `$n` parameters, in order. A `$` without digits is text.
/// Every rewrite of parameters below goes through this one scanner.
fn scan_params<'a>(sql: &'a str, mut each: impl FnMut(Piece<'a>)) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => {
                each(Piece::Text(&rest[..at]));
                each(Piece::Param(n));
            }
            Err(_) => each(Piece::Text(&rest[..at + 1 + digits])),
        }
        rest = &rest[at + 1 + digits..];
    }
    each(Piece::Text(rest));
}

/// `n` numbered parameters from `$start`, for a statement of a [`Script`] built at run time
/// (a multi-row insert). A script's statements are written once, in the common `$n` form that
/// PostgreSQL runs as they are; the SQLite writer turns them into anonymous `?` (see
/// [`join`], [`merged`]). `sqlx::QueryBuilder` cannot write them: it binds its values
/// itself, where a script must hold its arguments as data until the writer joins it.
pub(crate) fn numbered(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Whether `$1..$n` each appear exactly once in `sql`, in that order. The SQLite writer turns a
/// script's `$n` into anonymous `?` only then (binding numbered SQLite parameters is quadratic,
/// see `store::query_builder`): the `$n` text is what the [`Script`] design stores, so it stays.
pub(super) fn params_in_order(sql: &str, n: usize) -> bool {
    let mut seen = 0;
    let mut in_order = true;
    scan_params(sql, |piece| {
        if let Piece::Param(k) = piece {
            seen += 1;
            in_order &= k == seen;
        }
    });
    in_order && seen == n
}

/// `sql` with every `$n` replaced by `?`.
pub(super) fn anonymize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    scan_params(sql, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Param(_) => out.push('?'),
    });
    out
}

/// Copies `sql` into `out` with every `$n` shifted by `offset`.
pub(super) fn renumber(sql: &str, offset: usize, out: &mut String) {
    scan_params(sql, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Param(n) => {
            let _ = write!(out, "${}", n + offset);
        }
    });
}

/// The highest `$n` in `sql` (the number of arguments it takes).
pub(super) fn max_param(sql: &str) -> usize {
    let mut max = 0;
    scan_params(sql, |piece| {
        if let Piece::Param(n) = piece {
            max = max.max(n);
        }
    });
    max
}
