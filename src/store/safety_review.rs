//! The post-call review's storage (issue 12, `src/safety/review.rs`): the ended
//! calls not reviewed yet, their transcripts read in one query per batch, a
//! user's telephony figures and each From number's over a window, the reviews
//! written (each call marked `reviewed_at` in the same transaction as its
//! flags, so a call is flagged once however often the engine stops), and the
//! numbers rested by number health.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row as _;
use switchboard_actors::UserId;

use super::flags::{raise_flags_in, NewFlag, Raised};
use super::outbound::OutboundStatus;
use super::{db_text, placeholders, Store, StoreError, IDS_PER_STATEMENT};

/// How an opt-out (`opt_out` tool) is written on the user's do-not-call list
/// (`ai::outbound_tools`): its reason starts so.
pub const OPT_OUT_REASON_PREFIX: &str = "opted out during outbound call";

/// An ended call waiting for its review.
#[derive(Debug, Clone, PartialEq)]
pub struct CallToReview {
    pub id: String,
    pub user_id: UserId,
    pub from_e164: Option<String>,
}

/// One turn of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewTurn {
    pub seq: i64,
    /// `caller` (the callee, on an outbound call) or `assistant`.
    pub role: String,
    pub text: String,
}

/// Calls placed over a window (by a user, or from a number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallFigures {
    /// Dialed and ended.
    pub calls: i64,
    pub answered: i64,
    /// Answered, and ended within the short-call time.
    pub short: i64,
    /// Answered, and ended within the early hang-up time.
    pub early_hangups: i64,
    /// Callees who opted out.
    pub opt_outs: i64,
}

/// One call's review, to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub outbound_id: String,
    pub user_id: UserId,
    pub flags: Vec<NewFlag>,
}

/// A rested number.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberRest {
    pub e164: String,
    pub reason: String,
    pub figures: Value,
    pub rested_at: i64,
    pub until_at: i64,
}

/// `status IN (…every terminal status…)`.
fn terminal_sql() -> String {
    let names: Vec<String> = OutboundStatus::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("status IN ({})", names.join(", "))
}

/// The aggregate columns of [`CallFigures`] (without opt-outs) over
/// `outbound_calls`; `$short` and `$early` are the durations in ms.
fn figures_sql(short: usize, early: usize) -> String {
    format!(
        "COUNT(*) AS calls, \
         COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS answered, \
         COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND ended_at - answered_at < ${short} \
                      THEN 1 ELSE 0 END), 0) AS short, \
         COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND ended_at - answered_at < ${early} \
                      THEN 1 ELSE 0 END), 0) AS early"
    )
}

impl Store {
    /// Ended calls not reviewed yet, oldest end first: an answered call once
    /// its after-call work is written, or once it ended at or before
    /// `analysis_deadline_ms` (the work never came) — and in both cases once its
    /// call record is closed, if it has one. Twilio's status callback can end the
    /// outbound call before the journal has written the record's last turns and
    /// its `Closed` (which it writes after them); reviewing then would read a
    /// transcript without its end, and a call is reviewed only once. Every record
    /// is closed in the end (by its call, or as `interrupted` at start-up or by a
    /// cluster's sweep).
    #[tracing::instrument(skip_all)]
    pub async fn outbound_to_review(
        &self,
        analysis_deadline_ms: i64,
        limit: u32,
    ) -> Result<Vec<CallToReview>, StoreError> {
        let sql = format!(
            "SELECT o.id, o.user_id, o.from_e164 FROM outbound_calls o \
             WHERE o.reviewed_at IS NULL AND {} \
             AND (o.answered_at IS NULL \
                  OR ((o.analyzed_at IS NOT NULL OR COALESCE(o.ended_at, o.updated_at) <= $1) \
                      AND NOT EXISTS (SELECT 1 FROM calls c \
                                      WHERE c.id = o.id AND c.ended_at IS NULL))) \
             ORDER BY COALESCE(o.ended_at, o.updated_at), o.id LIMIT $2",
            terminal_sql()
        );
        let rows = sqlx::query(&sql)
            .bind(analysis_deadline_ms)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let user: String = row.try_get("user_id")?;
                Ok(CallToReview {
                    id: row.try_get("id")?,
                    user_id: UserId::parse(&user)
                        .map_err(|_| StoreError::Corrupt(format!("outbound user_id {user}")))?,
                    from_e164: row.try_get("from_e164")?,
                })
            })
            .collect()
    }

    /// The transcripts of `calls` (by call id, each by `seq`), in one query.
    #[tracing::instrument(skip_all, fields(n = calls.len()))]
    pub async fn transcripts_of(
        &self,
        calls: &[&str],
    ) -> Result<HashMap<String, Vec<ReviewTurn>>, StoreError> {
        let mut turns: HashMap<String, Vec<ReviewTurn>> = HashMap::new();
        for chunk in calls.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT call_id, seq, role, text FROM call_turns WHERE call_id IN ({}) \
                 ORDER BY call_id, seq",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.pool()).await? {
                turns
                    .entry(row.try_get("call_id")?)
                    .or_default()
                    .push(ReviewTurn {
                        seq: row.try_get("seq")?,
                        role: row.try_get("role")?,
                        text: row.try_get("text")?,
                    });
            }
        }
        Ok(turns)
    }

    /// `user`'s calls dialed and ended since `since_ms`, and the callees who
    /// opted out since then.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn user_call_figures(
        &self,
        user: &UserId,
        since_ms: i64,
        short_ms: i64,
        early_ms: i64,
    ) -> Result<CallFigures, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbound_calls WHERE user_id = $1 AND ended_at >= $2 \
             AND dialed_at IS NOT NULL",
            figures_sql(3, 4)
        );
        let row = sqlx::query(&sql)
            .bind(user.as_str())
            .bind(since_ms)
            .bind(short_ms)
            .bind(early_ms)
            .fetch_one(self.pool())
            .await?;
        let opt_outs: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM do_not_call WHERE user_id = $1 AND created_at >= $2 \
             AND reason LIKE $3",
        )
        .bind(user.as_str())
        .bind(since_ms)
        .bind(format!("{OPT_OUT_REASON_PREFIX}%"))
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(CallFigures {
            calls: row.try_get("calls")?,
            answered: row.try_get("answered")?,
            short: row.try_get("short")?,
            early_hangups: row.try_get("early")?,
            opt_outs,
        })
    }

    /// Whether `user` has an automatic flag of `kind` raised since `since_ms`
    /// (a pattern is flagged once per window).
    pub async fn has_auto_flag_since(
        &self,
        user: &UserId,
        kind: &str,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM flags WHERE user_id = $1 AND type = $2 \
             AND auto_detected = 1 AND created_at >= $3",
        )
        .bind(user.as_str())
        .bind(kind)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Writes `reviews` in one transaction: each call is marked reviewed and,
    /// only if this marked it (it was not reviewed yet), its flags are raised
    /// (a critical one pauses the user: [`Store::raise_flags`]). Answers what
    /// each review raised, by call id; a call reviewed already is left out.
    #[tracing::instrument(skip_all, fields(n = reviews.len()))]
    pub async fn record_reviews(
        &self,
        reviews: &[Review],
        now_ms: i64,
    ) -> Result<Vec<(String, Raised)>, StoreError> {
        let mut tx = self.begin().await?;
        let mut raised = Vec::new();
        for review in reviews {
            let marked = sqlx::query(
                "UPDATE outbound_calls SET reviewed_at = $1 WHERE id = $2 AND reviewed_at IS NULL",
            )
            .bind(now_ms)
            .bind(review.outbound_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if marked && !review.flags.is_empty() {
                let done = raise_flags_in(
                    &mut tx,
                    &review.user_id,
                    Some(&review.outbound_id),
                    &review.flags,
                    now_ms,
                )
                .await?;
                raised.push((review.outbound_id.clone(), done));
            }
        }
        tx.commit().await?;
        Ok(raised)
    }

    /// Each From number's calls dialed and ended since `since_ms` (numbers
    /// without any are absent), with the callees who opted out since then
    /// after a call from it.
    #[tracing::instrument(skip_all)]
    pub async fn number_call_figures(
        &self,
        since_ms: i64,
        short_ms: i64,
    ) -> Result<HashMap<String, CallFigures>, StoreError> {
        let sql = format!(
            "SELECT from_e164, {} FROM outbound_calls WHERE from_e164 IS NOT NULL \
             AND ended_at >= $1 AND dialed_at IS NOT NULL GROUP BY from_e164",
            figures_sql(2, 2)
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .bind(short_ms)
            .fetch_all(self.pool())
            .await?;
        let mut figures = HashMap::new();
        for row in rows {
            figures.insert(
                row.try_get::<String, _>("from_e164")?,
                CallFigures {
                    calls: row.try_get("calls")?,
                    answered: row.try_get("answered")?,
                    short: row.try_get("short")?,
                    early_hangups: row.try_get("early")?,
                    opt_outs: 0,
                },
            );
        }
        let rows = sqlx::query(
            "SELECT o.from_e164 AS from_e164, COUNT(DISTINCT d.e164) AS n \
             FROM do_not_call d JOIN outbound_calls o \
               ON o.user_id = d.user_id AND o.to_e164 = d.e164 \
             WHERE d.user_id IS NOT NULL AND d.created_at >= $1 AND d.reason LIKE $2 \
               AND o.from_e164 IS NOT NULL AND o.dialed_at IS NOT NULL \
             GROUP BY o.from_e164",
        )
        .bind(since_ms)
        .bind(format!("{OPT_OUT_REASON_PREFIX}%"))
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let entry = figures
                .entry(row.try_get::<String, _>("from_e164")?)
                .or_default();
            entry.opt_outs = row.try_get("n")?;
        }
        Ok(figures)
    }

    /// Rests `e164` until `until_at` (a later rest replaces an earlier one).
    #[tracing::instrument(skip_all, fields(e164 = e164))]
    pub async fn rest_number(
        &self,
        e164: &str,
        reason: &str,
        figures: &Value,
        now_ms: i64,
        until_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO number_rest (e164, reason, figures, rested_at, until_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (e164) DO UPDATE SET \
             reason = excluded.reason, figures = excluded.figures, \
             rested_at = excluded.rested_at, until_at = excluded.until_at",
        )
        .bind(e164)
        .bind(db_text(reason))
        .bind(figures.to_string())
        .bind(now_ms)
        .bind(until_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every number's latest rest (over or not), by number.
    #[tracing::instrument(skip_all)]
    pub async fn number_rests(&self) -> Result<HashMap<String, NumberRest>, StoreError> {
        let rows =
            sqlx::query("SELECT e164, reason, figures, rested_at, until_at FROM number_rest")
                .fetch_all(self.pool())
                .await?;
        let mut rests = HashMap::new();
        for row in rows {
            let e164: String = row.try_get("e164")?;
            let figures: String = row.try_get("figures")?;
            rests.insert(
                e164.clone(),
                NumberRest {
                    e164,
                    reason: row.try_get("reason")?,
                    figures: serde_json::from_str(&figures)
                        .map_err(|e| StoreError::Corrupt(format!("number_rest.figures: {e}")))?,
                    rested_at: row.try_get("rested_at")?,
                    until_at: row.try_get("until_at")?,
                },
            );
        }
        Ok(rests)
    }

    /// The numbers resting at `now_ms`, each with the end of its rest.
    pub async fn rested_numbers(&self, now_ms: i64) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT e164, until_at FROM number_rest WHERE until_at > $1")
            .bind(now_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("e164")?, row.try_get("until_at")?)))
            .collect()
    }

    /// Every Twilio number of every workspace's pool a call may be placed from
    /// (not released, E.164), sorted.
    pub async fn all_twilio_numbers(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT e164 FROM phone_numbers \
             WHERE provider = 'twilio' AND status <> 'RELEASED' \
             AND note IS NULL AND e164 LIKE '+%' ORDER BY e164",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("e164")?))
            .collect()
    }
}
