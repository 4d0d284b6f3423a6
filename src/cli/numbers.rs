//! `switchboard numbers …`: the directory on the command line, a client of a
//! running engine (`SWITCHBOARD_URL`, default `http://127.0.0.1:8080`, and the
//! admin token `SWITCHBOARD_ADMIN_TOKEN`). Results go to stdout, errors to stderr;
//! long runs show a progress bar on a terminal and nothing when piped.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::render;
use crate::domain::url::path_segment;
use crate::numbers::model::{Diff, DirectoryEntry, Validation};

#[derive(Debug, Args)]
pub struct NumbersArgs {
    /// The engine to ask.
    #[arg(
        long,
        env = "SWITCHBOARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The engine's admin token.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: NumbersCommand,
}

#[derive(Debug, Subcommand)]
pub enum NumbersCommand {
    /// Every number with its type, provider, status, nickname and agent, per workspace.
    List {
        #[arg(long)]
        workspace: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One number: E.164 and pretty form, type, area code, provider ids, SIP trunk
    /// (secrets masked), live route and assignment per workspace.
    Show { number: String },
    /// An agent's numbers in every workspace.
    AgentNumbers { agent: String },
    /// The AVAILABLE numbers.
    Unassigned {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Brings the pool in line with the providers.
    Sync {
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Numbers without provider ids, assignments to agents that no longer exist,
    /// duplicates across providers (errors: exit status 1); numbers a provider
    /// lists in a form that is not E.164, staging numbers missing from production
    /// (warnings).
    Validate,
    /// Every number and a summary.
    Report {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        workspace: Option<String>,
    },
    /// The numbers of workspace A and B compared.
    Diff { a: String, b: String },
    /// Writes DIR/numbers.json and DIR/workspaces/<workspace>.json (no credentials;
    /// workspace names are reduced to safe file names, nothing is written outside DIR).
    Export { dir: PathBuf },
    /// Sets a number's route; it takes effect on the number's next call.
    Route {
        number: String,
        #[arg(long, value_enum)]
        to: RouteKind,
        /// Agents to ring (repeat; none = every available agent of the workspace).
        #[arg(long = "agent")]
        agents: Vec<String>,
        /// The AI assistant (route `ai`).
        #[arg(long)]
        assistant: Option<String>,
        /// Needed when the number is in several workspaces and not live yet.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Moves a share of a workspace's numbers to a route (re-pointing Twilio
    /// webhooks at switchboard), recording what they had.
    Migrate {
        #[arg(long, value_enum)]
        to: RouteKind,
        #[arg(long)]
        percent: u8,
        #[arg(long, default_value = "production")]
        workspace: String,
        #[arg(long = "agent")]
        agents: Vec<String>,
        #[arg(long)]
        assistant: Option<String>,
    },
    /// Undoes a migration exactly (default: the workspace's latest).
    Rollback {
        #[arg(long, default_value = "production")]
        workspace: String,
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouteKind {
    Agents,
    Ai,
    Voicemail,
}

/// The route JSON the engine validates.
fn route_json(to: RouteKind, agents: &[String], assistant: Option<&str>) -> anyhow::Result<Value> {
    Ok(match to {
        RouteKind::Agents => json!({ "kind": "agents", "agent_ids": agents }),
        RouteKind::Voicemail => json!({ "kind": "voicemail" }),
        RouteKind::Ai => {
            let id = assistant.context("--to ai needs --assistant ID")?;
            json!({ "kind": "ai", "assistant_id": id })
        }
    })
}

/// Runs a `numbers` subcommand; returns the process exit status.
pub async fn run(args: NumbersArgs) -> anyhow::Result<i32> {
    let client = Engine::new(&args.url, args.token.as_deref())?;
    let mut out = std::io::stdout().lock();
    match args.command {
        NumbersCommand::List { workspace, json } => {
            let entries = client.entries(workspace.as_deref(), None).await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &entries)?;
                writeln!(out)?;
            } else {
                out.write_all(render::table(&entries).as_bytes())?;
            }
        }
        NumbersCommand::Unassigned { workspace } => {
            let entries = client
                .entries(workspace.as_deref(), Some("AVAILABLE"))
                .await?;
            out.write_all(render::table(&entries).as_bytes())?;
        }
        NumbersCommand::Show { number } => {
            let shown: Value = client
                .get(&format!("/api/directory/numbers/{}", path_segment(&number)))
                .await?;
            out.write_all(show_text(&shown).as_bytes())?;
        }
        NumbersCommand::AgentNumbers { agent } => {
            let shown: Value = client
                .get(&format!("/api/directory/agents/{}", path_segment(&agent)))
                .await?;
            out.write_all(agent_text(&shown)?.as_bytes())?;
        }
        NumbersCommand::Sync {
            provider,
            workspace,
        } => {
            let spinner = progress(None, "syncing numbers with the providers");
            let body = json!({ "provider": provider, "workspace": workspace });
            let (status, answer) = client
                .send(reqwest::Method::POST, "/api/numbers/sync", Some(&body))
                .await?;
            spinner.finish_and_clear();
            if (status.is_server_error() || status.is_client_error())
                && answer.get("added").is_none()
            {
                return Ok(fail(&answer));
            }
            writeln!(
                out,
                "added {}, updated {}, released {}",
                answer["added"], answer["updated"], answer["released"]
            )?;
            for a in answer["accounts"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "  {} ({}): added {}, updated {}, released {}",
                    str_of(&a["provider"]),
                    str_of(&a["workspace"]),
                    a["added"],
                    a["updated"],
                    a["released"]
                )?;
            }
            let failed = answer["failed"].as_array().cloned().unwrap_or_default();
            for f in &failed {
                eprintln!(
                    "error: {} ({}) failed, nothing of it changed: {}",
                    str_of(&f["provider"]),
                    str_of(&f["workspace"]),
                    str_of(&f["error"])
                );
            }
            if !failed.is_empty() {
                return Ok(1);
            }
        }
        NumbersCommand::Validate => {
            let v: Validation = client.get("/api/directory/validate").await?;
            for line in render::validation_lines(&v) {
                writeln!(out, "{line}")?;
            }
            if !v.errors.is_empty() {
                return Ok(1);
            }
        }
        NumbersCommand::Report {
            format,
            output,
            workspace,
        } => {
            let entries = client.entries(workspace.as_deref(), None).await?;
            let text = match format {
                Format::Table => render::report_table(&entries),
                Format::Json => render::report_json(&entries)?,
                Format::Csv => render::report_csv(&entries)?,
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} numbers to {}", entries.len(), path.display());
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
        NumbersCommand::Diff { a, b } => {
            let d: Diff = client
                .get(&format!(
                    "/api/directory/diff?a={}&b={}",
                    path_segment(&a),
                    path_segment(&b)
                ))
                .await?;
            for line in render::diff_lines(&d) {
                writeln!(out, "{line}")?;
            }
        }
        NumbersCommand::Export { dir } => {
            let entries = client.entries(None, None).await?;
            let bar = progress(Some(entries.len() as u64), "exporting");
            let files = render::export(&dir, &entries, &mut |n| bar.inc(n))?;
            bar.finish_and_clear();
            writeln!(
                out,
                "exported {} numbers to {} ({} files)",
                entries.len(),
                dir.display(),
                files.len()
            )?;
        }
        NumbersCommand::Route {
            number,
            to,
            agents,
            assistant,
            workspace,
        } => {
            let route = route_json(to, &agents, assistant.as_deref())?;
            let mut path = format!("/api/numbers/{}/route", path_segment(&number));
            if let Some(w) = workspace {
                path.push_str(&format!("?workspace={}", path_segment(&w)));
            }
            let (status, answer) = client
                .send(reqwest::Method::PUT, &path, Some(&route))
                .await?;
            if !status.is_success() {
                return Ok(fail(&answer));
            }
            writeln!(
                out,
                "{} [{}] now routes to {}",
                str_of(&answer["e164"]),
                str_of(&answer["workspace"]),
                answer["route"]
            )?;
        }
        NumbersCommand::Migrate {
            to,
            percent,
            workspace,
            agents,
            assistant,
        } => {
            let route = route_json(to, &agents, assistant.as_deref())?;
            let body = json!({ "workspace": workspace, "route": route, "percent": percent });
            let (status, answer) = client
                .send(reqwest::Method::POST, "/api/numbers/migrate", Some(&body))
                .await?;
            if !status.is_success() {
                return Ok(fail(&answer));
            }
            let moved = answer["moved"].as_array().cloned().unwrap_or_default();
            match answer["id"].as_str() {
                None => writeln!(
                    out,
                    "nothing to move: {percent}% of {workspace} is on that route already"
                )?,
                Some(id) => {
                    writeln!(
                        out,
                        "migration {id}: moved {} numbers of {workspace}",
                        moved.len()
                    )?;
                    for m in &moved {
                        let cleared: Vec<&str> = m["cleared"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let repointed = match (m["repointed"] == true, cleared.is_empty()) {
                            (false, _) => String::new(),
                            (true, true) => {
                                " (Twilio webhook re-pointed at switchboard)".to_owned()
                            }
                            (true, false) => format!(
                                " (Twilio webhook re-pointed at switchboard; cleared {})",
                                cleared.join(", ")
                            ),
                        };
                        writeln!(
                            out,
                            "  {} from {}{repointed}",
                            str_of(&m["e164"]),
                            m["previous_route"]
                        )?;
                    }
                }
            }
        }
        NumbersCommand::Rollback { workspace, id } => {
            let body = json!({ "workspace": workspace, "id": id });
            let (status, answer) = client
                .send(reqwest::Method::POST, "/api/numbers/rollback", Some(&body))
                .await?;
            if !status.is_success() {
                return Ok(fail(&answer));
            }
            let restored = answer["restored"].as_array().cloned().unwrap_or_default();
            writeln!(
                out,
                "rolled back migration {}: restored {} numbers",
                str_of(&answer["id"]),
                restored.len()
            )?;
            for r in &restored {
                writeln!(out, "  {} to {}", str_of(&r["e164"]), r["route"])?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

/// Prints the engine's error and gives the exit status.
fn fail(answer: &Value) -> i32 {
    eprintln!(
        "error: {} ({})",
        answer["message"].as_str().unwrap_or("the engine refused"),
        answer["code"].as_str().unwrap_or("error")
    );
    1
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// A bar (with a length) or a spinner on stderr; drawn only on a terminal.
fn progress(len: Option<u64>, message: &'static str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = match len {
        Some(len) => ProgressBar::with_draw_target(Some(len), target).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => {
            let spinner = ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        }
    };
    bar.set_message(message);
    bar
}

fn show_text(v: &Value) -> String {
    let mut out = format!(
        "{}  {}  {}\ntype: {}  area code: {}  region: {}\n",
        str_of(&v["e164"]),
        str_of(&v["pretty"]),
        str_of(&v["national"]),
        str_of(&v["type"]),
        str_of(&v["area_code"]),
        str_of(&v["region"]),
    );
    match v["live"].as_object() {
        Some(live) => out.push_str(&format!(
            "live in {}: route {}\n",
            live.get("workspace").and_then(Value::as_str).unwrap_or("-"),
            live.get("route").cloned().unwrap_or_default()
        )),
        None => out.push_str("live: no (calls to it are not routed by this engine)\n"),
    }
    let entries: Vec<DirectoryEntry> =
        serde_json::from_value(v["entries"].clone()).unwrap_or_default();
    for e in &entries {
        let agent = match (&e.agent_id, &e.agent_name) {
            (Some(id), Some(name)) => format!("agent {name} ({id})"),
            (Some(id), None) => format!("agent {id} (deleted)"),
            _ => "no agent".to_owned(),
        };
        out.push_str(&format!(
            "[{}] {} {} {} {}{}\n",
            e.workspace,
            e.provider,
            e.provider_id,
            e.status,
            agent,
            e.nickname
                .as_deref()
                .map(|n| format!(" nickname {n:?}"))
                .unwrap_or_default()
        ));
        if let Some(agent) = &e.provider_agent {
            out.push_str(&format!("  at the provider: agent {agent}\n"));
        }
        if let Some(note) = &e.note {
            out.push_str(&format!("  note: {note} (not an E.164 number)\n"));
        }
        if let Some(url) = &e.voice_url {
            out.push_str(&format!("  voice webhook: {url}\n"));
        }
        if let Some(twilio) = &e.twilio {
            if let Some(app) = &twilio.voice_application_sid {
                out.push_str(&format!("  voice application: {app}\n"));
            }
            if let Some(status) = &twilio.status_callback {
                out.push_str(&format!("  status callback: {status}\n"));
            }
        }
        if let Some(trunk) = &e.sip_trunk {
            let parts: Vec<String> = [
                ("trunk", &trunk.trunk_sid),
                ("termination", &trunk.termination_uri),
                ("user", &trunk.auth_username),
                ("password", &trunk.auth_password),
                ("credential", &trunk.credential_id),
                ("sip uri", &trunk.sip_uri),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
            .collect();
            out.push_str(&format!("  sip trunk: {}\n", parts.join(", ")));
        }
    }
    out
}

fn agent_text(v: &Value) -> anyhow::Result<String> {
    let mut out = match v["agent"].as_object() {
        Some(a) => format!(
            "agent {} ({}) of {}\n",
            a.get("name").and_then(Value::as_str).unwrap_or("-"),
            a.get("id").and_then(Value::as_str).unwrap_or("-"),
            a.get("workspace").and_then(Value::as_str).unwrap_or("-")
        ),
        None => "agent: no longer exists\n".to_owned(),
    };
    let entries: Vec<DirectoryEntry> = serde_json::from_value(v["numbers"].clone())?;
    out.push_str(&render::table(&entries));
    for r in v["routes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "route: {} [{}] rings this agent\n",
            str_of(&r["e164"]),
            str_of(&r["workspace"])
        ));
    }
    Ok(out)
}

/// The engine's admin API over HTTP.
struct Engine {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Engine {
    fn new(url: &str, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .context("building the HTTP client")?,
            base: url.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
        })
    }

    /// One request; the status and the raw answer.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, bytes::Bytes)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the engine at {}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the engine's answer")?;
        Ok((status, bytes))
    }

    /// One request; the answer as JSON (`Null` when it is not JSON).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let (status, bytes) = self.raw(method, path, body).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// GET, failing with the engine's message on an error status. The answer is
    /// read straight into `T` (a listing can be tens of megabytes).
    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (status, bytes) = self.raw(reqwest::Method::GET, path, None).await?;
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            anyhow::bail!(
                "{} ({})",
                value["message"].as_str().unwrap_or("the engine refused"),
                value["code"].as_str().unwrap_or(status.as_str())
            );
        }
        serde_json::from_slice(&bytes).context("the engine's answer is not what was expected")
    }

    async fn entries(
        &self,
        workspace: Option<&str>,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<DirectoryEntry>> {
        let mut query = Vec::new();
        if let Some(w) = workspace {
            query.push(format!("workspace={}", path_segment(w)));
        }
        if let Some(s) = status {
            query.push(format!("status={s}"));
        }
        let path = if query.is_empty() {
            "/api/directory".to_owned()
        } else {
            format!("/api/directory?{}", query.join("&"))
        };
        self.get(&path).await
    }
}
