//! One escaping policy for every output. Process names, namespace names,
//! service, user and host names come from outside and can hold bytes a
//! terminal acts on (ESC, an 8-bit CSI, DEL), characters that reorder or hide
//! text (bidirectional controls and marks, zero-width and other invisible
//! format characters, line and paragraph separators), or a format's own
//! separators. None of them reaches stdout raw, in any format:
//!
//! - text formats (the table, `--ftp`, the watch screen, CSV, Prometheus
//!   labels) print them as `\xNN` (below U+0100) or `\u{NNNN}`, and a
//!   backslash as `\\`, so that the escaped form cannot be forged either;
//!   the table also escapes whitespace (a cell stays one field for `awk`),
//!   and each format names the separators it must escape besides;
//! - JSON keeps the value exact: the same characters are written as `\uNNNN`
//!   escapes, which every JSON parser turns back into the original string
//!   ([`SafeFormatter`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// Whether a terminal acts on `c`, or it hides or reorders text: C0 and C1
/// controls and DEL, line and paragraph separators, bidirectional controls
/// and marks, zero-width and other invisible format characters (Unicode's
/// `Cf` category, as far as terminals meet them).
pub fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'                  // soft hyphen
            | '\u{061c}'                // Arabic letter mark
            | '\u{180e}'                // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'   // zero-width space, joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line and paragraph separators
            | '\u{202a}'..='\u{202e}'   // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{206f}'   // word joiner, invisible operators, isolates
            | '\u{feff}'                // zero-width no-break space (BOM)
            | '\u{fff9}'..='\u{fffb}'   // interlinear annotation
            | '\u{e0000}'..='\u{e007f}' // tags
        )
}

/// What a text format escapes beside the hazards and the backslash.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Whitespace too (a table cell is one whitespace-free field).
    pub whitespace: bool,
    /// The format's own separators that outside text must not forge.
    pub separators: &'static [char],
}

/// The table and the watch screen: every cell one field.
pub const TABLE: Rules = Rules {
    whitespace: true,
    separators: &[],
};

impl Rules {
    fn escapes(&self, c: char) -> bool {
        c == '\\'
            || is_hazard(c)
            || (self.whitespace && c.is_whitespace())
            || self.separators.contains(&c)
    }

    /// `s` with every character these rules name escaped.
    pub fn apply<'a>(&self, s: &'a str) -> Cow<'a, str> {
        // most names are printable ASCII: told at a byte each, without
        // decoding characters (owners' names were 5% of `-tanp`)
        let separator = |b: u8| self.separators.iter().any(|&c| c as u32 == u32::from(b));
        if s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && !separator(b))
        {
            return Cow::Borrowed(s);
        }
        if !s.chars().any(|c| self.escapes(c)) {
            return Cow::Borrowed(s);
        }
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if self.escapes(c) && (c as u32) < 0x100 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if self.escapes(c) => {
                    let _ = write!(out, "\\u{{{:04x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        Cow::Owned(out)
    }

    /// Like [`Rules::apply`] with more separators: a name inside a list cell
    /// (`pid/name,pid/name`) must not forge the list's separator.
    pub fn with(self, separators: &'static [char]) -> Rules {
        Rules { separators, ..self }
    }
}

/// Outside text for the table and the watch screen.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    TABLE.apply(s)
}

/// A serde_json formatter that writes every hazard as a `\uNNNN` escape
/// (surrogate pairs above U+FFFF) instead of raw: the document stays valid
/// and the value exact, and nothing a terminal acts on is printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has escaped C0, `"` and `\` already; in plain ASCII the
        // one hazard left is DEL. Addresses and names are nearly always so.
        if fragment.bytes().all(|b| b < 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_hazard(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{:04x}", unit)?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Outside text inside a JSON document written with serde_json's own
/// formatter: plain text is a plain string; text with a hazard is written
/// with every hazard as a `\uNNNN` escape (a raw JSON token), so the
/// document needs no [`SafeFormatter`] and its keys and sockwho's own words
/// cost no scan. Through `serde_json::to_value` it is the exact string.
#[derive(Debug, Clone, Copy)]
pub struct JsonText<'a>(pub &'a str);

impl serde::Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        if !self.0.chars().any(is_hazard) {
            return serializer.serialize_str(self.0);
        }
        let mut escaped = Vec::with_capacity(self.0.len() + 16);
        write_json(&mut escaped, self.0).map_err(S::Error::custom)?;
        let escaped = String::from_utf8(escaped).map_err(S::Error::custom)?;
        serde_json::value::RawValue::from_string(escaped)
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

/// Writes `value` as compact JSON through [`SafeFormatter`].
pub fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut dyn io::Write,
    value: &T,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, SafeFormatter);
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// What in `bytes` a terminal would act on or hide, but the line ends; bytes
/// that are no UTF-8 count too: for tests of every format, and fuzzing.
pub fn hazards(bytes: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return vec!["invalid UTF-8".to_string()];
    };
    text.chars()
        .filter(|&c| c != '\n' && is_hazard(c))
        .map(|c| format!("U+{:04X}", c as u32))
        .collect()
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

    /// Issue 13, item 1: what the table let through before.
    #[test]
    fn invisible_and_reordering_characters_are_escaped_regression_13() {
        for (raw, want) in [
            ("a\u{200f}b", "a\\u{200f}b"),
            ("a\u{061c}b", "a\\u{061c}b"),
            ("a\u{200b}b", "a\\u{200b}b"),
            ("a\u{feff}b", "a\\u{feff}b"),
            ("a\u{2028}b", "a\\u{2028}b"),
            ("a\x7fb", "a\\x7fb"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
        ] {
            assert_eq!(terminal_safe(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn a_list_cell_escapes_its_separator() {
        let owner = TABLE.with(&[',']);
        assert_eq!(owner.apply("x,1/sshd"), "x\\x2c1/sshd");
        assert_eq!(terminal_safe("x,1"), "x,1");
    }

    #[test]
    fn json_text_is_safe_under_the_plain_formatter() {
        let name = "q\x1b[2J\u{9b}\u{7f}\u{202e}\u{2028}\u{feff}\u{e0041}é";
        let doc = serde_json::json!({ "plain": "x" });
        assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"plain":"x"}"#);
        let text = serde_json::to_string(&[JsonText(name), JsonText("plain")]).unwrap();
        assert!(hazards(text.as_bytes()).is_empty(), "{text}");
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [name, "plain"]);
        // through to_value it is the exact string
        assert_eq!(serde_json::to_value(JsonText(name)).unwrap(), name);
    }

    #[test]
    fn json_escapes_hazards_and_keeps_the_value() {
        let name = "q\x1b[2J\u{9b}\u{7f}\u{202e}\u{2028}\u{200b}\u{feff}\u{e0041}é";
        let mut out = Vec::new();
        write_json(&mut out, &serde_json::json!({ "name": name })).unwrap();
        assert!(
            hazards(&out).is_empty(),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["name"], name, "the value is exact");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\\u009b") && text.contains("\\udb40\\udc41"),
            "{text}"
        );
    }
}
