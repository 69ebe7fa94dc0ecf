//! Characters a memo must not hold: they make an explorer or a terminal show another text than the one
//! stored — bidirectional controls (U+202E turns `gpj.exe` around), zero-width and other invisible format
//! characters (U+200B), line and paragraph separators (U+2028/9), and fillers that render as nothing.
//! Covers Unicode's whole `Cf` (format) category plus `Zl`, `Zp` and the invisible fillers.

/// Inclusive ranges, sorted.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x034F, 0x034F),   // combining grapheme joiner
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound/piastre mark above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x115F, 0x1160),   // Hangul fillers
    (0x17B4, 0x17B5),   // Khmer inherent vowels
    (0x180B, 0x180F),   // Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),   // zero-width space/non-joiner/joiner, LRM, RLM
    (0x2028, 0x202E),   // line/paragraph separators, bidi embeddings and overrides
    (0x2060, 0x206F),   // word joiner, invisible operators, bidi isolates, deprecated format
    (0x3164, 0x3164),   // Hangul filler
    (0xFE00, 0xFE0F),   // variation selectors
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),   // halfwidth Hangul filler
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol format controls
    (0xE0000, 0xE0FFF), // tags and variation selectors supplement
];

/// Whether `c` is one of the characters above.
pub fn is_invisible(c: char) -> bool {
    let c = u32::from(c);
    INVISIBLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// A regular-expression character class (Python `re` and ECMAScript syntax for the BMP) of what a memo may
/// hold: no control characters (`Cc`) and none of the above. Astral ranges are written as the characters
/// themselves, which both syntaxes read in a class (with ECMAScript's `u` flag).
pub fn memo_class() -> String {
    let mut class = String::from("[^\\x00-\\x1F\\x7F-\\x9F");
    for &(lo, hi) in INVISIBLE {
        for (i, v) in [lo, hi].into_iter().enumerate() {
            if i == 1 && lo == hi {
                break;
            }
            if i == 1 {
                class.push('-');
            }
            if v <= 0xFFFF {
                class.push_str(&format!("\\u{v:04X}"));
            } else if let Some(ch) = char::from_u32(v) {
                class.push(ch);
            }
        }
    }
    class.push(']');
    class
}

/// The memo rules of `POST /send-ft` and of campaign rows (one function, so they never drift apart): length,
/// no control characters, no invisible ones. `None` when the memo is fine, else why not.
pub(crate) fn memo_problem(m: &str, max_chars: usize) -> Option<String> {
    let n = m.chars().count();
    if n > max_chars {
        Some(format!(
            "memo is {n} characters; at most {max_chars} (api.max_memo_chars)"
        ))
    } else if m.chars().any(char::is_control) {
        Some("memo must not contain control characters (newlines, tabs, NUL…)".into())
    } else if m.chars().any(is_invisible) {
        Some("memo must not contain bidirectional, invisible or line/paragraph-separator characters (U+202E, U+200B, U+2028…): explorers would show another text than the one stored".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofing_characters_are_invisible() {
        for c in [
            '\u{202E}',
            '\u{200B}',
            '\u{2028}',
            '\u{2029}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{AD}',
        ] {
            assert!(is_invisible(c), "{:X}", u32::from(c));
        }
        for c in ['a', 'é', '€', '日', '🎉', ' ', '\u{2027}', '\u{202F}'] {
            assert!(!is_invisible(c), "{:X}", u32::from(c));
        }
    }

    #[test]
    fn ranges_are_sorted_and_disjoint() {
        for w in INVISIBLE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:X?}");
        }
    }

    #[test]
    fn class_names_every_range() {
        let class = memo_class();
        assert!(class.starts_with("[^\\x00-\\x1F"));
        assert!(class.contains("\\u2028-\\u202E"));
        assert!(class.contains("\\u00AD") && class.ends_with(']'));
    }
}
