//! An AI call that comes back to its assistant after moving nodes (its node
//! died or drained, issue 16): the new Realtime session is given the
//! conversation so far, and its first words say the line dropped, instead of
//! greeting the caller as if the call had just started.
//!
//! A Realtime session cannot be resumed (its conversation lives in its
//! WebSocket, gone with the node that held it), but a client can add items to a
//! new one before asking for a response: `conversation.item.create` with a
//! `message` item, `input_text` content for the user's turns and `output_text`
//! for the assistant's (OpenAI API reference, Realtime client events,
//! `conversation.item.create`; the GA item schema:
//! <https://platform.openai.com/docs/api-reference/realtime-client-events/conversation/item/create>).

use serde_json::{json, Value};

/// The most text of earlier turns given to a new session; the most recent turns
/// that fit are given (a long call's start matters least, and every turn given
/// is billed as input tokens on each response of the session).
pub const HISTORY_MAX_CHARS: usize = 16_000;

/// What the resumed session says first.
pub const RESUMED_INSTRUCTIONS: &str = "The phone line dropped for a moment and the caller is \
     back on the call now. In one short sentence, say that you were cut off and that you are \
     back, then carry on from where the conversation was. Do not greet the caller again and do \
     not repeat what you said before unless they ask.";

/// The `conversation.item.create` events that give a new session `turns`
/// ((`caller`|`assistant`, text), oldest first): the most recent turns whose text
/// adds up to at most [`HISTORY_MAX_CHARS`], in order. Turns of another role, or
/// empty, are left out.
pub fn history_items(turns: &[(String, String)]) -> Vec<Value> {
    let mut budget = HISTORY_MAX_CHARS;
    let mut items: Vec<Value> = turns
        .iter()
        .rev()
        .filter_map(|(role, text)| {
            let text = text.trim();
            let (role, content) = match role.as_str() {
                "caller" => ("user", "input_text"),
                "assistant" => ("assistant", "output_text"),
                _ => return None,
            };
            (!text.is_empty()).then_some((role, content, text))
        })
        .map_while(|(role, content, text)| {
            let chars = text.chars().count();
            budget = budget.checked_sub(chars)?;
            Some(json!({
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": role,
                    "content": [{ "type": content, "text": text }],
                },
            }))
        })
        .collect();
    items.reverse();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn the_callers_turns_are_user_input_text_and_the_assistants_are_output_text_in_order() {
        let items = history_items(&turns(&[
            ("assistant", "Hello, this is Ada."),
            ("caller", " A table for two. "),
            ("agent", "not a turn of the assistant's conversation"),
            ("caller", "   "),
        ]));
        assert_eq!(
            items,
            vec![
                json!({"type": "conversation.item.create", "item": {"type": "message",
                    "role": "assistant", "content": [{"type": "output_text", "text": "Hello, this is Ada."}]}}),
                json!({"type": "conversation.item.create", "item": {"type": "message",
                    "role": "user", "content": [{"type": "input_text", "text": "A table for two."}]}}),
            ]
        );
    }

    #[test]
    fn a_long_conversation_gives_its_most_recent_turns_that_fit() {
        let long = "x".repeat(HISTORY_MAX_CHARS / 2);
        let items = history_items(&turns(&[
            ("caller", "the oldest"),
            ("assistant", &long),
            ("caller", &long),
            ("assistant", "the newest"),
        ]));
        let texts: Vec<&str> = items
            .iter()
            .map(|i| i["item"]["content"][0]["text"].as_str().expect("text"))
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_eq!(texts[0].len(), long.len());
        assert_eq!(texts[1], "the newest");
    }

    #[test]
    fn no_turns_give_no_items() {
        assert!(history_items(&[]).is_empty());
    }
}
