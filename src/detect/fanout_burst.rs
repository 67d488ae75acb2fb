//! `fanout_burst`: in one window the identity reaches far more distinct places
//! (target and resource prefix) than its past windows, as discovery does.

use super::{window_burst, Burst, Context, Finding, Kind, OcsfKind, Spec};

pub const SPEC: Spec = Spec {
    name: "fanout_burst",
    kind: Kind::Learned,
    owasp_nhi: &["NHI5:2025", "NHI2:2025"],
    attack: &["T1580", "T1619", "T1526"],
    recommended_action: "Treat as possible discovery: review the resources touched in the window, and suspend the credential if the owner cannot explain the enumeration.",
    ocsf: OcsfKind {
        title: "Delegated identity touched an unusual number of resources",
        parameter: "distinct targets and resources per window",
        observation_type: Some("Volume Analysis"),
        observed_pattern: Some("HIGH_VOLUME"),
    },
    yields_to_post_purpose: false,
    check,
};

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
            detector: SPEC.detector(),
            observed: reached,
            // Distinct places are not kept past their window.
            before: 0,
            history: &activity.reach_history,
            min_count: ctx.config.fanout_min_distinct,
            min_ratio: ctx.config.fanout_min_ratio,
            verb: "reached",
            measure: "distinct targets and resource prefixes",
            evidence_key: "distinct_reached",
        },
    )
}
