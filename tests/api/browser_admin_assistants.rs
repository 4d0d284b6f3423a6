//! The admin's Assistants view (`/app/admin/assistants`) in headless Chromium: an
//! agent without a number gets one from its card; the wizard creates an assistant
//! step by step, a refused field opens its step with the engine's message, and
//! the assistant is created with a number from the pool, shown on its card.

use actix_web::http::Method;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::db::TestDb;
use crate::fake_providers::FakeProvider;
use crate::helpers::ADMIN_TOKEN;
use crate::numbers_assign::engine_on;

#[actix_web::test]
async fn an_agent_gets_a_number_from_its_card_and_the_wizard_creates_an_assistant_with_one() {
    let fake = FakeProvider::start().await;
    fake.add_vapi("vapi-1", "+18005550100", "Support");
    fake.add_vapi("vapi-2", "+18005550101", "Sales");
    fake.add_vapi("vapi-3", "+18005550102", "Nights");
    let app = engine_on(TestDb::Sqlite, &fake, &[("vapi", "production")]).await;
    let agent = app.create_agent("Ada", "production").await;
    let night = crate::numbers_assign::Kind::Assistant
        .create(&app, "Night line", "production", false)
        .await;
    let night_id = night["id"].as_str().expect("an id").to_owned();

    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, ADMIN_TOKEN).await;
    page.open(&app, "/app/admin/assistants").await;

    // The agent has no phone; its card assigns the first available one.
    let card = format!(
        "[data-testid=\"agent-card\"][data-agent-id=\"{}\"]",
        agent.id
    );
    page.find(&format!("{card} [data-testid=\"no-phone\"]"))
        .await;
    page.find(&format!("{card} [data-testid=\"assign-number\"]"))
        .await
        .click()
        .await
        .expect("assign a number");
    page.find(&format!(
        "{card}[data-number=\"+18005550100\"] [data-testid=\"phone-national\"]"
    ))
    .await;
    let entries = app.directory("").await;
    let held = entries
        .iter()
        .find(|e| e["e164"] == "+18005550100")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(held["agent_id"], json!(agent.id), "{held}");

    // An assistant without a number gets one from its card too.
    let night_card = format!("[data-testid=\"assistant-card\"][data-assistant-id=\"{night_id}\"]");
    page.find(&format!("{night_card} [data-testid=\"no-phone\"]"))
        .await;
    page.find(&format!("{night_card} [data-testid=\"assign-number\"]"))
        .await
        .click()
        .await
        .expect("assign the assistant a number");
    page.find(&format!(
        "{night_card}[data-number=\"+18005550101\"] [data-testid=\"phone-national\"]"
    ))
    .await;

    // The wizard: a missing instruction is refused and its step shown.
    page.type_into("wizard-name", "Front desk").await;
    for _ in 0..4 {
        page.click("wizard-next").await;
    }
    page.click("wizard-create").await;
    page.wait_text("error-wizard-instructions", "instructions")
        .await;
    assert!(page
        .testid("wizard-instructions")
        .await
        .is_displayed()
        .await
        .unwrap_or(false));
    page.type_into(
        "wizard-instructions",
        "Answer questions about opening hours.",
    )
    .await;
    page.click("wizard-next").await;
    page.testid("wizard-voice")
        .await
        .select_by_value("marin")
        .await
        .expect("pick a voice");
    page.type_into("wizard-greeting", "Hello, Acme here.").await;
    page.click("wizard-next").await;
    page.click("wizard-tool-end_call").await;
    page.click("wizard-next").await;
    page.testid("wizard-failure")
        .await
        .select_by_value("voicemail")
        .await
        .expect("voicemail on failure");
    page.screenshot("admin-assistant-wizard").await;
    page.click("wizard-create").await;
    let result = page.wait_text("wizard-result", "is ready on").await;
    assert!(result.contains("(800) 555-0102"), "{result}");

    // The engine has it as the wizard said, with the pool's other number.
    let (status, assistants) = app
        .send_json_as(Method::GET, "/api/assistants", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{assistants}");
    let made = assistants
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "Front desk")
        .expect("the wizard's assistant");
    assert_eq!(made["name"], "Front desk");
    assert_eq!(made["voice"], "marin");
    assert_eq!(made["greeting"], "Hello, Acme here.");
    assert_eq!(made["tools"], json!([{"type": "end_call"}]));
    assert_eq!(made["on_failure"], json!({"kind": "voicemail"}));
    assert_eq!(made["number"]["e164"], "+18005550102", "{made}");
    let id = made["id"].as_str().expect("an id");
    let assistant_card = format!(
        "[data-testid=\"assistant-card\"][data-assistant-id=\"{id}\"][data-number=\"+18005550102\"]"
    );
    page.find(&format!("{assistant_card} [data-testid=\"copy-number\"]"))
        .await
        .click()
        .await
        .expect("copy");
    let copied = page
        .wait_until(|p| {
            let css = format!("{assistant_card} [data-testid=\"copy-number\"]");
            async move {
                let text = p.find(&css).await.text().await.unwrap_or_default();
                text == "Copied" || text == "+18005550102"
            }
        })
        .await;
    assert!(copied, "the copy button copies (or shows) the number");
    page.screenshot("admin-assistants").await;
    browser.close().await;
}
