//! Recording of outbound calls (issue 12, item 6): off unless the call's
//! workspace is in `safety.recording.workspaces`; then the callee's state,
//! from the number's area code (`assets/npa_states.txt`, derived from
//! libphonenumber's geocoding data), decides when recording may start. In a
//! state of `safety.recording.all_party_consent_states` — or when the state is
//! not known — only after the callee has heard the recording notice; elsewhere
//! (one-party consent) from the dial.
//!
//! The dispatcher sends `Record=true` with the dial for [`RecordingPlan::FromDial`];
//! starting a recording after the notice is not built yet, so an
//! [`RecordingPlan::AfterNotice`] call is not recorded (docs/architecture.md
//! "Recording").

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::config::RecordingSettings;

/// When a call may be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingPlan {
    /// The workspace does not record.
    Off,
    /// One-party-consent state: from the dial (Twilio's `Record=true`).
    FromDial,
    /// All-party-consent state, or a state not known: after the notice.
    AfterNotice,
}

/// The NPA → state map of `assets/npa_states.txt`.
fn npa_states() -> &'static HashMap<&'static str, &'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        include_str!("../../assets/npa_states.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('|'))
            .collect()
    })
}

/// The US state of an E.164 number of the North American plan (`+1NPA…`), by
/// its area code; `None` outside the US or for an area code the data lacks.
pub fn state_of(e164: &str) -> Option<&'static str> {
    let npa = e164.strip_prefix("+1")?.get(..3)?;
    npa_states().get(npa).copied()
}

/// When the call of `workspace` to `to` (E.164) may be recorded.
pub fn plan(settings: &RecordingSettings, workspace: &str, to: &str) -> RecordingPlan {
    if !settings.workspaces.iter().any(|w| w == workspace) {
        return RecordingPlan::Off;
    }
    match state_of(to) {
        Some(state)
            if !settings
                .all_party_consent_states
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state)) =>
        {
            RecordingPlan::FromDial
        }
        _ => RecordingPlan::AfterNotice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(workspaces: &[&str]) -> RecordingSettings {
        let mut settings = crate::config::Settings::defaults().safety.recording;
        settings.workspaces = workspaces.iter().map(|w| (*w).to_owned()).collect();
        settings
    }

    #[test]
    fn area_codes_give_their_state() {
        assert_eq!(state_of("+14155550123"), Some("CA"));
        assert_eq!(state_of("+12125550123"), Some("NY"));
        assert_eq!(state_of("+12065550123"), Some("WA"));
        assert_eq!(state_of("+17205550123"), Some("CO"));
        assert_eq!(state_of("+12025550123"), Some("DC"));
        // Toronto, and not the North American plan at all.
        assert_eq!(state_of("+14165550123"), None);
        assert_eq!(state_of("+442071234567"), None);
    }

    #[test]
    fn recording_is_off_by_default() {
        let defaults = crate::config::Settings::defaults().safety.recording;
        assert!(defaults.workspaces.is_empty());
        assert_eq!(
            plan(&defaults, "default", "+17205550123"),
            RecordingPlan::Off
        );
    }

    #[test]
    fn all_party_states_and_unknown_ones_wait_for_the_notice() {
        let on = settings(&["acme"]);
        assert_eq!(
            on.all_party_consent_states,
            ["CA", "DE", "FL", "IL", "MD", "MA", "MI", "MT", "NH", "PA", "WA"]
        );
        assert_eq!(
            plan(&on, "acme", "+14155550123"),
            RecordingPlan::AfterNotice
        );
        assert_eq!(
            plan(&on, "acme", "+13055550123"),
            RecordingPlan::AfterNotice
        );
        assert_eq!(
            plan(&on, "acme", "+14165550123"),
            RecordingPlan::AfterNotice
        );
        assert_eq!(plan(&on, "acme", "+17205550123"), RecordingPlan::FromDial);
        assert_eq!(plan(&on, "acme", "+12125550123"), RecordingPlan::FromDial);
        assert_eq!(plan(&on, "other", "+12125550123"), RecordingPlan::Off);
    }
}
