//! `volume_spike`: in one window the identity makes far more calls than its
//! past windows, judged by a negative-binomial tail fitted to its own history
//! (a Poisson where its history is not bursty), as exfiltration does.

use super::{round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

pub fn check(ctx: &Context) -> Option<Finding> {
    let activity = &ctx.baseline.activity;
    let history = &activity.calls_history;
    let (calls, _) = activity.preview(ctx.obs.window, 0);
    if history.windows < ctx.config.min_windows
        || calls < ctx.config.volume_min_calls
        || (calls as f64) < ctx.config.burst_min_ratio * history.mean as f64
    {
        return None;
    }
    // Cheap screen before the tail: most calls are nowhere near a spike.
    let sd = (history.var.max(0.0) as f64).sqrt();
    if (calls as f64) < history.mean as f64 + 3.0 * sd {
        return None;
    }
    let p = history.tail(calls);
    if p > ctx.config.burst_max_probability {
        return None;
    }
    let window_s = ctx.config.window_s;
    let summary = format!(
        "{} made {calls} calls within {} minutes; its active windows average {:.1} calls (sd {sd:.1}), so this many had an estimated probability of {p:.2e}.",
        ctx.event.identity,
        window_s / 60,
        history.mean
    );
    let mut evidence = ctx.evidence(
        json!({ "calls_in_window": calls, "latest": ctx.names.call_name(ctx.obs.call) }),
        json!({ "mean_per_window": round(history.mean as f64, 2), "sd_per_window": round(sd, 2), "windows": history.windows }),
    );
    evidence.probability = Some(round(p, 10));
    evidence.window_s = Some(window_s);
    Some(Finding {
        detector: Detector::VolumeSpike,
        score: score_from_probability(p),
        subject: String::new(),
        summary,
        evidence,
    })
}
