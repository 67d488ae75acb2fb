//! `fanout_burst`: in one window the identity reaches far more distinct places
//! (target and resource prefix) than its past windows, as discovery does.

use super::{round, score_from_probability, Context, Detector, Finding};
use serde_json::json;

pub fn check(ctx: &Context) -> Option<Finding> {
    let activity = &ctx.baseline.activity;
    let history = &activity.reach_history;
    let key = ctx.obs.reach;
    let (_, reached) = activity.preview(ctx.obs.window, key);
    let grew = ctx.obs.window != activity.window || activity.reached.binary_search(&key).is_err();
    if !grew
        || history.windows < ctx.config.min_windows
        || reached < ctx.config.fanout_min_distinct
        || (reached as f64) < ctx.config.burst_min_ratio * history.mean as f64
    {
        return None;
    }
    let p = history.tail(reached);
    if p > ctx.config.burst_max_probability {
        return None;
    }
    let window_s = ctx.config.window_s;
    let summary = format!(
        "{} reached {reached} distinct targets and resource prefixes within {} minutes; its past windows reached {:.1} on average (sd {:.1}), so this many had an estimated probability of {p:.2e}.",
        ctx.event.identity,
        window_s / 60,
        history.mean,
        history.var.max(0.0).sqrt()
    );
    let mut evidence = ctx.evidence(
        json!({ "distinct_reached": reached, "latest": ctx.names.call_name(ctx.obs.call) }),
        json!({ "mean_per_window": round(history.mean as f64, 2), "sd_per_window": round((history.var.max(0.0) as f64).sqrt(), 2), "windows": history.windows }),
    );
    evidence.probability = Some(round(p, 10));
    evidence.window_s = Some(window_s);
    Some(Finding {
        detector: Detector::FanoutBurst,
        score: score_from_probability(p),
        subject: String::new(),
        summary,
        evidence,
    })
}
