//! Staffs a project's open roles with people: the plan that maximises the
//! hours-weighted skill fit, then minimises cost, within each person's
//! available hours and each role's hours, never putting someone on a role
//! whose bill rate is below their cost rate.
//!
//! It is a min-cost flow (source -> role -> person -> sink, capacities in
//! quarter hours), solved by successive shortest paths with Bellman-Ford,
//! augmenting only while a path still improves the plan. Tests check it
//! against brute force on small random cases.

use std::collections::BTreeSet;

use junction_sdk::canonical::{Assignment, Money, Resource, Role};
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::{Deserialize, Serialize};

/// Units per hour: plans are made in quarter hours.
const UNITS_PER_HOUR: f64 = 4.0;
/// Fit is scored in thousandths.
const FIT_SCALE: i128 = 1000;
/// Weight of one point of fit against one cent of cost, large enough that
/// fit always wins and cost only breaks ties.
const FIT_WEIGHT: i128 = 1 << 48;

/// What to staff.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
pub struct Request {
    /// Key of the project the roles belong to.
    pub project_key: String,
    /// Open roles.
    pub roles: Vec<Role>,
    /// People who can be staffed.
    pub people: Vec<Resource>,
}

/// Hours of a role nobody could take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
pub struct Unfilled {
    /// The role.
    pub role_id: String,
    /// Hours left open.
    pub hours: f64,
}

/// The staffing plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
pub struct Plan {
    /// Who works how many hours on which role.
    pub assignments: Vec<Assignment>,
    /// Role hours left open.
    pub unfilled: Vec<Unfilled>,
    /// Hours-weighted average skill fit of the assigned hours, 0 to 1.
    pub fit: f64,
    /// Total cost of the assigned hours, in the people's currency (when
    /// they share one; otherwise the first person's, and `mixed_currency`).
    pub cost: Money,
    /// True when people are paid in more than one currency.
    pub mixed_currency: bool,
}

struct Optimizer;

impl Transform for Optimizer {
    type Input = Request;
    type Output = Plan;

    fn apply(input: Request) -> Result<Vec<Plan>> {
        Ok(vec![plan(&input)?])
    }
}

junction_sdk::export_transform!(Optimizer);

/// Skill fit of `person` for `role`, in thousandths: the share of the
/// role's skills the person has (1000 for a role that asks for none).
fn fit(role: &Role, person: &Resource) -> i128 {
    let wanted: BTreeSet<String> = role.skills.iter().map(|s| s.to_lowercase()).collect();
    if wanted.is_empty() {
        return FIT_SCALE;
    }
    let has: BTreeSet<String> = person.skills.iter().map(|s| s.to_lowercase()).collect();
    let matched = wanted.intersection(&has).count() as i128;
    matched * FIT_SCALE / wanted.len() as i128
}

/// Whether `person` may work on `role` at all.
fn allowed(role: &Role, person: &Resource) -> bool {
    let within_rate = match &role.bill_rate {
        Some(bill) if bill.currency == person.cost_rate.currency => {
            person.cost_rate.amount <= bill.amount
        }
        _ => true,
    };
    within_rate && fit(role, person) > 0
}

fn units(hours: f64, what: &str) -> Result<i64> {
    if !(0.0..=1.0e6).contains(&hours) {
        return Err(Error::InvalidInput(format!(
            "{what}: hours must be between 0 and 1,000,000, got {hours}"
        )));
    }
    Ok((hours * UNITS_PER_HOUR).round() as i64)
}

fn cents(money: &Money) -> i128 {
    (money.amount * 100.0).round() as i128
}

/// Computes the plan.
pub fn plan(request: &Request) -> Result<Plan> {
    let roles = &request.roles;
    let people = &request.people;
    let mut seen = BTreeSet::new();
    for role in roles {
        if !seen.insert(role.id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "roles: id `{}` appears twice",
                role.id
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for person in people {
        if !seen.insert(person.id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "people: id `{}` appears twice",
                person.id
            )));
        }
    }
    // Nodes: 0 source, 1..=R roles, R+1..=R+P people, R+P+1 sink.
    let (r, p) = (roles.len(), people.len());
    let sink = r + p + 1;
    let mut graph = Graph::new(sink + 1);
    for (i, role) in roles.iter().enumerate() {
        graph.edge(
            0,
            1 + i,
            units(role.hours, &format!("role `{}`", role.id))?,
            0,
        );
    }
    let mut pairs = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        for (j, person) in people.iter().enumerate() {
            if allowed(role, person) {
                let cost = -fit(role, person) * FIT_WEIGHT + cents(&person.cost_rate);
                let edge = graph.edge(1 + i, 1 + r + j, i64::MAX / 4, cost);
                pairs.push((i, j, edge));
            }
        }
    }
    for (j, person) in people.iter().enumerate() {
        let available = units(person.available_hours, &format!("person `{}`", person.id))?;
        graph.edge(1 + r + j, sink, available, 0);
    }
    graph.improve(0, sink);

    let mut assignments = Vec::new();
    let mut assigned_units = vec![0i64; r];
    let (mut fit_units, mut total_units, mut cost_cents) = (0i128, 0i128, 0i128);
    for (i, j, edge) in pairs {
        let flow = graph.flow(edge);
        if flow == 0 {
            continue;
        }
        assigned_units[i] += flow;
        fit_units += fit(&roles[i], &people[j]) * i128::from(flow);
        total_units += i128::from(flow);
        cost_cents += cents(&people[j].cost_rate) * i128::from(flow);
        assignments.push(Assignment {
            project_key: request.project_key.clone(),
            role_id: roles[i].id.clone(),
            resource_id: people[j].id.clone(),
            hours: flow as f64 / UNITS_PER_HOUR,
        });
    }
    let unfilled = roles
        .iter()
        .zip(&assigned_units)
        .filter_map(|(role, assigned)| {
            let open = units(role.hours, "").unwrap_or(0) - assigned;
            (open > 0).then(|| Unfilled {
                role_id: role.id.clone(),
                hours: open as f64 / UNITS_PER_HOUR,
            })
        })
        .collect();
    let currencies: BTreeSet<&str> = people
        .iter()
        .map(|p| p.cost_rate.currency.as_str())
        .collect();
    Ok(Plan {
        assignments,
        unfilled,
        fit: if total_units == 0 {
            0.0
        } else {
            fit_units as f64 / (total_units as f64 * FIT_SCALE as f64)
        },
        cost: Money {
            // Cost rates are per hour; flows are in quarter hours.
            amount: cost_cents as f64 / 100.0 / UNITS_PER_HOUR,
            currency: people
                .first()
                .map(|p| p.cost_rate.currency.clone())
                .unwrap_or_default(),
        },
        mixed_currency: currencies.len() > 1,
    })
}

/// A flow network with residual edges (each edge at an even index, its
/// reverse at the next odd one).
struct Graph {
    adjacent: Vec<Vec<usize>>,
    to: Vec<usize>,
    capacity: Vec<i64>,
    cost: Vec<i128>,
}

impl Graph {
    fn new(nodes: usize) -> Graph {
        Graph {
            adjacent: vec![Vec::new(); nodes],
            to: Vec::new(),
            capacity: Vec::new(),
            cost: Vec::new(),
        }
    }

    /// Adds `from -> to`; returns its index.
    fn edge(&mut self, from: usize, to: usize, capacity: i64, cost: i128) -> usize {
        let index = self.to.len();
        for (a, b, cap, c) in [(from, to, capacity, cost), (to, from, 0, -cost)] {
            self.adjacent[a].push(self.to.len());
            self.to.push(b);
            self.capacity.push(cap);
            self.cost.push(c);
        }
        index
    }

    /// Flow on edge `index`: what its reverse edge can send back.
    fn flow(&self, index: usize) -> i64 {
        self.capacity[index + 1]
    }

    /// Successive shortest paths: augment along the cheapest source-sink
    /// path while it has negative cost, i.e. while it improves the plan.
    /// Path costs only grow, so stopping at the first non-negative one
    /// leaves a minimum-cost flow.
    fn improve(&mut self, source: usize, sink: usize) {
        let nodes = self.adjacent.len();
        loop {
            // Bellman-Ford (queue-based): the residual graph has negative
            // edges but no negative cycles.
            let mut distance = vec![i128::MAX; nodes];
            let mut via = vec![usize::MAX; nodes];
            let mut queued = vec![false; nodes];
            let mut queue = std::collections::VecDeque::from([source]);
            distance[source] = 0;
            while let Some(node) = queue.pop_front() {
                queued[node] = false;
                for &e in &self.adjacent[node] {
                    if self.capacity[e] == 0 {
                        continue;
                    }
                    let next = self.to[e];
                    let through = distance[node] + self.cost[e];
                    if through < distance[next] {
                        distance[next] = through;
                        via[next] = e;
                        if !queued[next] {
                            queued[next] = true;
                            queue.push_back(next);
                        }
                    }
                }
            }
            if distance[sink] == i128::MAX || distance[sink] >= 0 {
                return;
            }
            let mut push = i64::MAX;
            let mut node = sink;
            while node != source {
                let e = via[node];
                push = push.min(self.capacity[e]);
                node = self.to[e ^ 1];
            }
            let mut node = sink;
            while node != source {
                let e = via[node];
                self.capacity[e] -= push;
                self.capacity[e ^ 1] += push;
                node = self.to[e ^ 1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: f64) -> Money {
        Money {
            amount,
            currency: "USD".into(),
        }
    }

    fn role(id: &str, skills: &[&str], hours: f64, bill: Option<f64>) -> Role {
        Role {
            id: id.into(),
            name: id.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            hours,
            start_date: None,
            end_date: None,
            bill_rate: bill.map(money),
        }
    }

    fn person(id: &str, skills: &[&str], hours: f64, cost: f64) -> Resource {
        Resource {
            id: id.into(),
            name: id.into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            available_hours: hours,
            cost_rate: money(cost),
            external_ids: Default::default(),
        }
    }

    fn request(roles: Vec<Role>, people: Vec<Resource>) -> Request {
        Request {
            project_key: "ACME".into(),
            roles,
            people,
        }
    }

    #[test]
    fn the_best_fit_gets_the_role_and_the_cheaper_one_breaks_ties() {
        let plan = plan(&request(
            vec![role("lead", &["rust", "netsuite"], 40.0, Some(200.0))],
            vec![
                person("ann", &["rust"], 40.0, 90.0),
                person("bob", &["rust", "netsuite"], 40.0, 120.0),
                person("cy", &["rust", "netsuite"], 40.0, 110.0),
            ],
        ))
        .unwrap();
        assert_eq!(plan.assignments.len(), 1);
        assert_eq!(plan.assignments[0].resource_id, "cy");
        assert_eq!(plan.assignments[0].hours, 40.0);
        assert_eq!(plan.fit, 1.0);
        assert_eq!(plan.cost, money(4400.0));
        assert!(plan.unfilled.is_empty());
    }

    #[test]
    fn availability_splits_a_role_and_the_rest_is_unfilled() {
        let plan = plan(&request(
            vec![role("dev", &["rust"], 30.0, None)],
            vec![
                person("ann", &["rust"], 10.0, 50.0),
                person("bob", &["rust"], 12.5, 60.0),
            ],
        ))
        .unwrap();
        let hours: f64 = plan.assignments.iter().map(|a| a.hours).sum();
        assert_eq!(hours, 22.5);
        assert_eq!(
            plan.unfilled,
            vec![Unfilled {
                role_id: "dev".into(),
                hours: 7.5
            }]
        );
    }

    #[test]
    fn nobody_is_staffed_below_their_cost_or_without_a_skill() {
        let plan = plan(&request(
            vec![role("pm", &["pmp"], 10.0, Some(80.0))],
            vec![
                person("pricey", &["pmp"], 10.0, 120.0),
                person("unskilled", &["rust"], 10.0, 40.0),
            ],
        ))
        .unwrap();
        assert!(plan.assignments.is_empty());
        assert_eq!(plan.unfilled[0].hours, 10.0);
    }

    #[test]
    fn bad_input_is_named() {
        let err = plan(&request(
            vec![role("a", &[], -1.0, None)],
            vec![person("p", &[], 1.0, 1.0)],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("role `a`"), "{err}");
        let err = plan(&request(
            vec![role("a", &[], 1.0, None), role("a", &[], 1.0, None)],
            vec![],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The best (fit, -cost) over every integer-hour allocation.
    fn brute_force(request: &Request) -> (i128, i128) {
        let roles = &request.roles;
        let people = &request.people;
        let edges: Vec<(usize, usize)> = (0..roles.len())
            .flat_map(|i| (0..people.len()).map(move |j| (i, j)))
            .filter(|&(i, j)| allowed(&roles[i], &people[j]))
            .collect();
        let mut best = (0i128, 0i128);
        let mut hours = vec![0i64; edges.len()];
        loop {
            let mut by_role = vec![0i64; roles.len()];
            let mut by_person = vec![0i64; people.len()];
            for (k, &(i, j)) in edges.iter().enumerate() {
                by_role[i] += hours[k];
                by_person[j] += hours[k];
            }
            let feasible = by_role.iter().zip(roles).all(|(h, r)| *h as f64 <= r.hours)
                && by_person
                    .iter()
                    .zip(people)
                    .all(|(h, p)| *h as f64 <= p.available_hours);
            if feasible {
                let fit_total: i128 = edges
                    .iter()
                    .zip(&hours)
                    .map(|(&(i, j), h)| fit(&roles[i], &people[j]) * i128::from(*h))
                    .sum();
                let cost: i128 = edges
                    .iter()
                    .zip(&hours)
                    .map(|(&(_, j), h)| cents(&people[j].cost_rate) * i128::from(*h))
                    .sum();
                best = best.max((fit_total, -cost));
            }
            // Next allocation, odometer style (hours 0..=3 per edge).
            let mut k = 0;
            loop {
                if k == hours.len() {
                    return best;
                }
                hours[k] += 1;
                if hours[k] <= 3 {
                    break;
                }
                hours[k] = 0;
                k += 1;
            }
        }
    }

    #[test]
    fn optimal_against_brute_force_on_small_random_cases() {
        let skills = ["rust", "sql", "pm"];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let pick = |rng: &mut Rng| -> Vec<&str> {
                skills
                    .iter()
                    .copied()
                    .filter(|_| rng.below(2) == 0)
                    .collect()
            };
            let roles: Vec<Role> = (0..1 + rng.below(3))
                .map(|i| {
                    let s = pick(&mut rng);
                    let bill = (rng.below(3) > 0).then(|| 50.0 + 10.0 * rng.below(6) as f64);
                    role(&format!("r{i}"), &s, rng.below(4) as f64, bill)
                })
                .collect();
            let people: Vec<Resource> = (0..1 + rng.below(3))
                .map(|j| {
                    let s = pick(&mut rng);
                    person(
                        &format!("p{j}"),
                        &s,
                        rng.below(4) as f64,
                        40.0 + 10.0 * rng.below(5) as f64,
                    )
                })
                .collect();
            let request = request(roles, people);
            let (best_fit, best_neg_cost) = brute_force(&request);
            let plan = plan(&request).unwrap();
            let got_fit: i128 = plan
                .assignments
                .iter()
                .map(|a| {
                    let r = request.roles.iter().find(|r| r.id == a.role_id).unwrap();
                    let p = request
                        .people
                        .iter()
                        .find(|p| p.id == a.resource_id)
                        .unwrap();
                    fit(r, p) * (a.hours as i128)
                })
                .sum();
            let got_cost = (plan.cost.amount * 100.0).round() as i128;
            assert_eq!(got_fit, best_fit, "case {case}: fit");
            assert_eq!(-got_cost, best_neg_cost, "case {case}: cost");
        }
    }
}
