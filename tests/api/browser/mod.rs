//! The browser harness: headless Debian Chromium driven through chromedriver
//! (WebDriver, the `fantoccini` crate) against a real engine (`spawn_app`).
//!
//! ```ignore
//! let app = spawn_app().await;
//! let browser = Browser::start().await;            // one chromedriver per test
//! let page = browser.page().await;                 // one Chromium per page
//! page.sign_in(&app, &agent.token).await;          // lands on /agent
//! page.click("answer").await;                      // by data-testid
//! page.wait_attr("call-state", "data-state", "connected").await;
//! page.screenshot("agent-connected").await;        // target/screenshots/agent-connected.png
//! browser.close().await;
//! ```
//!
//! Chromium runs with a fake camera and microphone: every page's microphone plays
//! a WAV (`PageOptions::mic`, silence by default; `tone_wav` writes one), media
//! permissions are granted without a prompt (or refused: `PageOptions::deny_mic`)
//! and audio plays without a user gesture. chromedriver is found at
//! `$CHROMEDRIVER`, `/usr/bin/chromedriver` or on the `PATH`; Chromium at
//! `$CHROMIUM` or `/usr/bin/chromium`. `.ci/run` installs both from Debian.

#![allow(dead_code)] // the harness serves the pages' tests of other files too

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{TestApp, PATIENCE};

pub mod audio;
mod call_audio;
mod pages;

/// One browser test at a time in this process (`cargo test` runs tests on
/// threads): two Chromiums playing and capturing audio at once on a 2-core
/// machine starve each other's audio threads, and the pages' timing is part of
/// what these tests check. Under nextest (a process per test) the `browser`
/// test group of `.config/nextest.toml` does the same.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running chromedriver; its Chromium sessions are closed when it is dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    sessions: Mutex<Vec<String>>,
    /// Held until the browser is dropped (after its sessions are closed).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// How a page's Chromium is started.
#[derive(Default, Clone)]
pub struct PageOptions {
    /// The WAV the fake microphone plays (looped); silence when `None`.
    pub mic: Option<PathBuf>,
    /// Refuse the microphone permission (the page's "mic refused" path).
    pub deny_mic: bool,
    /// Window size; 1280×900 when `None`.
    pub size: Option<(u32, u32)>,
}

/// One Chromium window on a page of the engine.
pub struct Page {
    pub client: Client,
    pub base: String,
    driver_port: u16,
}

fn find_program(env: &str, default: &str, name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    if Path::new(default).exists() {
        return Some(PathBuf::from(default));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.exists())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

/// `target/` of this build (the test binary is `target/debug/deps/api-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// A scratch directory for one test's files (WAVs).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("browser-tmp")
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

impl Browser {
    /// Starts chromedriver on a free port; panics with what to install when it or
    /// Chromium is missing.
    pub async fn start() -> Browser {
        let Some(chromedriver) =
            find_program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
        else {
            panic!(
                "chromedriver is not installed: the browser tests drive Chromium through it. \
                 Install Debian's packages (`apt-get install chromium chromium-driver`, as \
                 .ci/run does) or set CHROMEDRIVER to its path"
            );
        };
        assert!(
            chromium().exists(),
            "Chromium is not installed at {}: `apt-get install chromium chromium-driver` \
             (as .ci/run does) or set CHROMIUM to its path",
            chromium().display()
        );
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", chromedriver.display()));
        let browser = Browser {
            driver,
            port,
            sessions: Mutex::new(Vec::new()),
            _turn: turn,
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        browser
    }

    /// A new Chromium window (its own profile) with a silent microphone.
    pub async fn page(&self) -> Page {
        self.page_with(PageOptions::default()).await
    }

    pub async fn page_with(&self, options: PageOptions) -> Page {
        let (width, height) = options.size.unwrap_or((1280, 900));
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--use-fake-device-for-media-stream".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--window-size={width},{height}"),
        ];
        if options.deny_mic {
            args.push("--deny-permission-prompts".into());
        } else {
            args.push("--use-fake-ui-for-media-stream".into());
        }
        if let Some(wav) = &options.mic {
            args.push(format!(
                "--use-file-for-fake-audio-capture={}",
                wav.display()
            ));
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium(), "args": args }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|err| panic!("chromedriver starts Chromium: {err}"));
        if let Ok(Some(id)) = client.session_id().await {
            self.sessions.lock().expect("sessions").push(id);
        }
        Page {
            client,
            base: String::new(),
            driver_port: self.port,
        }
    }

    /// Closes every window it opened, then chromedriver (also done on drop).
    pub async fn close(self) {
        drop(self);
    }
}

fn chromium() -> PathBuf {
    find_program("CHROMIUM", "/usr/bin/chromium", "chromium")
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Each session is deleted over chromedriver's HTTP (plain, blocking: drop
        // cannot await), which quits its Chromium; then chromedriver is stopped.
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in sessions {
            driver_request(self.port, "DELETE", &format!("/session/{id}"), "");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One plain HTTP/1.1 request to chromedriver, blocking (drop cannot await; the
/// answer is on loopback at once). Returns the raw answer, head and body. The
/// answer is read up to its `Content-Length`: chromedriver may keep the
/// connection open whatever `Connection: close` says, and reading to the end
/// would then wait out the read timeout with the test's runtime blocked (its
/// sockets unanswered, the engine's heartbeat dropping them).
fn driver_request(port: u16, method: &str, path: &str, body: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = Vec::new();
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok());
            if length.is_some_and(|length| answer.len() >= head_end + 4 + length) {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn by_testid(testid: &str) -> String {
    format!("[data-testid=\"{testid}\"]")
}

impl Page {
    /// Opens `path` of the engine (`/`, `/agent?debug=1`, …).
    pub async fn open(&mut self, app: &TestApp, path: &str) {
        self.base = app.address.clone();
        self.client
            .goto(&format!("{}{path}", app.address))
            .await
            .unwrap_or_else(|err| panic!("open {path}: {err}"));
    }

    /// Signs in on `/` with `token` and waits until the page has left `/`.
    pub async fn sign_in(&mut self, app: &TestApp, token: &str) {
        self.open(app, "/").await;
        self.type_into("token", token).await;
        self.click("sign-in").await;
        let left = self
            .wait_until(|page| async move { page.path().await != "/" })
            .await;
        assert!(left, "the sign-in page did not move on");
    }

    /// The path of the current URL (`/agent`).
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|url| url.path().to_string())
            .unwrap_or_default()
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|url| url.to_string())
            .unwrap_or_default()
    }

    /// The first element with this `data-testid`, waited for.
    pub async fn testid(&self, testid: &str) -> Element {
        self.find(&by_testid(testid)).await
    }

    /// The first element matching a CSS selector, waited for. Any error is
    /// retried until the patience runs out, not only "no such element": a find
    /// sent while the page navigates (after a sign-in's click) is answered
    /// "aborted by navigation", which fantoccini's own wait gives up on.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    panic!("no element {css} on the page: {err}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Every element matching a CSS selector now (no wait).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    pub async fn click(&self, testid: &str) {
        self.testid(testid)
            .await
            .click()
            .await
            .unwrap_or_else(|err| panic!("click {testid}: {err}"));
    }

    pub async fn type_into(&self, testid: &str, text: &str) {
        let element = self.testid(testid).await;
        let _ = element.clear().await;
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("type into {testid}: {err}"));
    }

    /// The element's visible text ("" when hidden).
    pub async fn text(&self, testid: &str) -> String {
        self.testid(testid).await.text().await.unwrap_or_default()
    }

    /// Polls `ready` (every 50 ms) until it holds, for at most [`PATIENCE`].
    pub async fn wait_until<'a, F, Fut>(&'a self, mut ready: F) -> bool
    where
        F: FnMut(&'a Page) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if ready(self).await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element's text contains `needle`; panics with what it shows.
    pub async fn wait_text(&self, testid: &str, needle: &str) -> String {
        let found = self
            .wait_until(|page| async move { page.text(testid).await.contains(needle) })
            .await;
        let shown = self.text(testid).await;
        assert!(found, "{testid} shows {shown:?}, not {needle:?}");
        shown
    }

    /// Waits until the attribute has this value; panics with what it has.
    pub async fn wait_attr(&self, testid: &str, attribute: &str, value: &str) {
        let found = self
            .wait_until(|page| async move {
                page.testid(testid)
                    .await
                    .attr(attribute)
                    .await
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(value)
            })
            .await;
        let has = self
            .testid(testid)
            .await
            .attr(attribute)
            .await
            .ok()
            .flatten();
        assert!(found, "{testid} has {attribute}={has:?}, not {value:?}");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("script failed: {err}\n{script}"))
    }

    /// Runs an async script: its last argument is the callback to call with the result.
    pub async fn eval_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(script, args)
            .await
            .unwrap_or_else(|err| panic!("async script failed: {err}\n{script}"))
    }

    /// Saves a PNG of the window as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|err| panic!("screenshot {name}: {err}"));
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// The browser console's entries since the last call (`level`, `message`),
    /// from chromedriver's log endpoint.
    pub async fn console(&self) -> Vec<(String, String)> {
        let Ok(Some(session)) = self.client.session_id().await else {
            return Vec::new();
        };
        let answer = driver_request(
            self.driver_port,
            "POST",
            &format!("/session/{session}/se/log"),
            r#"{"type":"browser"}"#,
        );
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let Some(entries) = value["value"].as_array() else {
            return Vec::new();
        };
        entries
            .iter()
            .map(|entry| {
                (
                    entry["level"].as_str().unwrap_or_default().to_string(),
                    entry["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
