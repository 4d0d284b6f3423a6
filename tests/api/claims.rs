//! The single-winner rule under load: many seats answering the same call at once.

use serde_json::json;

use crate::helpers::{spawn_app, Softphone, CALLER, NUMBER};

#[actix_web::test]
async fn a_claim_storm_of_fifty_seats_has_exactly_one_winner_two_hundred_times_in_a_row() {
    let app = spawn_app().await;
    app.number_for_everyone().await;
    let mut phones: Vec<Softphone> = Vec::new();
    for i in 0..50 {
        let agent = app.create_agent(&format!("agent {i}"), "production").await;
        phones.push(app.available_softphone(&agent).await);
    }

    for round in 0..200 {
        let call = app.ring_in(CALLER, NUMBER).await;
        let mut twilio = app.open_stream(&call).await;
        for phone in &mut phones {
            phone.expect_ring(&call.call_id).await;
        }
        // Everyone answers at once.
        for phone in &phones {
            phone.answer(&call.call_id);
        }
        let mut winner = None;
        for (i, phone) in phones.iter_mut().enumerate() {
            let first = phone.next().await;
            match first["type"].as_str() {
                Some("connected") => {
                    assert!(winner.is_none(), "round {round}: a second winner");
                    winner = Some(i);
                }
                Some("claim_lost") | Some("ring_cancel") => {
                    // A loser hears both, in either order.
                    let second = phone.next().await;
                    let mut kinds = [first["type"].clone(), second["type"].clone()];
                    kinds.sort_by_key(|k| k.to_string());
                    assert_eq!(
                        kinds,
                        [json!("claim_lost"), json!("ring_cancel")],
                        "round {round}"
                    );
                    let cancel = if first["type"] == "ring_cancel" {
                        &first
                    } else {
                        &second
                    };
                    assert_eq!(cancel["reason"], "answered_elsewhere", "round {round}");
                }
                _ => panic!("round {round}: unexpected {first}"),
            }
        }
        let winner = winner.unwrap_or_else(|| panic!("round {round}: nobody won"));
        twilio.stop();
        let ended = phones[winner].expect("call_ended").await;
        assert_eq!(ended["call_id"], call.call_id.as_str());
    }
    assert_eq!(app.metric("switchboard_claims_won_total").await, 200.0);
    assert_eq!(
        app.metric("switchboard_claims_lost_total").await,
        200.0 * 49.0
    );
}
