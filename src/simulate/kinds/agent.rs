//! AI agents: read tickets and trigger remediation through a narrow toolset. Each
//! task is a session; paths vary (which diagnostics, whether to remediate) but stay
//! within one grammar: read, diagnose, maybe remediate, report.

use super::{spaced, Plan, Records};
use crate::model::Millis;
use crate::simulate::calendar::Calendar;
use crate::simulate::fleet::{account, Call, Credentials, GrantSpec, Identity, Source};
use crate::simulate::rng::Rng;
use crate::time::{HOUR, MINUTE};

const TEAMS: [&str; 6] = ["sre", "payments-oncall", "platform", "support-l2", "data-oncall", "security-ops"];

/// A tool: (target, action).
type Tool = (&'static str, &'static str);

/// A remediation and the call that polls its result, if any.
type Remediation = (Tool, Option<Tool>);

const DIAGNOSTICS: [Tool; 6] = [
    ("logs.amazonaws.com", "FilterLogEvents"),
    ("monitoring.amazonaws.com", "GetMetricData"),
    ("monitoring.amazonaws.com", "DescribeAlarms"),
    ("ecs.amazonaws.com", "DescribeServices"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("xray.amazonaws.com", "GetTraceSummaries"),
];

const REMEDIATIONS: [Remediation; 4] = [
    (("ssm.amazonaws.com", "SendCommand"), Some(("ssm.amazonaws.com", "GetCommandInvocation"))),
    (("ecs.amazonaws.com", "UpdateService"), Some(("ecs.amazonaws.com", "DescribeServices"))),
    (("lambda.amazonaws.com", "Invoke"), None),
    (
        ("autoscaling.amazonaws.com", "SetDesiredCapacity"),
        Some(("autoscaling.amazonaws.com", "DescribeAutoScalingGroups")),
    ),
];

/// Tools no agent is given: what a hijacked (prompt-injected) agent reaches for.
pub const FOREIGN_TOOLS: [Tool; 5] = [
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("iam.amazonaws.com", "CreateAccessKey"),
    ("ssm.amazonaws.com", "StartSession"),
    ("s3.amazonaws.com", "GetObject"),
    ("iam.amazonaws.com", "AttachRolePolicy"),
];

const TICKETS: &str = "tickets.example.com";

#[derive(Debug, Clone)]
pub struct Agent {
    team: &'static str,
    opener: &'static str,
    diagnostics: Vec<Tool>,
    remediations: Vec<Remediation>,
    services: Vec<&'static str>,
    tasks_per_day: f64,
    /// On-call agents work around the clock; others follow office hours.
    on_call: bool,
}

pub fn build(identity: &mut Identity, rng: &mut Rng, records: &mut Records) -> Agent {
    let team = *rng.pick(&TEAMS);
    identity.name = format!("arn:aws:iam::{}:role/agents/{team}-agent-{:04}", account("prod"), identity.index);
    let (diag_count, remediation_count) = (2 + rng.below(3) as usize, 1 + rng.below(2) as usize);
    let agent = Agent {
        team,
        opener: if rng.chance(0.7) { "GetTicket" } else { "SearchTickets" },
        diagnostics: rng.sample(&DIAGNOSTICS, diag_count),
        remediations: rng.sample(&REMEDIATIONS, remediation_count),
        services: rng.sample(&super::pipeline::APPS, 3),
        tasks_per_day: 4.0 + 8.0 * rng.unit(),
        on_call: rng.chance(0.4),
    };
    let subnet = rng.below(250);
    identity.sources =
        vec![Source::new(format!("10.60.{subnet}"), vec![21, 22], "remediation-agent/1.4.2 python-httpx/0.27.0")];
    identity.credentials = Credentials::Refreshed { every: HOUR, lifetime: HOUR + 15 * MINUTE };
    let grant_id = format!("grant-agent-{:04}-v1", identity.index);
    let delegator = format!("team:{team}");
    let mut tools: Vec<Tool> = vec![(TICKETS, agent.opener), (TICKETS, "AddComment"), (TICKETS, "UpdateTicket")];
    tools.extend(&agent.diagnostics);
    for (act, poll) in &agent.remediations {
        tools.push(*act);
        tools.extend(poll);
    }
    let drift = drift_call();
    tools.push((drift.target, drift.action));
    let grant = GrantSpec {
        time: identity.active_from - HOUR,
        grant_id: &grant_id,
        on_behalf_of: &delegator,
        targets: tools.iter().map(|t| t.0).collect(),
        actions: tools.iter().map(|t| t.1).collect(),
        resources: Vec::new(),
        environments: vec!["prod"],
        expires_at: None,
        windows: Vec::new(),
    };
    identity.delegate(&grant, "agent-runtime:ops-copilot", identity.active_from, records);
    agent
}

/// The ticket system's new "linked tickets" call, which the agent framework's
/// next release makes every agent call right after reading the ticket.
pub fn drift_call() -> Call {
    Call::new(TICKETS, "GetTicketLinks", None)
}

impl Agent {
    pub fn day(&self, identity: &Identity, cal: &Calendar, day: u32, rng: &mut Rng) -> Vec<Plan> {
        let mut starts = if self.on_call {
            let day_start = cal.day_start(day);
            let n = rng.poisson(self.tasks_per_day * 0.6);
            (0..n).map(|_| day_start + rng.range(0, 86_400) * 1000).collect()
        } else {
            cal.business_times(day, self.tasks_per_day, rng)
        };
        // Outages bring tickets: more tasks while a surge lasts.
        for surge in cal.surges.iter().filter(|s| cal.day_of(s.from) == day as i64) {
            let hours = (surge.until - surge.from) as f64 / HOUR as f64;
            let extra = rng.poisson(self.tasks_per_day / 10.0 * (surge.factor - 1.0) * hours);
            starts.extend((0..extra).map(|_| rng.range(surge.from, surge.until)));
        }
        starts.sort_unstable();
        starts.into_iter().map(|t| self.task(identity, t, rng)).collect()
    }

    /// One task: read the ticket, diagnose, maybe remediate, report.
    pub fn task(&self, identity: &Identity, t: Millis, rng: &mut Rng) -> Plan {
        let mut calls = vec![self.ticket_call(self.opener, rng)];
        if let Some(call) = identity.drift_at(t) {
            calls.push(call.clone());
        }
        for _ in 0..1 + rng.below(4) {
            calls.push(self.tool_call(*rng.pick(&self.diagnostics), identity, rng));
        }
        if rng.chance(0.35) {
            calls.extend(self.remediation(identity, rng));
        }
        calls.push(self.ticket_call("AddComment", rng));
        if rng.chance(0.6) {
            calls.push(self.ticket_call("UpdateTicket", rng));
        }
        Plan { prefix: "task", delegation: 0, environment: Some("prod".into()), calls: spaced(t, calls, (2, 40), rng) }
    }

    /// A task the grammar never produces: `new_tool` adds a tool the agent was never
    /// given; otherwise known tools run in an order never used (act before reading,
    /// or report and then act).
    pub fn hijacked_task(&self, identity: &Identity, t: Millis, new_tool: bool, rng: &mut Rng) -> Plan {
        let mut plan = self.task(identity, t, rng);
        let mut calls: Vec<Call> = plan.calls.drain(..).map(|(_, c)| c).collect();
        if new_tool {
            let (target, action) = *rng.pick(&FOREIGN_TOOLS);
            let at = 1 + rng.below(calls.len() as u64 - 1) as usize;
            for _ in 0..1 + rng.below(3) {
                calls.insert(at, Call::new(target, action, None));
            }
        } else if rng.chance(0.5) {
            let remediation = self.remediation(identity, rng);
            calls.splice(0..0, remediation);
        } else {
            calls.retain(|c| c.action != "UpdateTicket");
            calls.extend(self.remediation(identity, rng));
        }
        plan.calls = spaced(t, calls, (1, 20), rng);
        plan
    }

    fn remediation(&self, identity: &Identity, rng: &mut Rng) -> Vec<Call> {
        let (act, poll) = *rng.pick(&self.remediations);
        let mut calls = vec![self.tool_call(act, identity, rng)];
        if let Some(poll) = poll {
            for _ in 0..1 + rng.below(2) {
                calls.push(self.tool_call(poll, identity, rng));
            }
        }
        calls
    }

    fn ticket_call(&self, action: &'static str, rng: &mut Rng) -> Call {
        let resource = (action != "SearchTickets")
            .then(|| format!("arn:example:tickets:::ticket/OPS-{}", 10_000 + rng.below(5000)));
        Call::new(TICKETS, action, resource)
    }

    fn tool_call(&self, (target, action): Tool, identity: &Identity, rng: &mut Rng) -> Call {
        let (region, acct, service) = (identity.region, account("prod"), rng.pick(&self.services));
        let resource = match target {
            "logs.amazonaws.com" => Some(format!("arn:aws:logs:{region}:{acct}:log-group:/ecs/{service}")),
            "ecs.amazonaws.com" => Some(format!("arn:aws:ecs:{region}:{acct}:service/prod/{service}")),
            "ssm.amazonaws.com" | "ec2.amazonaws.com" => Some(format!(
                "arn:aws:ec2:{region}:{acct}:instance/i-0{:016x}",
                (identity.index as u64) << 8 | rng.below(4)
            )),
            "lambda.amazonaws.com" => Some(format!("arn:aws:lambda:{region}:{acct}:function:runbook-{}", self.team)),
            "autoscaling.amazonaws.com" => {
                Some(format!("arn:aws:autoscaling:{region}:{acct}:autoScalingGroup:*:autoScalingGroupName/{service}"))
            }
            _ => None,
        };
        Call::new(target, action, resource)
    }
}
