//! The admin's Analytics view (`/app/admin/analytics`, issue 14 item 3) in
//! headless Chromium against the real engine: the month `analytics.rs` seeds is
//! read on the page and every figure checked against the seeded calls (the same
//! numbers `analytics.rs` expects of the API); the tables and their CSV
//! downloads hold the same rows; a reversed range shows the engine's refusal next
//! to the field and keeps the last good figures. The page's first-load weight is
//! measured with the Performance API (bytes asserted; times only printed).

use serde_json::{json, Value};

use crate::analytics::seed;
use crate::browser::{Browser, Page};
use crate::db::TestDb;
use crate::helpers::{spawn_app_with, ADMIN_TOKEN};

const MONTH: &str =
    "/app/admin/analytics?from=2026-11-01&to=2026-11-30&workspace=production&group_by=day";
/// The issue's budget for a page's first load.
const PAGE_BUDGET_BYTES: u64 = 200 * 1024;

async fn value(page: &Page, figure: &str) -> String {
    page.testid(&format!("figure-{figure}"))
        .await
        .attr("data-value")
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

#[track_caller]
fn number(raw: &str) -> f64 {
    raw.parse()
        .unwrap_or_else(|_| panic!("a number, got {raw:?}"))
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The rows of a `table-…` as text, header first.
async fn table(page: &Page, name: &str) -> Vec<Vec<String>> {
    let rows = page
        .eval(
            "return [...document.querySelectorAll(`[data-testid=\"table-${arguments[0]}\"] tr`)]\
               .map((tr) => [...tr.cells].map((cell) => cell.textContent));",
            vec![json!(name)],
        )
        .await;
    serde_json::from_value(rows).expect("table rows")
}

/// The text of the file the `csv-…` link downloads (the Blob behind its URL,
/// recorded as the page made it: `URL.createObjectURL` is watched from the start).
async fn csv(page: &Page, name: &str) -> String {
    let text = page
        .eval_async(
            "const done = arguments[arguments.length - 1];\
             const link = document.querySelector(`[data-testid=\"csv-${arguments[0]}\"]`);\
             const blob = window.__blobs && window.__blobs.get(link.href);\
             if (!blob) { done(`no blob for ${link.href}`); return; }\
             blob.text().then(done);",
            vec![json!(name)],
        )
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

/// `{bytes, transfer, interactive_ms, load_ms, ready_ms}` of the current page's
/// load: bytes are the encoded bodies of the document and every resource it
/// fetched (cached or not), transfer what went over the wire this time.
async fn page_weight(page: &Page) -> Value {
    let loaded = page
        .wait_until(|p| async move {
            p.eval(
                "const nav = performance.getEntriesByType('navigation')[0];\
                 return !!nav && nav.loadEventEnd > 0;",
                vec![],
            )
            .await
                == json!(true)
        })
        .await;
    assert!(loaded, "the page finished loading");
    page.eval(
        "const nav = performance.getEntriesByType('navigation')[0];\
         const all = [nav, ...performance.getEntriesByType('resource')];\
         const ready = performance.getEntriesByName('analytics-ready')[0];\
         return {\
           bytes: all.reduce((sum, e) => sum + e.encodedBodySize, 0),\
           transfer: all.reduce((sum, e) => sum + e.transferSize, 0),\
           files: all.map((e) => [e.name, e.encodedBodySize]),\
           interactive_ms: nav.domInteractive,\
           load_ms: nav.loadEventEnd,\
           ready_ms: ready ? ready.startTime : null };",
        vec![],
    )
    .await
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`: one DevTools command.
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (reqwest::Method::POST, Some(self.0.to_string()))
    }
}

/// Records every Blob the page turns into a URL (read back by [`csv`]).
const WATCH_BLOBS: &str = "window.__blobs = new Map();\
     const make = URL.createObjectURL.bind(URL);\
     URL.createObjectURL = (blob) => { const url = make(blob); window.__blobs.set(url, blob); return url; };\
     window.__csp = [];\
     document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));";

#[actix_web::test]
async fn an_admin_reads_a_seeded_month_on_the_analytics_page_with_every_figure_its_tables_and_csv_files(
) {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}).await;
    seed(&app).await;
    let browser = Browser::start().await;
    let mut page = browser.page().await;
    page.sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(page.path().await, "/supervisor");
    page.open(&app, MONTH).await;
    page.wait_attr(
        "analytics",
        "data-loaded",
        "2026-11-01/2026-11-30/production/day",
    )
    .await;
    assert_eq!(
        page.testid("nav-analytics")
            .await
            .attr("aria-current")
            .await
            .ok()
            .flatten()
            .as_deref(),
        Some("page")
    );

    // Every figure, as `analytics.rs` expects of the API for this month.
    for (figure, expected) in [
        ("calls", 10.0),
        ("answered", 7.0),
        ("answer-rate", 0.7),
        ("answer-p50", 1000.0),
        ("answer-p90", 9000.0),
        ("abandoned", 2.0),
        ("abandon-rate", 0.2),
        ("voicemail", 1.0),
        ("ai-calls", 3.0),
        ("ai-containment", 0.6667),
        ("transferred", 2.0),
        ("transfer-rate", 0.2),
        ("handle-time", 62.143),
        ("cost-total", 0.41),
        ("cost-per-call", round6(0.41 / 8.0)),
        ("cost-per-minute", round6(0.41 / (504.6 / 60.0))),
        ("outbound-calls", 5.0),
        ("objective-met", 2.0),
        ("objective-met-rate", 0.6667),
    ] {
        let raw = value(&page, figure).await;
        assert!(
            (number(&raw) - expected).abs() < 1e-6,
            "figure-{figure}: {raw}, expected {expected}"
        );
    }
    assert_eq!(page.text("figure-answer-rate").await, "70.0 %");
    assert_eq!(page.text("figure-answer-p90").await, "9.0 s");
    assert_eq!(page.text("figure-cost-total").await, "$0.41");

    // A chart per grouping, each with its table.
    for chart in ["groups", "cost", "outbound"] {
        let bars = page
            .all(&format!("[data-testid=\"chart-{chart}\"] svg rect.bar"))
            .await;
        assert!(!bars.is_empty(), "chart-{chart} has bars");
    }
    let days = table(&page, "groups").await;
    let firsts: Vec<(&str, &str, &str)> = days
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str(), row[2].as_str()))
        .collect();
    assert_eq!(
        firsts,
        [
            ("day", "calls", "answered"),
            ("2026-11-03", "4", "2"),
            ("2026-11-10", "3", "3"),
            ("2026-11-20", "2", "1"),
            ("2026-11-30", "1", "1")
        ]
    );

    // The CSV files: the same rows, raw numbers. Rendered again with the
    // page's Blob URLs watched.
    page.eval(WATCH_BLOBS, vec![]).await;
    page.click("analytics-apply").await;
    let watched = page
        .wait_until(
            |p| async move { p.eval("return window.__blobs.size;", vec![]).await == json!(3) },
        )
        .await;
    assert!(watched, "three CSV files made");
    let link = page.testid("csv-groups").await;
    assert!(link
        .attr("href")
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
        .starts_with("blob:"));
    assert_eq!(
        link.attr("download").await.ok().flatten().as_deref(),
        Some("calls-by-day-2026-11-01-2026-11-30.csv")
    );
    assert_eq!(
        csv(&page, "groups").await,
        "day,calls,answered,answer_rate,answer_p50_ms,answer_p90_ms,abandon_rate,voicemail,\
         ai_containment,transfer_rate,average_handle_time_secs,cost_usd\r\n\
         2026-11-03,4,2,0.5,1000,3000,0.25,1,,0.25,90,0.07\r\n\
         2026-11-10,3,3,1,700,5000,0,0,0.5,0.3333,50,0.22\r\n\
         2026-11-20,2,1,0.5,400,400,0.5,0,1,0,60,0.09\r\n\
         2026-11-30,1,1,1,9000,9000,0,0,,0,45,0.03\r\n"
    );
    let human_minutes = (61.0 + 123.0 + 50.0 + 35.0 + 54.0) / 60.0;
    let ai_minutes = (90.5 + 30.7 + 60.4) / 60.0;
    assert_eq!(
        csv(&page, "cost").await,
        format!(
            "route,calls,priced_calls,total_usd,per_call_usd,per_minute_usd\r\n\
             human,7,5,0.11,{},{}\r\nai,3,3,0.3,0.1,{}\r\n",
            round6(0.11 / 5.0),
            round6(0.11 / human_minutes),
            round6(0.30 / ai_minutes)
        )
    );
    let outbound = csv(&page, "outbound").await;
    let mut lines: Vec<&str> = outbound.lines().collect();
    assert_eq!(lines.remove(0), "disposition,calls");
    lines.sort_unstable();
    assert_eq!(lines, ["completed,3", "failed,1", "no-answer,1"]);
    // Clicking the link downloads the file, under the page's CSP, without a
    // policy violation: Chromium saves it where DevTools says.
    let downloads = crate::browser::scratch_dir("analytics-csv");
    page.client
        .issue_cmd(Cdp(json!({
            "cmd": "Browser.setDownloadBehavior",
            "params": { "behavior": "allow", "downloadPath": downloads.to_string_lossy() },
        })))
        .await
        .expect("allow downloads");
    page.click("csv-cost").await;
    let file = downloads.join("cost-by-route-2026-11-01-2026-11-30.csv");
    let saved = page
        .wait_until(|_| {
            let file = file.clone();
            async move { std::fs::read_to_string(&file).is_ok_and(|text| text.ends_with("\r\n")) }
        })
        .await;
    assert!(
        saved,
        "the CSV file was downloaded to {}",
        downloads.display()
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("the file"),
        csv(&page, "cost").await
    );
    assert_eq!(page.eval("return window.__csp;", vec![]).await, json!([]));
    page.screenshot("admin-analytics").await;

    // Another grouping from the form: by route, human vs AI.
    page.testid("analytics-group")
        .await
        .select_by_value("route")
        .await
        .expect("pick route");
    page.click("analytics-apply").await;
    page.wait_attr(
        "analytics",
        "data-loaded",
        "2026-11-01/2026-11-30/production/route",
    )
    .await;
    let routes = table(&page, "groups").await;
    let calls: Vec<(&str, &str)> = routes
        .iter()
        .skip(1)
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    assert_eq!(calls, [("ai", "3"), ("human", "7")]);
    assert!(page.url().await.contains("group_by=route"));

    // A reversed range: the engine's refusal next to `to`, the figures stay.
    page.eval(
        "document.getElementById('analytics-from').value = '2026-11-30';\
         document.getElementById('analytics-to').value = '2026-11-01';",
        vec![],
    )
    .await;
    page.click("analytics-apply").await;
    let refusal = page.wait_text("error-analytics-to", "before from").await;
    assert!(refusal.starts_with("to:"), "{refusal}");
    assert_eq!(value(&page, "calls").await, "10");
    page.wait_attr(
        "analytics",
        "data-loaded",
        "2026-11-01/2026-11-30/production/route",
    )
    .await;
    assert!(page.url().await.contains("from=2026-11-01"));
    // Over a year: refused the same way.
    page.eval(
        "document.getElementById('analytics-from').value = '2025-01-01';\
         document.getElementById('analytics-to').value = '2026-01-02';",
        vec![],
    )
    .await;
    page.click("analytics-apply").await;
    page.wait_text("error-analytics-to", "over a year").await;
    assert_eq!(value(&page, "calls").await, "10");
    browser.close().await;
}

/// A first load in a fresh Chromium (empty cache): the token is put where the
/// sign-in leaves it from a page that loads nothing else, then `path` is opened.
async fn cold_open(
    browser: &Browser,
    app: &crate::helpers::TestApp,
    token: &str,
    path: &str,
) -> Page {
    let mut page = browser.page().await;
    page.open(app, "/api/session").await;
    page.eval(
        "sessionStorage.setItem('switchboard.token', arguments[0]);",
        vec![json!(token)],
    )
    .await;
    page.open(app, path).await;
    page
}

#[actix_web::test]
async fn the_analytics_page_and_the_users_page_each_load_cold_under_the_page_budget() {
    let app = spawn_app_with(TestDb::Sqlite, |_| {}).await;
    seed(&app).await;
    let user = app.create_user("weight@example.com").await;
    let browser = Browser::start().await;
    for (token, path, ready) in [
        (ADMIN_TOKEN, MONTH, "analytics"),
        (user.api_key.as_str(), "/app", "dashboard"),
    ] {
        let page = cold_open(&browser, &app, token, path).await;
        if ready == "analytics" {
            page.wait_attr(
                "analytics",
                "data-loaded",
                "2026-11-01/2026-11-30/production/day",
            )
            .await;
        }
        let weight = page_weight(&page).await;
        eprintln!("page weight {path}: {weight}");
        let bytes = weight["bytes"].as_u64().expect("bytes");
        assert!(bytes < PAGE_BUDGET_BYTES, "{path}: {bytes} bytes: {weight}");
        // A cold load fetched everything it counts: no file came from a cache.
        for file in weight["files"].as_array().expect("files") {
            assert!(
                file[1].as_u64().unwrap_or(0) > 0,
                "{path}: {file} empty or cached"
            );
        }
    }
    browser.close().await;
}
