//! Number health (issue 12, item 3): each pool number's outbound calls over a
//! rolling window (`[safety.number_health]`): answer rate, short-call ratio,
//! opt-outs. A number past a threshold (once it placed `min_calls` in the
//! window; opt-outs count from the first) is rested — written to
//! `number_rest` with the threshold and the figures, until `rest_secs` later
//! — and the dispatcher's From selection skips it. Judged after every review
//! batch (`review`), so it survives restarts with the rows it reads. A rest
//! that ended less than a window ago is not judged again (the calls that
//! earned it are still in the window): a number rests at most once per
//! `rest_secs` + `window_secs`.
//! `GET /api/numbers/health` shows every pool number's figures ([`report`]).

use serde_json::{json, Value};

use super::review::figures_json;
use crate::config::{NumberHealthSettings, Settings};
use crate::store::safety_review::CallFigures;
use crate::store::{Store, StoreError};

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Why a number with these figures should rest (`None`: it is healthy).
pub fn verdict(config: &NumberHealthSettings, figures: &CallFigures) -> Option<String> {
    if figures.opt_outs > i64::from(config.max_opt_outs) {
        return Some(format!(
            "opt_outs: {} callees opted out (at most {})",
            figures.opt_outs, config.max_opt_outs
        ));
    }
    if figures.calls < i64::from(config.min_calls) {
        return None;
    }
    let answer_rate = ratio(figures.answered, figures.calls);
    if answer_rate < config.min_answer_rate {
        return Some(format!(
            "answer_rate: {} of {} calls answered ({:.0} % < {:.0} %)",
            figures.answered,
            figures.calls,
            answer_rate * 100.0,
            config.min_answer_rate * 100.0
        ));
    }
    let short = ratio(figures.short, figures.answered);
    if figures.answered > 0 && short > config.max_short_call_ratio {
        return Some(format!(
            "short_call_ratio: {} of {} answered calls shorter than {} s ({:.0} % > {:.0} %)",
            figures.short,
            figures.answered,
            config.short_call.as_secs(),
            short * 100.0,
            config.max_short_call_ratio * 100.0
        ));
    }
    None
}

/// Rests every number past a threshold now (one already resting is left
/// alone); answers the numbers rested.
pub async fn judge(
    store: &Store,
    settings: &Settings,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let config = &settings.safety.number_health;
    let since = now_ms.saturating_sub(ms(config.window));
    let figures = store
        .number_call_figures(since, ms(config.short_call))
        .await?;
    let resting = store.rested_numbers(now_ms).await?;
    let rests = store.number_rests().await?;
    let mut rested = Vec::new();
    for (number, figures) in &figures {
        if resting.contains_key(number) {
            continue;
        }
        // A rest that ended less than a window ago: the calls that earned it
        // are still in the window; the number is judged again once they left.
        if rests.get(number).is_some_and(|r| r.until_at > since) {
            continue;
        }
        if let Some(reason) = verdict(config, figures) {
            let until = now_ms.saturating_add(ms(config.rest));
            store
                .rest_number(number, &reason, &figures_json(figures), now_ms, until)
                .await?;
            tracing::warn!(e164 = %number, %reason, "number rested");
            rested.push(number.clone());
        }
    }
    Ok(rested)
}

/// Every pool number's figures over the window, whether it rests and why
/// (`GET /api/numbers/health`).
pub async fn report(store: &Store, settings: &Settings, now_ms: i64) -> Result<Value, StoreError> {
    let config = &settings.safety.number_health;
    let since = now_ms.saturating_sub(ms(config.window));
    let figures = store
        .number_call_figures(since, ms(config.short_call))
        .await?;
    let rests = store.number_rests().await?;
    let pool = store.all_twilio_numbers().await?;
    let numbers: Vec<Value> = pool
        .iter()
        .map(|number| {
            let own = figures.get(number).copied().unwrap_or_default();
            let rest = rests.get(number);
            let resting = rest.is_some_and(|r| r.until_at > now_ms);
            json!({
                "e164": number,
                "figures": figures_json(&own),
                "rested": resting,
                "reason": rest.filter(|_| resting).map(|r| r.reason.clone()),
                "rested_at": rest.filter(|_| resting).map(|r| rfc3339(r.rested_at)),
                "rested_until": rest.filter(|_| resting).map(|r| rfc3339(r.until_at)),
                "figures_when_rested": rest.filter(|_| resting).map(|r| r.figures.clone()),
                "would_rest": verdict(config, &own),
            })
        })
        .collect();
    Ok(json!({
        "window_secs": config.window.as_secs(),
        "thresholds": {
            "min_calls": config.min_calls,
            "min_answer_rate": config.min_answer_rate,
            "short_call_secs": config.short_call.as_secs(),
            "max_short_call_ratio": config.max_short_call_ratio,
            "max_opt_outs": config.max_opt_outs,
            "rest_secs": config.rest.as_secs(),
        },
        "numbers": numbers,
    }))
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(calls: i64, answered: i64, short: i64, opt_outs: i64) -> CallFigures {
        CallFigures {
            calls,
            answered,
            short,
            early_hangups: 0,
            opt_outs,
        }
    }

    #[test]
    fn a_number_rests_only_past_a_threshold_and_after_enough_calls() {
        let config = NumberHealthSettings::default();
        assert_eq!(
            verdict(&config, &figures(9, 0, 0, 0)),
            None,
            "too few calls"
        );
        assert_eq!(verdict(&config, &figures(20, 10, 2, 0)), None, "healthy");
        let low = verdict(&config, &figures(20, 2, 0, 0)).expect("rested");
        assert!(low.starts_with("answer_rate: 2 of 20"), "{low}");
        let short = verdict(&config, &figures(20, 10, 6, 0)).expect("rested");
        assert!(short.starts_with("short_call_ratio: 6 of 10"), "{short}");
        let opted = verdict(&config, &figures(2, 2, 0, 4)).expect("rested");
        assert!(opted.starts_with("opt_outs: 4"), "{opted}");
    }
}
