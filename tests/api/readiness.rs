//! `GET /readyz` (issue 14, item 8): ready only when the database answers and
//! every embedded migration is applied; `/healthz` stays the liveness check.

use sqlx::Connection as _;

use crate::db::{set_postgres_reachable, TestDb};
use crate::helpers::spawn_app_with;

async fn ready_on(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], serde_json::json!([]));
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["migrations"]["status"], "ok");
}

#[actix_web::test]
async fn a_fresh_engine_on_sqlite_is_ready() {
    ready_on(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_fresh_engine_on_postgres_is_ready() {
    ready_on(TestDb::Postgres).await;
}

#[actix_web::test]
async fn an_engine_whose_database_is_unreachable_is_alive_but_not_ready() {
    let app = spawn_app_with(TestDb::Postgres, |_| {}).await;
    set_postgres_reachable(&app.database_url, false).await;
    let (ready, body) = app.get_json("/readyz").await;
    let (live, _) = app.get("/healthz", None).await;
    set_postgres_reachable(&app.database_url, true).await;
    assert_eq!(ready, 503, "{body}");
    assert_eq!(body["status"], "not-ready");
    assert_eq!(body["checks"]["database"]["status"], "unavailable");
    let failed = body["failed"].as_array().expect("failed is a list");
    assert!(failed.contains(&"database".into()), "{body}");
    assert_eq!(live, 200, "liveness does not depend on the database");
    // Back: ready again.
    let (ready, body) = app.get_json("/readyz").await;
    assert_eq!(ready, 200, "{body}");
}

async fn missing_migration_on(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("db");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 19")
        .execute(&mut conn)
        .await
        .expect("forget a migration");
    conn.close().await.expect("close");
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["migrations"]));
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["migrations"]["status"], "missing");
    assert_eq!(
        body["checks"]["migrations"]["missing"],
        serde_json::json!([19])
    );
    let (live, _) = app.get("/healthz", None).await;
    assert_eq!(live, 200);
}

#[actix_web::test]
async fn an_engine_missing_a_migration_on_sqlite_is_not_ready_and_names_it() {
    missing_migration_on(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn an_engine_missing_a_migration_on_postgres_is_not_ready_and_names_it() {
    missing_migration_on(TestDb::Postgres).await;
}
