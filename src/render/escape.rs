//! Making outside text safe for a terminal: process names, paths and
//! service names can hold escape sequences, newlines or bidirectional
//! overrides. They are escaped as `\xNN` / `\u{NNNN}`, and so is whitespace,
//! so a table cell stays one field for `awk`.

use std::borrow::Cow;
use std::fmt::Write;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || c == '\\'
        // bidirectional embeddings, overrides and isolates
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        let cases = [
            ("nginx", "nginx"),
            ("evil\x1b[31mred", "evil\\x1b[31mred"),
            ("two\nlines", "two\\x0alines"),
            ("with space", "with\\x20space"),
            ("tab\there", "tab\\x09here"),
            ("back\\slash", "back\\\\slash"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt"),
            ("naïve", "naïve"),
        ];
        for (raw, want) in cases {
            assert_eq!(terminal_safe(raw), want, "{raw:?}");
        }
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
    }
}
