//! The internal data platform: fetches files from storage on behalf of business
//! units, each through its own RBAC-scoped grant on the unit's prefix. Units are
//! onboarded mid-way (with a grant first); finance reads more at month end.

use super::{spaced, Plan, Records};
use crate::model::Millis;
use crate::simulate::calendar::Calendar;
use crate::simulate::fleet::{account, Call, Credentials, GrantSpec, Identity, Source};
use crate::simulate::rng::Rng;
use crate::time::{format_rfc3339, DAY, HOUR, MINUTE};

pub const UNITS: [&str; 8] = ["finance", "marketing", "sales", "hr", "risk", "supply-chain", "support", "product"];

const DATASETS: [&str; 9] =
    ["orders", "invoices", "campaigns", "leads", "payroll", "claims", "shipments", "tickets", "events"];

const LAKE: &str = "acme-datalake";

#[derive(Debug, Clone)]
pub struct DataPlatform {
    /// Business units served, by delegation index.
    units: Vec<&'static str>,
    datasets: Vec<&'static str>,
    jobs_per_day: f64,
}

pub fn build(identity: &mut Identity, cal: &Calendar, rng: &mut Rng, records: &mut Records) -> DataPlatform {
    let role = rng.pick(&["ingest", "query", "export", "reporting"]);
    identity.name = format!("arn:aws:iam::{}:role/data-platform/dp-{role}-{:04}", account("prod"), identity.index);
    let served = 1 + rng.below(3) as usize;
    let mut units = rng.sample(&UNITS, served);
    let onboarded = if rng.chance(0.15) && cal.days > 6 {
        // A new business unit joins the platform mid-way, through a new grant.
        let newcomer = *rng.pick(&UNITS);
        (!units.contains(&newcomer)).then(|| {
            units.push(newcomer);
            cal.day_start(3 + rng.below(cal.days as u64 - 5) as u32) + rng.range(9, 17) * HOUR
        })
    } else {
        None
    };
    let platform =
        DataPlatform { units: units.clone(), datasets: rng.sample(&DATASETS, 3), jobs_per_day: 4.0 + 6.0 * rng.unit() };
    let subnet = rng.below(200);
    identity.sources = (0..2)
        .map(|i| {
            let ua = "aws-sdk-java/2.25.11 Linux/5.10.210 OpenJDK_64-Bit_Server_VM/17.0.10 exec-env/spark#3.5.1";
            Source::new(format!("10.40.{}", subnet + i), (30..38).collect(), ua)
        })
        .collect();
    identity.credentials = Credentials::Refreshed { every: HOUR, lifetime: HOUR + 10 * MINUTE };
    let last = units.len() - 1;
    for (i, unit) in units.iter().enumerate() {
        let since = match onboarded {
            Some(t) if i == last => t,
            _ => identity.active_from,
        };
        let grant_id = format!("grant-dp-{:04}-{unit}", identity.index);
        let delegator = format!("bu:{unit}");
        let grant = GrantSpec {
            time: since - HOUR,
            grant_id: &grant_id,
            on_behalf_of: &delegator,
            targets: vec!["s3.amazonaws.com", "glue.amazonaws.com", "kms.amazonaws.com", "athena.amazonaws.com"],
            actions: vec!["ListObjectsV2", "GetObject", "GetTable", "Decrypt", "StartQueryExecution"],
            resources: platform.unit_globs(identity, unit),
            environments: vec!["prod"],
            expires_at: None,
            windows: Vec::new(),
        };
        identity.delegate(&grant, "scheduler:airflow", since, records);
    }
    platform
}

/// Athena becomes the platform's query engine: each job starts with a query.
pub fn drift_call(identity: &Identity) -> Call {
    let workgroup = format!("arn:aws:athena:{}:{}:workgroup/data-platform", identity.region, account("prod"));
    Call::new("athena.amazonaws.com", "StartQueryExecution", Some(workgroup))
}

impl DataPlatform {
    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        let mut plans: Vec<Plan> = cal
            .business_times(day, self.jobs_per_day, rng)
            .into_iter()
            .map(|t| self.job(identity, t, None, rng))
            .collect();
        let finance = self.units.iter().position(|u| *u == "finance");
        if let Some(finance) = finance.filter(|_| cal.is_month_end(day)) {
            // Closing the books: finance pulls its reports again and again.
            for t in cal.business_times(day, 2.0 * self.jobs_per_day, rng) {
                if identity.delegations_at(t).contains(&finance) {
                    plans.push(self.job_for(identity, t, finance, rng));
                }
            }
        }
        plans
    }

    /// One job for a unit it serves (or, with `foreign`, for one of its units but
    /// reading another unit's prefix).
    pub fn job(&self, identity: &Identity, t: Millis, foreign: Option<&str>, rng: &mut Rng) -> Plan {
        let mut plan = self.job_for(identity, t, self.serving(identity, t, rng), rng);
        if let Some(unit) = foreign {
            let calls = self.reads(identity, unit, t, rng);
            plan.calls = spaced(t, calls, (1, 10), rng);
        }
        plan
    }

    /// One of the units served at `t` (a delegation index, the same as in `units`).
    fn serving(&self, identity: &Identity, t: Millis, rng: &mut Rng) -> usize {
        let serving = identity.delegations_at(t);
        if serving.is_empty() {
            0
        } else {
            *rng.pick(&serving)
        }
    }

    fn job_for(&self, identity: &Identity, t: Millis, delegation: usize, rng: &mut Rng) -> Plan {
        let mut calls = Vec::new();
        if let Some(call) = identity.drift_at(t) {
            calls.push(call.clone());
        }
        calls.extend(self.reads(identity, self.units[delegation], t, rng));
        Plan { prefix: "job", delegation, environment: Some("prod".into()), calls: spaced(t, calls, (1, 10), rng) }
    }

    /// Reading one dataset of a unit: table, listing, decrypt, a few partitions.
    fn reads(&self, identity: &Identity, unit: &str, t: Millis, rng: &mut Rng) -> Vec<Call> {
        let (region, acct) = (identity.region, account("prod"));
        let dataset = rng.pick(&self.datasets);
        let date = &format_rfc3339(t - rng.below(3) as Millis * DAY)[..10];
        let prefix = format!("arn:aws:s3:::{LAKE}/{unit}/{dataset}/dt={date}/");
        let mut calls = vec![
            Call::new(
                "glue.amazonaws.com",
                "GetTable",
                Some(format!("arn:aws:glue:{region}:{acct}:table/{unit}/{dataset}")),
            ),
            Call::new("s3.amazonaws.com", "ListObjectsV2", Some(prefix.clone())),
            Call::new("kms.amazonaws.com", "Decrypt", Some(format!("arn:aws:kms:{region}:{acct}:alias/lake-{unit}"))),
        ];
        for part in 0..1 + rng.poisson(4.0) {
            calls.push(Call::new("s3.amazonaws.com", "GetObject", Some(format!("{prefix}part-{part:05}.parquet"))));
        }
        calls
    }

    fn unit_globs(&self, identity: &Identity, unit: &str) -> Vec<String> {
        let (region, acct) = (identity.region, account("prod"));
        vec![
            format!("arn:aws:s3:::{LAKE}/{unit}/*"),
            format!("arn:aws:glue:{region}:{acct}:table/{unit}/*"),
            format!("arn:aws:kms:{region}:{acct}:alias/lake-{unit}"),
            format!("arn:aws:athena:{region}:{acct}:workgroup/data-platform"),
        ]
    }

    /// Whether a resource lies under the prefix of a unit this platform serves.
    pub fn serves(&self, resource: &str) -> bool {
        self.units.iter().any(|u| resource.starts_with(&format!("arn:aws:s3:::{LAKE}/{u}/")))
    }

    /// A unit this platform does not serve.
    pub fn foreign_unit(&self, rng: &mut Rng) -> &'static str {
        let others: Vec<&'static str> = UNITS.iter().copied().filter(|u| !self.units.contains(u)).collect();
        rng.pick::<&str>(&others)
    }

    /// One more partition of a dataset it may read: the unit of an exfiltration burst.
    pub fn bulk_read(&self, identity: &Identity, t: Millis, rng: &mut Rng) -> Call {
        let unit = self.units[self.serving(identity, t, rng)];
        let dataset = rng.pick(&self.datasets);
        let date = &format_rfc3339(t - rng.below(365) as Millis * DAY)[..10];
        let key = format!("arn:aws:s3:::{LAKE}/{unit}/{dataset}/dt={date}/part-{:05}.parquet", rng.below(64));
        Call::new("s3.amazonaws.com", "GetObject", Some(key))
    }

    /// Listings across every unit's prefixes: what discovery of the lake looks like.
    pub fn lake_listing(&self, rng: &mut Rng) -> Call {
        let unit = rng.pick(&UNITS);
        let dataset = rng.pick(&DATASETS);
        Call::new("s3.amazonaws.com", "ListObjectsV2", Some(format!("arn:aws:s3:::{LAKE}/{unit}/{dataset}/")))
    }
}
