//! The do-not-call list: the admin keeps the global one, each user their own;
//! what the outbound gates ask (`Store::is_do_not_call`) follows both.

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::domain::phone::PhoneNumber;
use switchboard::store::Store;
use switchboard_actors::UserId;

use crate::db::TestDb;
use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

const GLOBAL: &str = "+14155550101";
const ADAS: &str = "+14155550102";
const GRACES: &str = "+14155550103";

async fn add(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post_json("/api/dnc", &body, Some(token)).await
}

async fn list(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let (status, body) = app
        .send_json_as(Method::GET, "/api/dnc", None, Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().expect(name).to_owned();
            (field("e164"), field("scope"))
        })
        .collect()
}

async fn remove(app: &TestApp, token: Option<&str>, e164: &str) -> (StatusCode, Value) {
    app.send_json_as(Method::DELETE, &format!("/api/dnc/{e164}"), None, token)
        .await
}

fn pair(e164: &str, scope: &str) -> (String, String) {
    (e164.to_owned(), scope.to_owned())
}

async fn the_admin_keeps_the_global_list_and_each_user_their_own(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let grace = app.create_user("grace@example.com").await;

    let (status, entry) = add(
        &app,
        ADMIN_TOKEN,
        json!({ "e164": "+1 415 555 0101", "reason": "complaint" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(
        (&entry["e164"], &entry["scope"], &entry["reason"]),
        (&json!(GLOBAL), &json!("global"), &json!("complaint"))
    );
    let (status, again) = add(
        &app,
        ADMIN_TOKEN,
        json!({ "e164": GLOBAL, "reason": "other" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "listed already: {again}");
    assert_eq!(again["reason"], "complaint", "the entry is kept as it was");

    let (status, entry) = add(&app, &ada.api_key, json!({ "e164": ADAS })).await;
    assert_eq!(
        (status, &entry["scope"]),
        (StatusCode::CREATED, &json!("user")),
        "{entry}"
    );
    assert_eq!(entry["reason"], Value::Null);
    let (status, _) = add(&app, &grace.api_key, json!({ "e164": GRACES })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = add(&app, &grace.api_key, json!({ "e164": GLOBAL })).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a user may list a globally listed number too"
    );

    assert_eq!(list(&app, ADMIN_TOKEN).await, vec![pair(GLOBAL, "global")]);
    assert_eq!(
        list(&app, &ada.api_key).await,
        vec![pair(GLOBAL, "global"), pair(ADAS, "user")]
    );
    assert_eq!(
        list(&app, &grace.api_key).await,
        vec![
            pair(GLOBAL, "global"),
            pair(GLOBAL, "user"),
            pair(GRACES, "user")
        ]
    );

    let store = Store::connect(&app.database_url, "gate-reader")
        .await
        .expect("the app's database");
    let number = |raw: &str| PhoneNumber::parse(raw).expect("a number");
    let ada_id = UserId::parse(&ada.id).expect("a user id");
    let grace_id = UserId::parse(&grace.id).expect("a user id");
    let listed = |user: &UserId, e164: &str| {
        let (store, user, e164) = (store.clone(), user.clone(), number(e164));
        async move {
            store
                .is_do_not_call(&user, &e164)
                .await
                .expect("the gate's answer")
        }
    };
    assert!(
        listed(&ada_id, GLOBAL).await,
        "the global list applies to everyone"
    );
    assert!(listed(&ada_id, ADAS).await);
    assert!(
        !listed(&ada_id, GRACES).await,
        "another user's list does not"
    );
    assert!(listed(&grace_id, GRACES).await);
    assert!(!listed(&grace_id, ADAS).await);

    let (status, error) = remove(&app, Some(&ada.api_key), GLOBAL).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "a user cannot lift a global entry: {error}"
    );
    let (status, _) = remove(&app, Some(&ada.api_key), GRACES).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's entry is not ada's to lift"
    );
    let (status, _) = remove(&app, Some(ADMIN_TOKEN), ADAS).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the admin's token changes the global list"
    );
    let (status, _) = remove(&app, None, ADAS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(listed(&ada_id, GLOBAL).await && listed(&grace_id, GRACES).await);

    let (status, _) = remove(&app, Some(&ada.api_key), "%2B14155550102").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!listed(&ada_id, ADAS).await);
    let (status, _) = remove(&app, Some(&grace.api_key), GLOBAL).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "grace lifts her own entry…");
    assert!(
        listed(&grace_id, GLOBAL).await,
        "…and the global one still holds"
    );
    let (status, _) = remove(&app, Some(ADMIN_TOKEN), GLOBAL).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!listed(&grace_id, GLOBAL).await);
    assert_eq!(list(&app, &grace.api_key).await, vec![pair(GRACES, "user")]);
    store.close().await;
}

#[actix_web::test]
async fn the_admin_keeps_the_global_list_and_each_user_their_own_on_sqlite() {
    the_admin_keeps_the_global_list_and_each_user_their_own(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn the_admin_keeps_the_global_list_and_each_user_their_own_on_postgres() {
    the_admin_keeps_the_global_list_and_each_user_their_own(TestDb::Postgres).await;
}

async fn bad_do_not_call_input_is_refused_naming_the_field(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let bad: Vec<(Value, &str)> = vec![
        (json!({}), "e164"),
        (json!({ "e164": 14155550101_u64 }), "e164"),
        (json!({ "e164": "4155550101" }), "e164"),
        (json!({ "e164": "+1415" }), "e164"),
        (json!({ "e164": "" }), "e164"),
        (json!({ "e164": GLOBAL, "reason": 5 }), "reason"),
        (
            json!({ "e164": GLOBAL, "reason": "x".repeat(501) }),
            "reason",
        ),
        (json!({ "e164": GLOBAL, "scope": "global" }), "scope"),
    ];
    for token in [ADMIN_TOKEN, ada.api_key.as_str()] {
        for (body, named) in &bad {
            let (status, error) = add(&app, token, body.clone()).await;
            assert_eq!(
                (status.as_u16(), error["code"].as_str()),
                (400, Some("bad-field")),
                "{body}: {error}"
            );
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{body}: {message:?} names {named}");
        }
        let (status, error) = remove(&app, Some(token), "not-a-number").await;
        assert_eq!(
            (status.as_u16(), error["code"].as_str()),
            (400, Some("bad-field"))
        );
    }
    let (status, _) = add(&app, "sbu_unknown", json!({ "e164": GLOBAL })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post_json("/api/dnc", &json!({ "e164": GLOBAL }), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        list(&app, ADMIN_TOKEN).await.is_empty(),
        "nothing was stored"
    );
    assert!(
        list(&app, &ada.api_key).await.is_empty(),
        "nothing was stored"
    );
}

#[actix_web::test]
async fn bad_do_not_call_input_is_refused_naming_the_field_on_sqlite() {
    bad_do_not_call_input_is_refused_naming_the_field(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn bad_do_not_call_input_is_refused_naming_the_field_on_postgres() {
    bad_do_not_call_input_is_refused_naming_the_field(TestDb::Postgres).await;
}
