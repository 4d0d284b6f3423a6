//! The journal's write throughput (issue 16: what the fence costs): 2,000 calls,
//! each an `Opened`, ten events, two status changes and a final record (14
//! entries), written through `Store::apply` in transactions of up to 256 entries
//! as the journal writer batches them, interleaved across 64 calls at a time as
//! live calls' entries arrive. Ignored by default; run it with
//!
//! ```sh
//! cargo test --release --locked --test api journal_bench -- --ignored --nocapture
//! ```
//!
//! It prints entries per second per backend, the median of 5 rounds (a fresh
//! database each). Figures are in docs/BENCHMARKS.md ("Cluster mode": "What the
//! journal's fence costs"); no time limit is asserted here, only that every call's
//! record is whole and nothing was fenced.

use std::time::Instant;

use serde_json::json;
use switchboard::store::Store;
use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, JournalEntry};
use switchboard_actors::machine::{Outcome, Phase};
use switchboard_actors::{CallId, Workspace};

use crate::db::{drop_database, fresh_database_url, TestDb};

const CALLS: usize = 2_000;
/// Calls whose entries arrive interleaved, as live calls' do.
const LIVE: usize = 64;
/// The journal writer's `BATCH_SIZE`.
const BATCH: usize = 256;

/// One call's entries, in the order its actor appends them.
fn call_entries(id: &CallId) -> Vec<JournalEntry> {
    let at = now_ms();
    let mut entries = vec![JournalEntry::Opened(CallOpened {
        id: id.clone(),
        call_sid: Some(crate::helpers::new_call_sid()),
        from: "+15550001111".into(),
        to: "+15550002222".into(),
        workspace: Some(Workspace::parse("blue").expect("a workspace")),
        direction: "inbound",
        started_at: at,
    })];
    let status = |status| JournalEntry::Status {
        call_id: id.clone(),
        status,
        agent_id: None,
        answered_at: (status == Phase::Connected).then_some(at),
    };
    for seq in 1..=10 {
        entries.push(JournalEntry::Event(CallEvent {
            call_id: id.clone(),
            seq,
            at,
            kind: "ring",
            agent_id: None,
            detail: json!({ "n": seq }),
        }));
        match seq {
            3 => entries.push(status(Phase::Ringing)),
            6 => entries.push(status(Phase::Connected)),
            _ => {}
        }
    }
    entries.push(JournalEntry::Closed {
        call_id: id.clone(),
        outcome: Outcome::Answered,
        reason: "caller_hung_up".into(),
        agent_id: None,
        ended_at: at,
    });
    entries
}

/// Every call's entries, `LIVE` calls at a time interleaved entry by entry.
fn workload() -> (Vec<CallId>, Vec<JournalEntry>) {
    let ids: Vec<CallId> = (0..CALLS).map(|_| CallId::new()).collect();
    let mut all = Vec::new();
    for group in ids.chunks(LIVE) {
        let mut calls: Vec<std::vec::IntoIter<JournalEntry>> = group
            .iter()
            .map(|id| call_entries(id).into_iter())
            .collect();
        loop {
            let before = all.len();
            for call in &mut calls {
                all.extend(call.next());
            }
            if all.len() == before {
                break;
            }
        }
    }
    (ids, all)
}

async fn entries_per_second(kind: TestDb) -> f64 {
    let url = fresh_database_url(kind).await;
    let store = Store::connect(&url, "node-a").await.expect("connecting");
    store.migrate().await.expect("migrating");
    let (ids, entries) = workload();
    let started = Instant::now();
    for batch in entries.chunks(BATCH) {
        store.apply(batch).await.expect("applied");
    }
    let rate = entries.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(store.fenced_entries(), 0);
    for id in ids.iter().step_by(CALLS / 20) {
        let call = store.get_call(id).await.expect("read").expect("recorded");
        assert_eq!(call.events.len(), 10);
        assert_eq!(call.outcome.as_deref(), Some("answered"));
    }
    store.close().await;
    drop_database(&url).await;
    rate
}

#[actix_rt::test]
#[ignore = "benchmark: run with --run-ignored only"]
async fn journal_bench_writes_the_records_of_2000_calls_in_batches() {
    for kind in [TestDb::Sqlite, TestDb::Postgres] {
        let mut rounds = Vec::new();
        for _ in 0..5 {
            rounds.push(entries_per_second(kind).await);
        }
        rounds.sort_by(f64::total_cmp);
        println!(
            "journal_bench {kind:?}: {:.0} entries/s (median of 5; rounds {:?})",
            rounds[2],
            rounds.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
    }
}
