//! The node link's handshake (issue 16, items 4 and 7): both ends prove they
//! hold the cluster secret, which never crosses the wire.
//!
//! The dialing node sends, with its upgrade request, its id, the id of the node it
//! means to reach, the time and a fresh nonce, and an HMAC-SHA256 of the four
//! under the secret. The accepting node checks that the request is meant for it,
//! recent (within [`MAX_SKEW_MS`]), not a replay (nonces seen within the skew
//! window are remembered), and that the MAC verifies (in constant time); only
//! then does it upgrade, and its first frame is its own MAC over the dialer's
//! nonce, which the dialer checks before it trusts a single frame. A request that
//! fails any check is answered `401` and logged; no frame is accepted from it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const NODE_HEADER: &str = "x-switchboard-node";
pub const TARGET_HEADER: &str = "x-switchboard-target";
pub const TIME_HEADER: &str = "x-switchboard-time";
pub const NONCE_HEADER: &str = "x-switchboard-nonce";
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";

/// How far the dialer's clock may be from the acceptor's.
pub const MAX_SKEW_MS: i64 = 30_000;
/// Nonces remembered at most (a flood of handshakes cannot grow memory).
const MAX_NONCES: usize = 65_536;

fn mac(secret: &SecretString, parts: &[&str]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// The dialer's MAC over its request.
pub fn dial_signature(
    secret: &SecretString,
    from: &str,
    to: &str,
    time_ms: i64,
    nonce: &str,
) -> String {
    let time = time_ms.to_string();
    hex::encode(
        mac(
            secret,
            &["switchboard link v1 dial", from, to, &time, nonce],
        )
        .finalize()
        .into_bytes(),
    )
}

/// The acceptor's MAC over the dialer's nonce: its first frame.
pub fn accept_signature(
    secret: &SecretString,
    acceptor: &str,
    dialer: &str,
    nonce: &str,
) -> String {
    hex::encode(
        mac(
            secret,
            &["switchboard link v1 accept", acceptor, dialer, nonce],
        )
        .finalize()
        .into_bytes(),
    )
}

fn verify(mac: Hmac<Sha256>, signature: &str) -> bool {
    match hex::decode(signature.trim()) {
        Ok(bytes) => mac.verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Checks the acceptor's first frame.
pub fn accepted(
    secret: &SecretString,
    acceptor: &str,
    dialer: &str,
    nonce: &str,
    signature: &str,
) -> bool {
    verify(
        mac(
            secret,
            &["switchboard link v1 accept", acceptor, dialer, nonce],
        ),
        signature,
    )
}

/// A dial request's claims, as read from its headers.
pub struct DialRequest<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub time_ms: i64,
    pub nonce: &'a str,
    pub signature: &'a str,
}

/// Why a dial request was refused (logged; the peer only sees `401`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is meant for node {0}, not this one")]
    WrongTarget(String),
    #[error("the request's time is {0} ms away from this node's clock")]
    Stale(i64),
    #[error("the nonce was used before (a replay)")]
    Replayed,
    #[error("the signature does not verify: the node does not hold the cluster's secret")]
    BadSignature,
    #[error("the nonce is empty or longer than 128 characters")]
    BadNonce,
    #[error("this node is stopping")]
    Stopping,
    #[error("{0:?} is not another node's id")]
    BadNode(String),
    #[error("the request is not a WebSocket upgrade")]
    NotWebSocket,
}

/// Nonces seen, and the order they came in (oldest first).
type Seen = (HashMap<String, i64>, VecDeque<(i64, String)>);

/// The nonces of recent dial requests, forgotten once older than the skew window.
#[derive(Default)]
pub struct Nonces {
    seen: Mutex<Seen>,
}

impl Nonces {
    /// Remembers `nonce` at `now_ms`; false if it was seen within the window.
    fn fresh(&self, nonce: &str, now_ms: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let (set, order) = &mut *seen;
        while let Some((at, _)) = order.front() {
            if *at >= now_ms - 2 * MAX_SKEW_MS && order.len() < MAX_NONCES {
                break;
            }
            if let Some((_, old)) = order.pop_front() {
                set.remove(&old);
            }
        }
        if set.contains_key(nonce) {
            return false;
        }
        set.insert(nonce.to_owned(), now_ms);
        order.push_back((now_ms, nonce.to_owned()));
        true
    }
}

/// Checks a dial request meant for `me` at `now_ms`.
pub fn check(
    secret: &SecretString,
    me: &str,
    request: &DialRequest<'_>,
    nonces: &Nonces,
    now_ms: i64,
) -> Result<(), Refusal> {
    if request.to != me {
        return Err(Refusal::WrongTarget(request.to.to_owned()));
    }
    if request.nonce.is_empty() || request.nonce.len() > 128 {
        return Err(Refusal::BadNonce);
    }
    let skew = now_ms - request.time_ms;
    if skew.abs() > MAX_SKEW_MS {
        return Err(Refusal::Stale(skew));
    }
    let time = request.time_ms.to_string();
    let expected = mac(
        secret,
        &[
            "switchboard link v1 dial",
            request.from,
            request.to,
            &time,
            request.nonce,
        ],
    );
    if !verify(expected, request.signature) {
        return Err(Refusal::BadSignature);
    }
    if !nonces.fresh(request.nonce, now_ms) {
        return Err(Refusal::Replayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("a cluster secret, long enough")
    }

    fn request<'a>(signature: &'a str, time_ms: i64, nonce: &'a str) -> DialRequest<'a> {
        DialRequest {
            from: "a",
            to: "b",
            time_ms,
            nonce,
            signature,
        }
    }

    #[test]
    fn a_signed_request_is_accepted_once_and_its_replay_refused() {
        let nonces = Nonces::default();
        let sig = dial_signature(&secret(), "a", "b", 1_000, "n1");
        assert_eq!(
            check(&secret(), "b", &request(&sig, 1_000, "n1"), &nonces, 1_500),
            Ok(())
        );
        assert_eq!(
            check(&secret(), "b", &request(&sig, 1_000, "n1"), &nonces, 1_600),
            Err(Refusal::Replayed)
        );
    }

    #[test]
    fn another_secret_a_stale_time_or_another_target_is_refused() {
        let nonces = Nonces::default();
        let wrong = dial_signature(
            &SecretString::from("another secret, long"),
            "a",
            "b",
            0,
            "n",
        );
        assert_eq!(
            check(&secret(), "b", &request(&wrong, 0, "n"), &nonces, 0),
            Err(Refusal::BadSignature)
        );
        let sig = dial_signature(&secret(), "a", "b", 0, "n2");
        assert!(matches!(
            check(
                &secret(),
                "b",
                &request(&sig, 0, "n2"),
                &nonces,
                MAX_SKEW_MS + 1
            ),
            Err(Refusal::Stale(_))
        ));
        assert_eq!(
            check(&secret(), "c", &request(&sig, 0, "n2"), &nonces, 0),
            Err(Refusal::WrongTarget("b".into()))
        );
        // The time is covered by the MAC: moving it breaks the signature.
        assert_eq!(
            check(&secret(), "b", &request(&sig, 5, "n2"), &nonces, 5),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn the_acceptor_proves_the_secret_over_the_dialers_nonce() {
        let sig = accept_signature(&secret(), "b", "a", "n");
        assert!(accepted(&secret(), "b", "a", "n", &sig));
        assert!(!accepted(&secret(), "b", "a", "other", &sig));
        assert!(!accepted(
            &SecretString::from("another secret, long"),
            "b",
            "a",
            "n",
            &sig
        ));
    }
}
