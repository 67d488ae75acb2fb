//! CI/CD pipelines: one application each, deployed by runs with a fixed sequence
//! of calls, to approved environments, inside declared release windows.

use super::{spaced, Plan, Records};
use crate::model::Millis;
use crate::simulate::calendar::Calendar;
use crate::simulate::fleet::{account, Call, Credentials, GrantSpec, Identity, Source};
use crate::simulate::rng::Rng;
use crate::time::{DAY, HOUR, MINUTE};
use serde_json::json;

pub const APPS: [&str; 16] = [
    "checkout",
    "billing",
    "catalog",
    "search",
    "ledger",
    "notifications",
    "profile",
    "inventory",
    "pricing",
    "shipping",
    "reports",
    "auth",
    "recommendations",
    "invoicing",
    "loyalty",
    "media",
];

/// How an application is deployed; each flavour has its own call sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavour {
    Container,
    Function,
    StaticSite,
}

/// A declared release window (UTC): days (0 = Monday) and minutes of the day.
#[derive(Debug, Clone)]
pub struct Window {
    days: &'static [u32],
    start: i64,
    end: i64,
}

/// Release-window habits teams declare in their grants.
const WINDOWS: [(&[u32], i64, i64); 4] = [
    (&[0, 1, 2, 3], 9 * 60, 17 * 60),         // no Friday deploys
    (&[0, 1, 2, 3, 4], 13 * 60, 16 * 60),     // afternoon release slot
    (&[0, 1, 2, 3, 4, 5, 6], 2 * 60, 4 * 60), // nightly
    (&[1, 3], 10 * 60, 12 * 60),              // release train
];

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Environments a pipeline may deploy to; the first is where most runs go.
const APPROVALS: [&[&str]; 4] =
    [&["staging", "prod"], &["dev", "staging"], &["staging", "prod"], &["dev", "staging", "prod"]];

/// Self-hosted runners live in a few internal subnets; hosted runners come from a
/// large shared public pool, a different /24 almost every run.
const HOSTED_POOL: usize = 40;

#[derive(Debug, Clone)]
pub struct Pipeline {
    app: String,
    flavour: Flavour,
    window: Window,
    runs_per_window: f64,
    environments: Vec<&'static str>,
}

pub fn build(identity: &mut Identity, rng: &mut Rng, records: &mut Records) -> Pipeline {
    let app = format!("{}{}", rng.pick(&APPS), if rng.chance(0.5) { "-api" } else { "" });
    identity.name = format!("arn:aws:iam::{}:role/ci/deploy-{app}-{:04}", account("tooling"), identity.index);
    let (days, start, end) = *rng.pick(&WINDOWS);
    let p = Pipeline {
        app,
        flavour: *rng.pick(&[Flavour::Container, Flavour::Container, Flavour::Function, Flavour::StaticSite]),
        window: Window { days, start, end },
        runs_per_window: 1.0 + 5.0 * rng.unit(),
        environments: rng.pick(&APPROVALS).to_vec(),
    };
    let hosted = rng.chance(0.3);
    identity.sources = if hosted {
        (0..HOSTED_POOL)
            .map(|i| {
                Source::new(
                    format!("20.{}.{}", 40 + i * 3 % 50, (i * 37) % 250),
                    vec![rng.below(250) as u8 + 2],
                    HOSTED_UA,
                )
            })
            .collect()
    } else {
        let base = rng.below(200) as usize;
        (0..2).map(|i| Source::new(format!("10.20.{}", base + i), (10..16).collect(), RUNNER_UA)).collect()
    };
    identity.credentials = Credentials::PerSession { lifetime: HOUR };
    let grant_id = format!("grant-ci-{:04}-v1", identity.index);
    let repo = format!("github:acme/{}", p.app);
    let all_calls: Vec<Call> =
        p.environments.iter().flat_map(|env| p.steps(identity, env, 0, rng)).chain([p.drift_call(identity)]).collect();
    let grant = GrantSpec {
        time: identity.active_from - HOUR,
        grant_id: &grant_id,
        on_behalf_of: &repo,
        targets: all_calls.iter().map(|c| c.target).collect(),
        actions: all_calls.iter().map(|c| c.action).collect(),
        resources: p.environments.iter().flat_map(|env| p.resource_globs(identity, env)).collect(),
        environments: p.environments.clone(),
        expires_at: None,
        windows: vec![json!({
            "days": days.iter().map(|&d| DAY_NAMES[d as usize]).collect::<Vec<_>>(),
            "start": format!("{:02}:{:02}", start / 60, start % 60),
            "end": format!("{:02}:{:02}", end / 60, end % 60),
        })],
    };
    identity.delegate(&grant, "oidc:token.actions.githubusercontent.com", identity.active_from, records);
    p
}

const RUNNER_UA: &str =
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016-azure exe/x86_64.ubuntu.22 exec-env/GitHubActions";
const HOSTED_UA: &str = "aws-sdk-js/3.540.0 ua/2.0 os/linux#6.5.0-1017-azure lang/js md/nodejs#20.11.1 api/ecs#3.540.0 exec-env/GitHubActions";

impl Pipeline {
    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        if !self.window.days.contains(&cal.weekday(day)) || cal.is_holiday(day) {
            return Vec::new();
        }
        let runs = rng.poisson(self.runs_per_window);
        (0..runs)
            .map(|_| {
                // A run starts early enough in the window to finish inside it.
                let latest = (self.window.end - 20).max(self.window.start + 1);
                let t = cal.day_start(day) + rng.range(self.window.start, latest) * MINUTE + rng.range(0, 60) * 1000;
                self.run(identity, t, None, rng)
            })
            .collect()
    }

    /// One run: the fixed call sequence, to `environment` or to one it is approved for.
    pub fn run(&self, identity: &Identity, t: Millis, environment: Option<&str>, rng: &mut Rng) -> Plan {
        let env = environment.unwrap_or_else(|| {
            if rng.chance(0.65) {
                self.environments[0]
            } else {
                *rng.pick(&self.environments)
            }
        });
        let build = rng.below(100_000);
        let mut steps = self.steps(identity, env, build, rng);
        if let Some(call) = identity.drift_at(t) {
            steps.insert(1, call.clone());
        }
        Plan { prefix: "run", delegation: 0, environment: Some(env.to_string()), calls: spaced(t, steps, (5, 50), rng) }
    }

    /// An environment the pipeline is not approved for, if there is one.
    pub fn unapproved_environment(&self) -> Option<&'static str> {
        ["prod", "staging", "dev"].into_iter().find(|e| !self.environments.contains(e))
    }

    /// A run to an environment the pipeline is not approved for, in its next window.
    pub fn unapproved_run(&self, identity: &Identity, cal: &Calendar, t: Millis, rng: &mut Rng) -> Option<Plan> {
        let env = self.unapproved_environment()?;
        Some(self.run(identity, self.next_window(cal, t, rng), Some(env), rng))
    }

    /// A time inside the first release window from `t` on.
    fn next_window(&self, cal: &Calendar, t: Millis, rng: &mut Rng) -> Millis {
        let first = cal.day_of(t).max(0) as u32;
        let day = (first..first + 8).find(|&d| self.window.days.contains(&cal.weekday(d))).unwrap_or(first);
        cal.day_start(day) + rng.range(self.window.start, self.window.end - 15) * MINUTE
    }

    /// Whether `t` falls inside the declared release window.
    pub fn in_window(&self, cal: &Calendar, t: Millis) -> bool {
        let day = cal.day_of(t).max(0) as u32;
        let minute = (t - cal.day_start(day)) / MINUTE;
        self.window.days.contains(&cal.weekday(day)) && (self.window.start..self.window.end).contains(&minute)
    }

    pub fn drift_call(&self, identity: &Identity) -> Call {
        Call::new(
            "ssm.amazonaws.com",
            "GetParameter",
            Some(format!(
                "arn:aws:ssm:{}:{}:parameter/release/{}/config",
                identity.region,
                account("tooling"),
                self.app
            )),
        )
    }

    fn steps(&self, identity: &Identity, env: &str, build: u64, rng: &mut Rng) -> Vec<Call> {
        let (app, region, acct) = (&self.app, identity.region, account(env));
        let mut steps = vec![Call::new("sts.amazonaws.com", "GetCallerIdentity", None)];
        match self.flavour {
            Flavour::Container => {
                let service = format!("arn:aws:ecs:{region}:{acct}:service/{env}/{app}");
                steps.extend([
                    Call::new("ecr.amazonaws.com", "GetAuthorizationToken", None),
                    Call::new(
                        "ecr.amazonaws.com",
                        "PutImage",
                        Some(format!("arn:aws:ecr:{region}:{}:repository/{app}", account("tooling"))),
                    ),
                    Call::new(
                        "s3.amazonaws.com",
                        "PutObject",
                        Some(format!("arn:aws:s3:::acme-artifacts-{env}/{app}/{build}.tar.gz")),
                    ),
                    Call::new(
                        "ecs.amazonaws.com",
                        "RegisterTaskDefinition",
                        Some(format!("arn:aws:ecs:{region}:{acct}:task-definition/{app}")),
                    ),
                    Call::new("ecs.amazonaws.com", "UpdateService", Some(service.clone())),
                ]);
                // The run polls until the service is stable.
                for _ in 0..1 + rng.below(3) {
                    steps.push(Call::new("ecs.amazonaws.com", "DescribeServices", Some(service.clone())));
                }
            }
            Flavour::Function => {
                let function = format!("arn:aws:lambda:{region}:{acct}:function:{app}");
                steps.extend([
                    Call::new(
                        "s3.amazonaws.com",
                        "PutObject",
                        Some(format!("arn:aws:s3:::acme-artifacts-{env}/{app}/{build}.zip")),
                    ),
                    Call::new("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", Some(function.clone())),
                    Call::new("lambda.amazonaws.com", "PublishVersion20150331", Some(function.clone())),
                    Call::new("lambda.amazonaws.com", "UpdateAlias20150331", Some(function.clone())),
                    Call::new("lambda.amazonaws.com", "GetFunction20150331v2", Some(function)),
                ]);
            }
            Flavour::StaticSite => {
                steps.push(Call::new(
                    "s3.amazonaws.com",
                    "ListObjectsV2",
                    Some(format!("arn:aws:s3:::acme-web-{env}/{app}/")),
                ));
                for i in 0..2 + rng.below(5) {
                    let key = format!("arn:aws:s3:::acme-web-{env}/{app}/assets/{build}-{i}.js");
                    steps.push(Call::new("s3.amazonaws.com", "PutObject", Some(key)));
                }
                let distribution =
                    format!("arn:aws:cloudfront::{acct}:distribution/E{:012X}", identity.index as u64 * 7919);
                steps.push(Call::new("cloudfront.amazonaws.com", "CreateInvalidation", Some(distribution)));
            }
        }
        steps
    }

    /// The resources a grant allows in one environment (IAM-style globs).
    fn resource_globs(&self, identity: &Identity, env: &str) -> Vec<String> {
        let (app, region, acct) = (&self.app, identity.region, account(env));
        let shared = format!("arn:aws:ssm:{region}:{}:parameter/release/{app}/*", account("tooling"));
        let mut globs = match self.flavour {
            Flavour::Container => vec![
                format!("arn:aws:ecr:{region}:{}:repository/{app}", account("tooling")),
                format!("arn:aws:s3:::acme-artifacts-{env}/{app}/*"),
                format!("arn:aws:ecs:{region}:{acct}:task-definition/{app}*"),
                format!("arn:aws:ecs:{region}:{acct}:service/{env}/{app}"),
            ],
            Flavour::Function => {
                vec![
                    format!("arn:aws:s3:::acme-artifacts-{env}/{app}/*"),
                    format!("arn:aws:lambda:{region}:{acct}:function:{app}*"),
                ]
            }
            Flavour::StaticSite => {
                vec![
                    format!("arn:aws:s3:::acme-web-{env}/{app}/*"),
                    format!("arn:aws:cloudfront::{acct}:distribution/*"),
                ]
            }
        };
        globs.push(shared);
        globs
    }

    /// A time outside the release window near `t`, for a token used where it should not be.
    pub fn outside_window(&self, cal: &Calendar, t: Millis, rng: &mut Rng) -> Millis {
        let mut candidate = t;
        for _ in 0..100 {
            candidate = cal.day_start(cal.day_of(t).max(0) as u32) + rng.range(0, DAY / MINUTE) * MINUTE;
            if !self.in_window(cal, candidate) && !self.in_window(cal, candidate + HOUR) {
                break;
            }
        }
        candidate
    }
}
