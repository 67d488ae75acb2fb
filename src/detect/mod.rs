//! Detectors: one module each, each a function from (baseline, event) to an
//! optional [`Finding`]. The engine turns findings into alerts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The stable detector names. Scripts and SIEM rules depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    NovelCall,
    RareTransition,
    FanoutBurst,
    VolumeSpike,
    NewSource,
    OffHours,
    NewDelegator,
    SharedIdentity,
    DormantReactivation,
    PostPurpose,
    ExpiredCredential,
    OutsideWindow,
    ScopeViolation,
}

impl Detector {
    pub const ALL: [Detector; 13] = [
        Detector::NovelCall,
        Detector::RareTransition,
        Detector::FanoutBurst,
        Detector::VolumeSpike,
        Detector::NewSource,
        Detector::OffHours,
        Detector::NewDelegator,
        Detector::SharedIdentity,
        Detector::DormantReactivation,
        Detector::PostPurpose,
        Detector::ExpiredCredential,
        Detector::OutsideWindow,
        Detector::ScopeViolation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::NovelCall => "novel_call",
            Detector::RareTransition => "rare_transition",
            Detector::FanoutBurst => "fanout_burst",
            Detector::VolumeSpike => "volume_spike",
            Detector::NewSource => "new_source",
            Detector::OffHours => "off_hours",
            Detector::NewDelegator => "new_delegator",
            Detector::SharedIdentity => "shared_identity",
            Detector::DormantReactivation => "dormant_reactivation",
            Detector::PostPurpose => "post_purpose",
            Detector::ExpiredCredential => "expired_credential",
            Detector::OutsideWindow => "outside_window",
            Detector::ScopeViolation => "scope_violation",
        }
    }

    /// Learned detectors need a baseline and stay silent while an identity learns;
    /// declared and lifecycle detectors fire from the first event.
    pub fn is_learned(self) -> bool {
        !matches!(
            self,
            Detector::PostPurpose | Detector::ExpiredCredential | Detector::OutsideWindow | Detector::ScopeViolation
        )
    }

    /// OWASP Non-Human Identity Top 10 (2025) risks this detector surfaces.
    pub fn owasp_nhi(self) -> &'static [&'static str] {
        match self {
            Detector::NovelCall | Detector::RareTransition => &["NHI5:2025", "NHI2:2025"],
            Detector::FanoutBurst | Detector::VolumeSpike => &["NHI5:2025", "NHI2:2025"],
            Detector::NewSource | Detector::OffHours => &["NHI2:2025", "NHI10:2025"],
            Detector::NewDelegator => &["NHI5:2025", "NHI3:2025"],
            Detector::SharedIdentity => &["NHI9:2025"],
            Detector::DormantReactivation => &["NHI1:2025", "NHI7:2025"],
            Detector::PostPurpose => &["NHI1:2025"],
            Detector::ExpiredCredential => &["NHI7:2025"],
            Detector::OutsideWindow => &["NHI5:2025", "NHI7:2025"],
            Detector::ScopeViolation => &["NHI5:2025"],
        }
    }

    /// MITRE ATT&CK techniques the behaviour is consistent with.
    pub fn attack(self) -> &'static [&'static str] {
        match self {
            Detector::NovelCall | Detector::RareTransition | Detector::OffHours | Detector::ScopeViolation => {
                &["T1078.004"]
            }
            Detector::FanoutBurst => &["T1580", "T1619", "T1526"],
            Detector::VolumeSpike => &["T1530", "T1078.004"],
            Detector::NewSource | Detector::NewDelegator | Detector::SharedIdentity | Detector::PostPurpose => {
                &["T1078.004", "T1550.001"]
            }
            Detector::DormantReactivation | Detector::OutsideWindow => &["T1078.004"],
            Detector::ExpiredCredential => &["T1550.001"],
        }
    }

    /// What an analyst should do first.
    pub fn recommended_action(self) -> &'static str {
        match self {
            Detector::NovelCall => "Confirm with the owner that this call belongs to the identity's purpose; if not, revoke its active credentials and narrow its policy to the calls in its baseline.",
            Detector::RareTransition => "Review the session's full call sequence with the owner of the workflow; if the path was not intended, stop the session and rotate the identity's credentials.",
            Detector::FanoutBurst => "Treat as possible discovery: review the resources touched in the window, and suspend the credential if the owner cannot explain the enumeration.",
            Detector::VolumeSpike => "Treat as possible exfiltration: check what data was read in the window and throttle or suspend the credential until the owner confirms the load.",
            Detector::NewSource => "Verify the new network or client with the workload owner; if unknown, revoke the credential, rotate the secret and check where it was stored.",
            Detector::OffHours => "Confirm a scheduled or emergency job ran at this hour; if none did, treat the credential as exposed and rotate it.",
            Detector::NewDelegator => "Confirm that the new delegator approved this delegation; if not, revoke the delegation and review what was done on its behalf.",
            Detector::SharedIdentity => "Find every client using this identity or credential, give each its own identity, and rotate the shared secret.",
            Detector::DormantReactivation => "Confirm the identity still has an owner and a purpose; if not, offboard it and revoke its credentials.",
            Detector::PostPurpose => "The delegation had ended: revoke every credential the identity still holds, remove its access, and review what it did after the end.",
            Detector::ExpiredCredential => "A credential was used after it expired: find which system still accepts it, and block it there.",
            Detector::OutsideWindow => "Confirm whether an approved change justified use outside the window; if not, suspend the credential and review the actions taken.",
            Detector::ScopeViolation => "Deny the out-of-scope action in the policy, and ask the owner whether the grant or the workload is wrong.",
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Detector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Detector::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| format!("unknown detector `{s}`"))
    }
}

/// What a detector found for one event, before it becomes an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub detector: Detector,
    /// 0 to 1: how sure we are that this is not normal for the identity.
    pub score: f64,
    /// What makes two findings "the same" for suppression (e.g. the new call).
    pub subject: String,
    pub summary: String,
    pub evidence: crate::alert::Evidence,
}
