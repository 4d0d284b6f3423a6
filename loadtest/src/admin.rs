//! The engine's HTTP side as the controller uses it: health, the admin API (agents,
//! numbers) and `/metrics`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::StreamExt as _;
use serde_json::json;

use super::controller::{check_alive, Target};
use super::engine::EngineProcess;
use super::{RingMode, HANGUP_TIMEOUT, HEALTH_TIMEOUT};

pub(super) async fn wait_healthy(
    client: &awc::Client,
    target: &Target,
    mut process: Option<&mut EngineProcess>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    let url = format!("{}/healthz", target.base);
    loop {
        check_alive(process.as_deref_mut())?;
        if let Ok(res) = client.get(&url).send().await {
            if res.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {HEALTH_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) struct AgentCreds {
    pub(super) id: String,
    pub(super) token: String,
}

pub(super) async fn create_agents(
    client: &awc::Client,
    target: &Target,
    workspaces: &[String],
) -> anyhow::Result<Vec<AgentCreds>> {
    let n = workspaces.len();
    let mut created: Vec<(usize, anyhow::Result<AgentCreds>)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let workspace = &workspaces[i];
            async move {
                let body = json!({ "name": format!("loadtest agent {i}"), "workspace": workspace });
                let result = async {
                    let value =
                        admin_post(client, target, "/api/agents", &body, Expect::Created).await?;
                    let field = |name: &str| {
                        value[name]
                            .as_str()
                            .map(str::to_owned)
                            .with_context(|| format!("no {name} in {value}"))
                    };
                    Ok(AgentCreds {
                        id: field("id")?,
                        token: field("token")?,
                    })
                }
                .await;
                (i, result)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    created.sort_by_key(|(i, _)| *i);
    created.into_iter().map(|(_, agent)| agent).collect()
}

/// The numbers calls go to: one for every agent (`all`), or one per agent (`own`),
/// in the fictional-looking +1 415 201 xxxx block.
pub(super) async fn create_numbers(
    client: &awc::Client,
    target: &Target,
    workspaces: &[String],
    agents: &[AgentCreds],
    ring: RingMode,
) -> anyhow::Result<Vec<String>> {
    let routes: Vec<(String, serde_json::Value, &str)> = match ring {
        RingMode::All => vec![(
            "+14152010000".to_owned(),
            json!({ "kind": "agents", "agent_ids": [] }),
            workspaces[0].as_str(),
        )],
        RingMode::Own => agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                (
                    format!("+1415201{i:04}"),
                    json!({ "kind": "agents", "agent_ids": [agent.id] }),
                    workspaces[i].as_str(),
                )
            })
            .collect(),
    };
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(routes.iter())
        .map(|(e164, route, workspace)| async move {
            let body = json!({ "e164": e164, "workspace": workspace, "route": route });
            admin_post(client, target, "/api/numbers", &body, Expect::Success).await?;
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(routes.into_iter().map(|(e164, _, _)| e164).collect())
}

pub(super) async fn scrape_metrics(
    client: &awc::Client,
    target: &Target,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut res = client
        .get(format!("{}/metrics", target.base))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET /metrics: {e}"))?;
    let body = res.body().await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

pub(super) fn metric(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    metrics
        .get(name)
        .or_else(|| metrics.get(&format!("{name}_total")))
        .copied()
}

pub(super) fn metric_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    name: &str,
) -> Option<f64> {
    Some(metric(after, name)? - metric(before, name)?)
}

/// Waits (bounded) until the engine has no call left; returns what it last saw.
pub(super) async fn wait_calls_ended(
    client: &awc::Client,
    target: &Target,
) -> (Option<i64>, BTreeMap<String, f64>) {
    let deadline = Instant::now() + HANGUP_TIMEOUT;
    loop {
        let metrics = scrape_metrics(client, target).await.unwrap_or_default();
        let active = metric(&metrics, "switchboard_calls_active").map(|v| v as i64);
        if active == Some(0) || Instant::now() > deadline {
            return (active, metrics);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The AI scenario's floor: one assistant (no greeting, no tools, the agents of its
/// workspace on failure) and one number routed to it; returns the number.
pub(super) async fn create_ai_number(
    client: &awc::Client,
    target: &Target,
    workspace: &str,
) -> anyhow::Result<String> {
    let body = json!({
        "name": "loadtest assistant",
        "workspace": workspace,
        "instructions": "You are a load test. Answer every frame.",
        "voice": "marin",
        "model": "gpt-realtime",
        "tools": [],
        "on_failure": { "kind": "agents", "agent_ids": [] },
    });
    let value = admin_post(client, target, "/api/assistants", &body, Expect::Created).await?;
    let id = value["id"]
        .as_str()
        .with_context(|| format!("no id in {value}"))?;
    let e164 = "+14152020000".to_owned();
    let body = json!({
        "e164": e164,
        "workspace": workspace,
        "route": { "kind": "ai", "assistant_id": id },
    });
    admin_post(client, target, "/api/numbers", &body, Expect::Success).await?;
    Ok(e164)
}

/// What an admin POST must answer.
#[derive(Clone, Copy)]
enum Expect {
    /// `201 Created` (a new agent or assistant).
    Created,
    /// Any 2xx (a number is created, or re-routed with 200).
    Success,
}

/// POSTs `body` to the admin API at `path` and returns the answer's JSON; a
/// transport error or an unexpected status is an error naming the request.
async fn admin_post(
    client: &awc::Client,
    target: &Target,
    path: &str,
    body: &serde_json::Value,
    expect: Expect,
) -> anyhow::Result<serde_json::Value> {
    let mut res = client
        .post(format!("{}{path}", target.base))
        .bearer_auth(&target.admin_token)
        .send_json(body)
        .await
        .map_err(|e| anyhow::anyhow!("POST {path}: {e}"))?;
    let bytes = res.body().await?;
    let status = res.status();
    let ok = match expect {
        Expect::Created => status.as_u16() == 201,
        Expect::Success => status.is_success(),
    };
    anyhow::ensure!(
        ok,
        "POST {path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(serde_json::from_slice(&bytes)?)
}

/// How many seats of `workspace` the engine's `/api/cluster/seats` lists that
/// `counted` accepts; `None` when it does not answer with a list.
pub(crate) async fn cluster_seats(
    client: &awc::Client,
    target: &Target,
    workspace: &str,
    counted: impl Fn(&serde_json::Value) -> bool,
) -> Option<usize> {
    let url = format!("{}/api/cluster/seats?workspace={workspace}", target.base);
    let mut res = client
        .get(&url)
        .bearer_auth(&target.admin_token)
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
    Some(
        body["seats"]
            .as_array()?
            .iter()
            .filter(|s| counted(s))
            .count(),
    )
}
