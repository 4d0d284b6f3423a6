//! A fresh, empty database per test: an SQLite file in the temp folder, or a new
//! PostgreSQL database on the server named by `SWITCHBOARD_TEST_POSTGRES_URL`.
//! PostgreSQL tests fail (never skip) when that server cannot be reached.

use sqlx::{Connection as _, Executor as _, PgConnection};

/// Where the PostgreSQL tests create their databases when the variable is unset.
const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const POSTGRES_URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDb {
    Sqlite,
    Postgres,
}

/// The URL of a new, empty database of `kind`.
pub async fn fresh_database_url(kind: TestDb) -> String {
    let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
    match kind {
        TestDb::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        TestDb::Postgres => {
            admin_connection()
                .await
                .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                .await
                .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
            postgres_url_of(&admin_url(), &name)
        }
    }
}

/// Removes a database made by [`fresh_database_url`] (its connections must be closed).
pub async fn drop_database(url: &str) {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else {
        let name = database_name(url);
        let _ = admin_connection()
            .await
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
            .await;
    }
}

/// PostgreSQL only: refuses (`false`) or accepts again (`true`) connections to the
/// database of `url`; refusing also cuts the connections already open. An outage
/// of one database, leaving the server and the other tests alone.
pub async fn set_postgres_reachable(url: &str, reachable: bool) {
    let name = database_name(url);
    let mut admin = admin_connection().await;
    admin
        .execute(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS {reachable}"#).as_str())
        .await
        .unwrap_or_else(|e| panic!("changing ALLOW_CONNECTIONS of {name}: {e}"));
    if !reachable {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cutting the connections to {name}: {e}"));
    }
}

fn admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

async fn admin_connection() -> PgConnection {
    let url = admin_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required by the store tests and could not be reached \
             ({POSTGRES_URL_VAR}, default {DEFAULT_POSTGRES_ADMIN_URL}): {e}"
        )
    })
}

/// `postgres://u@h:5432/admin?x=y` with the database `name` instead of `admin`.
fn postgres_url_of(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let server = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, _database)) => format!("{scheme}://{authority}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

fn database_name(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    base.rsplit('/').next().unwrap_or(base).to_owned()
}
