//! What a call cost: telephony minutes per leg, realtime-model tokens per model,
//! the summary model's tokens, and the total. Pure: prices come from the
//! `[pricing]` settings ([`Pricing`]), usage from the call.
//!
//! Amounts are USD, computed in `f64` and rounded to 6 decimals per part; every
//! sum (a section's amount, the total) adds the rounded parts and is rounded
//! again, so the figures shown always add up. A model missing from the price
//! tables is priced 0 and shown with `"priced": false`, never guessed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

pub use crate::config::{Pricing, RealtimeRates, TokenRates};
use crate::domain::phone::PhoneNumber;

const MS_PER_MINUTE: i64 = 60_000;
const TOKENS_PER_RATE_UNIT: f64 = 1_000_000.0;

/// Token usage of one realtime model over a call, summed over its responses.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelUsage {
    /// How many `response.done` events were counted.
    pub responses: u64,
    /// Input tokens by modality; the cached ones are part of these.
    pub input_text_tokens: u64,
    pub input_audio_tokens: u64,
    pub cached_text_tokens: u64,
    pub cached_audio_tokens: u64,
    pub output_text_tokens: u64,
    pub output_audio_tokens: u64,
}

/// Realtime token usage of a call, per model (a call may switch models).
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RealtimeUsage {
    pub models: BTreeMap<String, ModelUsage>,
}

impl RealtimeUsage {
    /// Adds one `response.done.response.usage`. Missing fields count as 0; when
    /// the per-modality details are missing, the tokens not accounted for by
    /// them are counted as text.
    pub fn add(&mut self, model: &str, usage: &Value) {
        let n = |v: &Value, path: &[&str]| {
            path.iter()
                .try_fold(v, |v, key| v.get(key))
                .and_then(Value::as_u64)
        };
        let input_audio = n(usage, &["input_token_details", "audio_tokens"]).unwrap_or(0);
        let input_image = n(usage, &["input_token_details", "image_tokens"]).unwrap_or(0);
        let input_text = n(usage, &["input_token_details", "text_tokens"]).unwrap_or_else(|| {
            n(usage, &["input_tokens"])
                .unwrap_or(0)
                .saturating_sub(input_audio + input_image)
        });
        let cached = ["input_token_details", "cached_tokens_details"];
        let cached_audio = n(usage, &[cached[0], cached[1], "audio_tokens"]).unwrap_or(0);
        let cached_image = n(usage, &[cached[0], cached[1], "image_tokens"]).unwrap_or(0);
        let cached_text = n(usage, &[cached[0], cached[1], "text_tokens"]).unwrap_or_else(|| {
            n(usage, &["input_token_details", "cached_tokens"])
                .unwrap_or(0)
                .saturating_sub(cached_audio + cached_image)
        });
        let output_audio = n(usage, &["output_token_details", "audio_tokens"]).unwrap_or(0);
        let output_text = n(usage, &["output_token_details", "text_tokens"]).unwrap_or_else(|| {
            n(usage, &["output_tokens"])
                .unwrap_or(0)
                .saturating_sub(output_audio)
        });

        let sum = self.models.entry(model.to_owned()).or_default();
        sum.responses += 1;
        sum.input_text_tokens += input_text;
        sum.input_audio_tokens += input_audio;
        // Cached tokens are a subset of the input: never more than it.
        sum.cached_text_tokens += cached_text.min(input_text);
        sum.cached_audio_tokens += cached_audio.min(input_audio);
        sum.output_text_tokens += output_text;
        sum.output_audio_tokens += output_audio;
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Tokens the post-call summary used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The facts of one finished call that its cost depends on.
pub struct CallCostInput<'a> {
    /// The called number (E.164): a toll-free number is billed at the toll-free rate.
    pub to: &'a str,
    pub started_at: i64,
    pub ended_at: i64,
    /// How long the media stream was up, if the call had one.
    pub media_ms: Option<i64>,
    pub realtime: &'a RealtimeUsage,
    pub summary: Option<&'a SummaryUsage>,
}

/// The cost of a call as a JSON object:
///
/// ```json
/// {"currency":"USD",
///  "telephony":{"legs":[{"leg":"inbound","kind":"local","minutes":2,"rate_per_min":0.0085,"amount":0.017}],"amount":0.017},
///  "realtime":{"models":[{"model":"gpt-realtime","priced":true,…,"amount":0.01}],"amount":0.01},
///  "summary":{"model":"claude-haiku-4-5","priced":true,"input_tokens":900,"output_tokens":80,"amount":0.0013}|null,
///  "total":0.0283}
/// ```
pub fn breakdown(pricing: &Pricing, input: &CallCostInput<'_>) -> Value {
    let telephony = telephony(pricing, input);
    let realtime = realtime(pricing, input.realtime);
    let summary = input.summary.map(|usage| summary(pricing, usage));
    let total = round6(
        amount_of(&telephony)
            + amount_of(&realtime)
            + summary.as_ref().map(amount_of).unwrap_or(0.0),
    );
    json!({
        "currency": "USD",
        "telephony": telephony,
        "realtime": realtime,
        "summary": summary,
        "total": total,
    })
}

fn telephony(pricing: &Pricing, input: &CallCostInput<'_>) -> Value {
    let toll_free = PhoneNumber::parse(input.to).is_ok_and(|n| n.is_toll_free());
    let (kind, rate) = if toll_free {
        ("toll_free", pricing.inbound_toll_free_per_min)
    } else {
        ("local", pricing.inbound_local_per_min)
    };
    let mut legs = vec![leg(
        "inbound",
        kind,
        input.ended_at - input.started_at,
        rate,
    )];
    if let Some(media_ms) = input.media_ms {
        legs.push(leg(
            "media_stream",
            "stream",
            media_ms,
            pricing.media_stream_per_min,
        ));
    }
    let amount = round6(legs.iter().map(amount_of).sum());
    json!({ "legs": legs, "amount": amount })
}

/// One leg: its duration rounded up to whole minutes, as Twilio bills.
fn leg(leg: &str, kind: &str, duration_ms: i64, rate_per_min: f64) -> Value {
    let minutes = minutes_rounded_up(duration_ms);
    json!({
        "leg": leg,
        "kind": kind,
        "minutes": minutes,
        "rate_per_min": rate_per_min,
        "amount": round6(minutes as f64 * rate_per_min),
    })
}

fn minutes_rounded_up(duration_ms: i64) -> i64 {
    let ms = duration_ms.max(0);
    (ms + MS_PER_MINUTE - 1) / MS_PER_MINUTE
}

fn realtime(pricing: &Pricing, usage: &RealtimeUsage) -> Value {
    let models: Vec<Value> = usage
        .models
        .iter()
        .map(|(model, usage)| {
            let (priced_as, rates) = match lookup(&pricing.realtime, model) {
                Some((name, rates)) => (Some(name), Some(rates)),
                None => (None, None),
            };
            let amount = rates.map_or(0.0, |r| {
                let price = |tokens: u64, per_million: f64| tokens as f64 * per_million;
                let text_full = usage
                    .input_text_tokens
                    .saturating_sub(usage.cached_text_tokens);
                let audio_full = usage
                    .input_audio_tokens
                    .saturating_sub(usage.cached_audio_tokens);
                round6(
                    (price(text_full, r.text_in)
                        + price(usage.cached_text_tokens, r.text_cached)
                        + price(usage.output_text_tokens, r.text_out)
                        + price(audio_full, r.audio_in)
                        + price(usage.cached_audio_tokens, r.audio_cached)
                        + price(usage.output_audio_tokens, r.audio_out))
                        / TOKENS_PER_RATE_UNIT,
                )
            });
            let mut entry = json!({
                "model": model,
                "priced": rates.is_some(),
                "responses": usage.responses,
                "input_text_tokens": usage.input_text_tokens,
                "input_audio_tokens": usage.input_audio_tokens,
                "cached_text_tokens": usage.cached_text_tokens,
                "cached_audio_tokens": usage.cached_audio_tokens,
                "output_text_tokens": usage.output_text_tokens,
                "output_audio_tokens": usage.output_audio_tokens,
                "amount": amount,
            });
            if let Some(name) = priced_as.filter(|name| name != model) {
                entry["priced_as"] = name.into();
            }
            entry
        })
        .collect();
    let amount = round6(models.iter().map(amount_of).sum());
    json!({ "models": models, "amount": amount })
}

fn summary(pricing: &Pricing, usage: &SummaryUsage) -> Value {
    let found = lookup(&pricing.summary, &usage.model);
    let amount = found.as_ref().map_or(0.0, |(_, rates)| {
        round6(
            (usage.input_tokens as f64 * rates.input + usage.output_tokens as f64 * rates.output)
                / TOKENS_PER_RATE_UNIT,
        )
    });
    let mut entry = json!({
        "model": usage.model,
        "priced": found.is_some(),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "amount": amount,
    });
    if let Some((name, _)) = found.filter(|(name, _)| *name != usage.model) {
        entry["priced_as"] = name.into();
    }
    entry
}

/// A model's rates: by its exact name, else (for a dated snapshot such as
/// `gpt-realtime-2025-08-28`) by the name without the date, which the breakdown
/// then shows as `priced_as`.
fn lookup<'t, R>(table: &'t BTreeMap<String, R>, model: &str) -> Option<(String, &'t R)> {
    if let Some(rates) = table.get(model) {
        return Some((model.to_owned(), rates));
    }
    let base = strip_date_suffix(model)?;
    table.get(base).map(|rates| (base.to_owned(), rates))
}

/// `name-YYYY-MM-DD` → `name`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let date = date.as_bytes();
    let shape = date[0] == b'-'
        && date[5] == b'-'
        && date[8] == b'-'
        && [1, 2, 3, 4, 6, 7, 9, 10]
            .iter()
            .all(|&i| date[i].is_ascii_digit());
    (shape && !base.is_empty()).then_some(base)
}

fn amount_of(part: &Value) -> f64 {
    part["amount"].as_f64().unwrap_or(0.0)
}

/// Rounds to 6 decimals (micro-dollars).
fn round6(amount: f64) -> f64 {
    (amount * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn pricing() -> Pricing {
        Settings::defaults().pricing
    }

    fn usage_sample() -> Value {
        // The example of PROTOCOLS.md §6.4.
        json!({"total_tokens":253,"input_tokens":132,"output_tokens":121,
               "input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,
                 "cached_tokens":64,
                 "cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},
               "output_token_details":{"text_tokens":30,"audio_tokens":91}})
    }

    fn input<'a>(
        to: &'a str,
        secs: i64,
        media: Option<i64>,
        realtime: &'a RealtimeUsage,
        summary: Option<&'a SummaryUsage>,
    ) -> CallCostInput<'a> {
        CallCostInput {
            to,
            started_at: 1_000_000,
            ended_at: 1_000_000 + secs * 1_000,
            media_ms: media,
            realtime,
            summary,
        }
    }

    #[test]
    fn the_default_price_tables_hold_the_documented_figures() {
        let p = pricing();
        assert_eq!(p.inbound_local_per_min, 0.0085);
        assert_eq!(p.inbound_toll_free_per_min, 0.022);
        assert_eq!(p.outbound_per_min, 0.014);
        assert_eq!(p.media_stream_per_min, 0.004);
        let full = &p.realtime["gpt-realtime"];
        assert_eq!(
            (full.text_in, full.text_cached, full.text_out),
            (4.0, 0.4, 16.0)
        );
        assert_eq!(
            (full.audio_in, full.audio_cached, full.audio_out),
            (32.0, 0.4, 64.0)
        );
        assert_eq!(p.realtime["gpt-realtime-2.1"].text_out, 24.0);
        assert_eq!(p.realtime["gpt-realtime-2.1-mini"].audio_cached, 0.3);
        assert_eq!(p.realtime["gpt-4o-mini-realtime-preview"].text_cached, 0.3);
        for model in [
            "gpt-realtime",
            "gpt-realtime-1.5",
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-mini",
            "gpt-realtime-2.1-mini",
            "gpt-4o-mini-realtime-preview",
        ] {
            assert!(p.realtime.contains_key(model), "{model}");
        }
        assert_eq!(p.summary["claude-sonnet-4-5"].output, 15.0);
        assert_eq!(p.summary["gpt-4.1-mini"].input, 0.4);
    }

    #[test]
    fn usage_sums_per_model_and_modality() {
        let mut usage = RealtimeUsage::default();
        usage.add("gpt-realtime", &usage_sample());
        usage.add("gpt-realtime", &usage_sample());
        usage.add("gpt-realtime-mini", &json!({}));
        let full = &usage.models["gpt-realtime"];
        assert_eq!(
            *full,
            ModelUsage {
                responses: 2,
                input_text_tokens: 238,
                input_audio_tokens: 26,
                cached_text_tokens: 128,
                cached_audio_tokens: 0,
                output_text_tokens: 60,
                output_audio_tokens: 182,
            }
        );
        assert_eq!(
            usage.models["gpt-realtime-mini"],
            ModelUsage {
                responses: 1,
                ..ModelUsage::default()
            }
        );
    }

    #[test]
    fn usage_without_details_counts_the_rest_as_text() {
        let mut usage = RealtimeUsage::default();
        usage.add(
            "m",
            &json!({"input_tokens": 100, "output_tokens": 40,
                    "input_token_details": {"audio_tokens": 30, "cached_tokens": 500},
                    "output_token_details": {"audio_tokens": 10}}),
        );
        let m = &usage.models["m"];
        assert_eq!((m.input_text_tokens, m.input_audio_tokens), (70, 30));
        assert_eq!(m.cached_text_tokens, 70, "cached never exceeds the input");
        assert_eq!((m.output_text_tokens, m.output_audio_tokens), (30, 10));
    }

    #[test]
    fn realtime_tokens_are_priced_per_modality_with_cached_input_cheaper() {
        let mut usage = RealtimeUsage::default();
        usage.add("gpt-realtime", &usage_sample());
        let cost = breakdown(&pricing(), &input("+14155550100", 0, None, &usage, None));
        // text: 55 full × 4 + 64 cached × 0.4 + 30 out × 16; audio: 13 × 32 + 91 × 64
        let expected = (55.0 * 4.0 + 64.0 * 0.4 + 30.0 * 16.0 + 13.0 * 32.0 + 91.0 * 64.0) / 1e6;
        let model = &cost["realtime"]["models"][0];
        assert_eq!(model["priced"], true);
        assert_eq!(model["amount"].as_f64(), Some(round6(expected)));
        assert_eq!(cost["realtime"]["amount"].as_f64(), Some(round6(expected)));
        assert_eq!(model["cached_text_tokens"], 64);
        assert_eq!(cost["total"].as_f64(), Some(round6(expected)));
    }

    #[test]
    fn telephony_minutes_round_up_per_leg() {
        let usage = RealtimeUsage::default();
        // 61 s call, 59 s media stream: 2 minutes inbound, 1 minute stream.
        let cost = breakdown(
            &pricing(),
            &input("+14155550100", 61, Some(59_000), &usage, None),
        );
        let legs = &cost["telephony"]["legs"];
        assert_eq!(
            legs[0],
            json!({"leg":"inbound","kind":"local","minutes":2,"rate_per_min":0.0085,"amount":0.017})
        );
        assert_eq!(
            legs[1],
            json!({"leg":"media_stream","kind":"stream","minutes":1,"rate_per_min":0.004,"amount":0.004})
        );
        assert_eq!(cost["telephony"]["amount"].as_f64(), Some(0.021));
        assert_eq!(cost["total"].as_f64(), Some(0.021));
        assert_eq!(cost["summary"], Value::Null);
        assert_eq!(cost["currency"], "USD");

        let exact = breakdown(&pricing(), &input("+14155550100", 120, None, &usage, None));
        assert_eq!(exact["telephony"]["legs"][0]["minutes"], 2);
        assert_eq!(exact["telephony"]["legs"].as_array().map(Vec::len), Some(1));
        let empty = breakdown(&pricing(), &input("+14155550100", 0, None, &usage, None));
        assert_eq!(empty["telephony"]["legs"][0]["minutes"], 0);
    }

    #[test]
    fn a_toll_free_number_is_billed_at_the_toll_free_rate() {
        let usage = RealtimeUsage::default();
        let cost = breakdown(&pricing(), &input("+18007233456", 30, None, &usage, None));
        let leg = &cost["telephony"]["legs"][0];
        assert_eq!(
            (leg["kind"].clone(), leg["amount"].clone()),
            (json!("toll_free"), json!(0.022))
        );
    }

    #[test]
    fn unknown_models_are_priced_zero_and_flagged() {
        let mut usage = RealtimeUsage::default();
        usage.add("gpt-imaginary", &usage_sample());
        let summary = SummaryUsage {
            model: "mystery-llm".into(),
            input_tokens: 1_000,
            output_tokens: 100,
        };
        let cost = breakdown(
            &pricing(),
            &input("+14155550100", 1, None, &usage, Some(&summary)),
        );
        assert_eq!(cost["realtime"]["models"][0]["priced"], false);
        assert_eq!(cost["realtime"]["models"][0]["amount"].as_f64(), Some(0.0));
        assert_eq!(cost["summary"]["priced"], false);
        assert_eq!(cost["summary"]["amount"].as_f64(), Some(0.0));
        assert_eq!(cost["total"].as_f64(), Some(0.0085));
    }

    #[test]
    fn dated_snapshots_are_priced_as_their_model_and_say_so() {
        let mut usage = RealtimeUsage::default();
        usage.add("gpt-realtime-2025-08-28", &usage_sample());
        let cost = breakdown(&pricing(), &input("+14155550100", 0, None, &usage, None));
        let model = &cost["realtime"]["models"][0];
        assert_eq!(model["priced"], true);
        assert_eq!(model["priced_as"], "gpt-realtime");
        assert_eq!(strip_date_suffix("gpt-realtime"), None);
        assert_eq!(strip_date_suffix("-2025-08-28"), None);
        assert_eq!(strip_date_suffix("x-2025-0a-28"), None);
    }

    #[test]
    fn the_total_is_the_sum_of_the_rounded_parts() {
        let mut usage = RealtimeUsage::default();
        usage.add("gpt-realtime-mini", &usage_sample());
        let summary = SummaryUsage {
            model: "claude-haiku-4-5".into(),
            input_tokens: 1_234,
            output_tokens: 321,
        };
        let cost = breakdown(
            &pricing(),
            &input("+14155550100", 200, Some(199_000), &usage, Some(&summary)),
        );
        assert_eq!(
            cost["summary"]["amount"].as_f64(),
            Some(round6((1_234.0 * 1.0 + 321.0 * 5.0) / 1e6))
        );
        let parts = amount_of(&cost["telephony"])
            + amount_of(&cost["realtime"])
            + amount_of(&cost["summary"]);
        assert_eq!(cost["total"].as_f64(), Some(round6(parts)));
        for part in [&cost["telephony"], &cost["realtime"], &cost["summary"]] {
            let amount = amount_of(part);
            assert_eq!(amount, round6(amount), "rounded to 6 decimals: {part}");
        }
    }
}
