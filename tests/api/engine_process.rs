//! One real `switchboard serve` process, single node, for the tests that need
//! the engine apart from the test process: killed and started again on the same
//! database (a crash), or measured by itself (its own resident memory, not that
//! of the test binary, whose other tests allocate in parallel).
//!
//! The binary is `SWITCHBOARD_TEST_BIN` when set, else `CARGO_BIN_EXE_switchboard`
//! (a target directory shared with other checkouts may hold another branch's
//! build). Its output goes to a log in the temp folder; `Drop` kills it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{free_port, spill_path_for, ADMIN_TOKEN, PATIENCE, TWILIO_TOKEN};

/// The engine binary the process tests run.
pub fn binary() -> PathBuf {
    std::env::var_os("SWITCHBOARD_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchboard")))
}

/// A running engine process.
pub struct EngineProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
}

/// A config file in the temp folder for an engine on `database_url`: its journal
/// spill file (per database, so an engine started again on it finds it), then
/// `more` (TOML sections of the test's own).
pub fn config_file(database_url: &str, more: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("sb_engine_{}.toml", uuid::Uuid::new_v4().simple()));
    let spill = spill_path_for(database_url);
    std::fs::write(
        &path,
        format!("[journal]\nspill_path = {spill:?}\n\n{more}"),
    )
    .expect("a config file");
    path
}

/// `switchboard --config CONFIG serve` on `database_url` and a free loopback
/// port, with the tests' admin and Twilio tokens, single node (no Redis, no node
/// id, no public URL from the environment). A test adds what it needs (a fake
/// provider's URL) before [`EngineProcess::start`].
pub fn serve_command(database_url: &str, config: &std::path::Path) -> (Command, u16) {
    let port = free_port();
    let mut command = Command::new(binary());
    command
        .args(["--config", &config.display().to_string(), "serve"])
        .env("DATABASE_URL", database_url)
        .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
        .env_remove("SWITCHBOARD_PUBLIC_URL")
        .env_remove("SWITCHBOARD_NODE_ID")
        .env_remove("SWITCHBOARD_NODE_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null());
    (command, port)
}

impl EngineProcess {
    /// Spawns `command` (from [`serve_command`], listening on `port`), its output
    /// appended to `log`, and waits until `/healthz` answers 200.
    pub async fn start(mut command: Command, port: u16, log: PathBuf) -> EngineProcess {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file");
        let child = command
            .stdout(file.try_clone().expect("the log"))
            .stderr(file)
            .spawn()
            .expect("the switchboard binary starts");
        let engine = EngineProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            if let Ok(res) = client.get(format!("{}/healthz", engine.url)).send().await {
                if res.status().is_success() {
                    return engine;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the engine never became healthy; its log:\n{}",
                engine.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The engine's resident memory (`VmRSS` of `/proc/PID/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).expect("the engine's /proc status");
        let kb: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in the engine's /proc status");
        kb * 1024
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the engine wrote on stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
