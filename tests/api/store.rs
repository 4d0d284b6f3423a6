//! The store against real databases: every test runs once on SQLite and once on
//! PostgreSQL, each time on a fresh, migrated database.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use switchboard::domain::assistant::ToolSpec;
use switchboard::outbound::consent;
use switchboard::store::{
    AssistantFields, CallView, ConsentId, ConsentRecord, DeleteAssistant, JournalConfig,
    JournalWriter, NewAgent, Store, StoreError,
};
use switchboard_actors::journal::{now_ms, CallEvent, CallOpened, Journal as _, JournalEntry};
use switchboard_actors::machine::{Outcome, Phase};
use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, AssistantId, CallId, Workspace};

use crate::db::{drop_database, fresh_database_url, set_postgres_reachable, TestDb};

const NODE: &str = "node-a";

/// `store_test!(name)` runs `async fn name(store: Store)` on both backends;
/// `store_test!(name, with_url)` passes the database URL too.
macro_rules! store_test {
    ($name:ident) => {
        mod $name {
            #[actix_rt::test]
            async fn on_sqlite() {
                super::run(super::TestDb::Sqlite, |store, _url| super::$name(store)).await
            }

            #[actix_rt::test]
            async fn on_postgres() {
                super::run(super::TestDb::Postgres, |store, _url| super::$name(store)).await
            }
        }
    };
    ($name:ident, with_url) => {
        mod $name {
            #[actix_rt::test]
            async fn on_sqlite() {
                super::run(super::TestDb::Sqlite, super::$name).await
            }

            #[actix_rt::test]
            async fn on_postgres() {
                super::run(super::TestDb::Postgres, super::$name).await
            }
        }
    };
}

/// A fresh migrated database for `test`, dropped afterwards when the test passes.
async fn run<F, Fut>(kind: TestDb, test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = fresh_database_url(kind).await;
    let store = Store::connect(&url, NODE).await.expect("connecting");
    store.migrate().await.expect("migrating");
    test(store.clone(), url.clone()).await;
    store.close().await;
    drop_database(&url).await;
}

// ---- migrations and connection ---------------------------------------------------

store_test!(migrations_apply_twice_without_error);
async fn migrations_apply_twice_without_error(store: Store) {
    store.migrate().await.expect("second migration run");
    store.ping().await.expect("ping");
}

#[actix_rt::test]
async fn a_missing_sqlite_file_is_created_on_first_run() {
    let folder = std::env::temp_dir().join(format!("sb_test_{}", uuid::Uuid::new_v4().simple()));
    let path = folder.join("nested").join("switchboard.db");
    let store = Store::connect(&format!("sqlite:{}", path.display()), NODE)
        .await
        .expect("connecting creates the file");
    store.migrate().await.expect("migrating");
    store.ping().await.expect("ping");
    assert!(path.exists(), "the database file exists");
    assert!(
        folder.join("nested").join("switchboard.db-wal").exists(),
        "the database is in WAL mode"
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(folder);
}

// ---- agents and numbers -----------------------------------------------------------

store_test!(agents_are_found_by_token_hash);
async fn agents_are_found_by_token_hash(store: Store) {
    let ada = new_agent("ada", "hash-ada");
    let bob = new_agent("bob", "hash-bob");
    let created = store.create_agent(&ada).await.expect("create ada");
    store.create_agent(&bob).await.expect("create bob");
    assert_eq!(created.id, ada.id);
    assert_eq!(created.workspace, workspace());

    let found = store.agent_by_token_hash("hash-ada").await.expect("lookup");
    assert_eq!(found, Some(created.clone()));
    assert_eq!(
        store
            .agent_by_token_hash("hash-nobody")
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(store.get_agent(&ada.id).await.expect("get"), Some(created));
    assert_eq!(store.get_agent(&AgentId::new()).await.expect("get"), None);

    let some = store
        .get_agents(&[bob.id.clone(), AgentId::new(), ada.id.clone()])
        .await
        .expect("get many");
    let mut expected = vec![ada.id.clone(), bob.id.clone()];
    expected.sort();
    assert_eq!(
        some.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(store.get_agents(&[]).await.expect("get none").is_empty());

    let all = store.list_agents().await.expect("list");
    assert_eq!(
        all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["ada", "bob"]
    );
}

store_test!(duplicate_token_hash_is_refused);
async fn duplicate_token_hash_is_refused(store: Store) {
    store
        .create_agent(&new_agent("ada", "same-hash"))
        .await
        .expect("first");
    let second = store.create_agent(&new_agent("bob", "same-hash")).await;
    assert!(
        matches!(second, Err(StoreError::Duplicate(_))),
        "{second:?}"
    );

    let mut same_id = new_agent("carol", "other-hash");
    let first = store.create_agent(&same_id).await.expect("carol");
    same_id.token_hash = "third-hash".into();
    let again = store.create_agent(&same_id).await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");
    assert_eq!(store.list_agents().await.expect("list").len(), 2);
    assert_eq!(store.get_agent(&first.id).await.expect("get"), Some(first));
}

store_test!(numbers_upsert_replaces_the_route);
async fn numbers_upsert_replaces_the_route(store: Store) {
    let agent = AgentId::new();
    let first = store
        .upsert_number("+15550001111", &workspace(), &Route::Voicemail)
        .await
        .expect("insert");
    assert_eq!(first.route, Route::Voicemail);
    assert_eq!(first.created_at, first.updated_at);

    let other = Workspace::parse("other").expect("workspace");
    let route = Route::Agents {
        agent_ids: vec![agent.clone()],
    };
    let second = store
        .upsert_number("+15550001111", &other, &route)
        .await
        .expect("update");
    assert_eq!(second.route, route);
    assert_eq!(second.workspace, other);
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);

    assert_eq!(
        store.get_number("+15550001111").await.expect("get"),
        Some(second.clone())
    );
    assert_eq!(store.get_number("+15559999999").await.expect("get"), None);
    store
        .upsert_number("+15550000000", &workspace(), &Route::Voicemail)
        .await
        .expect("insert another");
    let all = store.list_numbers().await.expect("list");
    assert_eq!(
        all.iter().map(|n| n.e164.as_str()).collect::<Vec<_>>(),
        ["+15550000000", "+15550001111"]
    );
}

// ---- the call record ---------------------------------------------------------------

store_test!(journal_entries_build_the_call_and_its_ordered_trail);
async fn journal_entries_build_the_call_and_its_ordered_trail(store: Store) {
    let call = CallId::new();
    let agent = AgentId::new();
    store
        .apply(&[
            opened(&call, "CA-trail"),
            event(&call, 1, "created", None),
            status(&call, Phase::Ringing, None, None),
        ])
        .await
        .expect("first batch");

    let live = stored_call(&store, &call).await;
    assert_eq!(live.status, "ringing");
    assert_eq!(
        (
            live.direction.as_str(),
            live.from.as_str(),
            live.to.as_str()
        ),
        ("inbound", "+15551230000", "+15550001111")
    );
    assert_eq!(live.ended_at, None);

    store
        .apply(&[
            event(&call, 2, "ringing", None),
            status(&call, Phase::Connected, Some(&agent), Some(1_000)),
            event(&call, 3, "answered", Some(&agent)),
            // a later status without an agent keeps the one already recorded
            status(&call, Phase::Connected, None, Some(2_000)),
            event(&call, 4, "ended", Some(&agent)),
            closed(&call, Outcome::Answered, "caller_hangup", None, 5_000),
        ])
        .await
        .expect("second batch");

    let view = stored_call(&store, &call).await;
    assert_eq!(view.id, call.as_str());
    assert_eq!(view.call_sid.as_deref(), Some("CA-trail"));
    assert_eq!(view.status, "ended");
    assert_eq!(view.outcome.as_deref(), Some("answered"));
    assert_eq!(view.end_reason.as_deref(), Some("caller_hangup"));
    assert_eq!(view.agent_id.as_deref(), Some(agent.as_str()));
    assert_eq!(view.workspace.as_deref(), Some("acme"));
    assert_eq!(view.answered_at, Some(1_000), "the first answer time stays");
    assert_eq!(view.ended_at, Some(5_000));
    assert!(!view.has_recording);
    assert_eq!(
        view.events
            .iter()
            .map(|e| (e.seq, e.kind.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "created"),
            (2, "ringing"),
            (3, "answered"),
            (4, "ended")
        ]
    );
    assert_eq!(view.events[2].agent_id.as_deref(), Some(agent.as_str()));
    assert_eq!(
        view.events[2].detail,
        json!({ "seq": 3, "nested": { "ok": true } })
    );

    assert_eq!(
        store.call_id_by_sid("CA-trail").await.expect("by sid"),
        Some(call.clone())
    );
    assert_eq!(
        store.call_id_by_sid("CA-unknown").await.expect("by sid"),
        None
    );
    assert!(store
        .get_call(&call_id("nope"))
        .await
        .expect("get")
        .is_none());
}

store_test!(applying_the_same_batch_twice_changes_nothing);
async fn applying_the_same_batch_twice_changes_nothing(store: Store) {
    let call = CallId::new();
    let batch = [
        opened(&call, "CA-twice"),
        event(&call, 1, "created", None),
        status(&call, Phase::Voicemail, None, None),
        event(&call, 2, "voicemail", None),
        recording(&call, Bytes::from_static(b"RIFF-first")),
        event(&call, 3, "ended", None),
        closed(&call, Outcome::Voicemail, "caller_hangup", None, 9_000),
    ];
    store.apply(&batch).await.expect("first time");
    let before = serde_json::to_value(store.get_call(&call).await.expect("get")).expect("json");
    store.apply(&batch).await.expect("second time");
    let after = serde_json::to_value(store.get_call(&call).await.expect("get")).expect("json");
    assert_eq!(before, after);
    assert_eq!(after["events"].as_array().map(Vec::len), Some(3));
}

store_test!(a_call_is_closed_exactly_once);
async fn a_call_is_closed_exactly_once(store: Store) {
    let call = CallId::new();
    let agent = AgentId::new();
    store
        .apply(&[
            opened(&call, "CA-once"),
            closed(&call, Outcome::Abandoned, "caller_hangup", None, 1_000),
        ])
        .await
        .expect("close");
    store
        .apply(&[
            status(&call, Phase::Connected, Some(&agent), Some(2_000)),
            closed(&call, Outcome::Failed, "twilio_failed", Some(&agent), 3_000),
        ])
        .await
        .expect("late status and second close");

    let view = stored_call(&store, &call).await;
    assert_eq!(view.status, "ended");
    assert_eq!(view.outcome.as_deref(), Some("abandoned"));
    assert_eq!(view.end_reason.as_deref(), Some("caller_hangup"));
    assert_eq!(view.ended_at, Some(1_000));
    assert_eq!(view.agent_id, None);
    assert_eq!(view.answered_at, None);
}

store_test!(
    open_calls_of_this_node_are_closed_as_interrupted_on_recovery,
    with_url
);
async fn open_calls_of_this_node_are_closed_as_interrupted_on_recovery(store: Store, url: String) {
    let agent = AgentId::new();
    let open = CallId::new();
    let done = CallId::new();
    store
        .apply(&[
            opened(&open, "CA-open"),
            event(&open, 1, "created", None),
            status(&open, Phase::Connected, Some(&agent), Some(1_000)),
            event(&open, 2, "answered", Some(&agent)),
            opened(&done, "CA-done"),
            closed(&done, Outcome::Abandoned, "caller_hangup", None, 2_000),
        ])
        .await
        .expect("this node's calls");
    let elsewhere = Store::connect(&url, "node-b").await.expect("second node");
    let theirs = CallId::new();
    elsewhere
        .apply(&[
            opened(&theirs, "CA-theirs"),
            event(&theirs, 1, "created", None),
        ])
        .await
        .expect("the other node's call");

    assert_eq!(store.close_interrupted_calls().await.expect("recover"), 1);
    assert_eq!(
        store
            .close_interrupted_calls()
            .await
            .expect("recover again"),
        0
    );

    let view = stored_call(&store, &open).await;
    assert_eq!(view.status, "ended");
    assert_eq!(view.outcome.as_deref(), Some("interrupted"));
    assert_eq!(view.end_reason.as_deref(), Some("engine_restart"));
    assert!(view.ended_at.is_some());
    assert_eq!(view.agent_id.as_deref(), Some(agent.as_str()));
    let last = view.events.last().expect("events");
    assert_eq!((last.seq, last.kind.as_str()), (3, "ended"));
    assert_eq!(
        last.detail,
        json!({ "outcome": "interrupted", "reason": "engine_restart" })
    );

    let done = stored_call(&store, &done).await;
    assert_eq!(done.outcome.as_deref(), Some("abandoned"));
    assert!(done.events.is_empty());

    let theirs = stored_call(&store, &theirs).await;
    assert_eq!(theirs.status, "starting");
    assert_eq!(theirs.ended_at, None);
    assert_eq!(theirs.events.len(), 1);
    elsewhere.close().await;
}

store_test!(late_events_follow_the_trail);
async fn late_events_follow_the_trail(store: Store) {
    let call = CallId::new();
    store
        .apply(&[
            opened(&call, "CA-late"),
            event(&call, 1, "created", None),
            event(&call, 2, "ended", None),
            closed(&call, Outcome::Abandoned, "caller_hangup", None, 1_000),
        ])
        .await
        .expect("call");
    store
        .append_late_event(&call, "twilio_status", &json!({ "status": "completed" }))
        .await
        .expect("late event");
    store
        .append_late_event(&call, "twilio_status", &json!({ "status": "billed" }))
        .await
        .expect("another late event");
    store
        .append_late_event(&call_id("unknown-call"), "twilio_status", &json!({}))
        .await
        .expect("an unknown call is not an error");

    let view = stored_call(&store, &call).await;
    let tail: Vec<_> = view
        .events
        .iter()
        .skip(2)
        .map(|e| (e.seq, e.detail.clone()))
        .collect();
    assert_eq!(
        tail,
        [
            (3, json!({ "status": "completed" })),
            (4, json!({ "status": "billed" }))
        ]
    );
    assert_eq!(view.outcome.as_deref(), Some("abandoned"));
}

store_test!(recordings_round_trip_byte_exact);
async fn recordings_round_trip_byte_exact(store: Store) {
    let call = CallId::new();
    let wav: Vec<u8> = (0..=255u8).cycle().take(64 * 1024 + 7).collect();
    store
        .apply(&[
            opened(&call, "CA-rec"),
            recording(&call, Bytes::from(wav.clone())),
        ])
        .await
        .expect("recording");
    // a replayed entry keeps the first recording
    store
        .apply(&[recording(&call, Bytes::from_static(b"other"))])
        .await
        .expect("replay");

    let stored = store
        .get_recording(&call)
        .await
        .expect("get")
        .expect("recording");
    assert_eq!(stored.content_type, "audio/wav");
    assert_eq!(stored.duration_ms, 4_200);
    assert!(stored.bytes == wav, "bytes differ");
    assert!(stored_call(&store, &call).await.has_recording);
    assert!(store
        .get_recording(&call_id("nope"))
        .await
        .expect("get")
        .is_none());
}

// ---- the journal writer ----------------------------------------------------------

store_test!(journal_writer_flush_waits_for_the_write);
async fn journal_writer_flush_waits_for_the_write(store: Store) {
    let writer = JournalWriter::spawn(store.clone());
    let calls: Vec<CallId> = (0..4).map(|_| CallId::new()).collect();
    // more than one batch, interleaved between calls as live calls would be
    for call in &calls {
        writer.append(opened(call, &format!("CA-{call}")));
    }
    for seq in 1..=200 {
        for call in &calls {
            writer.append(event(call, seq, "tick", None));
        }
    }
    for call in &calls {
        writer.append(closed(
            call,
            Outcome::Answered,
            "caller_hangup",
            None,
            7_000,
        ));
    }
    writer.flush().await;
    assert_eq!(writer.backlog(), 0);
    for call in &calls {
        let view = stored_call(&store, call).await;
        assert_eq!(view.events.len(), 200);
        assert!(view.events.iter().zip(1..).all(|(e, seq)| e.seq == seq));
        assert_eq!(view.outcome.as_deref(), Some("answered"));
    }
    // a flush with nothing queued returns too
    writer.flush().await;
}

store_test!(the_writer_retries_a_refused_batch_until_it_is_accepted);
async fn the_writer_retries_a_refused_batch_until_it_is_accepted(store: Store) {
    let writer = JournalWriter::spawn(store.clone());
    let call = CallId::new();
    // the event of a call that has no row yet breaks the foreign key: refused
    writer.append(event(&call, 1, "created", None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(writer.backlog(), 1, "the refused entry is kept");
    assert!(store.get_call(&call).await.expect("get").is_none());

    store
        .apply(&[opened(&call, "CA-retry")])
        .await
        .expect("the call row");
    flush_within(&writer, Duration::from_secs(15)).await;
    let view = stored_call(&store, &call).await;
    assert_eq!(view.events.len(), 1);
}

/// A real outage: the database refuses connections and cuts the open ones, then
/// comes back; the writer keeps what it was given and writes it afterwards.
#[actix_rt::test]
async fn journal_writer_survives_a_database_outage_on_postgres() {
    run(TestDb::Postgres, |store, url| async move {
        let writer = JournalWriter::spawn(store.clone());
        let call = CallId::new();
        writer.append(opened(&call, "CA-outage"));
        writer.flush().await;

        set_postgres_reachable(&url, false).await;
        writer.append(event(&call, 1, "created", None));
        writer.append(closed(
            &call,
            Outcome::Abandoned,
            "caller_hangup",
            None,
            1_000,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(writer.backlog(), 2, "entries wait for the database");
        assert!(store.ping().await.is_err(), "the database is away");

        set_postgres_reachable(&url, true).await;
        flush_within(&writer, Duration::from_secs(30)).await;
        let view = stored_call(&store, &call).await;
        assert_eq!(view.events.len(), 1);
        assert_eq!(view.outcome.as_deref(), Some("abandoned"));
    })
    .await;
}

// ---- helpers ----------------------------------------------------------------------

/// The call's stored view, which must exist.
async fn stored_call(store: &Store, id: &CallId) -> CallView {
    store.get_call(id).await.expect("get").expect("call")
}

async fn flush_within(writer: &JournalWriter, limit: Duration) {
    tokio::time::timeout(limit, writer.flush())
        .await
        .expect("the journal writer caught up");
    assert_eq!(writer.backlog(), 0);
}

fn workspace() -> Workspace {
    Workspace::parse("acme").expect("workspace")
}

fn new_agent(name: &str, token_hash: &str) -> NewAgent {
    NewAgent {
        id: AgentId::new(),
        name: name.to_owned(),
        workspace: workspace(),
        token_hash: token_hash.to_owned(),
    }
}

fn opened(call: &CallId, sid: &str) -> JournalEntry {
    JournalEntry::Opened(CallOpened {
        id: call.clone(),
        call_sid: Some(sid.to_owned()),
        from: "+15551230000".to_owned(),
        to: "+15550001111".to_owned(),
        workspace: Some(workspace()),
        direction: "inbound",
        started_at: now_ms(),
    })
}

fn event(call: &CallId, seq: i64, kind: &'static str, agent: Option<&AgentId>) -> JournalEntry {
    JournalEntry::Event(CallEvent {
        call_id: call.clone(),
        seq,
        at: now_ms(),
        kind,
        agent_id: agent.cloned(),
        detail: json!({ "seq": seq, "nested": { "ok": true } }),
    })
}

fn status(
    call: &CallId,
    status: Phase,
    agent: Option<&AgentId>,
    answered_at: Option<i64>,
) -> JournalEntry {
    JournalEntry::Status {
        call_id: call.clone(),
        status,
        agent_id: agent.cloned(),
        answered_at,
    }
}

fn closed(
    call: &CallId,
    outcome: Outcome,
    reason: &str,
    agent: Option<&AgentId>,
    ended_at: i64,
) -> JournalEntry {
    JournalEntry::Closed {
        call_id: call.clone(),
        outcome,
        reason: reason.to_owned(),
        agent_id: agent.cloned(),
        ended_at,
    }
}

fn recording(call: &CallId, wav: Bytes) -> JournalEntry {
    JournalEntry::Recording {
        call_id: call.clone(),
        wav,
        duration_ms: 4_200,
        at: now_ms(),
    }
}

store_test!(an_entry_the_database_rejects_does_not_hold_up_the_others);
async fn an_entry_the_database_rejects_does_not_hold_up_the_others(store: Store) {
    let writer = JournalWriter::spawn(store.clone());
    let orphan = CallId::new();
    let call = CallId::new();
    // An event of a call that never opens can never be written...
    writer.append(event(&orphan, 1, "created", None));
    // ...and must not keep this call's record out of the database forever.
    writer.append(opened(&call, "CA-after-orphan"));
    flush_within(&writer, Duration::from_secs(30)).await;
    assert_eq!(writer.backlog(), 0);
    assert!(store.get_call(&call).await.expect("get").is_some());
    assert!(store.get_call(&orphan).await.expect("get").is_none());
}

// ---- AI: assistants, transcripts, results ------------------------------------------

fn call_id(raw: &str) -> CallId {
    CallId::parse(raw).expect("a valid call id")
}

fn assistant_id(raw: &str) -> AssistantId {
    AssistantId::parse(raw).expect("a valid assistant id")
}

fn assistant_fields(name: &str) -> AssistantFields {
    AssistantFields {
        name: name.to_owned(),
        workspace: workspace(),
        instructions: "Book tables.".to_owned(),
        voice: "marin".to_owned(),
        model: "gpt-realtime".to_owned(),
        greeting: Some("Hello!".to_owned()),
        tools: vec![
            ToolSpec::TransferToHuman,
            ToolSpec::Webhook {
                name: "lookup".to_owned(),
                description: "Looks up an order".to_owned(),
                parameters: json!({ "type": "object", "properties": { "id": { "type": "string" } } }),
                url: "https://example.com/hook".to_owned(),
                timeout_ms: 2_500,
            },
        ],
        on_failure: Route::Agents {
            agent_ids: vec![AgentId::new()],
        },
    }
}

store_test!(assistants_round_trip_and_an_update_keeps_created_at);
async fn assistants_round_trip_and_an_update_keeps_created_at(store: Store) {
    let created = store
        .create_assistant(&assistant_id("front-desk"), &assistant_fields("Front desk"))
        .await
        .expect("create");
    assert_eq!(created.tools, assistant_fields("x").tools);
    assert_eq!(created.greeting.as_deref(), Some("Hello!"));
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(
        store
            .get_assistant(&assistant_id("front-desk"))
            .await
            .expect("get"),
        Some(created.clone())
    );
    let again = store
        .create_assistant(&assistant_id("front-desk"), &assistant_fields("Other"))
        .await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");

    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut fields = assistant_fields("Back office");
    fields.greeting = None;
    fields.tools = vec![];
    fields.on_failure = Route::Voicemail;
    let updated = store
        .update_assistant(&assistant_id("front-desk"), &fields)
        .await
        .expect("update")
        .expect("the assistant");
    assert_eq!(updated.name, "Back office");
    assert_eq!(
        (
            updated.greeting.clone(),
            updated.tools.len(),
            updated.on_failure.clone()
        ),
        (None, 0, Route::Voicemail)
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(
        store
            .update_assistant(&assistant_id("nobody"), &fields)
            .await
            .expect("update"),
        None
    );
    store
        .create_assistant(&assistant_id("another"), &assistant_fields("Another"))
        .await
        .expect("create another");
    let all = store.list_assistants().await.expect("list");
    assert_eq!(
        all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["Another", "Back office"]
    );
    assert_eq!(
        store
            .get_assistant(&assistant_id("nobody"))
            .await
            .expect("get"),
        None
    );
}

store_test!(an_assistant_a_number_routes_to_is_not_deleted);
async fn an_assistant_a_number_routes_to_is_not_deleted(store: Store) {
    store
        .create_assistant(&assistant_id("front-desk"), &assistant_fields("Front desk"))
        .await
        .expect("create");
    let route = Route::Ai {
        assistant_id: assistant_id("front-desk"),
    };
    store
        .upsert_number("+15550001111", &workspace(), &route)
        .await
        .expect("number");
    assert_eq!(
        store
            .delete_assistant(&assistant_id("front-desk"))
            .await
            .expect("delete"),
        DeleteAssistant::InUse("+15550001111".to_owned())
    );
    assert!(store
        .get_assistant(&assistant_id("front-desk"))
        .await
        .expect("get")
        .is_some());
    store
        .upsert_number("+15550001111", &workspace(), &Route::Voicemail)
        .await
        .expect("re-route");
    assert_eq!(
        store
            .delete_assistant(&assistant_id("front-desk"))
            .await
            .expect("delete"),
        DeleteAssistant::Deleted
    );
    assert_eq!(
        store
            .delete_assistant(&assistant_id("front-desk"))
            .await
            .expect("delete"),
        DeleteAssistant::NotFound
    );
}

store_test!(ai_entries_store_an_ordered_transcript_and_the_results_once);
async fn ai_entries_store_an_ordered_transcript_and_the_results_once(store: Store) {
    let call = CallId::new();
    let turn = |seq: i64, role: &'static str, text: &str| JournalEntry::Turn {
        call_id: call.clone(),
        seq,
        at: 1_000 * seq,
        role,
        text: text.to_owned(),
    };
    let cost = json!({ "currency": "USD", "total": 0.0123, "summary": null });
    let batch = [
        opened(&call, "CA-ai"),
        JournalEntry::Assistant {
            call_id: call.clone(),
            assistant_id: assistant_id("front-desk"),
        },
        turn(2, "caller", "A table for two."),
        turn(1, "assistant", "Hello!"),
        event(&call, 1, "created", None),
        closed(&call, Outcome::Answered, "caller_hangup", None, 9_000),
        JournalEntry::AiResult {
            call_id: call.clone(),
            summary: Some("Booked.".to_owned()),
            ai_outcome: Some("goal_achieved".to_owned()),
            cost: cost.clone(),
        },
    ];
    store.apply(&batch).await.expect("first time");
    // A retried batch (after a failed commit) changes nothing.
    store.apply(&batch).await.expect("second time");

    let turns = store.turns(&call).await.expect("turns");
    assert_eq!(
        turns
            .iter()
            .map(|t| (t.seq, t.at, t.role.as_str(), t.text.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, 1_000, "assistant", "Hello!"),
            (2, 2_000, "caller", "A table for two.")
        ]
    );
    let view = stored_call(&store, &call).await;
    assert_eq!(view.assistant_id.as_deref(), Some("front-desk"));
    assert_eq!(view.summary.as_deref(), Some("Booked."));
    assert_eq!(view.ai_outcome.as_deref(), Some("goal_achieved"));
    assert_eq!(view.cost, Some(cost));
    assert_eq!(
        view.outcome.as_deref(),
        Some("answered"),
        "the AI result comes after the close"
    );
    assert!(store.call_exists(&call).await.expect("exists"));
    assert!(!store.call_exists(&call_id("nope")).await.expect("exists"));
    assert!(store
        .turns(&call_id("nope"))
        .await
        .expect("turns")
        .is_empty());

    // A call without AI gets its cost alone.
    let plain = CallId::new();
    let plain_cost = json!({ "currency": "USD", "total": 0.0085 });
    store
        .apply(&[
            opened(&plain, "CA-plain"),
            JournalEntry::Cost {
                call_id: plain.clone(),
                cost: plain_cost.clone(),
            },
        ])
        .await
        .expect("cost");
    let view = stored_call(&store, &plain).await;
    assert_eq!(view.cost, Some(plain_cost));
    assert_eq!(
        (view.summary, view.ai_outcome, view.assistant_id),
        (None, None, None)
    );
}

store_test!(the_writer_keeps_a_turn_of_a_call_not_yet_recorded_until_it_can_write_it);
async fn the_writer_keeps_a_turn_of_a_call_not_yet_recorded_until_it_can_write_it(store: Store) {
    let writer = JournalWriter::spawn(store.clone());
    let call = CallId::new();
    writer.append(JournalEntry::Turn {
        call_id: call.clone(),
        seq: 1,
        at: now_ms(),
        role: "caller",
        text: "Hello?".to_owned(),
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(writer.backlog(), 1, "the refused turn is kept");
    store
        .apply(&[opened(&call, "CA-turn-retry")])
        .await
        .expect("the call row");
    flush_within(&writer, Duration::from_secs(15)).await;
    assert_eq!(store.turns(&call).await.expect("turns").len(), 1);
}

// ---- outbound: consent records ------------------------------------------------------

/// A consent record as `outbound::consent::record` makes one (its unit tests
/// check what goes in; here, that the store keeps it).
fn signed_consent(user_id: &str, user_agent: Option<&str>) -> ConsentRecord {
    ConsentRecord {
        id: ConsentId::new(),
        user_id: user_id.to_owned(),
        wording_version: switchboard::config::Settings::defaults()
            .safety
            .consent
            .version,
        wording_hash: consent::wording_hash(
            &switchboard::config::Settings::defaults()
                .safety
                .consent
                .wording,
        ),
        affirmed: consent::Affirmation::ALL
            .iter()
            .map(|box_| box_.field().to_owned())
            .collect(),
        signature_full_name: "Zoë Ångström".to_owned(),
        signature_organization: None,
        ip: "2001:db8::7".to_owned(),
        user_agent: user_agent.map(str::to_owned),
        created_at: now_ms(),
    }
}

store_test!(a_consent_record_reads_back_as_written);
async fn a_consent_record_reads_back_as_written(store: Store) {
    let full = ConsentRecord {
        signature_organization: Some("Analytical Engines Ltd".into()),
        ..signed_consent("user-1", Some("curl/8.5.0"))
    };
    let bare = signed_consent("user-2", None);
    assert_eq!(bare.signature_organization, None);
    for record in [&full, &bare] {
        store.create_consent(record).await.expect("stored");
    }
    for record in [&full, &bare] {
        let read = store.get_consent(&record.id).await.expect("read");
        assert_eq!(read.as_ref(), Some(record));
    }
    let read = store
        .get_consent(&full.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(read.ip, "2001:db8::7");
    assert_eq!(
        read.wording_version,
        switchboard::config::Settings::defaults()
            .safety
            .consent
            .version
    );
    assert_eq!(
        read.wording_hash,
        consent::wording_hash(
            &switchboard::config::Settings::defaults()
                .safety
                .consent
                .wording
        )
    );
    assert_eq!(read.affirmed.len(), 5);
    assert_eq!(read.signature_full_name, "Zoë Ångström");

    assert!(matches!(
        store.create_consent(&full).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.get_consent(&ConsentId::new()).await.expect("read"),
        None
    );
}

// ---- issue 9: faults -------------------------------------------------------------

/// A writer whose spill file is its own and whose refused entries are kept long
/// enough for a test to act while they wait.
fn test_journal(max_memory: usize) -> (JournalConfig, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("sb_spill_{}.spill", uuid::Uuid::new_v4()));
    let config = JournalConfig {
        memory_limit_bytes: max_memory,
        spill_path: path.clone(),
        reject_after_attempts: 14,
    };
    (config, path)
}

/// Polls until `call` has a row (the journal writes behind the test's back).
async fn wait_for_row(store: &Store, call: &CallId) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.get_call(call).await.expect("get").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {call} never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// PostgreSQL refuses NUL in text ("invalid byte sequence for encoding UTF8: 0x00",
// SQLSTATE 22021: postgresql.org/docs/current/datatype-character.html — "the
// character with code zero cannot be stored"); Twilio's `From` is caller-controlled
// text (twilio.com/docs/usage/webhooks/voice-webhooks). The record must persist.
store_test!(a_nul_byte_in_a_text_field_is_stored_as_a_replacement_character);
async fn a_nul_byte_in_a_text_field_is_stored_as_a_replacement_character(store: Store) {
    let writer = JournalWriter::spawn(store.clone());
    let nul = CallId::new();
    let other = CallId::new();
    writer.append(JournalEntry::Opened(CallOpened {
        id: nul.clone(),
        call_sid: Some("CA-nul".into()),
        from: "+1555\u{0}9123".into(),
        to: "+15550001111".into(),
        workspace: Some(workspace()),
        direction: "inbound",
        started_at: now_ms(),
    }));
    writer.append(event(&nul, 1, "created", None));
    writer.append(JournalEntry::Turn {
        call_id: nul.clone(),
        seq: 1,
        at: now_ms(),
        role: "caller",
        text: "hi\0there".into(),
    });
    writer.append(closed(&nul, Outcome::Abandoned, "caller\0hangup", None, 1));
    writer.append(opened(&other, "CA-other"));
    writer.append(event(&other, 1, "created", None));
    flush_within(&writer, Duration::from_secs(30)).await;

    let view = store
        .get_call(&nul)
        .await
        .expect("get")
        .expect("the call's record persists");
    assert_eq!(view.from, "+1555\u{FFFD}9123");
    assert_eq!(view.end_reason.as_deref(), Some("caller\u{FFFD}hangup"));
    assert_eq!(view.events.len(), 1);
    assert_eq!(
        store.turns(&nul).await.expect("turns")[0].text,
        "hi\u{FFFD}there"
    );
    let other = store
        .get_call(&other)
        .await
        .expect("get")
        .expect("the other call");
    assert_eq!(other.events.len(), 1);
}

// Ordering, not wall clock: an entry the database refuses (an event of a call whose
// row is not there yet, a foreign-key violation: SQLSTATE 23503 / SQLite
// SQLITE_CONSTRAINT_FOREIGNKEY) must not hold up another call's entries appended
// after it. The other call's record is written while the refused entry is still
// being retried: creating its call's row then lets it through as well.
store_test!(a_refused_entry_holds_up_only_its_own_call);
async fn a_refused_entry_holds_up_only_its_own_call(store: Store) {
    let (config, path) = test_journal(16 << 20);
    let writer = JournalWriter::spawn_with(store.clone(), config);
    let early = CallId::new();
    let other = CallId::new();
    writer.append(event(&early, 1, "created", None));
    writer.append(event(&early, 2, "ringing", None));
    writer.append(opened(&other, "CA-other"));
    writer.append(event(&other, 1, "created", None));
    wait_for_row(&store, &other).await;
    // The other call is written; the refused entries are still waiting (until
    // their call's row exists, which only this test can create).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.backlog() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other call was written but the backlog is {}, not the 2 refused entries",
            writer.backlog()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store
        .apply(&[opened(&early, "CA-early")])
        .await
        .expect("the early call's row");
    flush_within(&writer, Duration::from_secs(30)).await;
    let view = stored_call(&store, &early).await;
    assert_eq!(
        view.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2],
        "the refused entry and the one behind it are both written, in order"
    );
    assert!(!path.exists());
}

store_test!(store_errors_name_their_cause_but_not_the_bound_values);
async fn store_errors_name_their_cause_but_not_the_bound_values(store: Store) {
    let orphan = CallId::new();
    let error = store
        .apply(&[event(&orphan, 1, "secret-kind", None)])
        .await
        .expect_err("an event without its call is refused");
    assert!(!error.is_unavailable(), "a refusal, not an outage: {error}");
    let text = format!("{error}");
    assert!(
        text.to_lowercase().contains("foreign key"),
        "the cause is named: {text}"
    );
    assert!(!text.contains(orphan.as_str()), "no bound values: {text}");
    assert!(!text.contains("secret-kind"), "no bound values: {text}");
}

#[actix_rt::test]
async fn an_unreachable_database_is_told_apart_from_a_refusal() {
    run(TestDb::Postgres, |store, url| async move {
        set_postgres_reachable(&url, false).await;
        let error = store.ping().await.expect_err("the database is away");
        assert!(error.is_unavailable(), "{error}");
        set_postgres_reachable(&url, true).await;
        store.ping().await.expect("back");
    })
    .await;
}

/// The writer's memory is bounded: past the limit, entries go to the spill file,
/// and every one of them reaches the database once it is back.
#[actix_rt::test]
async fn past_its_memory_limit_the_journal_spills_to_disk_and_loses_nothing() {
    run(TestDb::Postgres, |store, url| async move {
        let (config, path) = test_journal(4_096);
        let writer = JournalWriter::spawn_with(store.clone(), config);
        let calls: Vec<CallId> = (0..5).map(|_| CallId::new()).collect();
        set_postgres_reachable(&url, false).await;
        for call in &calls {
            writer.append(opened(call, &format!("CA-{call}")));
            for seq in 1..=40 {
                writer.append(event(call, seq, "tick", None));
            }
        }
        // 205 entries of ~130 bytes each against a 4 KiB limit: most go to disk.
        let spilled = || {
            std::fs::read_to_string(&path)
                .map(|text| text.lines().count())
                .unwrap_or(0)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while spilled() < 150 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} entries spilled",
                spilled()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(writer.backlog(), 205);

        set_postgres_reachable(&url, true).await;
        flush_within(&writer, Duration::from_secs(60)).await;
        for call in &calls {
            let view = stored_call(&store, call).await;
            assert_eq!(view.events.len(), 40);
        }
        assert!(!path.exists(), "the spill file goes once written out");
    })
    .await;
}

/// What a shutdown could not write (the database is away) is in the spill file;
/// the next writer on that file writes it first.
#[actix_rt::test]
async fn entries_spilled_at_shutdown_are_written_by_the_next_writer() {
    run(TestDb::Postgres, |store, url| async move {
        let (config, path) = test_journal(16 << 20);
        let call = CallId::new();
        let recording_call = CallId::new();
        let writer = JournalWriter::spawn_with(store.clone(), config.clone());
        set_postgres_reachable(&url, false).await;
        writer.append(opened(&call, "CA-spilled"));
        writer.append(event(&call, 1, "created", None));
        writer.append(closed(&call, Outcome::Abandoned, "caller_hangup", None, 9));
        writer.append(opened(&recording_call, "CA-rec"));
        writer.append(JournalEntry::RecordingChunk {
            call_id: recording_call.clone(),
            seq: 1,
            at: 1,
            audio: Bytes::from_static(&[1, 2, 3, 0, 255]),
        });
        assert_eq!(writer.spill_all().await.expect("spilled"), 5);
        assert!(path.exists());
        drop(writer);

        set_postgres_reachable(&url, true).await;
        let next = JournalWriter::spawn_with(store.clone(), config);
        flush_within(&next, Duration::from_secs(30)).await;
        let view = stored_call(&store, &call).await;
        assert_eq!(view.outcome.as_deref(), Some("abandoned"));
        assert_eq!(view.events.len(), 1);
        assert!(store
            .get_call(&recording_call)
            .await
            .expect("get")
            .is_some());
        assert!(!path.exists());
    })
    .await;
}

store_test!(recording_chunks_become_the_recording_when_finished_or_on_recovery);
async fn recording_chunks_become_the_recording_when_finished_or_on_recovery(store: Store) {
    let chunk = |call: &CallId, seq: i64, byte: u8| JournalEntry::RecordingChunk {
        call_id: call.clone(),
        seq,
        at: now_ms(),
        audio: Bytes::from(vec![byte; 8_000]),
    };
    let finished = CallId::new();
    store
        .apply(&[
            opened(&finished, "CA-finished"),
            chunk(&finished, 2, 0x22),
            chunk(&finished, 1, 0x11),
            JournalEntry::RecordingFinished {
                call_id: finished.clone(),
                at: now_ms(),
            },
        ])
        .await
        .expect("a finished recording");
    let wav = store
        .get_recording(&finished)
        .await
        .expect("get")
        .expect("recording");
    assert_eq!(wav.duration_ms, 2_000);
    assert_eq!(
        &wav.bytes[58..8_058],
        &[0x11; 8_000][..],
        "chunks in seq order"
    );
    assert_eq!(&wav.bytes[8_058..], &[0x22; 8_000][..]);

    // Cut off: chunks but no end. Recovery closes the call and keeps the audio.
    let cut = CallId::new();
    store
        .apply(&[opened(&cut, "CA-cut"), chunk(&cut, 1, 0x33)])
        .await
        .expect("a recording cut off");
    assert!(store.get_recording(&cut).await.expect("get").is_none());
    store.close_interrupted_calls().await.expect("recover");
    let wav = store
        .get_recording(&cut)
        .await
        .expect("get")
        .expect("recording kept");
    assert_eq!(wav.duration_ms, 1_000);
    assert_eq!(&wav.bytes[58..], &[0x33; 8_000][..]);
    assert!(stored_call(&store, &cut).await.has_recording);
}
