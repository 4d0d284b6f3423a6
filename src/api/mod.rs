//! The REST API (JSON): the admin's (bearer `SWITCHBOARD_ADMIN_TOKEN`, the
//! [`admin::Admin`] extractor) and, where a route says so, users' too (bearer
//! the user's API key, the [`caller::Caller`] extractor).

pub mod admin;
pub mod agents;
pub mod analytics;
pub mod assistants;
pub mod audit;
pub mod call_events;
pub mod caller;
pub mod calls;
pub mod cluster;
pub mod directory;
pub mod dnc;
pub mod flags;
pub mod input;
pub mod number_health;
pub mod numbers;
pub mod outbound;
pub mod outbound_batch;
pub mod outbound_check;
pub mod schema;
pub mod session;
pub mod users;

use actix_web::web;

use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let json = web::JsonConfig::default()
        .limit(input::JSON_LIMIT)
        .error_handler(|err, _req| {
            ApiError::bad_request("bad-json", format!("the request body is not valid: {err}"))
                .into()
        });
    cfg.service(
        web::scope("/api")
            .app_data(json)
            .wrap(actix_web::middleware::from_fn(
                input::refuse_control_characters,
            ))
            .route("/session", web::get().to(session::get))
            .route("/cluster", web::get().to(cluster::get))
            .route("/cluster/seats", web::get().to(cluster::seats))
            .route("/agents", web::post().to(agents::create))
            .route("/agents", web::get().to(agents::list))
            .route("/agents/{id}", web::get().to(agents::get))
            .route("/assistants", web::post().to(assistants::create))
            .route("/assistants", web::get().to(assistants::list))
            .route("/assistants/{id}", web::get().to(assistants::get))
            .route("/assistants/{id}", web::put().to(assistants::update))
            .route("/assistants/{id}", web::delete().to(assistants::delete))
            .route(
                "/assistants/{id}/number",
                web::post().to(assistants::assign_number),
            )
            .route("/agents/{id}", web::delete().to(agents::delete))
            .route("/agents/{id}", web::patch().to(agents::update))
            // The pool and the cut-over (before `/numbers/{e164}`, which would
            // take `/numbers/sync` for itself), then the directory.
            .route("/numbers/sync", web::post().to(numbers::sync))
            .route("/numbers/health", web::get().to(number_health::health))
            .route("/numbers/import", web::post().to(numbers::import))
            .route("/numbers/migrate", web::post().to(numbers::migrate))
            .route("/numbers/rollback", web::post().to(numbers::rollback))
            .route("/numbers/{e164}/route", web::put().to(numbers::set_route))
            .route("/directory", web::get().to(directory::list))
            .route("/directory/validate", web::get().to(directory::validate))
            .route("/directory/diff", web::get().to(directory::diff))
            .route("/directory/assign", web::post().to(directory::assign))
            .route("/directory/numbers/{e164}", web::get().to(directory::show))
            .route(
                "/directory/agents/{id}",
                web::get().to(directory::agent_numbers),
            )
            .route("/numbers", web::post().to(numbers::create))
            .route("/numbers", web::get().to(numbers::list))
            .route("/numbers/{e164}", web::get().to(numbers::get))
            .route("/users", web::post().to(users::create))
            .route("/users", web::get().to(users::list))
            .route("/users/{id}", web::get().to(users::get))
            .route("/users/{id}", web::patch().to(users::update))
            .route("/users/{id}/suspend", web::post().to(users::suspend))
            .route("/users/{id}/reinstate", web::post().to(users::reinstate))
            .route("/flags", web::get().to(flags::list))
            .route("/flags/{id}", web::get().to(flags::get))
            .route("/flags/{id}/resolve", web::post().to(flags::resolve))
            .route("/audit", web::get().to(audit::list))
            .route("/analytics/summary", web::get().to(analytics::summary))
            .route("/dnc", web::post().to(dnc::add))
            .route("/dnc", web::get().to(dnc::list))
            .route("/dnc/{e164}", web::delete().to(dnc::remove))
            // Before `/calls/{id}`, which would take `/calls/outbound` for itself,
            // and the batch before `/calls/outbound/{id}`.
            .route(
                "/calls/outbound/batch",
                web::post().to(outbound_batch::submit),
            )
            .route(
                "/calls/outbound/batch/{id}",
                web::get().to(outbound_batch::get),
            )
            .route(
                "/calls/outbound/check",
                web::get().to(outbound_check::check),
            )
            .route("/calls/outbound", web::post().to(outbound::submit))
            .route("/calls/outbound", web::get().to(outbound::list))
            .route("/calls/outbound/{id}", web::get().to(outbound::get))
            .route("/calls/outbound/{id}", web::delete().to(outbound::cancel))
            .route("/calls", web::get().to(calls::find))
            .route("/calls/{id}", web::get().to(calls::get))
            .route("/calls/{id}/recording", web::get().to(calls::recording))
            .route("/calls/{id}/events", web::get().to(call_events::events))
            .route("/calls/{id}/transcript", web::get().to(calls::transcript)),
    );
}
