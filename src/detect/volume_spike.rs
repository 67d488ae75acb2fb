//! `volume_spike`: in one window the identity makes far more calls than its
//! past windows, judged by a negative-binomial tail fitted to its own history
//! (a Poisson where its history is not bursty), as exfiltration does; or keeps
//! up a lesser burst over two windows in a row, as exfiltration paced to stay
//! under the per-window ratio does.

use super::{window_burst, Burst, Context, Finding, Kind, OcsfKind, Spec};

pub const SPEC: Spec = Spec {
    name: "volume_spike",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1530", "T1078.004"],
    recommended_action: "Treat as possible exfiltration: check what data was read in the window and throttle or suspend the credential until the owner confirms the load.",
    ocsf: OcsfKind {
        title: "Delegated identity's call volume spiked",
        parameter: "call rate",
        observation_type: Some("Volume Analysis"),
        observed_pattern: Some("SURGE"),
    },
    yields_to_post_purpose: false,
    check,
};

pub fn check(ctx: &Context) -> Option<Finding> {
    let activity = &ctx.baseline.activity;
    let (calls, _) = activity.preview(ctx.obs.window, 0);
    window_burst(
        ctx,
        Burst {
            detector: SPEC.detector(),
            observed: calls,
            before: activity.calls_before(ctx.obs.window),
            history: &activity.calls_history,
            min_count: ctx.config.volume_min_calls,
            min_ratio: ctx.config.volume_min_ratio,
            verb: "made",
            measure: "calls",
            evidence_key: "calls_in_window",
        },
    )
}
