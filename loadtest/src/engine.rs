//! The engine under test: a `switchboard serve` child process and its log, and
//! where its binary is found.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::controller::{progress, Target};
use super::report::{EngineInfo, MEASURED};
use super::{random_hex, LoadtestArgs, MAX_NOTES};

/// The engine's binary, looked for beside this program (cargo builds both into one
/// target directory) and then on `PATH` unless `--engine-bin` names it.
const ENGINE_BIN: &str = "switchboard";

/// A `switchboard serve` child on a free loopback port with a fresh database.
pub(super) struct EngineProcess {
    pub(super) child: Option<Child>,
    pub(super) pid: u32,
    pub(super) dir: PathBuf,
    pub(super) log: PathBuf,
    pub(super) workers: usize,
    /// `--engine-database-url`: the server URL and the database created for this
    /// run, dropped by `finish`.
    pub(super) postgres: Option<(String, String)>,
}

impl EngineProcess {
    /// `extra_env`: set on the child after the shell's engine settings are removed
    /// (the AI scenario points `OPENAI_REALTIME_URL` at its fake).
    /// `extra_toml`: appended to the engine's `--config` file (the submit scenario's
    /// plan and outbound settings).
    pub(super) fn spawn(
        args: &LoadtestArgs,
        extra_env: &[(&str, String)],
        extra_toml: &str,
    ) -> anyhow::Result<(EngineProcess, Target)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-loadtest-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = args
            .engine_log
            .clone()
            .unwrap_or_else(|| dir.join("engine.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("creating the engine log {}", log.display()))?;
        let err = out.try_clone()?;
        let target = Target {
            base: format!("http://127.0.0.1:{port}"),
            admin_token: format!("sba_{}", random_hex(32)?),
            twilio_token: format!("lt_{}", random_hex(32)?),
            peer: None,
            agent_bases: Vec::new(),
        };
        let exe = engine_binary(args.engine_bin.as_deref());
        // `taskset` execs the engine already pinned, so every thread it starts
        // inherits the CPU (the workspace forbids the `unsafe` of a `pre_exec` hook).
        let mut command = match args.engine_cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let mut toml = String::new();
        if args.engine_workers > 0 {
            toml.push_str(&format!("workers = {}\n", args.engine_workers));
        }
        if let Some(ms) = args.mark_interval_ms {
            toml.push_str(&format!("[openai]\nmark_interval_ms = {ms}\n"));
        }
        toml.push_str(extra_toml);
        if !toml.is_empty() {
            let config = dir.join("engine.toml");
            std::fs::write(&config, toml)?;
            command.arg("--config").arg(config);
        }
        // The engine must not pick up this shell's engine settings.
        for name in [
            "SWITCHBOARD_BIND",
            "SWITCHBOARD_PUBLIC_URL",
            "SWITCHBOARD_NODE_ID",
            "REDIS_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_API_BASE",
            "OPENAI_API_KEY",
            "OPENAI_REALTIME_URL",
            "ANTHROPIC_API_KEY",
            "SWITCHBOARD_SUMMARY_PROVIDER",
            "SWITCHBOARD_SUMMARY_BASE_URL",
            "SWITCHBOARD_SUMMARY_MODEL",
        ] {
            command.env_remove(name);
        }
        let (database_url, postgres) = match &args.engine_database_url {
            Some(server) => {
                let name = format!("switchboard_loadtest_{}", random_hex(6)?);
                psql(server, &format!("CREATE DATABASE {name}"))?;
                (
                    database_url_with_name(server, &name)?,
                    Some((server.clone(), name)),
                )
            }
            None => (
                format!("sqlite://{}?mode=rwc", dir.join("loadtest.db").display()),
                None,
            ),
        };
        let child = command
            .arg("serve")
            .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("SWITCHBOARD_ADMIN_TOKEN", &target.admin_token)
            .env("TWILIO_AUTH_TOKEN", &target.twilio_token)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| {
                format!(
                    "starting the engine {}{} (build it with `cargo build --release \
                     --workspace`, pass --engine-bin, or drive a running engine with \
                     --engine-url)",
                    exe.display(),
                    if args.engine_cpu.is_some() {
                        " under taskset (util-linux), for --engine-cpu"
                    } else {
                        ""
                    }
                )
            })?;
        let pid = child.id();
        progress(format_args!(
            "engine started: pid {pid}, port {port}, log {}",
            log.display()
        ));
        Ok((
            EngineProcess {
                child: Some(child),
                pid,
                dir,
                log,
                workers: args.engine_workers,
                postgres,
            },
            target,
        ))
    }

    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "the engine exited ({status}); its log ({}) ends with:\n{}",
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
        }
        Ok(())
    }

    /// Stops the engine (SIGTERM, then SIGKILL), cleans up, reads its log.
    pub(super) fn finish(&mut self) -> EngineInfo {
        let exit = match self.child.take() {
            None => "had already exited".to_owned(),
            Some(mut child) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) => break format!("stopped by SIGTERM: {status}"),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break "did not stop within 10 s of SIGTERM; killed".to_owned();
                        }
                    }
                }
            }
        };
        for file in [
            "loadtest.db",
            "loadtest.db-wal",
            "loadtest.db-shm",
            "engine.toml",
        ] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let _ = std::fs::remove_dir(&self.dir); // only if the log lives elsewhere
        if let Some((server, name)) = self.postgres.take() {
            if let Err(err) = psql(&server, &format!("DROP DATABASE IF EXISTS {name}")) {
                progress(format_args!("could not drop the database {name}: {err:#}"));
            }
        }
        let (warnings, errors, problems) = scan_log(&self.log);
        EngineInfo {
            mode: "spawned",
            pid: Some(self.pid),
            measured: MEASURED.to_owned(),
            workers: self.workers,
            log: Some(self.log.display().to_string()),
            log_warnings: warnings,
            log_errors: errors,
            log_problems: problems,
            exit: Some(exit),
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `switchboard` binary to spawn: `given` (`--engine-bin`), else the one beside
/// this program, else the name alone, for the OS to find on `PATH`.
fn engine_binary(given: Option<&Path>) -> PathBuf {
    let file = format!("{ENGINE_BIN}{}", std::env::consts::EXE_SUFFIX);
    let beside = || {
        let path = std::env::current_exe().ok()?.parent()?.join(&file);
        path.is_file().then_some(path)
    };
    given
        .map(Path::to_owned)
        .or_else(beside)
        .unwrap_or_else(|| PathBuf::from(&file))
}

/// Runs one SQL statement with `psql` against `url` (creating and dropping the
/// run's PostgreSQL database: the generator has no database driver of its own).
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql (needed for --engine-database-url)")?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `postgres://user@host:port/anything?opts` with its database replaced by `name`.
fn database_url_with_name(server: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = server
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "postgres" | "postgresql"))
        .context("--engine-database-url must be postgres://USER@HOST:PORT/DATABASE")?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

/// Counts WARN and ERROR lines and keeps the first distinct few.
pub(super) fn scan_log(path: &std::path::Path) -> (usize, usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut warnings, mut errors, mut problems) = (0, 0, Vec::<String>::new());
    for line in text.lines() {
        let line = strip_ansi(line);
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        let is_error = level == "ERROR" || line.contains("panicked");
        if level == "WARN" {
            warnings += 1;
        } else if is_error {
            errors += 1;
        } else {
            continue;
        }
        // Quote each kind once: the message without its timestamp.
        let message: String = line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ");
        let key: String = message.chars().take(60).collect();
        if problems.len() < MAX_NOTES && !problems.iter().any(|p| p.starts_with(&key)) {
            problems.push(message.chars().take(300).collect());
        }
    }
    (warnings, errors, problems)
}

pub(super) fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub(super) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scan_counts_levels_without_colours() {
        assert_eq!(strip_ansi("\x1b[33m WARN\x1b[0m x"), " WARN x");
    }

    #[test]
    fn the_run_database_replaces_the_given_one() {
        assert_eq!(
            database_url_with_name("postgres://postgres@127.0.0.1:5432/postgres", "lt_1")
                .expect("postgres"),
            "postgres://postgres@127.0.0.1:5432/lt_1"
        );
        assert_eq!(
            database_url_with_name("postgresql://u:p@db/x?sslmode=disable", "lt_2")
                .expect("postgresql"),
            "postgresql://u:p@db/lt_2?sslmode=disable"
        );
        assert!(database_url_with_name("sqlite://x.db", "lt_3").is_err());
    }
}
