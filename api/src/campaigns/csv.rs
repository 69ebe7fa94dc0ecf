//! Writing CSV cells for people who open them in a spreadsheet.

/// One CSV cell: quoted when it holds a comma, quote or line break (quotes doubled), and prefixed with `'`
/// when it starts with `=`, `+`, `-`, `@`, a tab or a carriage return, so a spreadsheet shows it as text
/// instead of running it as a formula (OWASP "CSV injection").
pub fn cell(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_escaped_and_formula_safe() {
        assert_eq!(cell("alice.near"), "alice.near");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell(""), "");
    }
}
