//! Federated workloads: services that call downstream APIs on behalf of upstream
//! applications, through a delegation chain (web identity federation from a
//! cluster's OIDC issuer). Request-driven, around the clock with a daily swing.

use super::{spaced, Plan, Records};
use crate::model::Millis;
use crate::simulate::calendar::Calendar;
use crate::simulate::fleet::{account, Call, Credentials, GrantSpec, Identity, Source};
use crate::simulate::rng::{mix, Rng};
use crate::time::{DAY, HOUR, MINUTE};

/// Kinds of request a service handles; each is a short fixed sequence of calls.
#[derive(Debug, Clone, Copy)]
enum RequestType {
    ReadModifyWrite,
    Publish,
    CallDownstream,
    LoadConfig,
}

const REQUEST_TYPES: [RequestType; 4] =
    [RequestType::ReadModifyWrite, RequestType::Publish, RequestType::CallDownstream, RequestType::LoadConfig];

/// Services every workload might enumerate when it is turned to discovery.
pub const DISCOVERY: [(&str, &str); 16] = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("iam.amazonaws.com", "ListRoles"),
    ("iam.amazonaws.com", "ListUsers"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("rds.amazonaws.com", "DescribeDBInstances"),
    ("secretsmanager.amazonaws.com", "ListSecrets"),
    ("lambda.amazonaws.com", "ListFunctions20150331"),
    ("dynamodb.amazonaws.com", "ListTables"),
    ("kms.amazonaws.com", "ListKeys"),
    ("sns.amazonaws.com", "ListTopics"),
    ("sqs.amazonaws.com", "ListQueues"),
    ("ecr.amazonaws.com", "DescribeRepositories"),
    ("eks.amazonaws.com", "ListClusters"),
    ("cloudtrail.amazonaws.com", "DescribeTrails"),
    ("organizations.amazonaws.com", "ListAccounts"),
    ("ssm.amazonaws.com", "DescribeParameters"),
];

#[derive(Debug, Clone)]
pub struct Federated {
    service: &'static str,
    requests: Vec<RequestType>,
    downstream: &'static str,
    requests_per_day: f64,
}

pub fn build(identity: &mut Identity, cal: &Calendar, rng: &mut Rng, records: &mut Records) -> Federated {
    let apps = &super::pipeline::APPS;
    let service = *rng.pick(apps);
    identity.name = format!("arn:aws:iam::{}:role/workloads/{service}-svc-{:04}", account("prod"), identity.index);
    let request_types = 2 + rng.below(2) as usize;
    let workload = Federated {
        service,
        requests: rng.sample(&REQUEST_TYPES, request_types),
        downstream: rng.pick::<&str>(apps),
        requests_per_day: 15.0 + 20.0 * rng.unit(),
    };
    // Pods get addresses from node subnets; the autoscaler adds nodes (new /24s) now and then.
    let ua = "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64";
    let base = rng.below(200);
    identity.sources = (0..3).map(|i| Source::new(format!("10.100.{}", base + i), (2..250).collect(), ua)).collect();
    for week in 0..cal.days as Millis / 7 {
        if rng.chance(0.5) {
            let mut node = Source::new(format!("10.100.{}", base + 3 + week as u64), (2..250).collect(), ua);
            node.from = cal.start + week * 7 * DAY + rng.range(0, 7 * DAY);
            identity.sources.push(node);
        }
    }
    identity.credentials = Credentials::Refreshed { every: HOUR, lifetime: HOUR + 5 * MINUTE };
    let cluster = mix(identity.index as u64 / 20); // about twenty workloads per cluster
    let issuer =
        format!("oidc:https://oidc.eks.{}.amazonaws.com/id/{cluster:016X}{:016X}", identity.region, mix(cluster));
    let calls: Vec<Call> = REQUEST_TYPES.iter().flat_map(|r| workload.calls(identity, *r)).collect();
    let drift = workload.drift_call(identity);
    let upstreams = 1 + rng.below(3) as usize;
    let mut delegators: Vec<String> =
        rng.sample(apps, upstreams).into_iter().filter(|u| *u != service).map(|u| format!("app:{u}")).collect();
    if delegators.is_empty() {
        // Every workload serves at least its own front end.
        delegators.push(format!("app:{service}-web"));
    }
    let mut resources: Vec<String> = calls.iter().chain([&drift]).filter_map(|c| c.resource.clone()).collect();
    resources.sort();
    resources.dedup();
    for (i, delegator) in delegators.into_iter().enumerate() {
        let grant_id = format!("grant-fed-{:04}-{i}", identity.index);
        let grant = GrantSpec {
            time: identity.active_from - HOUR,
            grant_id: &grant_id,
            on_behalf_of: &delegator,
            targets: calls.iter().chain([&drift]).map(|c| c.target).collect(),
            actions: calls.iter().chain([&drift]).map(|c| c.action).collect(),
            resources: resources.clone(),
            environments: vec!["prod"],
            expires_at: None,
            windows: Vec::new(),
        };
        identity.delegate(&grant, &issuer, identity.active_from, records);
    }
    workload
}

impl Federated {
    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        // Customer traffic: an office-hours swing on top of a steady floor.
        let mut starts = cal.business_times(day, self.requests_per_day * 0.7, rng);
        let floor = rng.poisson(self.requests_per_day * 0.3);
        starts.extend((0..floor).map(|_| cal.day_start(day) + rng.range(0, 86_400) * 1000));
        for surge in cal.surges.iter().filter(|s| cal.day_of(s.from) == day as i64) {
            let hours = (surge.until - surge.from) as f64 / HOUR as f64;
            let extra = rng.poisson(self.requests_per_day / 24.0 * (surge.factor - 1.0) * hours);
            starts.extend((0..extra).map(|_| rng.range(surge.from, surge.until)));
        }
        starts.sort_unstable();
        starts.into_iter().map(|t| self.request(identity, t, None, rng)).collect()
    }

    /// One request, for one of its upstream applications (or `delegation`).
    pub fn request(&self, identity: &Identity, t: Millis, delegation: Option<usize>, rng: &mut Rng) -> Plan {
        let serving = identity.delegations_at(t);
        let delegation = delegation.unwrap_or_else(|| if serving.is_empty() { 0 } else { *rng.pick(&serving) });
        let mut calls = self.calls(identity, *rng.pick(&self.requests));
        if let Some(call) = identity.drift_at(t) {
            calls.insert(0, call.clone());
        }
        Plan { prefix: "req", delegation, environment: Some("prod".into()), calls: spaced(t, calls, (0, 3), rng) }
    }

    fn calls(&self, identity: &Identity, request: RequestType) -> Vec<Call> {
        let (region, acct, service) = (identity.region, account("prod"), self.service);
        let table = format!("arn:aws:dynamodb:{region}:{acct}:table/{service}");
        match request {
            RequestType::ReadModifyWrite => vec![
                Call::new("dynamodb.amazonaws.com", "GetItem", Some(table.clone())),
                Call::new("dynamodb.amazonaws.com", "PutItem", Some(table)),
            ],
            RequestType::Publish => vec![
                Call::new("dynamodb.amazonaws.com", "Query", Some(table)),
                Call::new(
                    "sqs.amazonaws.com",
                    "SendMessage",
                    Some(format!("arn:aws:sqs:{region}:{acct}:{service}-events")),
                ),
            ],
            RequestType::CallDownstream => vec![Call::new(
                "execute-api.amazonaws.com",
                "Invoke",
                Some(format!("arn:aws:execute-api:{region}:{acct}:{}-api/prod/POST/v1", self.downstream)),
            )],
            RequestType::LoadConfig => vec![
                Call::new(
                    "s3.amazonaws.com",
                    "GetObject",
                    Some(format!("arn:aws:s3:::acme-config-prod/{service}/settings.json")),
                ),
                Call::new("kms.amazonaws.com", "Decrypt", Some(format!("arn:aws:kms:{region}:{acct}:alias/{service}"))),
            ],
        }
    }

    /// The platform team's release: every workload now reads a feature flag first.
    pub fn drift_call(&self, identity: &Identity) -> Call {
        let profile = format!("arn:aws:appconfig:{}:{}:application/{}", identity.region, account("prod"), self.service);
        Call::new("appconfig.amazonaws.com", "GetLatestConfiguration", Some(profile))
    }

    /// Pages through its own table with a call it is allowed: an exfiltration
    /// burst that no scope check can see.
    pub fn bulk_read(&self, identity: &Identity) -> Call {
        let table = format!("arn:aws:dynamodb:{}:{}:table/{}", identity.region, account("prod"), self.service);
        Call::new("dynamodb.amazonaws.com", "Query", Some(table))
    }
}
