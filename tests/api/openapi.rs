//! `GET /api/openapi.json` (issue 14, item 5): the OpenAPI 3.1 description the
//! handlers generate, checked against the routes that exist.
//!
//! Which routes exist is read from the source, the way layout.rs reads
//! docs/architecture.md: every `.route("path", web::method()…)` under `src/`, with
//! the prefix of the `web::scope("…")` its file opens. Why the source and not a
//! table both actix and this test read: actix has no public way to list an app's
//! routes, and routing through a table would move every registration — and the
//! ordering comments that matter to actix's first-match routing
//! (`/numbers/sync` before `/numbers/{e164}`) — away from the code that reads
//! naturally today. Reading the source cannot drift silently because the reader is
//! strict: any registration it does not understand (`web::resource`, a
//! `.service(...)` other than the one scope, `#[get(...)]`-style attributes,
//! `default_service`, a second scope in a file, a `.route(` it cannot parse) fails
//! the test, so a new form of registration forces this reader to learn it. And a
//! live cross-check asks the running engine each described route: the router must
//! know it (actix answers an unknown path with an empty 404, every handler of ours
//! with a body or another status).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};
use crate::layout::rust_files;

/// The routes left out of the description on purpose: the web pages and their
/// assets (HTML, JavaScript, CSS — docs/protocol.md §6), not an API.
const NOT_DESCRIBED: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/agent"),
    ("GET", "/supervisor"),
    ("GET", "/app"),
    ("GET", "/app/{view:.*}"),
    ("GET", "/app/admin"),
    ("GET", "/app/admin/{view:.*}"),
    ("GET", "/assets/{path:.*}"),
];

/// Routes that take no token (the socket upgrades take theirs in the query).
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/ws/agent"),
    ("GET", "/ws/supervisor"),
];

type Route = (String, String);

/// Every route `src/` registers, as (METHOD, path).
fn registered_routes() -> BTreeSet<Route> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let route = Regex::new(
        r#"\.route\(\s*"([^"]*)"\s*,\s*web::(get|post|put|patch|delete|head)\(\)\s*\.to\("#,
    )
    .expect("a regex");
    let scope = Regex::new(r#"web::scope\(\s*"([^"]*)"\s*\)"#).expect("a regex");
    let service = Regex::new(r#"\.service\(\s*([^)\s])"#).expect("a regex");
    // Any `.route(` given an actix method builder: what the strict regex above
    // must account for, one for one.
    let any_route = Regex::new(r#"\.route\([^)]*?web::"#).expect("a regex");
    let unread = Regex::new(
        r#"web::resource\(|#\[(get|post|put|patch|delete|route)\(|default_service\(|web::method\("#,
    )
    .expect("a regex");
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if file.ends_with("src/openapi.rs") {
            continue; // it names routes in its documentation only
        }
        assert!(
            !unread.is_match(&text),
            "{name} registers a route in a form this test cannot read; teach registered_routes()"
        );
        let scopes: Vec<_> = scope.captures_iter(&text).collect();
        assert!(scopes.len() <= 1, "{name}: more than one web::scope");
        for found in service.captures_iter(&text) {
            let at = found.get(0).expect("a match").start();
            assert!(
                text[at..]
                    .trim_start_matches(".service(")
                    .trim_start()
                    .starts_with("web::scope("),
                "{name}: a .service(...) that is not the scope; teach registered_routes()"
            );
        }
        let (prefix, scope_at) = scopes
            .first()
            .map(|c| (c[1].to_owned(), c.get(0).expect("a match").start()))
            .unwrap_or_default();
        let parsed: Vec<_> = route.captures_iter(&text).collect();
        assert_eq!(
            parsed.len(),
            any_route.find_iter(&text).count(),
            "{name}: a .route( this test cannot read; teach registered_routes()"
        );
        for found in parsed {
            let inside = !prefix.is_empty() && found.get(0).expect("a match").start() > scope_at;
            let path = if inside {
                format!("{prefix}{}", &found[1])
            } else {
                found[1].to_owned()
            };
            let added = routes.insert((found[2].to_uppercase(), path.clone()));
            assert!(added, "{name}: {} {path} is registered twice", &found[2]);
        }
    }
    assert!(routes.len() > 60, "too few routes found: {routes:?}");
    routes
}

async fn served_document(app: &TestApp) -> Value {
    let mut res = app
        .client
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .expect("GET reaches the engine");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = res.body().limit(4 << 20).await.expect("body");
    serde_json::from_slice(&body).expect("the description is JSON")
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head"];

/// Every (METHOD, path) the document describes, with its operation.
fn operations(doc: &Value) -> BTreeMap<Route, Value> {
    let mut found = BTreeMap::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                found.insert((method.to_uppercase(), path.clone()), operation.clone());
            }
        }
    }
    found
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<Route> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

/// The schema `#/components/schemas/NAME` points at.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    doc["components"]["schemas"].get(name)
}

fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref" {
                    found.push(inner.as_str().unwrap_or_default().to_owned());
                } else {
                    references(inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// Whether `schema` is the error body, or an object made of it (`allOf`).
fn is_error_body(doc: &Value, schema: &Value) -> bool {
    if schema["$ref"] == "#/components/schemas/ErrorBody" {
        return true;
    }
    let schema = match schema["$ref"].as_str() {
        Some(reference) => resolve(doc, reference).unwrap_or(&Value::Null),
        None => schema,
    };
    schema["allOf"]
        .as_array()
        .is_some_and(|parts| parts.iter().any(|part| is_error_body(doc, part)))
}

#[actix_web::test]
async fn every_route_the_engine_registers_is_described_and_nothing_else() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let described: BTreeSet<Route> = operations(&doc).into_keys().collect();
    let registered = registered_routes();
    let excluded = pairs(NOT_DESCRIBED);
    let stale: Vec<_> = excluded.difference(&registered).collect();
    assert!(stale.is_empty(), "excluded but not registered: {stale:?}");
    let expected: BTreeSet<Route> = registered.difference(&excluded).cloned().collect();
    let missing: Vec<_> = expected.difference(&described).collect();
    let extra: Vec<_> = described.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes without a description: {missing:?}"
    );
    assert!(extra.is_empty(), "described but not registered: {extra:?}");

    // The live cross-check: the router knows every described route (an unknown
    // path is actix's own 404, with an empty body; our handlers answer with a
    // body or another status). No token, dummy path parameters.
    let dummy = Regex::new(r"\{[^}]*\}").expect("a regex");
    for (method, path) in &described {
        if method != "GET" {
            continue; // GETs are safe to send without a token; the rest are checked above
        }
        let url = format!("{}{}", app.address, dummy.replace_all(path, "x"));
        let mut res = app
            .client
            .get(url)
            .send()
            .await
            .expect("GET reaches the engine");
        let body = res.body().limit(16 << 20).await.unwrap_or_default();
        assert!(
            res.status() != 404 || !body.is_empty(),
            "GET {path}: the router does not know it"
        );
    }
}

#[actix_web::test]
async fn every_operation_is_explained_secured_and_its_schemas_resolve() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let public = pairs(PUBLIC);
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for name in [
        "admin_token",
        "agent_token",
        "user_api_key",
        "twilio_signature",
    ] {
        assert!(schemes.contains_key(name), "no security scheme {name}");
    }
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let parameter = Regex::new(r"\{([^}]*)\}").expect("a regex");
    for ((method, path), operation) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = operation["operationId"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.insert(id.to_owned()) {
            problems.push(format!("{what}: operationId {id:?} missing or not unique"));
        }
        for field in ["summary", "description"] {
            let text = operation[field].as_str().unwrap_or_default().trim();
            if text.is_empty() {
                problems.push(format!("{what}: no {field}"));
            }
        }
        let security = operation["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if public.contains(&(method.clone(), path.clone())) {
            if !security.is_empty() {
                problems.push(format!("{what} is public but declares {security:?}"));
            }
        } else {
            if security.is_empty() {
                problems.push(format!("{what}: no security"));
            }
            for requirement in &security {
                for name in requirement.as_object().expect("a requirement").keys() {
                    assert!(schemes.contains_key(name), "{what}: unknown scheme {name}");
                }
            }
        }
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{what}: no responses");
        for (status, response) in responses {
            assert!(
                !response["description"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{what} {status}: no description"
            );
            let code: u16 = status.parse().expect("a numeric status");
            let Some(json) = response["content"].get("application/json") else {
                continue;
            };
            if code >= 400
                && !["/healthz", "/readyz"].contains(&path.as_str())
                && !is_error_body(&doc, &json["schema"])
            {
                problems.push(format!("{what} {status}: an error that is not ErrorBody"));
            }
        }
        // Path parameters are declared.
        for name in parameter.captures_iter(&path) {
            let declared = operation["parameters"].as_array().is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == name[1])
            });
            if !declared {
                problems.push(format!("{what}: path parameter {} not declared", &name[1]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 50, "few references: {refs:?}");
    for reference in refs {
        assert!(
            resolve(&doc, &reference).is_some(),
            "{reference} does not resolve"
        );
    }
}

/// Checks `value` against `schema`: the type, the required keys, and no key the
/// schema's properties do not name (a response field the description forgot).
/// Enough for the shapes utoipa writes (`$ref`, `allOf`, `oneOf`, `type` lists
/// for nullables, `properties`, `items`, `additionalProperties`).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = resolve(doc, reference).ok_or(format!("{at}: {reference} unresolved"))?;
        return conforms(doc, target, value, at);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // The parts describe one object together: check the type and required
        // keys of each, and the keys against all their properties at once.
        let mut known = BTreeSet::new();
        let mut open = false;
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(r) => resolve(doc, r).ok_or(format!("{at}: {r} unresolved"))?,
                None => part,
            };
            let mut loose = part.clone();
            if let Some(map) = loose.as_object_mut() {
                map.insert("additionalProperties".into(), json!(true));
            }
            conforms(doc, &loose, value, at)?;
            match part["properties"].as_object() {
                Some(props) => known.extend(props.keys().cloned()),
                None => open = true,
            }
        }
        if let (false, Some(object)) = (open, value.as_object()) {
            if let Some(key) = object.keys().find(|k| !known.contains(*k)) {
                return Err(format!("{at}: `{key}` is not described"));
            }
        }
        return Ok(());
    }
    for alternatives in ["oneOf", "anyOf"] {
        if let Some(options) = schema[alternatives].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|option| conforms(doc, option, value, at).err())
                .collect();
            return if errors.len() < options.len() {
                Ok(())
            } else {
                Err(errors.join("; "))
            };
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.is_empty()
        || types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"));
    if !fits {
        return Err(format!("{at}: {actual} where the schema says {types:?}"));
    }
    match value {
        Value::Object(object) => {
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                if !object.contains_key(key) {
                    return Err(format!("{at}: required `{key}` is missing"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, inner) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => conforms(doc, property, inner, &format!("{at}.{key}"))?,
                    None => match &schema["additionalProperties"] {
                        Value::Bool(true) => {}
                        Value::Object(_) => conforms(
                            doc,
                            &schema["additionalProperties"],
                            inner,
                            &format!("{at}.{key}"),
                        )?,
                        _ if properties.is_none() => {}
                        _ => return Err(format!("{at}: `{key}` is not described")),
                    },
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The JSON schema the document gives `METHOD path`'s `status` answer.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"]
        .clone()
}

/// One request of `real_answers_fit_…`: what to send, the operation it is (its
/// described path), and the status it must answer.
struct Probe<'a> {
    method: &'a str,
    path: &'a str,
    real: String,
    token: Option<&'a str>,
    body: Option<Value>,
    status: u16,
}

fn probe<'a>(
    method: &'a str,
    path: &'a str,
    real: impl Into<String>,
    token: Option<&'a str>,
    status: u16,
) -> Probe<'a> {
    Probe {
        method,
        path,
        real: real.into(),
        token,
        body: None,
        status,
    }
}

/// The probe with a JSON body.
fn with(mut probe: Probe<'_>, body: Value) -> Probe<'_> {
    probe.body = Some(body);
    probe
}

/// Sends the probe and checks its answer against the schema the document
/// gives that operation's status.
async fn check(app: &TestApp, doc: &Value, probe: Probe<'_>) -> Value {
    let Probe {
        method,
        path,
        real,
        token,
        body,
        status: expected,
    } = probe;
    let url = format!("{}{real}", app.address);
    let req = match method {
        "get" => app.client.get(url),
        "post" => app.client.post(url),
        "put" => app.client.put(url),
        "delete" => app.client.delete(url),
        other => panic!("no {other} here"),
    };
    let req = match token {
        Some(token) => req.bearer_auth(token),
        None => req,
    };
    let mut res = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    }
    .expect("the request reaches the engine");
    let bytes = res.body().limit(16 << 20).await.expect("body");
    let value: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    let status = res.status().as_u16();
    assert_eq!(status, expected, "{method} {real}: {value}");
    let schema = response_schema(doc, method, path, status);
    assert!(
        !schema.is_null(),
        "{method} {path} answered {status}, which the description does not give: {value}"
    );
    if let Err(why) = conforms(doc, &schema, &value, "body") {
        panic!("{method} {real} → {status} does not fit its schema: {why}\n{value}");
    }
    value
}

#[actix_web::test]
async fn real_answers_fit_the_schemas_the_description_gives_them() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let admin = Some(ADMIN_TOKEN);
    // The checker can fail: a missing required key, an undescribed key, a
    // wrong type.
    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    for wrong in [
        json!({"code": "x"}),
        json!({"code": "x", "message": "y", "extra": 1}),
        json!({"code": 1, "message": "y"}),
    ] {
        assert!(conforms(&doc, &error, &wrong, "body").is_err(), "{wrong}");
    }
    let agent = app.create_agent("Ada", "production").await;
    let user = app.create_user("ada@example.com").await;
    let key = Some(user.api_key.as_str());
    let probes = vec![
        probe("get", "/api/agents", "/api/agents", admin, 200),
        probe(
            "get",
            "/api/agents/{id}",
            format!("/api/agents/{}", agent.id),
            admin,
            200,
        ),
        with(
            probe("post", "/api/agents", "/api/agents", admin, 201),
            json!({"name": "Bo", "workspace": "production"}),
        ),
        // Errors: a missing agent, a refused field, no token.
        probe(
            "get",
            "/api/agents/{id}",
            "/api/agents/no-such-agent",
            admin,
            404,
        ),
        with(
            probe("post", "/api/agents", "/api/agents", admin, 400),
            json!({"name": "", "workspace": "production"}),
        ),
        probe("get", "/api/agents", "/api/agents", None, 401),
        probe(
            "get",
            "/api/session",
            "/api/session",
            Some(&agent.token),
            200,
        ),
        probe("get", "/api/session", "/api/session", key, 200),
        probe("get", "/api/session", "/api/session", admin, 200),
        probe("get", "/healthz", "/healthz", None, 200),
        probe("get", "/readyz", "/readyz", None, 200),
        with(
            probe("post", "/api/numbers", "/api/numbers", admin, 201),
            json!({"e164": "+14155550100", "workspace": "production",
                   "route": {"kind": "agents", "agent_ids": [agent.id]}}),
        ),
        probe("get", "/api/numbers", "/api/numbers", admin, 200),
        with(
            probe(
                "put",
                "/api/numbers/{e164}/route",
                "/api/numbers/%2B14155550100/route",
                admin,
                200,
            ),
            json!({"kind": "voicemail"}),
        ),
        with(
            probe(
                "post",
                "/api/numbers/migrate",
                "/api/numbers/migrate",
                admin,
                200,
            ),
            json!({"workspace": "production", "route": {"kind": "voicemail"}, "percent": 100, "dry_run": true}),
        ),
        probe(
            "get",
            "/api/numbers/health",
            "/api/numbers/health",
            admin,
            200,
        ),
        probe("get", "/api/directory", "/api/directory", admin, 200),
        probe(
            "get",
            "/api/directory/validate",
            "/api/directory/validate",
            admin,
            200,
        ),
        probe(
            "get",
            "/api/directory/agents/{id}",
            format!("/api/directory/agents/{}", agent.id),
            admin,
            200,
        ),
        probe("get", "/api/users", "/api/users", admin, 200),
        probe(
            "get",
            "/api/users/{id}",
            format!("/api/users/{}", user.id),
            admin,
            200,
        ),
        probe(
            "get",
            "/api/users/{id}",
            format!("/api/users/{}", user.id),
            key,
            200,
        ),
        with(
            probe("post", "/api/dnc", "/api/dnc", key, 201),
            json!({"e164": "+14155550199", "reason": "asked"}),
        ),
        probe("get", "/api/dnc", "/api/dnc", key, 200),
        probe("get", "/api/flags", "/api/flags", admin, 200),
        probe("get", "/api/audit", "/api/audit", admin, 200),
        probe(
            "get",
            "/api/analytics/summary",
            "/api/analytics/summary?from=2026-11-01&to=2026-11-30&group_by=route",
            admin,
            200,
        ),
        probe(
            "get",
            "/api/calls/outbound/check",
            "/api/calls/outbound/check?to=%2B14155550123",
            key,
            200,
        ),
        probe(
            "get",
            "/api/calls/outbound",
            "/api/calls/outbound",
            key,
            200,
        ),
        probe(
            "get",
            "/api/calls/{id}/transcript",
            "/api/calls/no-such-call/transcript",
            admin,
            404,
        ),
    ];
    for one in probes {
        check(&app, &doc, one).await;
    }

    // An outbound call, scheduled two days ahead (nothing is dialed): submitted,
    // read as stored, read as its user's view, canceled.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    let request = json!({
        "to": "+14155550123",
        "purpose": "existing_client",
        "objective": "Book a visit with Sam for Tuesday.",
        "schedule_at": later,
        "attestation": {
            "legitimate_purpose": true, "not_dnc": true, "reasonable_basis": true,
            "understands_recording": true, "accepts_responsibility": true,
            "signature_full_name": "Ada Lovelace",
        },
    });
    let submitted = check(
        &app,
        &doc,
        with(
            probe(
                "post",
                "/api/calls/outbound",
                "/api/calls/outbound",
                key,
                202,
            ),
            request,
        ),
    )
    .await;
    let id = submitted["id"].as_str().expect("an id").to_owned();
    for one in [
        probe(
            "get",
            "/api/calls/outbound/{id}",
            format!("/api/calls/outbound/{id}"),
            key,
            200,
        ),
        probe(
            "get",
            "/api/calls/{id}",
            format!("/api/calls/{id}"),
            key,
            200,
        ),
        probe(
            "get",
            "/api/calls/{id}",
            format!("/api/calls/{id}"),
            admin,
            200,
        ),
        probe(
            "delete",
            "/api/calls/outbound/{id}",
            format!("/api/calls/outbound/{id}"),
            key,
            200,
        ),
        probe(
            "delete",
            "/api/calls/outbound/{id}",
            format!("/api/calls/outbound/{id}"),
            key,
            409,
        ),
    ] {
        check(&app, &doc, one).await;
    }
}
