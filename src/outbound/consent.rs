//! The attestation a user signs for each outbound call, and the consent record
//! that keeps it: the wording as versioned text (config `[safety.consent]`:
//! `version`, `wording`) and its SHA-256 ([`wording_hash`]), the boxes it asks to be
//! ticked ([`Affirmation`]), and [`client_ip`], the address the record notes
//! (believing `X-Forwarded-For` only from `outbound.trusted_proxies`).
//!
//! The record itself is stored by `store::consent`; [`record`] makes one from a
//! parsed request's [`Attestation`](super::request::Attestation).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::request::Attestation;
use crate::config::ConsentSettings;
use crate::store::consent::{ConsentId, ConsentRecord};

/// The hex SHA-256 of an attestation's wording (`safety.consent.wording`),
/// stored with every record so that the text a signer saw can be proved.
pub fn wording_hash(wording: &str) -> String {
    hex::encode(Sha256::digest(wording.as_bytes()))
}

/// What the configured wording must say: every box, each on a line of its own
/// that starts with the box's field (`not_dnc: …`), and its version. Checked at
/// start-up.
pub fn check_wording(consent: &ConsentSettings) -> Result<(), String> {
    for affirmation in Affirmation::ALL {
        if !consent
            .wording
            .lines()
            .any(|line| line.starts_with(&format!("{}: ", affirmation.field())))
        {
            return Err(format!(
                "safety.consent.wording must have a line that starts with \"{}: \"",
                affirmation.field()
            ));
        }
    }
    if !consent.wording.contains(&consent.version) {
        return Err(format!(
            "safety.consent.wording must state its version {:?}",
            consent.version
        ));
    }
    Ok(())
}

/// One box of the attestation; each must be literally `true` in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affirmation {
    LegitimatePurpose,
    NotDnc,
    ReasonableBasis,
    UnderstandsRecording,
    AcceptsResponsibility,
}

impl Affirmation {
    /// Every box, in the order of the wording.
    pub const ALL: [Affirmation; 5] = [
        Affirmation::LegitimatePurpose,
        Affirmation::NotDnc,
        Affirmation::ReasonableBasis,
        Affirmation::UnderstandsRecording,
        Affirmation::AcceptsResponsibility,
    ];

    /// Its field in the request's `attestation` object (and in the record).
    pub fn field(self) -> &'static str {
        match self {
            Affirmation::LegitimatePurpose => "legitimate_purpose",
            Affirmation::NotDnc => "not_dnc",
            Affirmation::ReasonableBasis => "reasonable_basis",
            Affirmation::UnderstandsRecording => "understands_recording",
            Affirmation::AcceptsResponsibility => "accepts_responsibility",
        }
    }
}

/// A user agent longer than this is kept cut to it.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// The consent record of a signed attestation: who (`user_id`), what (the
/// wording's version and hash, every box, the signature), from where (`ip`,
/// from [`client_ip`], and the user agent) and when (`now_ms`, milliseconds
/// since the epoch, from the caller's clock).
pub fn record(
    user_id: &str,
    attestation: &Attestation,
    consent: &ConsentSettings,
    ip: IpAddr,
    user_agent: Option<&str>,
    now_ms: i64,
) -> ConsentRecord {
    ConsentRecord {
        id: ConsentId::new(),
        user_id: user_id.to_owned(),
        wording_version: consent.version.clone(),
        wording_hash: wording_hash(&consent.wording),
        affirmed: Affirmation::ALL
            .iter()
            .map(|box_| box_.field().to_owned())
            .collect(),
        signature_full_name: attestation.signature_full_name().to_owned(),
        signature_organization: attestation.signature_organization().map(str::to_owned),
        ip: ip.to_string(),
        user_agent: user_agent
            .map(str::trim)
            .filter(|agent| !agent.is_empty())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        created_at: now_ms,
    }
}

/// The client's address as a consent record notes it. `peer` is the address the
/// connection comes from; `forwarded_for` the values of every `X-Forwarded-For`
/// header, in order (each a comma-separated list, client first, each proxy
/// appending the address it was reached from).
///
/// `X-Forwarded-For` is believed only when `peer` is one of `trusted` (the
/// configured proxies): then the list is read from the right, skipping trusted
/// proxies, and the first address that is not one is the client. Anything a
/// client writes into the header itself sits left of that and is never reached.
/// When every address is a trusted proxy, or an entry is not an address, the
/// left-most trusted address reached is the best known, and is returned.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop_address(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port
/// (`203.0.113.9:4711`, `[2001:db8::1]:4711`), as its canonical IP.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("an address")
    }

    fn nets(raw: &[&str]) -> Vec<IpNet> {
        raw.iter().map(|n| n.parse().expect("a network")).collect()
    }

    fn consent() -> ConsentSettings {
        crate::config::Settings::defaults().safety.consent
    }

    #[test]
    fn the_default_wording_is_pinned_to_its_version() {
        // Changing the default wording changes its hash: give it a new version
        // (and update both here), so that old records keep pointing at old text.
        // (An engine started on a database that pinned the old text refuses a
        // changed wording under the same version, whatever the defaults say.)
        let consent = consent();
        assert_eq!(
            (
                consent.version.as_str(),
                wording_hash(&consent.wording).as_str()
            ),
            (
                "2026-12-01",
                "29dd5f01452b53147e5fb6ca907b7f478a696be789a41060e4e1ea8de6af9802"
            )
        );
        assert_eq!(check_wording(&consent), Ok(()));
    }

    #[test]
    fn a_wording_without_every_box_or_its_version_is_refused() {
        let mut missing_box = consent();
        missing_box.wording = missing_box
            .wording
            .replace("\nnot_dnc: ", "\nnot on a list: ");
        let err = check_wording(&missing_box).expect_err("refused");
        assert!(err.contains("not_dnc"), "{err}");
        let mut other_version = consent();
        other_version.version = "2027-01-01".into();
        let err = check_wording(&other_version).expect_err("refused");
        assert!(err.contains("2027-01-01"), "{err}");
    }

    #[test]
    fn a_record_keeps_the_wording_every_box_the_signature_and_the_client() {
        let request = super::super::request::OutboundRequest::parse(
            &super::super::request::example_body(),
            &["US".parse().expect("a region")],
            time::OffsetDateTime::parse(
                "2026-12-02T10:00:00Z",
                &time::format_description::well_known::Rfc3339,
            )
            .expect("a time"),
        )
        .expect("the example is valid");
        let agent = format!("  Mozilla/5.0 {}", "x".repeat(600));
        let record = record(
            "user-1",
            &request.attestation,
            &consent(),
            ip("203.0.113.9"),
            Some(&agent),
            1_796_000_000_000,
        );
        assert_eq!(record.user_id, "user-1");
        assert_eq!(
            (record.wording_version.as_str(), record.wording_hash),
            (consent().version.as_str(), wording_hash(&consent().wording))
        );
        assert_eq!(
            record.affirmed,
            [
                "legitimate_purpose",
                "not_dnc",
                "reasonable_basis",
                "understands_recording",
                "accepts_responsibility"
            ]
        );
        assert_eq!(record.signature_full_name, "Ada Lovelace");
        assert_eq!(
            record.signature_organization.as_deref(),
            Some("Analytical Engines Ltd")
        );
        assert_eq!(record.ip, "203.0.113.9");
        let kept = record.user_agent.expect("a user agent");
        assert!(kept.starts_with("Mozilla/5.0 "), "trimmed: {kept}");
        assert_eq!(kept.chars().count(), MAX_USER_AGENT_CHARS);
        assert_eq!(record.created_at, 1_796_000_000_000);
        let blank = super::record(
            "user-1",
            &request.attestation,
            &consent(),
            ip("::1"),
            Some("  "),
            0,
        );
        assert_eq!(blank.user_agent, None);
        assert_ne!(blank.id, record.id, "every record its own id");
    }

    #[test]
    fn a_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let proxies = nets(&["10.0.0.0/8"]);
        let peer = ip("198.51.100.7");
        assert_eq!(client_ip(peer, &["203.0.113.9"], &proxies), peer);
        assert_eq!(client_ip(peer, &["10.0.0.1"], &proxies), peer);
        assert_eq!(client_ip(peer, &["203.0.113.9"], &[]), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let proxies = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            client_ip(peer, &["203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(peer, &[], &proxies), peer, "no header: the peer");
        assert_eq!(
            client_ip(peer, &["203.0.113.9:4711"], &proxies),
            ip("203.0.113.9"),
            "a port is dropped"
        );
    }

    #[test]
    fn what_a_client_writes_into_the_header_is_never_reached() {
        let proxies = nets(&["10.0.0.0/8", "192.0.2.1/32"]);
        let peer = ip("10.0.0.2");
        // The client claimed 1.2.3.4; the edge proxy (192.0.2.1) appended the
        // client's real address, then the inner proxy appended the edge's.
        let chain = "1.2.3.4, 203.0.113.9, 192.0.2.1";
        assert_eq!(client_ip(peer, &[chain], &proxies), ip("203.0.113.9"));
        // The same chain over two headers.
        assert_eq!(
            client_ip(peer, &["1.2.3.4", "203.0.113.9, 192.0.2.1"], &proxies),
            ip("203.0.113.9")
        );
        // A client that pretends to be a trusted proxy gains nothing either.
        assert_eq!(
            client_ip(peer, &["1.2.3.4, 10.9.9.9, 203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_or_a_bad_entry_stops_at_the_last_known_address() {
        let proxies = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            client_ip(peer, &["10.0.0.9, 10.0.0.5"], &proxies),
            ip("10.0.0.9"),
            "every hop is a proxy: the left-most"
        );
        assert_eq!(
            client_ip(peer, &["203.0.113.9, unknown, 10.0.0.5"], &proxies),
            ip("10.0.0.5"),
            "an entry that is not an address ends the walk"
        );
        assert_eq!(client_ip(peer, &[""], &proxies), peer);
    }

    #[test]
    fn ipv6_and_mapped_ipv4_addresses_are_compared_canonically() {
        let proxies = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), &["203.0.113.9"], &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(
                ip("2001:db8::1"),
                &["[2001:db8:ffff::1]:443, 2001:db8::2"],
                &proxies
            ),
            ip("2001:db8:ffff::1"),
            "all trusted: the left-most"
        );
        assert_eq!(
            client_ip(ip("2001:db8::1"), &["2a00::1"], &proxies),
            ip("2a00::1")
        );
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.7"), &["203.0.113.9"], &proxies),
            ip("198.51.100.7")
        );
    }
}
