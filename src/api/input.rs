//! One gate for every JSON body of the admin API: text with NUL or another control
//! character (tab, line feed and carriage return aside) is refused with `400
//! bad-field` naming the field, before any handler runs. PostgreSQL cannot store
//! NUL in TEXT at all, and the rest has no business in names, numbers or ids.
//! And [`fields`]: a body read into its type with the refused field named.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::Value;

use crate::error::ApiError;

/// The largest JSON body the admin API reads (also the `JsonConfig` limit).
pub const JSON_LIMIT: usize = 64 * 1024;

/// Middleware: reads a JSON body (at most [`JSON_LIMIT`]), refuses it if a string
/// or key holds a control character, and hands it on unchanged otherwise. Bodies
/// that are not JSON, or do not parse, are left to the handler's extractor.
pub async fn refuse_control_characters(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().contains("json"));
    if !json {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > JSON_LIMIT {
            let err = ApiError::bad_request(
                "bad-json",
                format!("the request body is larger than {JSON_LIMIT} bytes"),
            );
            return Ok(req.error_response(err).map_into_right_body());
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    if let Ok(value) = serde_json::from_slice::<Value>(&body) {
        if let Some(field) = control_character_at(&value, "") {
            let err = ApiError::bad_request(
                "bad-field",
                format!("{field}: control characters (NUL and the like) are not allowed"),
            );
            return Ok(req.error_response(err).map_into_right_body());
        }
    }
    req.set_payload(Payload::from(body));
    Ok(next.call(req).await?.map_into_left_body())
}

/// A JSON body as `T`; a refusal (`400 bad-field`) names the field that is
/// missing, of the wrong type, out of the type's range or unknown to `T`.
pub fn fields<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            ApiError::bad_request("bad-field", inner.to_string())
        } else {
            ApiError::bad_field(path, inner)
        }
    })
}

/// For `Option<Option<T>>` fields (with `#[serde(default)]`): absent is `None`,
/// `null` is `Some(None)`, a value `Some(Some(value))`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn unwanted(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The path (`route.agent_ids[0]`) of the first string or key holding a control
/// character.
fn control_character_at(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) => unwanted(text).then(|| display(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_character_at(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if unwanted(key) {
                Some(here.escape_debug().to_string())
            } else {
                control_character_at(item, &here)
            }
        }),
        _ => None,
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "the body".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_field_with_a_control_character_is_named() {
        assert_eq!(control_character_at(&json!({ "name": "Ada" }), ""), None);
        assert_eq!(
            control_character_at(&json!({ "name": "A\u{0}da" }), ""),
            Some("name".into())
        );
        assert_eq!(
            control_character_at(
                &json!({ "route": { "kind": "agents", "agent_ids": ["a", "b\u{1b}"] } }),
                ""
            ),
            Some("route.agent_ids[1]".into())
        );
        assert_eq!(
            control_character_at(
                &json!({ "instructions": "line one\nline two\twith a tab" }),
                ""
            ),
            None,
            "multi-line text is fine"
        );
        assert_eq!(
            control_character_at(&json!({ "x\u{7f}": 1 }), ""),
            Some("x\\u{7f}".into())
        );
        assert_eq!(
            control_character_at(&json!("\u{85}"), ""),
            Some("the body".into())
        );
    }
}
