//! `fanout_burst`: in one window the identity reaches far more distinct places
//! (target and resource prefix) than its past windows, as discovery does.

use super::{window_burst, Burst, Context, Detector, Finding};

pub fn check(ctx: &Context) -> Option<Finding> {
    let activity = &ctx.baseline.activity;
    let key = ctx.obs.reach;
    // Judged only when the call reaches somewhere new in the window.
    let grew = ctx.obs.window != activity.window || activity.reached.binary_search(&key).is_err();
    if !grew {
        return None;
    }
    let (_, reached) = activity.preview(ctx.obs.window, key);
    window_burst(
        ctx,
        Burst {
            detector: Detector::FanoutBurst,
            observed: reached,
            history: &activity.reach_history,
            min_count: ctx.config.fanout_min_distinct,
            min_ratio: ctx.config.fanout_min_ratio,
            verb: "reached",
            measure: "distinct targets and resource prefixes",
            evidence_key: "distinct_reached",
        },
    )
}
