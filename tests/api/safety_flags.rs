//! Safety flags and the audit trail as stored: a critical finding pauses an
//! active user in the same transaction and writes the pause to the trail; other
//! findings only flag.

use serde_json::json;
use switchboard::domain::safety::Severity;
use switchboard::store::flags::NewFlag;
use switchboard::store::Store;
use switchboard_actors::UserId;

use crate::db::TestDb;
use crate::helpers::spawn_app_with;

fn finding(severity: Severity, reason: &str) -> NewFlag {
    NewFlag {
        kind: "transcript".into(),
        severity,
        reason: reason.into(),
        evidence: json!({ "turns": ["callee: leave me alone"] }),
        auto_detected: true,
    }
}

async fn a_critical_flag_pauses_the_user_once_and_the_trail_says_so(db: TestDb) {
    let app = spawn_app_with(db, |_| {}).await;
    let ada = app.create_user("ada@example.com").await;
    let ada_id = UserId::parse(&ada.id).expect("a user id");
    let store = Store::connect(&app.database_url, "flags-test")
        .await
        .expect("the store");

    let raised = store
        .raise_flags(&ada_id, None, &[finding(Severity::High, "prizes")], 1_000)
        .await
        .expect("raised");
    assert!(!raised.paused, "a high flag does not pause");
    let user = store.get_user(&ada_id).await.expect("read").expect("ada");
    assert_eq!(user.status.as_str(), "active");

    let raised = store
        .raise_flags(
            &ada_id,
            Some("0123456789abcdef0123456789abcdef"),
            &[
                finding(Severity::Low, "short call"),
                finding(Severity::Critical, "a threat"),
            ],
            2_000,
        )
        .await
        .expect("raised");
    assert!(raised.paused);
    assert_eq!(raised.flags.len(), 2);
    let user = store.get_user(&ada_id).await.expect("read").expect("ada");
    assert_eq!(user.status.as_str(), "paused");

    let again = store
        .raise_flags(
            &ada_id,
            None,
            &[finding(Severity::Critical, "again")],
            3_000,
        )
        .await
        .expect("raised");
    assert!(!again.paused, "an already paused user is not paused twice");

    let open = store.user_flags(&ada_id, true).await.expect("flags");
    assert_eq!(open.len(), 4);
    let threat = open
        .iter()
        .find(|f| f.reason == "a threat")
        .expect("the critical flag");
    assert_eq!(threat.severity, Severity::Critical);
    assert_eq!(
        threat.outbound_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(threat.evidence["turns"][0], "callee: leave me alone");
    let trail = store
        .audit_trail(Some(&ada_id), 0, 100)
        .await
        .expect("trail");
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(
        (
            trail[0].actor.as_str(),
            trail[0].action.as_str(),
            trail[0].at
        ),
        ("system", "user_paused", 2_000)
    );
    assert_eq!(trail[0].detail["reason"], "a threat");
    assert_eq!(trail[0].subject.as_deref(), Some(threat.id.as_str()));
    store.close().await;
}

#[actix_web::test]
async fn a_critical_flag_pauses_the_user_once_and_the_trail_says_so_on_sqlite() {
    a_critical_flag_pauses_the_user_once_and_the_trail_says_so(TestDb::Sqlite).await;
}

#[actix_web::test]
async fn a_critical_flag_pauses_the_user_once_and_the_trail_says_so_on_postgres() {
    a_critical_flag_pauses_the_user_once_and_the_trail_says_so(TestDb::Postgres).await;
}
