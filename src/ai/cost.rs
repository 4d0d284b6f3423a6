//! What a call cost: telephony minutes per leg, realtime-model tokens per model,
//! the transcription of the caller's speech per model, the summary model's
//! tokens, and the total. Pure: prices come from the
//! `[pricing]` settings ([`Pricing`]), usage from the call.
//!
//! Amounts are USD, computed in `f64` and rounded to 6 decimals per part; every
//! sum (a section's amount, the total) adds the rounded parts and is rounded
//! again, so the figures shown always add up. A model missing from the price
//! tables is priced 0 and shown with `"priced": false`, never guessed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

pub use crate::config::{Pricing, RealtimeRates, TokenRates, TranscriptionRates};
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

/// What transcribing the caller cost one model, summed over its transcriptions.
#[derive(Default, Clone, Debug, PartialEq, Serialize)]
pub struct TranscriptionModelUsage {
    /// How many usages were counted.
    pub transcriptions: u64,
    /// Token-billed models (`gpt-4o-transcribe`, `gpt-4o-mini-transcribe`).
    pub input_text_tokens: u64,
    pub input_audio_tokens: u64,
    pub output_text_tokens: u64,
    /// Duration-billed models (`whisper-1`).
    pub seconds: f64,
}

/// Transcription usage of a call, per model.
#[derive(Default, Clone, Debug, PartialEq, Serialize)]
pub struct TranscriptionUsage {
    pub models: BTreeMap<String, TranscriptionModelUsage>,
}

impl TranscriptionUsage {
    /// Adds one `conversation.item.input_audio_transcription.completed` `usage`
    /// (OpenAI Realtime API reference, server events): `{"type":"tokens",
    /// "input_tokens", "input_token_details":{"text_tokens","audio_tokens"},
    /// "output_tokens", "total_tokens"}` or `{"type":"duration","seconds"}`.
    /// Input tokens without details count as audio (the input is the caller's
    /// audio; a prompt adds a few text tokens).
    pub fn add(&mut self, model: &str, usage: &Value) {
        let n = |path: &[&str]| {
            path.iter()
                .try_fold(usage, |v, key| v.get(key))
                .and_then(Value::as_u64)
        };
        let sum = self.models.entry(model.to_owned()).or_default();
        sum.transcriptions += 1;
        if usage["type"] == "duration" {
            sum.seconds += usage["seconds"].as_f64().unwrap_or(0.0).max(0.0);
            return;
        }
        let input_text = n(&["input_token_details", "text_tokens"]).unwrap_or(0);
        let input_audio = n(&["input_token_details", "audio_tokens"])
            .unwrap_or_else(|| n(&["input_tokens"]).unwrap_or(0).saturating_sub(input_text));
        sum.input_text_tokens += input_text;
        sum.input_audio_tokens += input_audio;
        sum.output_text_tokens += n(&["output_tokens"]).unwrap_or(0);
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Tokens the post-call summary used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryUsage {
    pub model: String,
    /// Every prompt token, the cached ones included.
    pub input_tokens: u64,
    /// Prompt tokens read from the provider's cache (part of `input_tokens`).
    pub cached_input_tokens: u64,
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
    pub transcription: &'a TranscriptionUsage,
    pub summary: Option<&'a SummaryUsage>,
}

/// The cost of a call as a JSON object:
///
/// ```json
/// {"currency":"USD",
///  "telephony":{"legs":[{"leg":"inbound","kind":"local","minutes":2,"rate_per_min":0.0085,"amount":0.017}],"amount":0.017},
///  "realtime":{"models":[{"model":"gpt-realtime","priced":true,…,"amount":0.01}],"amount":0.01},
///  "transcription":{"models":[{"model":"gpt-4o-mini-transcribe","priced":true,…,"amount":0.0001}],"amount":0.0001},
///  "summary":{"model":"claude-haiku-4-5","priced":true,"input_tokens":900,"cached_input_tokens":0,"output_tokens":80,"amount":0.0013}|null,
///  "total":0.0284}
/// ```
pub fn breakdown(pricing: &Pricing, input: &CallCostInput<'_>) -> Value {
    let telephony = telephony(pricing, input);
    let realtime = realtime(pricing, input.realtime);
    let transcription = transcription(pricing, input.transcription);
    let summary = input.summary.map(|usage| summary(pricing, usage));
    let total = round6(
        amount_of(&telephony)
            + amount_of(&realtime)
            + amount_of(&transcription)
            + summary.as_ref().map(amount_of).unwrap_or(0.0),
    );
    json!({
        "currency": "USD",
        "telephony": telephony,
        "realtime": realtime,
        "transcription": transcription,
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

fn transcription(pricing: &Pricing, usage: &TranscriptionUsage) -> Value {
    let models: Vec<Value> = usage
        .models
        .iter()
        .map(|(model, usage)| {
            let found = lookup(&pricing.transcription, model);
            let amount = found.as_ref().map_or(0.0, |(_, r)| {
                round6(
                    (usage.input_text_tokens as f64 * r.text_in
                        + usage.input_audio_tokens as f64 * r.audio_in
                        + usage.output_text_tokens as f64 * r.text_out)
                        / TOKENS_PER_RATE_UNIT
                        + usage.seconds / 60.0 * r.per_minute,
                )
            });
            let mut entry = json!({
                "model": model,
                "priced": found.is_some(),
                "transcriptions": usage.transcriptions,
                "input_text_tokens": usage.input_text_tokens,
                "input_audio_tokens": usage.input_audio_tokens,
                "output_text_tokens": usage.output_text_tokens,
                "seconds": usage.seconds,
                "amount": amount,
            });
            if let Some((name, _)) = found.filter(|(name, _)| name != model) {
                entry["priced_as"] = name.into();
            }
            entry
        })
        .collect();
    let amount = round6(models.iter().map(amount_of).sum());
    json!({ "models": models, "amount": amount })
}

/// One text-model use (the summary, the task-outcome extraction, a `consult`)
/// priced at `[pricing.summary]` rates: `{"model","priced","input_tokens",
/// "cached_input_tokens","output_tokens","amount"}`.
pub fn text_model(pricing: &Pricing, usage: &SummaryUsage) -> Value {
    summary(pricing, usage)
}

/// The `amount` of a priced part.
pub fn amount(part: &Value) -> f64 {
    amount_of(part)
}

fn summary(pricing: &Pricing, usage: &SummaryUsage) -> Value {
    let found = lookup(&pricing.summary, &usage.model);
    // Cached tokens are part of the input: never more than it.
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let amount = found.as_ref().map_or(0.0, |(_, rates)| {
        let full = (usage.input_tokens - cached) as f64 * rates.input;
        let cached = cached as f64 * rates.cached_input.unwrap_or(rates.input);
        round6((full + cached + usage.output_tokens as f64 * rates.output) / TOKENS_PER_RATE_UNIT)
    });
    let mut entry = json!({
        "model": usage.model,
        "priced": found.is_some(),
        "input_tokens": usage.input_tokens,
        "cached_input_tokens": cached,
        "output_tokens": usage.output_tokens,
        "amount": amount,
    });
    if let Some((name, _)) = found.filter(|(name, _)| *name != usage.model) {
        entry["priced_as"] = name.into();
    }
    entry
}

/// A model's rates: by its exact name, else (for a dated snapshot such as
/// `gpt-realtime-2025-08-28` or `claude-haiku-4-5-20251001`) by the name without
/// the date, which the breakdown then shows as `priced_as`.
fn lookup<'t, R>(table: &'t BTreeMap<String, R>, model: &str) -> Option<(String, &'t R)> {
    if let Some(rates) = table.get(model) {
        return Some((model.to_owned(), rates));
    }
    let base = strip_date_suffix(model)?;
    table.get(base).map(|rates| (base.to_owned(), rates))
}

/// `name-YYYY-MM-DD` (OpenAI's snapshots) or `name-YYYYMMDD` (Anthropic's) →
/// `name`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let dated = |len: usize, dashes: &[usize]| {
        let (base, date) = model.split_at_checked(model.len().checked_sub(len)?)?;
        let date = date.as_bytes();
        let shape = date[0] == b'-'
            && (1..len).all(|i| {
                if dashes.contains(&i) {
                    date[i] == b'-'
                } else {
                    date[i].is_ascii_digit()
                }
            });
        (shape && !base.is_empty()).then_some(base)
    };
    dated(11, &[5, 8]).or_else(|| dated(9, &[]))
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
            transcription: &NO_TRANSCRIPTION,
            summary,
        }
    }

    static NO_TRANSCRIPTION: TranscriptionUsage = TranscriptionUsage {
        models: BTreeMap::new(),
    };

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
            cached_input_tokens: 0,
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
            cached_input_tokens: 0,
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

    #[test]
    fn the_callers_transcription_is_billed_by_tokens_or_by_duration() {
        // `conversation.item.input_audio_transcription.completed` `usage`, both
        // variants (OpenAI API reference, Realtime server events:
        // TranscriptTextUsageTokens / TranscriptTextUsageDuration).
        let mut usage = TranscriptionUsage::default();
        let tokens = json!({"type":"tokens","input_tokens":40,"output_tokens":12,"total_tokens":52,
                            "input_token_details":{"text_tokens":4,"audio_tokens":36}});
        usage.add("gpt-4o-mini-transcribe", &tokens);
        usage.add("gpt-4o-mini-transcribe", &tokens);
        usage.add("whisper-1", &json!({"type":"duration","seconds":90}));
        usage.add("whisper-1", &json!({"type":"duration","seconds":30.0}));
        let realtime = RealtimeUsage::default();
        let mut facts = input("+14155550100", 0, None, &realtime, None);
        facts.transcription = &usage;
        let cost = breakdown(&pricing(), &facts);
        let models = &cost["transcription"]["models"];
        let mini = &models[0];
        assert_eq!(mini["model"], "gpt-4o-mini-transcribe");
        assert_eq!(mini["priced"], true);
        assert_eq!(
            (
                mini["input_text_tokens"].clone(),
                mini["input_audio_tokens"].clone()
            ),
            (json!(8), json!(72))
        );
        // $1.25 text in, $3 audio in, $5 text out per 1M tokens.
        let mini_amount = round6((8.0 * 1.25 + 72.0 * 3.0 + 24.0 * 5.0) / 1e6);
        assert_eq!(mini["amount"].as_f64(), Some(mini_amount));
        let whisper = &models[1];
        assert_eq!(whisper["seconds"].as_f64(), Some(120.0));
        assert_eq!(
            whisper["amount"].as_f64(),
            Some(0.012),
            "2 minutes at $0.006"
        );
        let both = round6(mini_amount + 0.012);
        assert_eq!(cost["transcription"]["amount"].as_f64(), Some(both));
        assert_eq!(cost["total"].as_f64(), Some(both));
    }

    #[test]
    fn cached_summary_prompt_tokens_are_priced_at_the_cached_rate() {
        // Chat Completions `usage.prompt_tokens_details.cached_tokens` are part of
        // `prompt_tokens` and billed at the cached-input rate (OpenAI pricing:
        // gpt-4.1-mini $0.40 input, $0.10 cached input, $1.60 output per 1M).
        let summary = SummaryUsage {
            model: "gpt-4.1-mini".into(),
            input_tokens: 2_000,
            cached_input_tokens: 1_536,
            output_tokens: 100,
        };
        let realtime = RealtimeUsage::default();
        let cost = breakdown(
            &pricing(),
            &input("+14155550100", 0, None, &realtime, Some(&summary)),
        );
        let expected = round6((464.0 * 0.4 + 1_536.0 * 0.1 + 100.0 * 1.6) / 1e6);
        assert_eq!(cost["summary"]["amount"].as_f64(), Some(expected));
        assert_eq!(cost["summary"]["cached_input_tokens"], 1_536);
    }

    #[test]
    fn anthropic_dated_model_ids_are_priced_as_their_alias() {
        // Anthropic's model ids: `claude-haiku-4-5-20251001`, alias `claude-haiku-4-5`.
        let summary = SummaryUsage {
            model: "claude-haiku-4-5-20251001".into(),
            input_tokens: 1_000,
            cached_input_tokens: 0,
            output_tokens: 100,
        };
        let realtime = RealtimeUsage::default();
        let cost = breakdown(
            &pricing(),
            &input("+14155550100", 0, None, &realtime, Some(&summary)),
        );
        assert_eq!(cost["summary"]["priced"], true, "{cost}");
        assert_eq!(cost["summary"]["priced_as"], "claude-haiku-4-5");
        assert_eq!(
            cost["summary"]["amount"].as_f64(),
            Some(round6((1_000.0 * 1.0 + 100.0 * 5.0) / 1e6))
        );
        assert_eq!(
            strip_date_suffix("claude-haiku-4-5-20251001"),
            Some("claude-haiku-4-5")
        );
        assert_eq!(strip_date_suffix("claude-haiku-4-5-2025100"), None);
        assert_eq!(strip_date_suffix("-20251001"), None);
    }
}
