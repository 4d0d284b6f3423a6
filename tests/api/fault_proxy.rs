//! A TCP proxy in front of a server (PostgreSQL) that a test can break: `cut`
//! resets every connection and refuses new ones (the server crashed, a firewall
//! rejects), `hang` keeps the connections but forwards nothing (a network
//! partition: packets vanish, nothing errors), `heal` forwards again (connections
//! that were hung are reset then, as after a real partition).

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Cut,
    Hang,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl FaultProxy {
    /// Listens on a free local port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let (mode, watching) = watch::channel(Mode::Open);
        actix_rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                actix_rt::spawn(async move {
                    let mode = *watching.borrow_and_update();
                    match mode {
                        Mode::Cut => return,
                        Mode::Hang => {
                            // Accepted, then silence until healed or cut.
                            let _ = watching.wait_for(|m| *m != Mode::Hang).await;
                            if *watching.borrow() == Mode::Cut {
                                return;
                            }
                        }
                        Mode::Open => {}
                    }
                    forward(client, upstream, watching).await;
                });
            }
        });
        FaultProxy { addr, mode }
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    pub fn hang(&self) {
        self.mode.send_replace(Mode::Hang);
    }

    pub fn heal(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

/// Copies both ways until either side closes or the mode changes: `Cut` resets,
/// `Hang` stops forwarding (holding both sockets) until healed or cut.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut watching: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {
                let _ = client.shutdown().await;
                return;
            }
            changed = watching.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let mode = *watching.borrow_and_update();
        match mode {
            Mode::Cut => return,
            Mode::Open => continue,
            Mode::Hang => {
                // A connection that lived through a partition is broken for good
                // (bytes in flight are gone): it is reset once the network heals.
                let _ = watching.wait_for(|m| *m != Mode::Hang).await;
                return;
            }
        }
    }
}
