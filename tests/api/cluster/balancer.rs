//! A tiny load balancer in front of a test cluster: `SWITCHBOARD_PUBLIC_URL`
//! (where the fake Twilio posts its webhooks and follows its redirects) is this
//! balancer's URL. It proxies each TCP connection (one HTTP request: the fake
//! Twilio does not keep connections alive) round-robin to the nodes, as a real
//! one in front of a cluster does:
//!
//! - it health-checks every node's `GET /readyz` (every 100 ms) and sends
//!   nothing to a node that is not ready — a draining node fails readiness at
//!   once (issue 16, item 6);
//! - a node that refuses the connection (it died) is skipped for the next one.
//!
//! The test sets the backends ([`Balancer::set_backends`]), so a call can be
//! made to land on a chosen node first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

/// How often each backend's readiness is checked.
const HEALTH_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct Backend {
    addr: SocketAddr,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

pub struct Balancer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    backends: Arc<Mutex<Vec<Backend>>>,
}

impl Balancer {
    /// Listens on a free port; no backend yet.
    pub async fn start() -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let backends: Arc<Mutex<Vec<Backend>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let serving = Arc::clone(&backends);
        actix_rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (backends, next) = (Arc::clone(&serving), Arc::clone(&next));
                actix_rt::spawn(async move {
                    let candidates = backends.lock().expect("backends").clone();
                    if let Some(server) = pick(&candidates, &next).await {
                        forward(client, server).await;
                    }
                });
            }
        });
        let checking = Arc::clone(&backends);
        actix_rt::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .pool_max_idle_per_host(0)
                .build()
                .expect("a client");
            loop {
                let backends = checking.lock().expect("backends").clone();
                for backend in backends {
                    let ready = client
                        .get(format!("http://{}/readyz", backend.addr))
                        .send()
                        .await
                        .is_ok_and(|res| res.status().is_success());
                    backend.ready.store(ready, Ordering::Relaxed);
                }
                tokio::time::sleep(HEALTH_EVERY).await;
            }
        });
        Balancer { url, backends }
    }

    /// The nodes (`http://host:port`) requests go to from now on; each counts as
    /// ready until its first health check says otherwise.
    pub fn set_backends(&self, urls: &[&str]) {
        let backends = urls
            .iter()
            .map(|url| Backend {
                addr: url
                    .trim_start_matches("http://")
                    .parse()
                    .expect("a node URL is http://IP:PORT"),
                ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            })
            .collect();
        *self.backends.lock().expect("backends") = backends;
    }
}

/// The next ready backend, round-robin, that accepts a connection.
async fn pick(backends: &[Backend], next: &AtomicUsize) -> Option<TcpStream> {
    let n = backends.len();
    let start = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..n {
        let backend = &backends[(start + i) % n];
        if !backend.ready.load(Ordering::Relaxed) {
            continue;
        }
        match TcpStream::connect(backend.addr).await {
            Ok(server) => return Some(server),
            // Refused: the node is gone; try the next one.
            Err(_) => backend.ready.store(false, Ordering::Relaxed),
        }
    }
    None
}

async fn forward(mut client: TcpStream, mut server: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    let _ = client.shutdown().await;
}
