//! The cluster's trust (issue 16, item 7): Redis keeps a verifier of the shared
//! secret — HMAC-SHA256 of a fixed string under the secret, never the secret —
//! set by the first node (`SET NX`); every later node computes its own and joins
//! only if the two match (compared in constant time).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What is MACed; a new version of the scheme changes it.
const VERIFIER_MESSAGE: &[u8] = b"switchboard cluster verifier v1";

fn mac(secret: &SecretString) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(VERIFIER_MESSAGE);
    mac
}

/// The verifier of `secret`, hex-encoded as it is stored.
pub fn verifier(secret: &SecretString) -> String {
    hex::encode(mac(secret).finalize().into_bytes())
}

/// Whether `stored` (hex) is the verifier of `secret`.
pub fn matches(secret: &SecretString, stored: &str) -> bool {
    match hex::decode(stored.trim()) {
        Ok(bytes) => mac(secret).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_matches_its_own_secret_only_and_never_contains_it() {
        let secret = SecretString::from("0123456789abcdef-cluster");
        let stored = verifier(&secret);
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains("0123456789abcdef"));
        assert!(matches(&secret, &stored));
        assert!(!matches(
            &SecretString::from("another secret, long"),
            &stored
        ));
        assert!(!matches(&secret, "not hex"));
        assert!(!matches(&secret, ""));
    }
}
