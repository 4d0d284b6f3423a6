//! The missed-call text's template (`[missed_call_text]`), parsed once at load:
//! text with the placeholders `{caller}` (the caller's number) and `{number}`
//! (the number called), both E.164; `{{` and `}}` are a literal brace. Any other
//! `{…}`, a lone brace, an empty template, or one whose text could pass Twilio's
//! 1,600-character limit on `Body` once its placeholders are filled is refused.

use std::fmt;

/// The longest `Body` Twilio takes (characters); longer is refused, error 21617
/// (https://www.twilio.com/docs/messaging/api/message-resource, `Body`).
pub const MAX_BODY_CHARS: usize = 1600;

/// The longest a placeholder's value can be: an E.164 number is `+` and at most
/// 15 digits.
const MAX_NUMBER_CHARS: usize = 16;

/// A template that renders to a valid `Body` for any two E.164 numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Caller,
    Number,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("is empty")]
    Empty,
    #[error("has an unknown placeholder {{{0}}} (known: {{caller}}, {{number}})")]
    UnknownPlaceholder(String),
    #[error("has a '{{' that is never closed (write {{{{ for a literal brace)")]
    Unclosed,
    #[error("has a lone '}}' (write }}}} for a literal brace)")]
    LoneClose,
    #[error("can be {0} characters long once filled in; Twilio takes at most {MAX_BODY_CHARS}")]
    TooLong(usize),
}

impl TextTemplate {
    pub fn parse(raw: &str) -> Result<TextTemplate, TemplateError> {
        if raw.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(TemplateError::LoneClose),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(TemplateError::Unclosed),
                        }
                    }
                    let part = match name.as_str() {
                        "caller" => Part::Caller,
                        "number" => Part::Number,
                        _ => return Err(TemplateError::UnknownPlaceholder(name)),
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let longest: usize = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.chars().count(),
                Part::Caller | Part::Number => MAX_NUMBER_CHARS,
            })
            .sum();
        if longest > MAX_BODY_CHARS {
            return Err(TemplateError::TooLong(longest));
        }
        Ok(TextTemplate { parts })
    }

    /// The text for `caller`, who called `number`.
    pub fn render(&self, caller: &str, number: &str) -> String {
        let mut body = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => body.push_str(t),
                Part::Caller => body.push_str(caller),
                Part::Number => body.push_str(number),
            }
        }
        body
    }
}

impl TryFrom<String> for TextTemplate {
    type Error = TemplateError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        TextTemplate::parse(&raw)
    }
}

impl<'de> serde::Deserialize<'de> for TextTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        TextTemplate::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TextTemplate {
    /// The template as written (literal braces doubled).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => write!(f, "{}", t.replace('{', "{{").replace('}', "}}"))?,
                Part::Caller => f.write_str("{caller}")?,
                Part::Number => f.write_str("{number}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_doubled_braces_are_literal() {
        let t = TextTemplate::parse("Hi {caller}, {{sorry}} we missed you at {number}.")
            .expect("valid");
        assert_eq!(
            t.render("+14155559876", "+14155550100"),
            "Hi +14155559876, {sorry} we missed you at +14155550100."
        );
        assert_eq!(TextTemplate::parse(&t.to_string()).expect("round trip"), t);
    }

    #[test]
    fn an_unknown_placeholder_a_lone_brace_or_emptiness_is_refused() {
        assert_eq!(
            TextTemplate::parse("Hi {name}"),
            Err(TemplateError::UnknownPlaceholder("name".into()))
        );
        assert_eq!(
            TextTemplate::parse("Hi {caller"),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(TextTemplate::parse("Hi }"), Err(TemplateError::LoneClose));
        assert_eq!(TextTemplate::parse("  "), Err(TemplateError::Empty));
    }

    #[test]
    fn a_body_that_could_pass_twilios_limit_once_filled_is_refused() {
        let fits = "x".repeat(MAX_BODY_CHARS - 2 * MAX_NUMBER_CHARS);
        assert!(TextTemplate::parse(&format!("{fits}{{caller}}{{number}}")).is_ok());
        let over = format!("{fits}x{{caller}}{{number}}");
        assert_eq!(
            TextTemplate::parse(&over),
            Err(TemplateError::TooLong(MAX_BODY_CHARS + 1))
        );
        assert!(TextTemplate::parse(&"é".repeat(MAX_BODY_CHARS)).is_ok());
    }
}
