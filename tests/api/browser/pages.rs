//! The pages as the engine serves them, and the sign-in page in Chromium.

use actix_web::http::StatusCode;
use serde_json::Value;

use super::Browser;
use crate::helpers::{spawn_app, ADMIN_TOKEN};

const CSP: &str = "content-security-policy";

#[actix_web::test]
async fn pages_and_assets_are_served_with_their_content_type_an_etag_and_the_csp() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/js/signin.js", "text/javascript"),
        ("/assets/js/session.js", "text/javascript"),
        ("/assets/js/socket.js", "text/javascript"),
        ("/assets/js/phone.js", "text/javascript"),
        ("/assets/css/signin.css", "text/css"),
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("the engine answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {}",
            header("content-type")
        );
        assert!(header("etag").starts_with('"'), "{path} has a strong ETag");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let csp = header(CSP);
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
    }
    let missing = app
        .client
        .get(format!("{}/assets/js/nothing.js", app.address))
        .send()
        .await
        .expect("the engine answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn an_asset_the_browser_has_is_answered_304_without_a_body() {
    let app = spawn_app().await;
    let url = format!("{}/assets/js/socket.js", app.address);
    let mut first = app.client.get(&url).send().await.expect("answers");
    let etag = first.headers().get("etag").expect("an ETag").clone();
    assert!(!first.body().await.expect("a body").is_empty());
    for sent in [
        etag.to_str().expect("ascii").to_string(),
        format!("\"nope\", W/{}", etag.to_str().expect("ascii")),
    ] {
        let mut again = app
            .client
            .get(&url)
            .insert_header(("If-None-Match", sent.as_str()))
            .send()
            .await
            .expect("answers");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
        assert_eq!(again.headers().get("etag"), Some(&etag));
        assert!(again.body().await.expect("no body").is_empty());
    }
    let other = app
        .client
        .get(&url)
        .insert_header(("If-None-Match", "\"an-old-version\""))
        .send()
        .await
        .expect("answers");
    assert_eq!(other.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_sign_in_page_has_no_inline_script_and_loads_only_from_its_origin() {
    let app = spawn_app().await;
    let (status, body) = app.get("/", None).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8_lossy(&body);
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=\"/assets/"),
            "an inline or foreign script: <script{tag}>"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
}

async fn stored_token(page: &super::Page) -> Value {
    page.eval(
        "return sessionStorage.getItem('switchboard.token');",
        vec![],
    )
    .await
}

#[actix_web::test]
async fn a_wrong_token_on_sign_in_shows_a_clear_message_and_stores_nothing() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.open(&app, "/").await;
    page.type_into("token", "sbt_not-a-real-token").await;
    page.click("sign-in").await;
    let message = page.wait_text("signin-error", "token").await;
    page.screenshot("signin-wrong-token").await;
    assert!(
        message.contains("not valid") || message.contains("could not check"),
        "{message}"
    );
    assert_eq!(page.path().await, "/");
    assert_eq!(stored_token(&page).await, Value::Null);
    assert!(
        !page.url().await.contains("sbt_"),
        "the token is not in the URL"
    );
    // The empty field is refused too, in the page.
    page.type_into("token", "").await;
    page.click("sign-in").await;
    page.wait_text("signin-error", "Paste a token").await;
    assert_eq!(stored_token(&page).await, Value::Null);
    page.close().await;
    browser.close().await;
}

#[actix_web::test]
async fn an_agent_token_opens_the_softphone_and_the_admin_token_the_console() {
    let app = spawn_app().await;
    let agent = app.create_agent("Ada", "production").await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, &agent.token).await;
    assert_eq!(page.path().await, "/agent");
    assert_eq!(
        stored_token(&page).await,
        Value::String(agent.token.clone())
    );
    assert!(
        !page.url().await.contains(&agent.token),
        "the token is not in the URL"
    );
    page.screenshot("signin-agent").await;
    let mut admin = browser.page().await;
    admin.sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(admin.path().await, "/supervisor");
    assert_eq!(
        stored_token(&admin).await,
        Value::String(ADMIN_TOKEN.into())
    );
    page.close().await;
    admin.close().await;
    browser.close().await;
}
