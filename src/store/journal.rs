//! The journal writer: the background task that persists what the actors append,
//! in order, a batch per transaction, retrying a failed batch until the database
//! takes it. The actors never wait for it; [`JournalWriter::flush`] lets a caller
//! wait for everything appended so far.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_actors::journal::{Journal, JournalEntry};
use tokio::sync::{mpsc, oneshot};

use super::Store;

/// Most entries written in one transaction.
const BATCH_SIZE: usize = 256;
/// The first wait after a failed batch; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Failures after which a batch the database refuses *while reachable* is taken
/// apart, so one entry it can never accept cannot hold up every call's record.
const SPLIT_AFTER: u64 = 6;

/// What the writer's queue carries.
enum Command {
    Entry(JournalEntry),
    /// Answered once every entry queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The actors' [`Journal`]: appends never block; cheap to clone.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::UnboundedSender<Command>,
    /// Entries accepted but not yet written: grows while the database is away.
    backlog: Arc<AtomicI64>,
}

impl JournalWriter {
    /// Spawns the writer task on the current tokio runtime (inside the actix System
    /// or any tokio runtime). The task ends once every handle is dropped and the
    /// queue is written.
    pub fn spawn(store: Store) -> JournalWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicI64::new(0));
        tokio::spawn(run(store, rx, backlog.clone()));
        JournalWriter { tx, backlog }
    }

    /// Entries accepted but not yet written.
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Resolves once every entry appended before this call is durably written
    /// (at once if the writer task is gone).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

impl Journal for JournalWriter {
    fn append(&self, entry: JournalEntry) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(lost) = self.tx.send(Command::Entry(entry)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            if let Command::Entry(entry) = lost.0 {
                tracing::error!(
                    call_id = %entry.call_id(),
                    "journal writer is gone; entry not recorded"
                );
            }
        }
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Command>, backlog: Arc<AtomicI64>) {
    let mut commands = Vec::with_capacity(BATCH_SIZE);
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    while rx.recv_many(&mut commands, BATCH_SIZE).await > 0 {
        for command in commands.drain(..) {
            match command {
                Command::Entry(entry) => batch.push(entry),
                Command::Flush(done) => {
                    write(&store, &mut batch, &backlog).await;
                    let _ = done.send(());
                }
            }
        }
        write(&store, &mut batch, &backlog).await;
    }
    tracing::debug!("journal writer stopped");
}

/// Writes `batch` in one transaction, retrying the same batch until it commits.
async fn write(store: &Store, batch: &mut Vec<JournalEntry>, backlog: &AtomicI64) {
    if batch.is_empty() {
        return;
    }
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u64;
    loop {
        match store.apply(batch).await {
            Ok(()) => break,
            Err(_) if failures >= SPLIT_AFTER && store.ping().await.is_ok() => {
                write_one_by_one(store, batch).await;
                break;
            }
            Err(error) => {
                failures += 1;
                let error = anyhow::Error::from(error);
                tracing::warn!(
                    error = format!("{error:#}"),
                    entries = batch.len(),
                    failures,
                    retry_in_ms = backoff.as_millis() as u64,
                    "journal batch not written; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if failures > 0 {
        tracing::info!(
            entries = batch.len(),
            failures,
            "journal batch written after retries"
        );
    }
    backlog.fetch_sub(batch.len() as i64, Ordering::Relaxed);
    batch.clear();
}

/// The database is up but refuses the batch: write its entries one at a time, so
/// only an entry the database itself rejects is left out (and logged in full).
async fn write_one_by_one(store: &Store, batch: &[JournalEntry]) {
    for entry in batch {
        let mut attempts = 0;
        loop {
            match store.apply(std::slice::from_ref(entry)).await {
                Ok(()) => break,
                Err(error) => {
                    attempts += 1;
                    let reachable = store.ping().await.is_ok();
                    if reachable && attempts >= 3 {
                        tracing::error!(
                            error = format!("{:#}", anyhow::Error::from(error)),
                            ?entry,
                            "the database rejects this journal entry; it is left out"
                        );
                        break;
                    }
                    // Unreachable again: keep this entry until the database is back.
                    tokio::time::sleep(if reachable {
                        FIRST_BACKOFF
                    } else {
                        MAX_BACKOFF
                    })
                    .await;
                }
            }
        }
    }
}
