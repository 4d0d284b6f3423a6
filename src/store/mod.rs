//! Durable storage: agents, numbers and the record of every call, on SQLite (the
//! default, one file) or PostgreSQL, through one `sqlx::AnyPool`.
//!
//! # Layout
//!
//! - this module: [`Store`] (connect, migrate, health), [`Backend`], [`StoreError`]
//!   and the embedded migrations (`migrations/<backend>/`).
//! - [`agents`]: agents and their token hashes.
//! - [`analytics`]: the call analytics, aggregated in SQL (groups, nearest-rank
//!   percentiles by window functions, outbound dispositions).
//! - [`assistants`]: AI assistants (instructions, voice, model, tools, failure route).
//! - [`numbers`]: phone numbers and their routes.
//! - [`pool`]: the provider-synced number pool (statuses, assignments), the
//!   directory queries over it and the route migrations.
//! - [`users`]: users (plan, status, limit overrides, API key hash, webhook
//!   secret).
//! - [`dnc`]: the do-not-call list, global and per user.
//! - [`missed_call`]: the missed-call texts, one per caller, number and UTC day
//!   (claimed atomically), and what became of each.
//! - [`consent`]: consent records, the attestations signed for outbound calls
//!   (written once, read back).
//! - [`deliveries`]: the outbox of callback deliveries (a user's
//!   `callback_url`): enqueued, claimed under a lease, acknowledged or given up.
//! - [`outbound`]: the outbound-call queue: a call stored at submit within the
//!   user's quotas (one transaction), listed, read back, canceled; the budget's
//!   committed sums.
//! - `outbound_talk`: what the outbound conversation notes on its call's row
//!   (the answering-machine verdict).
//! - [`outbound_dispatch`]: the dispatcher's side of the queue: claims of due
//!   calls (a compare-and-set per row, within the global, per-user and per-batch
//!   caps), batch windows closed, attempts and their outcomes, the calls whose
//!   dial is to be reconciled, and start-up recovery.
//! - [`calls`]: the call record: applying journal entries, reading a call back,
//!   late events and start-up recovery.
//! - [`journal`]: [`JournalWriter`], the background task that persists what the
//!   actors append, in order, retrying until the database takes it, splitting
//!   off what it refuses, and bounding its memory with `spill`, the overflow
//!   file that is read back (also on the next start).
//!
//! All SQL uses `$1, $2…` placeholders (both drivers number them) and plain types:
//! TEXT, BIGINT milliseconds since the epoch, JSON as TEXT, bytes as BLOB/BYTEA.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection as _};

pub mod agents;
pub mod analytics;
pub mod assistants;
pub mod calls;
pub mod consent;
pub mod deliveries;
pub mod dnc;
pub mod flags;
pub mod journal;
pub mod missed_call;
pub mod numbers;
pub mod outbound;
pub mod outbound_batch;
pub mod outbound_dispatch;
pub mod outbound_result;
mod outbound_talk;
pub mod ownership;
pub mod pool;
pub mod safety_review;
mod spill;
pub mod users;
pub mod velocity;

pub use agents::{AgentRecord, NewAgent};
pub use assistants::{AssistantFields, AssistantRecord, DeleteAssistant};
pub use calls::{CallView, EventView, Recording, TurnRecord};
pub use consent::{ConsentId, ConsentRecord};
pub use journal::{JournalConfig, JournalWriter};
pub use numbers::NumberRecord;

/// How long a query waits for a free (or new) connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an SQLite statement waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// SQLite allows one writer at a time; a few connections serve concurrent reads.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// The migrations of each backend, embedded at build time: `(version, description, sql)`.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (2, "ai", include_str!("../../migrations/sqlite/0002_ai.sql")),
    (
        3,
        "number pool",
        include_str!("../../migrations/sqlite/0003_number_pool.sql"),
    ),
    (
        4,
        "unique call sid",
        include_str!("../../migrations/sqlite/0004_unique_call_sid.sql"),
    ),
    (
        5,
        "number routing",
        include_str!("../../migrations/sqlite/0005_number_routing.sql"),
    ),
    (
        6,
        "recording chunks",
        include_str!("../../migrations/sqlite/0006_recording_chunks.sql"),
    ),
    (
        7,
        "users",
        include_str!("../../migrations/sqlite/0007_users.sql"),
    ),
    (
        8,
        "consent records",
        include_str!("../../migrations/sqlite/0008_consent_records.sql"),
    ),
    (
        9,
        "outbound calls",
        include_str!("../../migrations/sqlite/0009_outbound_calls.sql"),
    ),
    (
        10,
        "callback deliveries",
        include_str!("../../migrations/sqlite/0010_callback_deliveries.sql"),
    ),
    (
        11,
        "outbound dispatch",
        include_str!("../../migrations/sqlite/0011_outbound_dispatch.sql"),
    ),
    (
        12,
        "outbound claims",
        include_str!("../../migrations/sqlite/0012_outbound_claims.sql"),
    ),
    (
        15,
        "safety",
        include_str!("../../migrations/sqlite/0015_safety.sql"),
    ),
    (
        17,
        "safety review",
        include_str!("../../migrations/sqlite/0017_safety_review.sql"),
    ),
    (
        18,
        "consent versions",
        include_str!("../../migrations/sqlite/0018_consent_versions.sql"),
    ),
    (
        19,
        "callback_order",
        include_str!("../../migrations/sqlite/0019_callback_order.sql"),
    ),
    (
        20,
        "analytics indexes",
        include_str!("../../migrations/sqlite/0020_analytics_indexes.sql"),
    ),
    (
        21,
        "missed call texts",
        include_str!("../../migrations/sqlite/0021_missed_call_texts.sql"),
    ),
    (
        22,
        "assistant numbers",
        include_str!("../../migrations/sqlite/0022_assistant_numbers.sql"),
    ),
    (
        23,
        "call ownership",
        include_str!("../../migrations/sqlite/0023_call_ownership.sql"),
    ),
    (
        24,
        "node beats",
        include_str!("../../migrations/sqlite/0024_node_beats.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "ai",
        include_str!("../../migrations/postgres/0002_ai.sql"),
    ),
    (
        3,
        "number pool",
        include_str!("../../migrations/postgres/0003_number_pool.sql"),
    ),
    (
        4,
        "unique call sid",
        include_str!("../../migrations/postgres/0004_unique_call_sid.sql"),
    ),
    (
        5,
        "number routing",
        include_str!("../../migrations/postgres/0005_number_routing.sql"),
    ),
    (
        6,
        "recording chunks",
        include_str!("../../migrations/postgres/0006_recording_chunks.sql"),
    ),
    (
        7,
        "users",
        include_str!("../../migrations/postgres/0007_users.sql"),
    ),
    (
        8,
        "consent records",
        include_str!("../../migrations/postgres/0008_consent_records.sql"),
    ),
    (
        9,
        "outbound calls",
        include_str!("../../migrations/postgres/0009_outbound_calls.sql"),
    ),
    (
        10,
        "callback deliveries",
        include_str!("../../migrations/postgres/0010_callback_deliveries.sql"),
    ),
    (
        11,
        "outbound dispatch",
        include_str!("../../migrations/postgres/0011_outbound_dispatch.sql"),
    ),
    (
        12,
        "outbound claims",
        include_str!("../../migrations/postgres/0012_outbound_claims.sql"),
    ),
    (
        15,
        "safety",
        include_str!("../../migrations/postgres/0015_safety.sql"),
    ),
    (
        17,
        "safety review",
        include_str!("../../migrations/postgres/0017_safety_review.sql"),
    ),
    (
        18,
        "consent versions",
        include_str!("../../migrations/postgres/0018_consent_versions.sql"),
    ),
    (
        19,
        "callback_order",
        include_str!("../../migrations/postgres/0019_callback_order.sql"),
    ),
    (
        20,
        "analytics indexes",
        include_str!("../../migrations/postgres/0020_analytics_indexes.sql"),
    ),
    (
        21,
        "missed call texts",
        include_str!("../../migrations/postgres/0021_missed_call_texts.sql"),
    ),
    (
        22,
        "assistant numbers",
        include_str!("../../migrations/postgres/0022_assistant_numbers.sql"),
    ),
    (
        23,
        "call ownership",
        include_str!("../../migrations/postgres/0023_call_ownership.sql"),
    ),
    (
        24,
        "node beats",
        include_str!("../../migrations/postgres/0024_node_beats.sql"),
    ),
];

/// Durable storage over a pool of database connections; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// This engine's identity: calls are recorded under it, and start-up recovery
    /// only closes calls that this node left open.
    node_id: Arc<str>,
    /// Journal entries left out because another node holds their call now
    /// (`switchboard_journal_fenced`).
    fenced: Arc<std::sync::atomic::AtomicU64>,
}

/// Which database the store talks to, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite:…` or `postgres://…` / `postgresql://…`.
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL: expected `sqlite:…` or `postgres://…`")
        }
    }

    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is already taken (agent id, token hash…).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// The driver's message names the cause; it never carries the bound values
    /// (PostgreSQL puts those in the error's detail, which is not shown).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The write would contradict what is recorded (a number live in another
    /// workspace, a claim lost meanwhile).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row holds something the engine cannot read back (bad id, bad JSON).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A unique-key violation becomes [`StoreError::Duplicate`] with `what`;
    /// anything else stays a database error.
    pub(crate) fn unique(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what()),
            _ => StoreError::Database(err),
        }
    }

    pub(crate) fn is_duplicate(&self) -> bool {
        matches!(self, StoreError::Duplicate(_))
    }

    /// The database cannot be reached or cannot take work right now (connection
    /// refused or cut, no free connection, server shutting down, a locked, full or
    /// read-only SQLite file): nothing is wrong with what was asked. The admin API
    /// answers 503; the journal keeps the batch and tries it again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(err) if unavailable(err))
    }
}

/// See [`StoreError::is_unavailable`].
pub(crate) fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                postgres_unavailable(&code)
            } else {
                sqlite_unavailable(&code)
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs (postgresql.org/docs/current/errcodes-appendix.html) that
/// say "not now" rather than "not this": connection exceptions (08…), insufficient
/// resources (53…), operator intervention (57…: shutdown, cannot connect now),
/// 55000 (the database does not accept connections), 3D000 (no such database),
/// serialization failure and deadlock (try again).
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "55000" | "3D000" | "40001" | "40P01")
}

/// SQLite primary result codes (sqlite.org/rescode.html; sqlx reports the extended
/// code, whose low byte is the primary one): BUSY, LOCKED, READONLY, IOERR, FULL,
/// CANTOPEN.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// Ids bound per `IN (…)` list: a longer list goes in chunks of this many,
/// well under SQLite's and PostgreSQL's bound-parameter limits.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// `$first, $first+1, …`: `count` numbered placeholders, for an `IN (…)` list
/// or a multi-row `VALUES`.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text as the database will take it: PostgreSQL refuses NUL in text, so a NUL that
/// got this far (a webhook's `From`, a transcript) becomes U+FFFD rather than
/// costing the call its record. The last line of defence: the HTTP edge refuses or
/// replaces such input first.
pub(crate) fn db_text(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

impl Store {
    /// Opens a pool on `url` (an SQLite file is created if missing) and records calls
    /// under `node_id`. Does not migrate: call [`Store::migrate`].
    #[tracing::instrument(skip_all, fields(node_id = %node_id))]
    pub async fn connect(url: &str, node_id: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = match backend {
            Backend::Sqlite => connect_sqlite(url, options).await?,
            Backend::Postgres => options
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .connect(url)
                .await
                .context("connecting to PostgreSQL")?,
        };
        tracing::info!(?backend, "database connected");
        Ok(Store {
            pool,
            backend,
            node_id: node_id.into(),
            fenced: Arc::default(),
        })
    }

    /// Applies the embedded migrations of this backend that the database lacks.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = Migrator::new(Embedded(self.backend.migrations()))
            .await
            .context("loading the embedded migrations")?;
        migrator
            .run(&self.pool)
            .await
            .context("running database migrations")?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Journal entries left out so far because another node held their call.
    pub fn fenced_entries(&self) -> u64 {
        self.fenced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One round trip to the database, for health checks.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The embedded migrations of this backend that the database has not applied
    /// (no successful row in sqlx's `_sqlx_migrations`), by version: empty when
    /// the schema is the one this binary expects. For `/readyz`.
    #[tracing::instrument(skip_all)]
    pub async fn missing_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let applied: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_all(&self.pool)
                .await?;
        let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
        Ok(self
            .backend
            .migrations()
            .iter()
            .map(|m| m.0)
            .filter(|version| !applied.contains(version))
            .collect())
    }

    /// Closes every connection; later queries fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// `BEGIN IMMEDIATE`, waiting up to the busy timeout for another writer (a
    /// second engine on the same file): a deferred transaction that reads first
    /// and then writes would instead fail at its first write with "database is
    /// locked" (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out) whenever
    /// another connection committed in between. PostgreSQL: a plain `BEGIN`.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// SQLite: create the file (and its folder) when missing, switch it to WAL once,
/// and give every pooled connection a busy timeout.
async fn connect_sqlite(url: &str, options: AnyPoolOptions) -> anyhow::Result<AnyPool> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let url = if in_memory || url.contains("mode=") {
        url.to_owned()
    } else {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    };
    if !in_memory {
        create_parent_folder(&url)?;
        // Changing the journal mode takes a lock that the busy timeout does not wait
        // for, so it happens once, alone, before the pool opens its connections. The
        // mode is stored in the file: later connections are in WAL too.
        let mut conn = AnyConnection::connect(&url)
            .await
            .context("opening the SQLite database")?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await
            .context("switching SQLite to WAL")?;
        conn.close()
            .await
            .context("closing the set-up connection")?;
    }
    let options = if in_memory {
        // Every connection to an in-memory database is its own database unless one
        // stays open: keep exactly one, forever.
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        options.max_connections(SQLITE_MAX_CONNECTIONS)
    };
    options
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .context("opening the SQLite pool")
}

/// `sqlite:data/switchboard.db` needs `data/` to exist.
fn create_parent_folder(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder {}", parent.display())),
        _ => Ok(()),
    }
}

/// Migrations compiled into the binary, so a deployment is one file.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stores on one SQLite file, as two engines of a node's restart: a
    /// write transaction that reads first must survive a commit by the other
    /// store between its read and its write.
    #[tokio::test]
    async fn a_write_transaction_that_reads_first_survives_another_writer_on_the_same_file() {
        let path = std::env::temp_dir().join(format!("sb_begin_{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let first = Store::connect(&url, "a").await.expect("connect");
        first.migrate().await.expect("migrate");
        let second = Store::connect(&url, "b").await.expect("connect");
        let insert = "INSERT INTO agents (id, workspace, name, token_hash, created_at) \
                      VALUES ($1, 'w', 'n', $1, 0)";

        let mut tx = first.begin().await.expect("begin");
        sqlx::query("SELECT COUNT(*) FROM agents")
            .fetch_one(&mut *tx)
            .await
            .expect("read");
        // The other store writes meanwhile: it waits for our lock (busy timeout)
        // instead of slipping a commit in under our read.
        let other = tokio::spawn({
            let second = second.clone();
            async move {
                sqlx::query(insert)
                    .bind("other")
                    .execute(second.pool())
                    .await
                    .map(|_| ())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        sqlx::query(insert)
            .bind("ours")
            .execute(&mut *tx)
            .await
            .expect("our write after the read is not refused as locked");
        tx.commit().await.expect("commit");
        other
            .await
            .expect("joined")
            .expect("the other store's write went through after ours");
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM agents")
            .fetch_one(first.pool())
            .await
            .expect("count");
        assert_eq!(count, 2);
        first.close().await;
        second.close().await;
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn backends_are_told_apart_by_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://switchboard.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite:sb.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }

    #[test]
    fn migration_versions_match_between_backends() {
        let versions = |m: &[(i64, &str, &str)]| m.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
    }
}
