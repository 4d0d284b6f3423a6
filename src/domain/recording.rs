//! When an outbound call may be recorded (issue 12, item 6): off unless the
//! call's workspace records; then the callee's state, from the number's area
//! code (`assets/npa_states.txt`, derived from libphonenumber's geocoding data),
//! decides. In an all-party-consent state — or when the state is not known —
//! only after the callee has heard the recording notice; elsewhere (one-party
//! consent) from the dial. `config::RecordingSettings::plan` applies it to
//! `[safety.recording]`; the dispatcher sends `Record=true` with the dial for
//! [`RecordingPlan::FromDial`], the outbound assistant's relay starts the
//! recording once the notice has played for [`RecordingPlan::AfterNotice`].

use std::collections::HashMap;
use std::sync::OnceLock;

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

impl RecordingPlan {
    /// When the call of `workspace` to `to` (E.164) may be recorded, given the
    /// workspaces that record and the all-party-consent states.
    pub fn for_call(
        recording_workspaces: &[String],
        all_party_consent_states: &[String],
        workspace: &str,
        to: &str,
    ) -> RecordingPlan {
        if !recording_workspaces.iter().any(|w| w == workspace) {
            return RecordingPlan::Off;
        }
        match state_of(to) {
            Some(state)
                if !all_party_consent_states
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(state)) =>
            {
                RecordingPlan::FromDial
            }
            _ => RecordingPlan::AfterNotice,
        }
    }

    /// Whether the call is recorded at all (and the callee hears the notice).
    pub fn records(self) -> bool {
        self != RecordingPlan::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn all_party_states_and_unknown_ones_wait_for_the_notice() {
        let on = ["acme".to_owned()];
        let states = ["CA".to_owned(), "FL".to_owned()];
        let plan = |workspace: &str, to: &str| RecordingPlan::for_call(&on, &states, workspace, to);
        assert_eq!(plan("acme", "+14155550123"), RecordingPlan::AfterNotice);
        assert_eq!(plan("acme", "+13055550123"), RecordingPlan::AfterNotice);
        assert_eq!(plan("acme", "+14165550123"), RecordingPlan::AfterNotice);
        assert_eq!(plan("acme", "+17205550123"), RecordingPlan::FromDial);
        assert_eq!(plan("acme", "+12125550123"), RecordingPlan::FromDial);
        assert_eq!(plan("other", "+12125550123"), RecordingPlan::Off);
        assert!(!RecordingPlan::Off.records());
        assert!(RecordingPlan::AfterNotice.records() && RecordingPlan::FromDial.records());
    }
}
