//! Third-party integrations: a vendor syncs records on a schedule with a
//! long-lived access key. Approval is periodic (a re-approval is a new grant) and
//! keys are rotated (a new credential id, the old key revoked a day later).

use super::{spaced, FleetChanges, Plan, Records};
use crate::model::Millis;
use crate::simulate::calendar::Calendar;
use crate::simulate::fleet::{
    account, credential_revoked, grant_ended, key_id, rollout_time, Call, Credentials, Delegation, GrantSpec, Identity,
    Key, Source,
};
use crate::simulate::rng::{mix, Rng};
use crate::time::{DAY, HOUR, MINUTE};

/// Vendors, their egress network (/24) and client.
pub const VENDORS: [(&str, &str, &str); 8] = [
    ("salesforce", "13.108.238", "Salesforce-Connect/59.0 (+https://salesforce.com)"),
    ("workday", "185.26.33", "Workday-Integration-Cloud/2024.2 Java/17.0.9"),
    ("zendesk", "192.161.149", "Zendesk-Sync/3.1.4 aws-sdk-ruby3/3.191.0"),
    ("hubspot", "54.174.60", "HubSpot-Connector/1.0 aws-sdk-java/2.21.29"),
    ("snowflake", "34.213.62", "Snowflake-Stage/3.14.0 aws-sdk-go/1.50.8"),
    ("slack", "3.120.44", "Slack-Workflow/2.0 Node.js/20.10"),
    ("netsuite", "150.230.18", "NetSuite-SuiteCloud/2024.1"),
    ("docusign", "209.67.98", "DocuSign-Connect/2.0 aws-sdk-java/1.12.600"),
];

const DEPARTMENTS: [&str; 5] = ["sales-ops", "hr", "support", "finance", "marketing"];

/// Approvals last 90 days; a re-approval is issued the day before expiry.
const APPROVAL: Millis = 90 * DAY;

/// How the vendor exchanges records.
#[derive(Debug, Clone, Copy)]
enum Exchange {
    /// Files dropped in and picked up from an S3 prefix.
    Bucket,
    /// An internal records API.
    RecordsApi,
    /// A DynamoDB table.
    Table,
}

#[derive(Debug, Clone)]
pub struct Integration {
    exchange: Exchange,
    every: Millis,
    phase: Millis,
    batch: f64,
    home: String,
}

pub fn build(
    identity: &mut Identity,
    cal: &Calendar,
    changes: &FleetChanges,
    rng: &mut Rng,
    records: &mut Records,
) -> Integration {
    let (vendor, egress, agent) = *rng.pick(&VENDORS);
    let name = format!("{vendor}-sync-{:04}", identity.index);
    identity.name = format!("arn:aws:iam::{}:user/integrations/{name}", account("prod"));
    let exchange = *rng.pick(&[Exchange::Bucket, Exchange::RecordsApi, Exchange::Table]);
    let every = *rng.pick(&[HOUR, 2 * HOUR, 2 * HOUR, 4 * HOUR]);
    let integration = Integration {
        exchange,
        every,
        phase: rng.range(0, every / MINUTE) * MINUTE,
        batch: 1.0 + 4.0 * rng.unit(),
        home: name,
    };
    let hosts: Vec<u8> = (0..3).map(|_| 10 + rng.below(200) as u8).collect();
    let mut egress_now = Source::new(egress.to_string(), hosts.clone(), agent);
    if let Some((moving, at)) = changes.vendor_move.filter(|(v, _)| *v == vendor) {
        // The vendor moves to a new network, one customer connection at a time.
        let moved = rollout_time(at, rng);
        egress_now.until = moved;
        let mut new = Source::new(
            format!("{}.{}", egress.rsplit_once('.').map_or(egress, |(a, _)| a), 200 + moving.len()),
            hosts,
            agent,
        );
        new.from = moved;
        identity.sources = vec![egress_now, new];
    } else {
        identity.sources = vec![egress_now];
    }
    // Keys are rotated every 30 to 90 days; the old one is revoked a day later.
    let key_seed = mix(identity.index as u64 ^ 0xA11CE) ^ rng.next_u64();
    let mut keys = vec![Key { id: key_id("AKIA", key_seed), from: Millis::MIN }];
    let rotation = cal.start + rng.range(-60 * DAY, 30 * DAY);
    if rotation > identity.active_from && rotation < cal.end() {
        keys.push(Key { id: key_id("AKIA", mix(key_seed)), from: rotation });
        records.push((rotation + DAY, credential_revoked(rotation + DAY, &keys[0].id)));
    }
    identity.credentials = Credentials::Keys(keys);

    let department = *rng.pick(&DEPARTMENTS);
    let delegator = format!("dept:{department}");
    let chain = vec![delegator.clone(), format!("vendor:{vendor}")];
    let approved = identity.active_from.max(cal.start - rng.range(0, APPROVAL / DAY) * DAY);
    let first = format!("grant-int-{:04}-v1", identity.index);
    integration.grant(identity, &first, &delegator, approved - HOUR, records);
    let mut delegation = Delegation::new(delegator.clone(), chain.clone(), first.clone(), identity.active_from);
    let renewal = approved + APPROVAL - DAY;
    if renewal < cal.end() {
        delegation.until = renewal;
        let second = format!("grant-int-{:04}-v2", identity.index);
        integration.grant(identity, &second, &delegator, renewal, records);
        records.push((approved + APPROVAL, grant_ended(approved + APPROVAL, &first, "expired")));
        identity.delegations.push(delegation);
        identity.delegations.push(Delegation::new(delegator, chain, second, renewal));
    } else {
        identity.delegations.push(delegation);
    }
    integration
}

/// The vendors' connector release adds a credential health check to every sync.
pub fn drift_call() -> Call {
    Call::new("sts.amazonaws.com", "GetCallerIdentity", None)
}

impl Integration {
    fn grant(&self, identity: &Identity, grant_id: &str, delegator: &str, time: Millis, records: &mut Records) {
        let calls = self.calls(identity, 0);
        let drift = drift_call();
        let grant = GrantSpec {
            time,
            grant_id,
            on_behalf_of: delegator,
            targets: calls.iter().chain([&drift]).map(|c| c.target).collect(),
            actions: calls.iter().chain([&drift]).map(|c| c.action).collect(),
            resources: vec![self.resource_glob(identity)],
            environments: vec!["prod"],
            expires_at: Some(time + APPROVAL),
            windows: Vec::new(),
        };
        records.push((time, grant.to_json(&identity.name)));
    }

    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        let start = cal.day_start(day);
        let mut t = start + self.phase;
        let mut plans = Vec::new();
        while t < start + DAY {
            // Schedulers drift by a minute or two.
            plans.push(self.sync(identity, cal, t + rng.range(0, 120) * 1000, rng));
            t += self.every;
        }
        plans
    }

    /// One sync: list what changed, fetch it, write back; more changes in office hours.
    pub fn sync(&self, identity: &Identity, cal: &Calendar, t: Millis, rng: &mut Rng) -> Plan {
        let changed = rng.poisson(self.batch * (0.2 + cal.business_weight(t)));
        let [list, fetch, write] = self.calls(identity, rng.next_u64());
        let mut calls = vec![list];
        if let Some(call) = identity.drift_at(t) {
            calls.push(call.clone());
        }
        for _ in 0..changed {
            calls.push(Call { resource: Some(self.item(identity, rng)), ..fetch.clone() });
        }
        if changed > 0 {
            calls.push(write);
        }
        let delegation = *identity.delegations_at(t).last().unwrap_or(&0);
        Plan { prefix: "sync", delegation, environment: Some("prod".into()), calls: spaced(t, calls, (1, 8), rng) }
    }

    /// The integration's list, fetch and write calls.
    fn calls(&self, identity: &Identity, nonce: u64) -> [Call; 3] {
        let (home, region, acct) = (&self.home, identity.region, account("prod"));
        let table = format!("arn:aws:dynamodb:{region}:{acct}:table/{home}");
        match self.exchange {
            Exchange::Bucket => [
                Call::new(
                    "s3.amazonaws.com",
                    "ListObjectsV2",
                    Some(format!("arn:aws:s3:::acme-integrations/{home}/inbound/")),
                ),
                Call::new("s3.amazonaws.com", "GetObject", None),
                Call::new(
                    "s3.amazonaws.com",
                    "PutObject",
                    Some(format!("arn:aws:s3:::acme-integrations/{home}/outbound/{nonce:x}.csv")),
                ),
            ],
            Exchange::RecordsApi => [
                Call::new("records.example.com", "ListChanges", Some(format!("arn:example:records:::{home}/changes"))),
                Call::new("records.example.com", "GetRecord", None),
                Call::new(
                    "records.example.com",
                    "UpsertRecord",
                    Some(format!("arn:example:records:::{home}/account/{nonce:x}")),
                ),
            ],
            Exchange::Table => [
                Call::new("dynamodb.amazonaws.com", "Query", Some(table.clone())),
                Call::new("dynamodb.amazonaws.com", "GetItem", None),
                Call::new("dynamodb.amazonaws.com", "BatchWriteItem", Some(table)),
            ],
        }
    }

    /// One changed item the sync fetches.
    fn item(&self, identity: &Identity, rng: &mut Rng) -> String {
        let home = &self.home;
        match self.exchange {
            Exchange::Bucket => {
                format!("arn:aws:s3:::acme-integrations/{home}/inbound/{:08x}.csv", rng.next_u64() as u32)
            }
            Exchange::RecordsApi => format!("arn:example:records:::{home}/account/{:x}", rng.below(1 << 24)),
            Exchange::Table => format!("arn:aws:dynamodb:{}:{}:table/{home}", identity.region, account("prod")),
        }
    }

    fn resource_glob(&self, identity: &Identity) -> String {
        match self.exchange {
            Exchange::Bucket => format!("arn:aws:s3:::acme-integrations/{}/*", self.home),
            Exchange::RecordsApi => format!("arn:example:records:::{}/*", self.home),
            Exchange::Table => format!("arn:aws:dynamodb:{}:{}:table/{}", identity.region, account("prod"), self.home),
        }
    }

    pub fn bulk_read(&self, identity: &Identity, _t: Millis, rng: &mut Rng) -> Call {
        let [_, fetch, _] = self.calls(identity, 0);
        Call { resource: Some(self.item(identity, rng)), ..fetch }
    }

    /// A sync that also does what the grant never allowed (destroying or opening data).
    pub fn out_of_scope(&self, identity: &Identity, cal: &Calendar, t: Millis, rng: &mut Rng) -> Plan {
        let home = &self.home;
        let extra = match self.exchange {
            Exchange::Bucket => {
                Call::new("s3.amazonaws.com", "PutBucketPolicy", Some("arn:aws:s3:::acme-integrations".into()))
            }
            Exchange::RecordsApi => {
                Call::new("records.example.com", "ExportAll", Some(format!("arn:example:records:::{home}/*")))
            }
            Exchange::Table => Call::new(
                "dynamodb.amazonaws.com",
                "DeleteTable",
                Some(format!("arn:aws:dynamodb:{}:{}:table/{home}", identity.region, account("prod"))),
            ),
        };
        let mut plan = self.sync(identity, cal, t, rng);
        let last = plan.calls.last().map_or(t, |(at, _)| *at);
        plan.calls.push((last + rng.range(2, 30) * 1000, extra));
        plan
    }
}
