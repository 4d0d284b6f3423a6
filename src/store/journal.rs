//! The journal writer: the background task that persists what the actors append,
//! in order per call, a batch per transaction. The actors never wait for it;
//! [`JournalWriter::flush`] lets a caller wait for everything appended so far.
//!
//! - **The database is away** (connection refused or cut, pool exhausted, server
//!   shutting down; see [`StoreError::is_unavailable`]): the batch is kept and tried
//!   again with a growing pause. Entries keep arriving: up to
//!   `journal.memory_limit_bytes` they wait in memory, past it in the spill file
//!   (`store/spill.rs`), which is read back in order once there is room and on the
//!   next start, so nothing is lost.
//! - **The database refuses a batch as data** (a constraint, an encoding): the batch
//!   is split at once, by call, then entry by entry, so every other call's entries
//!   are written without waiting. The refused entry, and the later entries of its
//!   call (a call's entries stay in order), are held and tried again with a
//!   growing pause — the call's row may simply not be written yet. After
//!   `reject_after_attempts` the entry is left out and logged (ids and sizes, never
//!   contents); the rest of that call's record is still written.
//! - **Shutdown**: [`JournalWriter::spill_all`] moves whatever could not be written
//!   in time into the spill file for the next start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_actors::journal::{CallOpened, Journal, JournalEntry};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::spill::{self, SpillFile};
use super::{Store, StoreError};

/// Most entries written in one transaction.
const BATCH_SIZE: usize = 256;
/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`] while the
/// database is away, and up to [`MAX_HELD_BACKOFF`] for a refused entry.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MAX_HELD_BACKOFF: Duration = Duration::from_millis(1_600);

/// How the writer bounds what it holds; see `[journal]` in `config/default.toml`.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Entries waiting for the database are kept in memory up to about this many
    /// bytes ([`JournalEntry::approx_bytes`]); later ones go to the spill file.
    pub memory_limit_bytes: usize,
    /// The spill file: read back (first) when the writer starts.
    pub spill_path: PathBuf,
    /// Tries of an entry the database refuses as data before it is left out.
    pub reject_after_attempts: u32,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            memory_limit_bytes: 16 << 20,
            spill_path: PathBuf::from("switchboard-journal.spill"),
            reject_after_attempts: 7,
        }
    }
}

/// What the writer's queue carries.
enum Command {
    Entry(JournalEntry),
    /// Answered once every entry queued before it is written (or left out).
    Flush(oneshot::Sender<()>),
    /// Stop writing; put every entry not yet written into the spill file; answer
    /// how many entries that was.
    SpillAll(oneshot::Sender<std::io::Result<usize>>),
}

/// The actors' [`Journal`]: appends never block; cheap to clone.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::UnboundedSender<Command>,
    /// Entries accepted but not yet written: grows while the database is away.
    backlog: Arc<AtomicI64>,
    spill_path: Arc<Path>,
    /// The Twilio CallSids of the latest calls appended: a late status callback for
    /// one of them belongs to a call whose record may still be on its way.
    recent_sids: Arc<Mutex<RecentSids>>,
}

/// The last [`RECENT_SIDS`] CallSids, oldest first.
#[derive(Default)]
struct RecentSids {
    order: VecDeque<String>,
    known: HashSet<String>,
}

/// How many CallSids [`JournalWriter::knows_sid`] remembers.
const RECENT_SIDS: usize = 4_096;

impl JournalWriter {
    /// [`JournalWriter::spawn_with`] the default [`JournalConfig`].
    pub fn spawn(store: Store) -> JournalWriter {
        Self::spawn_with(store, JournalConfig::default())
    }

    /// Spawns the writer task on the current tokio runtime (inside the actix System
    /// or any tokio runtime). Entries left in the spill file by an earlier run are
    /// written first. The task ends once every handle is dropped and the queue is
    /// written, or after [`JournalWriter::spill_all`].
    pub fn spawn_with(store: Store, config: JournalConfig) -> JournalWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicI64::new(0));
        let spill_path: Arc<Path> = config.spill_path.clone().into();
        let mut writer = Writer {
            store,
            config,
            rx,
            next_n: 0,
            memory: VecDeque::new(),
            memory_bytes: 0,
            held: HashMap::new(),
            spill: None,
            spill_next_n: 0,
            spill_end_n: 0,
            in_flight: None,
            stalled_until: None,
            backoff: FIRST_BACKOFF,
            flushes: Vec::new(),
            backlog: backlog.clone(),
        };
        writer.open_existing_spill();
        tokio::spawn(writer.run());
        JournalWriter {
            tx,
            backlog,
            spill_path,
            recent_sids: Arc::default(),
        }
    }

    /// Whether a call with this Twilio CallSid was opened recently through this
    /// journal (its record may not be written yet).
    pub fn knows_sid(&self, call_sid: &str) -> bool {
        self.recent_sids
            .lock()
            .is_ok_and(|recent| recent.known.contains(call_sid))
    }

    /// Entries accepted but not yet written.
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Where entries go that cannot be written now.
    pub fn spill_path(&self) -> &Path {
        &self.spill_path
    }

    /// Resolves once every entry appended before this call is durably written (or
    /// left out as refused); at once if the writer task is gone.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// Stops the writer and moves every entry not yet written into the spill file
    /// (synced to disk), to be written on the next start. Returns how many entries
    /// the file holds. For shutdown, after [`JournalWriter::flush`] ran out of time.
    pub async fn spill_all(&self) -> std::io::Result<usize> {
        let (done, spilled) = oneshot::channel();
        if self.tx.send(Command::SpillAll(done)).is_err() {
            return Ok(0);
        }
        spilled.await.unwrap_or(Ok(0))
    }
}

impl Journal for JournalWriter {
    fn append(&self, entry: JournalEntry) {
        if let JournalEntry::Opened(CallOpened {
            call_sid: Some(sid),
            ..
        }) = &entry
        {
            if let Ok(mut recent) = self.recent_sids.lock() {
                if recent.known.insert(sid.clone()) {
                    recent.order.push_back(sid.clone());
                    if recent.order.len() > RECENT_SIDS {
                        if let Some(oldest) = recent.order.pop_front() {
                            recent.known.remove(&oldest);
                        }
                    }
                }
            }
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if let Err(lost) = self.tx.send(Command::Entry(entry)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            if let Command::Entry(entry) = lost.0 {
                tracing::error!(
                    entry = %entry.describe(),
                    "journal writer is gone; entry not recorded"
                );
            }
        }
    }
}

/// An entry in the writer's hands, numbered in the order it arrived.
#[derive(Clone)]
struct Queued {
    n: u64,
    bytes: usize,
    entry: JournalEntry,
}

/// A call whose first unwritten entry the database refused as data: its entries,
/// in order, wait here while every other call's entries go on.
struct Held {
    entries: VecDeque<Queued>,
    /// Refusals of the first entry so far.
    attempts: u32,
    retry_at: Instant,
    /// An entry of this call was left out already: its later refusals are final.
    poisoned: bool,
}

/// The batch being written, shared with the future that writes it (so a shutdown
/// can take its entries back).
struct InFlight {
    entries: Arc<Vec<Queued>>,
    held_job: bool,
    job: Pin<Box<dyn Future<Output = Attempt> + Send>>,
}

/// What became of a batch, by index into it.
#[derive(Default)]
struct Attempt {
    written: Vec<usize>,
    /// Per call: the refused entry and that call's later entries of the batch.
    refused: Vec<(StoreError, Vec<usize>)>,
    /// Not tried: the database went away. In order.
    unwritten: Vec<usize>,
    unavailable: Option<StoreError>,
}

struct Writer {
    store: Store,
    config: JournalConfig,
    rx: mpsc::UnboundedReceiver<Command>,
    /// The number the next arriving entry gets.
    next_n: u64,
    /// The oldest entries not yet written, in order (calls not held).
    memory: VecDeque<Queued>,
    /// Bytes of every entry in memory, held or in flight.
    memory_bytes: usize,
    held: HashMap<String, Held>,
    /// Entries numbered `spill_next_n..spill_end_n` wait in this file, in order;
    /// every entry that arrives while it has unread entries goes there too.
    spill: Option<SpillFile>,
    spill_next_n: u64,
    spill_end_n: u64,
    in_flight: Option<InFlight>,
    /// The database is away: no batch before this instant.
    stalled_until: Option<Instant>,
    backoff: Duration,
    /// Flushes waiting for every entry numbered up to theirs.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    backlog: Arc<AtomicI64>,
}

impl Writer {
    /// Entries an earlier run left in the spill file come first.
    fn open_existing_spill(&mut self) {
        let path = &self.config.spill_path;
        if !path.exists() {
            return;
        }
        match SpillFile::open(path) {
            Ok((file, lines)) => {
                if lines > 0 {
                    tracing::warn!(
                        entries = lines,
                        path = %path.display(),
                        "writing journal entries left in the spill file"
                    );
                }
                self.spill = Some(file);
                self.spill_next_n = 0;
                self.spill_end_n = lines;
                self.next_n = lines;
                self.backlog.fetch_add(lines as i64, Ordering::Relaxed);
            }
            Err(error) => tracing::error!(
                path = %path.display(),
                %error,
                "cannot open the journal spill file; its entries are not written"
            ),
        }
    }

    async fn run(mut self) {
        let mut open = true;
        loop {
            self.load_from_spill();
            self.finish_spill();
            self.answer_flushes();
            if !open && self.unfinished() == 0 {
                break;
            }
            if self.in_flight.is_none() {
                self.start_job();
            }
            let wake = self.next_wake();
            let busy = self.in_flight.is_some();
            let (rx, in_flight) = (&mut self.rx, &mut self.in_flight);
            let job = async {
                match in_flight {
                    Some(in_flight) => in_flight.job.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = rx.recv(), if open => match command {
                    Some(Command::Entry(entry)) => self.accept(entry),
                    Some(Command::Flush(done)) => {
                        self.flushes.push((self.next_n, done));
                    }
                    Some(Command::SpillAll(done)) => {
                        let _ = done.send(self.spill_everything());
                        return;
                    }
                    None => open = false,
                },
                attempt = job, if busy => self.settle(attempt),
                () = sleep_until(wake), if wake.is_some() => {}
                else => tokio::time::sleep(FIRST_BACKOFF).await,
            }
        }
        tracing::debug!("journal writer stopped");
    }

    /// Entries not yet written: in memory, held, in flight or in the spill file.
    fn unfinished(&self) -> u64 {
        self.memory.len() as u64
            + self
                .held
                .values()
                .map(|h| h.entries.len() as u64)
                .sum::<u64>()
            + self
                .in_flight
                .as_ref()
                .map_or(0, |f| f.entries.len() as u64)
            + (self.spill_end_n - self.spill_next_n)
    }

    /// The number of the oldest entry not yet written.
    fn oldest_unfinished(&self) -> Option<u64> {
        let in_flight = self
            .in_flight
            .as_ref()
            .and_then(|f| f.entries.iter().map(|q| q.n).min());
        let held = self
            .held
            .values()
            .filter_map(|h| h.entries.iter().map(|q| q.n).min())
            .min();
        let spilled = (self.spill_next_n < self.spill_end_n).then_some(self.spill_next_n);
        [self.memory.front().map(|q| q.n), held, in_flight, spilled]
            .into_iter()
            .flatten()
            .min()
    }

    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        // A flush waits for the entries numbered below its own number.
        let oldest = self.oldest_unfinished().unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(upto, _)| oldest >= *upto);
        self.flushes = waiting;
        for (_, done) in done {
            let _ = done.send(());
        }
    }

    fn accept(&mut self, entry: JournalEntry) {
        let queued = Queued {
            n: self.next_n,
            bytes: entry.approx_bytes(),
            entry,
        };
        self.next_n += 1;
        let spilling = self.spill_next_n < self.spill_end_n;
        let limit = self.config.memory_limit_bytes;
        if spilling || self.memory_bytes + queued.bytes > limit {
            match self.spill_file() {
                Ok(file) => match file.append(&queued.entry) {
                    Ok(()) => {
                        if !spilling {
                            tracing::warn!(
                                path = %file.path().display(),
                                memory_limit_bytes = limit,
                                "journal backlog over its memory limit; spilling to disk"
                            );
                            self.spill_next_n = queued.n;
                        }
                        self.spill_end_n = queued.n + 1;
                        return;
                    }
                    Err(error) => tracing::error!(
                        %error,
                        "cannot append to the journal spill file; keeping the entry in memory"
                    ),
                },
                Err(error) => tracing::error!(
                    %error,
                    "cannot open the journal spill file; keeping the entry in memory"
                ),
            }
        }
        self.memory_bytes += queued.bytes;
        self.memory.push_back(queued);
    }

    fn spill_file(&mut self) -> std::io::Result<&mut SpillFile> {
        if self.spill.is_none() {
            let (file, lines) = SpillFile::open(&self.config.spill_path)?;
            if lines > 0 {
                // Written by someone else meanwhile; never read twice.
                return Err(std::io::Error::other("the spill file is not empty"));
            }
            self.spill = Some(file);
        }
        Ok(self.spill.as_mut().expect("opened above"))
    }

    /// Reads spilled entries back, in order, while memory has room.
    fn load_from_spill(&mut self) {
        while self.spill_next_n < self.spill_end_n
            && self.memory_bytes < self.config.memory_limit_bytes
        {
            let Some(file) = self.spill.as_mut() else {
                return;
            };
            match file.read() {
                Ok(Some(entry)) => {
                    let n = self.spill_next_n;
                    self.spill_next_n += 1;
                    match entry {
                        Some(entry) => {
                            let queued = Queued {
                                n,
                                bytes: entry.approx_bytes(),
                                entry,
                            };
                            self.memory_bytes += queued.bytes;
                            self.memory.push_back(queued);
                        }
                        None => {
                            self.backlog.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(None) => {
                    // Fewer lines than counted (cut short): nothing more to read.
                    let missing = self.spill_end_n - self.spill_next_n;
                    self.backlog.fetch_sub(missing as i64, Ordering::Relaxed);
                    self.spill_next_n = self.spill_end_n;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot read the journal spill file; retrying");
                    return;
                }
            }
        }
    }

    /// Every spilled entry is read and written: the file goes.
    fn finish_spill(&mut self) {
        if self.spill.is_none() || self.spill_next_n < self.spill_end_n {
            return;
        }
        if self
            .oldest_unfinished()
            .is_some_and(|oldest| oldest < self.spill_end_n)
        {
            return;
        }
        if let Some(file) = self.spill.take() {
            let path = file.path().to_owned();
            match file.remove() {
                Ok(()) => tracing::info!(path = %path.display(), "journal spill file written out"),
                Err(error) => tracing::error!(%error, "cannot remove the journal spill file"),
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(until) = self.stalled_until {
            return Some(until);
        }
        self.held
            .values()
            .filter(|h| !h.entries.is_empty())
            .map(|h| h.retry_at)
            .min()
    }

    /// Starts writing the next batch: held calls whose pause is over first, then
    /// the oldest entries.
    fn start_job(&mut self) {
        let now = Instant::now();
        if self.stalled_until.is_some_and(|until| until > now) {
            return;
        }
        self.stalled_until = None;
        let mut batch = Vec::new();
        let mut held_job = false;
        for held in self.held.values_mut() {
            if held.retry_at <= now && !held.entries.is_empty() && batch.len() < BATCH_SIZE {
                batch.extend(held.entries.drain(..));
                held_job = true;
            }
        }
        if !held_job {
            while batch.len() < BATCH_SIZE {
                let Some(queued) = self.memory.pop_front() else {
                    break;
                };
                match self.held.get_mut(queued.entry.call_key()) {
                    Some(held) => held.entries.push_back(queued),
                    None => batch.push(queued),
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let entries = Arc::new(batch);
        let store = self.store.clone();
        let shared = Arc::clone(&entries);
        self.in_flight = Some(InFlight {
            entries,
            held_job,
            job: Box::pin(async move { attempt(&store, &shared).await }),
        });
    }

    fn settle(&mut self, attempt: Attempt) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        drop(in_flight.job);
        let mut entries: Vec<Option<Queued>> = Arc::try_unwrap(in_flight.entries)
            .unwrap_or_else(|shared| (*shared).clone())
            .into_iter()
            .map(Some)
            .collect();
        let mut take = |i: usize| entries[i].take().expect("each index once");
        let mut done = 0usize;
        for i in attempt.written {
            let queued = take(i);
            self.memory_bytes -= queued.bytes;
            done += 1;
        }
        for (error, indexes) in attempt.refused {
            let mut refused: VecDeque<Queued> = indexes.into_iter().map(&mut take).collect();
            let key = refused[0].entry.call_key().to_owned();
            let held = self.held.entry(key).or_insert_with(|| Held {
                entries: VecDeque::new(),
                attempts: 0,
                retry_at: Instant::now(),
                poisoned: false,
            });
            held.attempts += 1;
            if held.poisoned || held.attempts >= self.config.reject_after_attempts {
                let first = refused.pop_front().expect("a refused entry");
                tracing::error!(
                    entry = %first.entry.describe(),
                    attempts = held.attempts,
                    error = %error,
                    "the database refuses this journal entry; it is left out"
                );
                self.memory_bytes -= first.bytes;
                done += 1;
                held.poisoned = true;
                held.attempts = 0;
                held.retry_at = Instant::now();
            } else {
                let pause = FIRST_BACKOFF
                    .saturating_mul(1 << (held.attempts - 1).min(16))
                    .min(MAX_HELD_BACKOFF);
                tracing::warn!(
                    entry = %refused[0].entry.describe(),
                    attempts = held.attempts,
                    retry_in_ms = pause.as_millis() as u64,
                    error = %error,
                    "the database refuses a journal entry; its call's entries wait, the others go on"
                );
                held.retry_at = Instant::now() + pause;
            }
            // Refused first, then what arrived for the call meanwhile.
            while let Some(queued) = refused.pop_back() {
                held.entries.push_front(queued);
            }
        }
        if !attempt.unwritten.is_empty() {
            let unwritten: Vec<Queued> = attempt.unwritten.into_iter().map(&mut take).collect();
            if in_flight.held_job {
                for queued in unwritten.into_iter().rev() {
                    match self.held.get_mut(queued.entry.call_key()) {
                        Some(held) => held.entries.push_front(queued),
                        None => self.memory.push_front(queued),
                    }
                }
            } else {
                for queued in unwritten.into_iter().rev() {
                    self.memory.push_front(queued);
                }
            }
        }
        self.held.retain(|_, held| !held.entries.is_empty());
        if done > 0 {
            self.backlog.fetch_sub(done as i64, Ordering::Relaxed);
        }
        match attempt.unavailable {
            Some(error) => {
                tracing::warn!(
                    error = %error,
                    waiting = self.unfinished(),
                    retry_in_ms = self.backoff.as_millis() as u64,
                    "database unavailable; journal entries wait"
                );
                self.stalled_until = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
            None => self.backoff = FIRST_BACKOFF,
        }
    }

    /// Shutdown: everything not yet written, oldest first, into the spill file.
    fn spill_everything(&mut self) -> std::io::Result<usize> {
        let mut pending: Vec<Queued> = Vec::new();
        if let Some(in_flight) = self.in_flight.take() {
            drop(in_flight.job);
            pending.extend(
                Arc::try_unwrap(in_flight.entries).unwrap_or_else(|shared| (*shared).clone()),
            );
        }
        for (_, held) in self.held.drain() {
            pending.extend(held.entries);
        }
        pending.extend(self.memory.drain(..));
        while let Ok(command) = self.rx.try_recv() {
            match command {
                Command::Entry(entry) => {
                    // Newer than everything in the file: keep them after it.
                    self.accept(entry);
                }
                Command::Flush(done) => drop(done),
                Command::SpillAll(done) => {
                    let _ = done.send(Ok(0));
                }
            }
        }
        pending.extend(self.memory.drain(..));
        // In flight, held and memory entries are all older than the file's unread
        // ones, except those `accept` just queued in memory while not spilling.
        pending.sort_by_key(|q| q.n);
        let unread = if self.spill_next_n < self.spill_end_n {
            self.spill.take()
        } else {
            if let Some(file) = self.spill.take() {
                let _ = file.remove();
            }
            None
        };
        if pending.is_empty() && unread.is_none() {
            return Ok(0);
        }
        let count = spill::write_all_durably(
            &self.config.spill_path,
            pending.into_iter().map(|q| q.entry),
            unread,
        )?;
        self.backlog.store(0, Ordering::Relaxed);
        Ok(count)
    }
}

async fn sleep_until(wake: Option<Instant>) {
    if let Some(wake) = wake {
        tokio::time::sleep_until(wake).await;
    }
}

/// Writes `entries` in one transaction; if the database refuses it as data, call by
/// call, then entry by entry, so only the refused entry's call waits.
async fn attempt(store: &Store, entries: &[Queued]) -> Attempt {
    let mut out = Attempt::default();
    let all: Vec<usize> = (0..entries.len()).collect();
    match store.apply_all(entries.iter().map(|q| &q.entry)).await {
        Ok(()) => {
            out.written = all;
            return out;
        }
        Err(error) if error.is_unavailable() => {
            out.unwritten = all;
            out.unavailable = Some(error);
            return out;
        }
        Err(error) if entries.len() == 1 => {
            out.refused.push((error, all));
            return out;
        }
        Err(_) => {}
    }
    // By call, each call's entries in order, calls in order of first appearance.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for (i, queued) in entries.iter().enumerate() {
        let next = groups.len();
        let group = *group_of.entry(queued.entry.call_key()).or_insert(next);
        if group == next {
            groups.push(Vec::new());
        }
        groups[group].push(i);
    }
    let mut groups = groups.into_iter();
    while let Some(group) = groups.next() {
        if group.len() > 1 {
            match store
                .apply_all(group.iter().map(|&i| &entries[i].entry))
                .await
            {
                Ok(()) => {
                    out.written.extend(group);
                    continue;
                }
                Err(error) if error.is_unavailable() => {
                    out.unwritten.extend(group);
                    out.unwritten.extend(groups.flatten());
                    out.unavailable = Some(error);
                    return out;
                }
                Err(_) => {}
            }
        }
        for (position, &i) in group.iter().enumerate() {
            match store.apply_all(std::iter::once(&entries[i].entry)).await {
                Ok(()) => out.written.push(i),
                Err(error) if error.is_unavailable() => {
                    out.unwritten.extend(&group[position..]);
                    out.unwritten.extend(groups.flatten());
                    out.unavailable = Some(error);
                    return out;
                }
                Err(error) => {
                    out.refused.push((error, group[position..].to_vec()));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use serde_json::json;
    use switchboard_actors::journal::{CallEvent, Journal as _, JournalEntry};
    use switchboard_actors::CallId;

    use super::*;

    /// Log lines, as a log shipper would receive them.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // Issue 9, item 16: a refused entry used to be logged whole (caller numbers and
    // a 113 KB WAV in one line). The log names it by id and size, and says why.
    #[tokio::test]
    async fn a_refused_entry_is_logged_by_id_and_size_with_its_cause_never_its_contents() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let store = Store::connect("sqlite::memory:", "node")
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let path = std::env::temp_dir().join(format!("sb_spill_{}.spill", uuid::Uuid::new_v4()));
        let writer = JournalWriter::spawn_with(
            store,
            JournalConfig {
                reject_after_attempts: 1,
                spill_path: path,
                ..JournalConfig::default()
            },
        );
        // Neither call has a row: both entries are refused (foreign key).
        let call = CallId::new();
        writer.append(JournalEntry::Event(CallEvent {
            call_id: call.clone(),
            seq: 1,
            at: 1,
            kind: "created",
            agent_id: None,
            detail: json!({ "from": "+14155559876" }),
        }));
        writer.append(JournalEntry::Recording {
            call_id: call.clone(),
            wav: Bytes::from(vec![0x41; 113_000]),
            duration_ms: 14_000,
            at: 1,
        });
        writer.flush().await;

        let logs = String::from_utf8(captured.0.lock().expect("logs").clone()).expect("UTF-8");
        let refused: Vec<&str> = logs.lines().filter(|l| l.contains("left out")).collect();
        assert_eq!(refused.len(), 2, "{logs}");
        for line in &refused {
            assert!(line.contains(call.as_str()), "the call is named: {line}");
            assert!(line.contains("bytes="), "the size is given: {line}");
            assert!(
                line.to_lowercase().contains("foreign key"),
                "the cause is given: {line}"
            );
            assert!(!line.contains("+14155559876"), "no caller number: {line}");
            assert!(line.len() < 1_000, "no audio: {} bytes", line.len());
        }
    }
}
