//! The phone-number pool: every number each provider account holds, per workspace,
//! with its status (AVAILABLE / ASSIGNED / RELEASED) and assigned agent; the sync
//! that brings it in line with a provider; the atomic claim that hands a number to
//! an agent; and the route migrations (cut-over and rollback) of live numbers.
//!
//! A number may sit in the pool several times: once per workspace and provider
//! account that holds it. Duplicates are kept (and reported by the directory's
//! validation), never merged. Live call routing stays in the `numbers` table.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use switchboard_actors::journal::now_ms;
use switchboard_actors::number::Route;
use switchboard_actors::{AgentId, AssistantId, Workspace};

use super::{placeholders, Backend, Store, StoreError, IDS_PER_STATEMENT};

/// Rows per multi-row INSERT during a sync: 15 columns × 20 rows stays far below every
/// backend's parameter limit.
const INSERT_ROWS_PER_STATEMENT: usize = 20;
/// A claim that lost a race for a row tries the next one; this many times at most.
const CLAIM_ATTEMPTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PoolStatus {
    Available,
    Assigned,
    Released,
}

impl PoolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Available => "AVAILABLE",
            PoolStatus::Assigned => "ASSIGNED",
            PoolStatus::Released => "RELEASED",
        }
    }

    pub fn parse(raw: &str) -> Option<PoolStatus> {
        match raw.to_ascii_uppercase().as_str() {
            "AVAILABLE" => Some(PoolStatus::Available),
            "ASSIGNED" => Some(PoolStatus::Assigned),
            "RELEASED" => Some(PoolStatus::Released),
            _ => None,
        }
    }
}

/// What a provider tells about a number's SIP trunk. Never holds a password: only
/// whether the provider was given one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipTrunk {
    /// Twilio Elastic SIP trunk (`TK…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk_sid: Option<String>,
    /// Where the provider sends outbound calls (Retell import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    /// The provider holds a trunk password (never stored here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_password: bool,
    /// Vapi's SIP trunk credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_uri: Option<String>,
    /// `TLS`, `TCP` or `UDP` (Retell's `sip_outbound_trunk_config.transport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

/// Twilio's routing of a number besides `VoiceUrl` (the `voice_url` column) and
/// `TrunkSid` (in [`SipTrunk`]), as the IncomingPhoneNumbers resource reports it:
/// what re-pointing a number at switchboard replaces, and a rollback puts back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TwilioVoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_method: Option<String>,
    /// `AP…`: when set, Twilio ignores the voice URL and uses the application's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_application_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback_method: Option<String>,
}

/// Everything that decides where Twilio sends a number's calls and their status
/// callbacks: one snapshot, taken before switchboard changes it, and restored
/// exactly by an undo or a rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoiceRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_application_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback_method: Option<String>,
}

impl VoiceRouting {
    /// What the pool row says of a Twilio number.
    pub fn of(number: &PoolNumber) -> VoiceRouting {
        let voice = number.twilio.clone().unwrap_or_default();
        VoiceRouting {
            voice_url: number.voice_url.clone(),
            voice_method: voice.voice_method,
            voice_application_sid: voice.voice_application_sid,
            trunk_sid: number.sip_trunk.as_ref().and_then(|t| t.trunk_sid.clone()),
            status_callback: voice.status_callback,
            status_callback_method: voice.status_callback_method,
        }
    }

    /// The `TwilioVoice` part of this snapshot (`None` when it is all empty).
    pub fn voice(&self) -> Option<TwilioVoice> {
        let voice = TwilioVoice {
            voice_method: self.voice_method.clone(),
            voice_application_sid: self.voice_application_sid.clone(),
            status_callback: self.status_callback.clone(),
            status_callback_method: self.status_callback_method.clone(),
        };
        (voice != TwilioVoice::default()).then_some(voice)
    }
}

/// The note of a number the provider lists in a form that is not E.164.
pub const UNPARSEABLE: &str = "unparseable";

/// A number as a provider lists it, already parsed (E.164, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedNumber {
    pub provider_id: String,
    /// E.164, or the provider's raw text when `note` is [`UNPARSEABLE`].
    pub e164: String,
    pub number_type: String,
    pub nickname: Option<String>,
    pub voice_url: Option<String>,
    pub provider_agent: Option<String>,
    pub sip_trunk: Option<SipTrunk>,
    /// [`UNPARSEABLE`] when the number is not E.164.
    pub note: Option<String>,
    /// Twilio only.
    pub twilio: Option<TwilioVoice>,
}

/// Who an ASSIGNED number is for: an agent (the number rings it) or an AI
/// assistant (the assistant answers the number's calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Agent(AgentId),
    Assistant(AssistantId),
}

impl Holder {
    /// The pool column that names the holder.
    fn column(&self) -> &'static str {
        match self {
            Holder::Agent(_) => "agent_id",
            Holder::Assistant(_) => "assistant_id",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Holder::Agent(id) => id.as_str(),
            Holder::Assistant(id) => id.as_str(),
        }
    }

    /// The live route of a number held by it: the agent alone, or the assistant.
    pub fn route(&self) -> Route {
        match self {
            Holder::Agent(id) => Route::Agents {
                agent_ids: vec![id.clone()],
            },
            Holder::Assistant(id) => Route::Ai {
                assistant_id: id.clone(),
            },
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Agent(id) => write!(f, "agent {id}"),
            Holder::Assistant(id) => write!(f, "assistant {id}"),
        }
    }
}

/// What [`Store::claim_available`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This number, now ASSIGNED to the holder.
    Taken(PoolNumber),
    /// The workspace has no AVAILABLE number.
    NoneLeft,
    /// The holder (an assistant) holds this number already; nothing was taken.
    HolderHasOne(PoolNumber),
}

/// One row of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNumber {
    pub id: String,
    pub provider: String,
    pub provider_id: String,
    pub workspace: Workspace,
    pub e164: String,
    pub number_type: String,
    pub nickname: Option<String>,
    pub status: PoolStatus,
    /// Kept as text: it may name an agent deleted since (validation reports that).
    pub agent_id: Option<String>,
    /// The assistant holding it, when an assistant (not an agent) does.
    pub assistant_id: Option<String>,
    pub voice_url: Option<String>,
    pub provider_agent: Option<String>,
    pub sip_trunk: Option<SipTrunk>,
    /// [`UNPARSEABLE`]: never claimed, assigned or routed.
    pub note: Option<String>,
    pub twilio: Option<TwilioVoice>,
    pub created_at: i64,
    pub updated_at: i64,
    pub released_at: Option<i64>,
}

/// A pool row as the directory shows it: with its agent's name (if the agent
/// still exists) and the number's live route in that workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRow {
    pub number: PoolNumber,
    pub agent_name: Option<String>,
    pub agent_workspace: Option<String>,
    /// JSON of the live route when the number is live in this workspace.
    pub live_route: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncCounts {
    pub added: u64,
    pub updated: u64,
    pub released: u64,
}

/// Which pool rows to list.
#[derive(Debug, Clone, Default)]
pub struct PoolFilter {
    pub workspace: Option<String>,
    pub status: Option<PoolStatus>,
    pub agent_id: Option<String>,
    pub e164: Option<String>,
}

/// A batch of numbers moved between routes, and what each had before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMigration {
    pub id: String,
    pub workspace: Workspace,
    pub target_route: Route,
    pub percent: i64,
    pub created_at: i64,
    pub rolled_back_at: Option<i64>,
    pub entries: Vec<MigrationEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationEntry {
    pub e164: String,
    pub previous_route: Route,
    /// The Twilio number whose webhook the migration re-pointed, and where it pointed.
    pub twilio_sid: Option<String>,
    pub previous_voice_url: Option<String>,
    /// Everything of the Twilio routing the migration replaced (`None` on entries
    /// recorded before it was kept, which restore the voice URL only).
    pub previous_twilio: Option<VoiceRouting>,
}

const POOL_COLUMNS: &str = "p.id, p.provider, p.provider_id, p.workspace, p.e164, p.number_type, \
     p.nickname, p.status, p.agent_id, p.assistant_id, p.voice_url, p.provider_agent, p.sip_trunk, \
     p.note, p.twilio_voice, p.created_at, p.updated_at, p.released_at";

impl Store {
    /// Brings the pool of one provider account (`provider` in `workspace`) in line
    /// with `numbers`, the provider's complete list, in one transaction: new numbers
    /// are added AVAILABLE, known ones updated (a released one that reappears is
    /// AVAILABLE again), the ones the provider no longer lists are RELEASED.
    #[tracing::instrument(skip_all, fields(provider, workspace = %workspace, numbers = numbers.len()))]
    pub async fn sync_pool(
        &self,
        provider: &str,
        workspace: &Workspace,
        numbers: &[SyncedNumber],
    ) -> Result<SyncCounts, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        write_lock(&mut tx).await?;
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM phone_numbers p WHERE p.provider = $1 AND p.workspace = $2"
        );
        let rows = sqlx::query(&sql)
            .bind(provider)
            .bind(workspace.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let mut known: HashMap<String, PoolNumber> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let number = pool_from_row(row)?;
            known.insert(number.provider_id.clone(), number);
        }
        drop(rows);

        let mut counts = SyncCounts::default();
        let mut new = Vec::new();
        for number in numbers {
            match known.remove(&number.provider_id) {
                None => new.push(number),
                Some(old) => {
                    if update_if_changed(&mut tx, &old, number, now).await? {
                        counts.updated += 1;
                    }
                }
            }
        }
        for chunk in new.chunks(INSERT_ROWS_PER_STATEMENT) {
            insert_new(&mut tx, provider, workspace, chunk, now).await?;
            counts.added += chunk.len() as u64;
        }
        let gone: Vec<&str> = known
            .values()
            .filter(|n| n.status != PoolStatus::Released)
            .map(|n| n.id.as_str())
            .collect();
        for chunk in gone.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE phone_numbers SET status = 'RELEASED', released_at = $1, updated_at = $1 \
                 WHERE id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(now);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
            counts.released += chunk.len() as u64;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Atomically takes an AVAILABLE number of `workspace` for `holder`. Of any
    /// number of concurrent claims each gets a different number (or none). An
    /// assistant answers one number: a claim for an assistant that holds one
    /// already takes nothing ([`Claim::HolderHasOne`]), decided in the same
    /// statement as the claim (and, on PostgreSQL, under the assistant's row
    /// lock), so two racing claims for one assistant never give it two.
    #[tracing::instrument(skip_all, fields(workspace = %workspace, holder = %holder))]
    pub async fn claim_available(
        &self,
        workspace: &Workspace,
        holder: &Holder,
    ) -> Result<Claim, StoreError> {
        // PostgreSQL: concurrent claims skip each other's locked rows. SQLite has one
        // writer at a time; the `status` re-check makes a lost race a retry.
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let one_only = match holder {
            Holder::Agent(_) => "",
            Holder::Assistant(_) => {
                " AND NOT EXISTS (SELECT 1 FROM phone_numbers held \
                 WHERE held.assistant_id = $1 AND held.status = 'ASSIGNED')"
            }
        };
        let sql = format!(
            "UPDATE phone_numbers SET status = 'ASSIGNED', {column} = $1, updated_at = $2 \
             WHERE id = (SELECT id FROM phone_numbers \
                         WHERE workspace = $3 AND status = 'AVAILABLE' AND note IS NULL \
                         ORDER BY e164, id LIMIT 1{lock}) \
               AND status = 'AVAILABLE'{one_only} \
             RETURNING {}",
            POOL_COLUMNS.replace("p.", ""),
            column = holder.column(),
        );
        for _ in 0..CLAIM_ATTEMPTS {
            let mut tx = self.begin().await?;
            if let (Holder::Assistant(id), Backend::Postgres) = (holder, self.backend()) {
                // Claims for one assistant queue here; the one behind sees the
                // number the one before took (each statement reads what is
                // committed when it starts).
                sqlx::query("SELECT id FROM assistants WHERE id = $1 FOR UPDATE")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            }
            let row = sqlx::query(&sql)
                .bind(holder.id())
                .bind(now_ms())
                .bind(workspace.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                let number = pool_from_row(&row)?;
                tx.commit().await?;
                return Ok(Claim::Taken(number));
            }
            tx.rollback().await?;
            if let Holder::Assistant(_) = holder {
                if let Some(held) = self.numbers_of(holder).await?.into_iter().next() {
                    return Ok(Claim::HolderHasOne(held));
                }
            }
            let any_left = sqlx::query(
                "SELECT id FROM phone_numbers \
                 WHERE workspace = $1 AND status = 'AVAILABLE' AND note IS NULL LIMIT 1",
            )
            .bind(workspace.as_str())
            .fetch_optional(self.pool())
            .await?;
            if any_left.is_none() {
                return Ok(Claim::NoneLeft);
            }
        }
        Err(StoreError::Conflict(format!(
            "no number of workspace {workspace} could be claimed after {CLAIM_ATTEMPTS} attempts"
        )))
    }

    /// Takes one given AVAILABLE number for `holder`; `None` when it is not
    /// AVAILABLE (any more).
    #[tracing::instrument(skip_all, fields(id, holder = %holder))]
    pub async fn claim_number(
        &self,
        id: &str,
        holder: &Holder,
    ) -> Result<Option<PoolNumber>, StoreError> {
        let sql = format!(
            "UPDATE phone_numbers SET status = 'ASSIGNED', {column} = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'AVAILABLE' AND note IS NULL RETURNING {}",
            POOL_COLUMNS.replace("p.", ""),
            column = holder.column(),
        );
        let row = sqlx::query(&sql)
            .bind(holder.id())
            .bind(now_ms())
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(pool_from_row).transpose()
    }

    /// Gives a claimed number back to the pool (AVAILABLE, no holder) — only while
    /// `holder` still holds it.
    #[tracing::instrument(skip_all, fields(id, holder = %holder))]
    pub async fn release_claim(&self, id: &str, holder: &Holder) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE phone_numbers SET status = 'AVAILABLE', {column} = NULL, updated_at = $1 \
             WHERE id = $2 AND {column} = $3 AND status = 'ASSIGNED'",
            column = holder.column(),
        ))
        .bind(now_ms())
        .bind(id)
        .bind(holder.id())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a claimed number as its holder's live route: in one transaction the
    /// pool row is checked to be still the holder's, and the live number is pointed
    /// at the holder ([`Holder::route`]). Refused ([`StoreError::Conflict`]) when the number is live in
    /// another workspace: an assignment never re-routes another workspace's calls.
    #[tracing::instrument(skip_all, fields(e164 = %number.e164, holder = %holder))]
    pub async fn record_assignment(
        &self,
        number: &PoolNumber,
        holder: &Holder,
        voice_url: Option<&str>,
        provider_agent: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let route = route_json(&holder.route(), &number.e164)?;
        let mut tx = self.begin().await?;
        // Still the holder's? Checked by the first write, which also takes SQLite's
        // write lock at once (a read first could not be upgraded under contention).
        // What the provider now has is kept, so the next sync finds nothing changed.
        let held = sqlx::query(&format!(
            "UPDATE phone_numbers SET voice_url = $1, provider_agent = $2, updated_at = $3 \
             WHERE id = $4 AND {column} = $5 AND status = 'ASSIGNED'",
            column = holder.column(),
        ))
        .bind(voice_url)
        .bind(provider_agent)
        .bind(now)
        .bind(&number.id)
        .bind(holder.id())
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "{} is no longer held by {holder}",
                number.e164
            )));
        }
        let live = sqlx::query(
            "INSERT INTO numbers (e164, workspace, route, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (e164) DO UPDATE SET route = excluded.route, updated_at = excluded.updated_at \
             WHERE numbers.workspace = excluded.workspace \
             RETURNING e164",
        )
        .bind(&number.e164)
        .bind(number.workspace.as_str())
        .bind(route)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            return Err(StoreError::Conflict(format!(
                "{} is live in another workspace",
                number.e164
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns a holder's number to the pool (AVAILABLE, no holder); when its live
    /// route was the holder's own ([`Holder::route`]: that agent alone, or the
    /// assistant), the number's calls go to voicemail instead. Returns the new live
    /// route when it changed.
    #[tracing::instrument(skip_all, fields(id = %number.id, holder = %holder))]
    pub async fn unassign(
        &self,
        number: &PoolNumber,
        holder: &Holder,
        clear_provider_agent: bool,
    ) -> Result<Option<Route>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let clear = if clear_provider_agent {
            ", provider_agent = NULL"
        } else {
            ""
        };
        sqlx::query(&format!(
            "UPDATE phone_numbers SET status = 'AVAILABLE', {column} = NULL, updated_at = $1{clear} \
             WHERE id = $2 AND {column} = $3 AND status = 'ASSIGNED'",
            column = holder.column(),
        ))
        .bind(now)
        .bind(&number.id)
        .bind(holder.id())
        .execute(&mut *tx)
        .await?;
        let own_route = route_json(&holder.route(), &number.e164)?;
        let voicemail = route_json(&Route::Voicemail, &number.e164)?;
        let changed = sqlx::query(
            "UPDATE numbers SET route = $1, updated_at = $2 \
             WHERE e164 = $3 AND workspace = $4 AND route = $5",
        )
        .bind(voicemail)
        .bind(now)
        .bind(&number.e164)
        .bind(number.workspace.as_str())
        .bind(own_route)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((changed.rows_affected() == 1).then_some(Route::Voicemail))
    }

    /// The numbers an agent or assistant holds (ASSIGNED).
    #[tracing::instrument(skip_all, fields(holder = %holder))]
    pub async fn numbers_of(&self, holder: &Holder) -> Result<Vec<PoolNumber>, StoreError> {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM phone_numbers p \
             WHERE p.{column} = $1 AND p.status = 'ASSIGNED' ORDER BY p.e164, p.id",
            column = holder.column(),
        );
        let rows = sqlx::query(&sql)
            .bind(holder.id())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(pool_from_row).collect()
    }

    #[tracing::instrument(skip_all, fields(id))]
    pub async fn pool_number(&self, id: &str) -> Result<Option<PoolNumber>, StoreError> {
        let sql = format!("SELECT {POOL_COLUMNS} FROM phone_numbers p WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(pool_from_row).transpose()
    }

    /// Adds (or updates) one number a provider just took in (an import).
    #[tracing::instrument(skip_all, fields(provider, e164 = %number.e164))]
    pub async fn add_to_pool(
        &self,
        provider: &str,
        workspace: &Workspace,
        number: &SyncedNumber,
    ) -> Result<PoolNumber, StoreError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        write_lock(&mut tx).await?;
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM phone_numbers p \
             WHERE p.provider = $1 AND p.provider_id = $2 AND p.workspace = $3"
        );
        let existing = sqlx::query(&sql)
            .bind(provider)
            .bind(&number.provider_id)
            .bind(workspace.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match existing.as_ref().map(pool_from_row).transpose()? {
            Some(old) => {
                update_if_changed(&mut tx, &old, number, now).await?;
            }
            None => insert_new(&mut tx, provider, workspace, &[number], now).await?,
        }
        let row = sqlx::query(&sql)
            .bind(provider)
            .bind(&number.provider_id)
            .bind(workspace.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        pool_from_row(&row)
    }

    /// The directory: pool rows with their agent and live route, by workspace,
    /// then number, then provider.
    #[tracing::instrument(skip_all)]
    pub async fn directory(&self, filter: &PoolFilter) -> Result<Vec<DirectoryRow>, StoreError> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut next = |column: &str, value: String, binds: &mut Vec<String>| {
            binds.push(value);
            conditions.push(format!("{column} = ${}", binds.len()));
        };
        if let Some(w) = &filter.workspace {
            next("p.workspace", w.clone(), &mut binds);
        }
        if let Some(s) = filter.status {
            next("p.status", s.as_str().to_owned(), &mut binds);
        }
        if let Some(a) = &filter.agent_id {
            next("p.agent_id", a.clone(), &mut binds);
        }
        if let Some(e) = &filter.e164 {
            next("p.e164", e.clone(), &mut binds);
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // The database builds the whole answer as one JSON array: one value to
        // move instead of 18 per row (sqlx's per-value cost dominated a 100,000-row
        // listing; this is 3 to 4 times faster).
        let fields = DIRECTORY_FIELDS
            .iter()
            .map(|(name, column)| format!("'{name}', {column}"))
            .collect::<Vec<_>>()
            .join(", ");
        let from = format!(
            "FROM phone_numbers p \
             LEFT JOIN agents a ON a.id = p.agent_id \
             LEFT JOIN numbers n ON n.e164 = p.e164 AND n.workspace = p.workspace \
             {filter_sql}"
        );
        let order = "p.workspace, p.e164, p.provider, p.provider_id";
        let sql = match self.backend() {
            Backend::Sqlite => format!(
                "SELECT COALESCE(json_group_array(json(o)), '[]') AS rows FROM \
                 (SELECT json_object({fields}) AS o {from} ORDER BY {order})"
            ),
            Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_object({fields}) ORDER BY {order}), '[]'::json)::text \
                 AS rows {from}"
            ),
        };
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        let row = query.fetch_one(self.pool()).await?;
        let text: String = row.try_get("rows")?;
        let rows: Vec<JsonRow> = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("the directory listing: {e}")))?;
        rows.into_iter().map(JsonRow::into_row).collect()
    }

    /// Records a route migration and its entries, in one transaction.
    #[tracing::instrument(skip_all, fields(id = %migration.id))]
    pub async fn save_route_migration(&self, migration: &RouteMigration) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO route_migrations (id, workspace, target_route, percent, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&migration.id)
        .bind(migration.workspace.as_str())
        .bind(route_json(&migration.target_route, &migration.id)?)
        .bind(migration.percent)
        .bind(migration.created_at)
        .execute(&mut *tx)
        .await?;
        for entry in &migration.entries {
            sqlx::query(
                "INSERT INTO route_migration_entries \
                 (migration_id, e164, previous_route, twilio_sid, previous_voice_url, previous_twilio) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&migration.id)
            .bind(&entry.e164)
            .bind(route_json(&entry.previous_route, &entry.e164)?)
            .bind(entry.twilio_sid.as_deref())
            .bind(entry.previous_voice_url.as_deref())
            .bind(
                entry
                    .previous_twilio
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("previous routing: {e}")))?,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A migration by id, or the latest one of `workspace` not rolled back yet.
    #[tracing::instrument(skip_all)]
    pub async fn route_migration(
        &self,
        id: Option<&str>,
        workspace: &Workspace,
    ) -> Result<Option<RouteMigration>, StoreError> {
        let columns = "id, workspace, target_route, percent, created_at, rolled_back_at";
        let row = match id {
            Some(id) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM route_migrations WHERE id = $1 AND workspace = $2"
                ))
                .bind(id)
                .bind(workspace.as_str())
                .fetch_optional(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM route_migrations \
                     WHERE workspace = $1 AND rolled_back_at IS NULL \
                     ORDER BY created_at DESC, id DESC LIMIT 1"
                ))
                .bind(workspace.as_str())
                .fetch_optional(self.pool())
                .await?
            }
        };
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let workspace: String = row.try_get("workspace")?;
        let target: String = row.try_get("target_route")?;
        let entries = sqlx::query(
            "SELECT e164, previous_route, twilio_sid, previous_voice_url, previous_twilio \
             FROM route_migration_entries WHERE migration_id = $1 ORDER BY e164",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            let e164: String = row.try_get("e164")?;
            let previous: String = row.try_get("previous_route")?;
            let twilio: Option<String> = row.try_get("previous_twilio")?;
            Ok(MigrationEntry {
                previous_twilio: twilio
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| {
                        StoreError::Corrupt(format!("previous Twilio routing of {e164}: {e}"))
                    })?,
                previous_route: parse_route(&previous, &e164)?,
                twilio_sid: row.try_get("twilio_sid")?,
                previous_voice_url: row.try_get("previous_voice_url")?,
                e164,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(RouteMigration {
            workspace: Workspace::parse(&workspace)
                .map_err(|e| StoreError::Corrupt(format!("route_migrations.workspace: {e}")))?,
            target_route: parse_route(&target, &id)?,
            percent: row.try_get("percent")?,
            created_at: row.try_get("created_at")?,
            rolled_back_at: row.try_get("rolled_back_at")?,
            entries,
            id,
        }))
    }

    /// Marks a migration rolled back; `false` when it already was.
    #[tracing::instrument(skip_all, fields(id))]
    pub async fn mark_rolled_back(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE route_migrations SET rolled_back_at = $1 WHERE id = $2 AND rolled_back_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Remembers how a Twilio number is routed now (after re-pointing or restoring
    /// it), so the next sync finds nothing changed.
    #[tracing::instrument(skip_all, fields(id))]
    pub async fn set_twilio_routing(
        &self,
        id: &str,
        routing: &VoiceRouting,
    ) -> Result<(), StoreError> {
        let trunk = routing.trunk_sid.clone().map(|trunk_sid| SipTrunk {
            trunk_sid: Some(trunk_sid),
            ..SipTrunk::default()
        });
        sqlx::query(
            "UPDATE phone_numbers SET voice_url = $1, twilio_voice = $2, sip_trunk = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(routing.voice_url.as_deref())
        .bind(voice_json(routing.voice().as_ref())?)
        .bind(trunk_json(trunk.as_ref())?)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Makes a transaction a writer from its first statement. SQLite cannot upgrade a
/// reading transaction to a writing one while another connection writes (it fails
/// at once, without waiting for the busy timeout); a write, even of no row, takes
/// the write lock up front and waits its turn. Harmless on PostgreSQL.
async fn write_lock(tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE phone_numbers SET updated_at = updated_at WHERE 1 = 0")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The directory listing's JSON keys and the columns they come from.
const DIRECTORY_FIELDS: &[(&str, &str)] = &[
    ("id", "p.id"),
    ("provider", "p.provider"),
    ("provider_id", "p.provider_id"),
    ("workspace", "p.workspace"),
    ("e164", "p.e164"),
    ("number_type", "p.number_type"),
    ("nickname", "p.nickname"),
    ("status", "p.status"),
    ("agent_id", "p.agent_id"),
    ("assistant_id", "p.assistant_id"),
    ("voice_url", "p.voice_url"),
    ("provider_agent", "p.provider_agent"),
    ("sip_trunk", "p.sip_trunk"),
    ("note", "p.note"),
    ("twilio_voice", "p.twilio_voice"),
    ("created_at", "p.created_at"),
    ("updated_at", "p.updated_at"),
    ("released_at", "p.released_at"),
    ("agent_name", "a.name"),
    ("agent_workspace", "a.workspace"),
    ("live_route", "n.route"),
];

/// One object of the directory listing, as the database wrote it.
#[derive(Deserialize)]
struct JsonRow {
    id: String,
    provider: String,
    provider_id: String,
    workspace: String,
    e164: String,
    number_type: String,
    nickname: Option<String>,
    status: String,
    agent_id: Option<String>,
    assistant_id: Option<String>,
    voice_url: Option<String>,
    provider_agent: Option<String>,
    sip_trunk: Option<String>,
    note: Option<String>,
    twilio_voice: Option<String>,
    created_at: i64,
    updated_at: i64,
    released_at: Option<i64>,
    agent_name: Option<String>,
    agent_workspace: Option<String>,
    live_route: Option<String>,
}

impl JsonRow {
    fn into_row(self) -> Result<DirectoryRow, StoreError> {
        let id = self.id;
        Ok(DirectoryRow {
            number: PoolNumber {
                workspace: Workspace::parse(&self.workspace).map_err(|e| {
                    StoreError::Corrupt(format!("phone_numbers.workspace of {id}: {e}"))
                })?,
                status: PoolStatus::parse(&self.status)
                    .ok_or_else(|| StoreError::Corrupt(format!("phone_numbers.status of {id}")))?,
                sip_trunk: self
                    .sip_trunk
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| {
                        StoreError::Corrupt(format!("phone_numbers.sip_trunk of {id}: {e}"))
                    })?,
                twilio: parse_voice(self.twilio_voice.as_deref(), &id)?,
                note: self.note,
                provider: self.provider,
                provider_id: self.provider_id,
                e164: self.e164,
                number_type: self.number_type,
                nickname: self.nickname,
                agent_id: self.agent_id,
                assistant_id: self.assistant_id,
                voice_url: self.voice_url,
                provider_agent: self.provider_agent,
                created_at: self.created_at,
                updated_at: self.updated_at,
                released_at: self.released_at,
                id,
            },
            agent_name: self.agent_name,
            agent_workspace: self.agent_workspace,
            live_route: self.live_route,
        })
    }
}

async fn update_if_changed(
    tx: &mut Transaction<'static, Any>,
    old: &PoolNumber,
    new: &SyncedNumber,
    now: i64,
) -> Result<bool, StoreError> {
    let reappeared = old.status == PoolStatus::Released;
    let same = !reappeared
        && old.e164 == new.e164
        && old.number_type == new.number_type
        && old.nickname == new.nickname
        && old.voice_url == new.voice_url
        && old.provider_agent == new.provider_agent
        && old.sip_trunk == new.sip_trunk
        && old.note == new.note
        && old.twilio == new.twilio;
    if same {
        return Ok(false);
    }
    let trunk = trunk_json(new.sip_trunk.as_ref())?;
    let sql = if reappeared {
        "UPDATE phone_numbers SET e164 = $1, number_type = $2, nickname = $3, voice_url = $4, \
             provider_agent = $5, sip_trunk = $6, updated_at = $7, note = $9, twilio_voice = $10, \
             status = 'AVAILABLE', agent_id = NULL, assistant_id = NULL, released_at = NULL \
         WHERE id = $8"
    } else {
        "UPDATE phone_numbers SET e164 = $1, number_type = $2, nickname = $3, voice_url = $4, \
             provider_agent = $5, sip_trunk = $6, updated_at = $7, note = $9, twilio_voice = $10 \
         WHERE id = $8"
    };
    sqlx::query(sql)
        .bind(&new.e164)
        .bind(&new.number_type)
        .bind(new.nickname.as_deref())
        .bind(new.voice_url.as_deref())
        .bind(new.provider_agent.as_deref())
        .bind(trunk)
        .bind(now)
        .bind(&old.id)
        .bind(new.note.as_deref())
        .bind(voice_json(new.twilio.as_ref())?)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

async fn insert_new(
    tx: &mut Transaction<'static, Any>,
    provider: &str,
    workspace: &Workspace,
    numbers: &[&SyncedNumber],
    now: i64,
) -> Result<(), StoreError> {
    const COLUMNS: usize = 15;
    let values = (0..numbers.len())
        .map(|row| format!("({})", placeholders(row * COLUMNS + 1, COLUMNS)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO phone_numbers (id, provider, provider_id, workspace, e164, number_type, \
             nickname, status, voice_url, provider_agent, sip_trunk, note, twilio_voice, \
             created_at, updated_at) \
         VALUES {values}"
    );
    let mut query = sqlx::query(&sql);
    for number in numbers {
        query = query
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(provider)
            .bind(&number.provider_id)
            .bind(workspace.as_str())
            .bind(&number.e164)
            .bind(&number.number_type)
            .bind(number.nickname.as_deref())
            .bind(PoolStatus::Available.as_str())
            .bind(number.voice_url.as_deref())
            .bind(number.provider_agent.as_deref())
            .bind(trunk_json(number.sip_trunk.as_ref())?)
            .bind(number.note.as_deref())
            .bind(voice_json(number.twilio.as_ref())?)
            .bind(now)
            .bind(now);
    }
    query
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("a number of {provider}")))?;
    Ok(())
}

fn trunk_json(trunk: Option<&SipTrunk>) -> Result<Option<String>, StoreError> {
    trunk
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("sip trunk: {e}")))
}

fn voice_json(voice: Option<&TwilioVoice>) -> Result<Option<String>, StoreError> {
    voice
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("twilio voice: {e}")))
}

fn parse_voice(raw: Option<&str>, id: &str) -> Result<Option<TwilioVoice>, StoreError> {
    raw.map(serde_json::from_str)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("phone_numbers.twilio_voice of {id}: {e}")))
}

fn route_json(route: &Route, of: &str) -> Result<String, StoreError> {
    serde_json::to_string(route).map_err(|e| StoreError::Corrupt(format!("route of {of}: {e}")))
}

fn parse_route(raw: &str, of: &str) -> Result<Route, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("route of {of}: {e}")))
}

fn pool_from_row(row: &AnyRow) -> Result<PoolNumber, StoreError> {
    let id: String = row.try_get("id")?;
    let workspace: String = row.try_get("workspace")?;
    let status: String = row.try_get("status")?;
    let trunk: Option<String> = row.try_get("sip_trunk")?;
    let voice: Option<String> = row.try_get("twilio_voice")?;
    Ok(PoolNumber {
        twilio: parse_voice(voice.as_deref(), &id)?,
        note: row.try_get("note")?,
        workspace: Workspace::parse(&workspace)
            .map_err(|e| StoreError::Corrupt(format!("phone_numbers.workspace of {id}: {e}")))?,
        status: PoolStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("phone_numbers.status of {id}")))?,
        sip_trunk: trunk
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("phone_numbers.sip_trunk of {id}: {e}")))?,
        provider: row.try_get("provider")?,
        provider_id: row.try_get("provider_id")?,
        e164: row.try_get("e164")?,
        number_type: row.try_get("number_type")?,
        nickname: row.try_get("nickname")?,
        agent_id: row.try_get("agent_id")?,
        assistant_id: row.try_get("assistant_id")?,
        voice_url: row.try_get("voice_url")?,
        provider_agent: row.try_get("provider_agent")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        released_at: row.try_get("released_at")?,
        id,
    })
}
