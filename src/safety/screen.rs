//! Word lists screened against text (an objective before it is dialed, a
//! transcript after the call): each configured category (`[[safety.categories]]`)
//! names terms and a severity. Matching is by whole words on normalised text, so
//! the lists are data and the tricks to slip past a naive filter do not work:
//!
//! - Unicode compatibility forms fold (NFKC: full-width letters, ligatures), other
//!   scripts' look-alike letters map to their Latin prototypes (UTS #39
//!   confusables, `unicode-security`), case folds;
//! - every kind of space (no-break, thin, ideographic…) separates words, and
//!   zero-width characters vanish;
//! - punctuation *inside* a word is read both ways — joined ("k.i.l.l", "I.R.S."
//!   are "kill", "irs") and as a separator ("hurt.Then" is "hurt", "then") — except
//!   apostrophes, which always join ("won't" is "wont", never "won");
//! - a term matches whole words only: `sue` is not in "issue" or "pursue", and
//!   `won` is not in "won't".

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization as _;

use crate::config::SafetyCategory;
use crate::domain::safety::Severity;

/// One term found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub category: String,
    pub severity: Severity,
    /// The term as configured.
    pub term: String,
}

/// The configured categories, compiled once.
#[derive(Debug, Clone)]
pub struct Screener {
    categories: Vec<(String, Severity)>,
    /// Terms by their first word: (the term's words, the term, its category).
    terms: HashMap<String, Vec<(Vec<String>, String, usize)>>,
}

impl Screener {
    pub fn new(categories: &[SafetyCategory]) -> Self {
        let mut terms: HashMap<String, Vec<(Vec<String>, String, usize)>> = HashMap::new();
        for (index, category) in categories.iter().enumerate() {
            for term in &category.terms {
                let words = Words::of(term).joined;
                if let Some(first) = words.first() {
                    terms
                        .entry(first.clone())
                        .or_default()
                        .push((words, term.clone(), index));
                }
            }
        }
        Self {
            categories: categories
                .iter()
                .map(|c| (c.name.clone(), c.severity))
                .collect(),
            terms,
        }
    }

    /// Every category term found in `text`, each term once, most severe first.
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        let words = Words::of(text);
        let mut hits: Vec<Hit> = Vec::new();
        for list in [&words.joined, &words.split] {
            for start in 0..list.len() {
                let Some(candidates) = self.terms.get(&list[start]) else {
                    continue;
                };
                for (term_words, term, category) in candidates {
                    let end = start + term_words.len();
                    if end <= list.len()
                        && list[start..end] == term_words[..]
                        && !hits.iter().any(|h| &h.term == term)
                    {
                        let (name, severity) = &self.categories[*category];
                        hits.push(Hit {
                            category: name.clone(),
                            severity: *severity,
                            term: term.clone(),
                        });
                    }
                }
            }
        }
        hits.sort_by_key(|h| std::cmp::Reverse(h.severity));
        hits
    }

    /// The most severe hit, if any.
    pub fn worst(&self, text: &str) -> Option<Hit> {
        self.scan(text).into_iter().next()
    }
}

/// A text's words, twice: with punctuation inside a word joined, and split.
#[derive(Debug, PartialEq)]
struct Words {
    joined: Vec<String>,
    split: Vec<String>,
}

impl Words {
    fn of(text: &str) -> Words {
        let folded = fold(text);
        let chars: Vec<char> = folded.chars().collect();
        let mut joined = Vec::new();
        let mut split = Vec::new();
        let (mut whole, mut part) = (String::new(), String::new());
        for (i, &c) in chars.iter().enumerate() {
            if c.is_alphanumeric() || is_apostrophe(c) && inside_word(&chars, i) {
                if c.is_alphanumeric() {
                    whole.push(c);
                    part.push(c);
                }
                continue;
            }
            let inner = !c.is_whitespace() && inside_word(&chars, i);
            if !part.is_empty() {
                split.push(std::mem::take(&mut part));
            }
            if !inner && !whole.is_empty() {
                joined.push(std::mem::take(&mut whole));
            }
        }
        if !part.is_empty() {
            split.push(part);
        }
        if !whole.is_empty() {
            joined.push(whole);
        }
        Words { joined, split }
    }
}

/// Whether the character at `i` sits between two letters or digits.
fn inside_word(chars: &[char], i: usize) -> bool {
    i > 0 && chars[i - 1].is_alphanumeric() && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{02BC}')
}

/// Zero-width characters that may hide inside a word.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}'
    )
}

/// NFKC, invisible characters dropped, every space a plain one, look-alike
/// letters to their Latin prototypes, lower case.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if is_invisible(c) {
        } else if c.is_whitespace() {
            out.push(' ');
        } else if c.is_alphanumeric() {
            let mut buf = [0u8; 4];
            for p in unicode_security::skeleton(c.encode_utf8(&mut buf)) {
                out.extend(p.to_lowercase());
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screener() -> Screener {
        let category = |name: &str, severity, terms: &[&str]| SafetyCategory {
            name: name.into(),
            severity,
            terms: terms.iter().map(|t| t.to_string()).collect(),
        };
        Screener::new(&[
            category("threats", Severity::Critical, &["kill", "hurt", "sue"]),
            category(
                "government_impersonation",
                Severity::Critical,
                &["IRS", "Social Security", "warrant"],
            ),
            category("prizes", Severity::High, &["prize", "you have won", "won"]),
        ])
    }

    fn terms(text: &str) -> Vec<String> {
        let mut t: Vec<String> = screener().scan(text).into_iter().map(|h| h.term).collect();
        t.sort();
        t
    }

    #[test]
    fn whole_words_match_and_parts_of_words_do_not() {
        assert_eq!(terms("Call the IRS about my refund"), ["IRS"]);
        assert!(terms("There is an issue we pursue; I won't go").is_empty());
        assert!(terms("the skill of a killer, first prizes").is_empty());
        assert_eq!(
            terms("You have won a prize!"),
            ["prize", "won", "you have won"]
        );
    }

    #[test]
    fn case_punctuation_inside_words_and_odd_spaces_do_not_hide_a_term() {
        assert_eq!(terms("tell him I will KiLL him"), ["kill"]);
        assert_eq!(terms("say you are from the I.R.S. today"), ["IRS"]);
        assert_eq!(terms("k-i-l-l"), ["kill"]);
        assert_eq!(terms("social\u{00A0}security number"), ["Social Security"]);
        assert_eq!(terms("social\u{2003}\u{200B}security"), ["Social Security"]);
        assert_eq!(terms("ki\u{200B}ll"), ["kill"]);
        assert_eq!(terms("it will hurt.Then pay"), ["hurt"]);
        assert_eq!(terms("ＩＲＳ"), ["IRS"], "full-width letters");
        assert_eq!(terms("\u{0456}rs agent"), ["IRS"], "a Cyrillic i");
    }

    #[test]
    fn the_most_severe_hit_comes_first() {
        let hits = screener().scan("you have won, or we will sue");
        assert_eq!(hits[0].severity, Severity::Critical);
        assert_eq!(screener().worst("a nice day"), None);
    }
}
