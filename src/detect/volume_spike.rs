//! `volume_spike`: in one window the identity makes far more calls than its
//! past windows, judged by a negative-binomial tail fitted to its own history
//! (a Poisson where its history is not bursty), as exfiltration does.

use super::{window_burst, Burst, Context, Detector, Finding};

pub fn check(ctx: &Context) -> Option<Finding> {
    let activity = &ctx.baseline.activity;
    let (calls, _) = activity.preview(ctx.obs.window, 0);
    window_burst(
        ctx,
        Burst {
            detector: Detector::VolumeSpike,
            observed: calls,
            history: &activity.calls_history,
            min_count: ctx.config.volume_min_calls,
            min_ratio: ctx.config.volume_min_ratio,
            verb: "made",
            measure: "calls",
            evidence_key: "calls_in_window",
        },
    )
}
