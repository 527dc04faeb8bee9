//! Maps approved PSA time entries and bill rates to one canonical v1
//! [`Invoice`] and the NetSuite invoice body it becomes.
//!
//! The entries are the PSA's own shape, as the PSA connector's
//! `approved-time-entries` stream returns them (`{"id", "project_id",
//! "person_id", "role_id", "date", "hours", "billable", "status", ...}`):
//! lines are grouped by role, which the canonical `TimeEntry` does not carry.
//! The rates are the project's roles as the PSA's `list-roles` returns them
//! (`{"id", "name", "bill_rate"}`), and optionally a rate per person that
//! overrides the role's (and bills time logged without a role).
//!
//! Only entries that are `approved` and `billable` are billed; the others are
//! listed in `skipped` with the reason. Every entry must be for the
//! `project_id` billed (split a stream's entries by project first), and an
//! entry listed twice is refused rather than billed twice.
//!
//! Lines: one per role and rate (a person billed at an override rate gets a
//! line of their own on that role), then one per person and rate for time
//! without a role, each described with the role (or person) and the first and
//! last day billed, e.g. `Lead engineer, 2026-11-02 to 2026-11-06`.
//!
//! Amounts are exact: hours are counted in hundredths and rates in cents
//! (an entry or rate finer than that is refused), each line's amount is its
//! hours times its rate rounded half up to the cent once, as NetSuite rounds
//! a line's amount, and `total` is the sum of the line amounts.
//!
//! Output: nothing when no entry is billable; otherwise one
//! `{"invoice", "total", "netsuite", "skipped"}`, where `netsuite` is the
//! body of `POST /services/rest/record/v1/invoice`: `{"entity": {"id"},
//! "job": {"id"}?, "tranDate", "item": {"items": [{"item": {"id"},
//! "quantity", "rate", "description"}]}}`.

use std::collections::{BTreeMap, BTreeSet};

use junction_sdk::canonical::{Invoice, InvoiceLine, Money, date_part};
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct ApprovedTimeToInvoice;

impl Transform for ApprovedTimeToInvoice {
    type Input = Billing;
    type Output = Billed;

    fn apply(billing: Billing) -> Result<Vec<Billed>> {
        Ok(invoice(&billing)?.into_iter().collect())
    }
}

junction_sdk::export_transform!(ApprovedTimeToInvoice);

/// What to bill: a project's approved time, its rates, and where the invoice goes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Billing {
    /// Name of the customer billed.
    pub customer: String,
    /// The PSA id of the project billed; every entry must be for it.
    pub project_id: String,
    /// The canonical key of the project, e.g. `ACME`, when known.
    #[serde(default)]
    pub project_key: Option<String>,
    /// The invoice date, `YYYY-MM-DD`.
    pub date: String,
    /// ISO 4217 code of the invoice; every rate must be in it.
    pub currency: String,
    /// The time entries, as the PSA returns them.
    pub entries: Vec<TimeEntry>,
    /// The project's roles, as the PSA returns them, with their bill rates.
    #[serde(default)]
    pub roles: Vec<RoleRate>,
    /// Rates by PSA person id that override the role's rate; the rate of
    /// time logged without a role.
    #[serde(default)]
    pub person_rates: BTreeMap<String, Money>,
    /// Names by PSA person id, for the lines of time without a role.
    #[serde(default)]
    pub people: BTreeMap<String, String>,
    /// The NetSuite records the invoice is for.
    pub netsuite: NetsuiteTarget,
}

/// A PSA time entry; other members the PSA sends are ignored.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct TimeEntry {
    /// The PSA's id.
    pub id: String,
    /// The project's PSA id.
    pub project_id: String,
    /// Who worked.
    pub person_id: String,
    /// The role worked on, when the entry names one.
    #[serde(default)]
    pub role_id: Option<String>,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Hours, in hundredths at the finest.
    pub hours: f64,
    /// Whether the hours are billable; true when absent.
    #[serde(default = "yes")]
    pub billable: bool,
    /// `draft`, `submitted`, `approved` or `rejected`.
    pub status: String,
}

fn yes() -> bool {
    true
}

/// A PSA role's bill rate; other members the PSA sends are ignored.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RoleRate {
    /// The role's PSA id.
    pub id: String,
    /// Its name, e.g. `Lead engineer`.
    pub name: String,
    /// Rate billed per hour; `null` when the role has none.
    #[serde(default)]
    pub bill_rate: Option<Money>,
}

/// Where the invoice goes in NetSuite.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetsuiteTarget {
    /// Internal id of the customer billed (`entity`).
    pub customer_id: String,
    /// Internal id of the job (project) billed, when there is one.
    #[serde(default)]
    pub job_id: Option<String>,
    /// Internal id of the service item time is billed as.
    pub item_id: String,
}

/// The invoice of a project's billable time.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Billed {
    /// The canonical v1 invoice.
    pub invoice: Invoice,
    /// The sum of the lines' amounts, each rounded to the cent.
    pub total: Money,
    /// The body of NetSuite's `POST /record/v1/invoice`.
    pub netsuite: Value,
    /// Entries not billed, and why.
    pub skipped: Vec<Skipped>,
}

/// An entry that was not billed.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct Skipped {
    /// The entry's PSA id.
    pub id: String,
    /// Why, e.g. `status submitted, not approved`.
    pub reason: String,
}

/// `value` in hundredths (hours or cents); refused when finer, negative or not finite.
fn hundredths(value: f64, what: impl Fn() -> String) -> Result<u64> {
    let scaled = value * 100.0;
    let rounded = scaled.round();
    if !value.is_finite() || value < 0.0 || (scaled - rounded).abs() > 1e-6 || rounded > 1e15 {
        return Err(Error::InvalidInput(format!(
            "{} is {value}: it must be a non-negative number with at most two decimals",
            what()
        )));
    }
    // In range and whole: checked above.
    Ok(rounded as u64)
}

/// `hundredths` as a decimal number (`1234.5` for 123450).
fn from_hundredths(value: u64) -> f64 {
    value as f64 / 100.0
}

/// One invoice line being gathered.
struct Line {
    /// The role's name, or the person's.
    label: String,
    rate_cents: u64,
    centi_hours: u64,
    first_day: String,
    last_day: String,
    entry_ids: Vec<String>,
}

/// Where a line sorts: roles in the order given, then time without a role by person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Role {
        position: usize,
        person: Option<String>,
    },
    Person(String),
}

/// The invoice of `billing`'s billable entries; `None` when none is billable.
pub fn invoice(billing: &Billing) -> Result<Option<Billed>> {
    let date = date_part(&billing.date)
        .filter(|d| d.len() == billing.date.len())
        .ok_or_else(|| {
            Error::InvalidInput(format!("`date` must be YYYY-MM-DD, not `{}`", billing.date))
        })?;
    let currency = &billing.currency;
    let rate = |money: &Money, what: &dyn Fn() -> String| -> Result<u64> {
        if money.currency != *currency {
            return Err(Error::InvalidInput(format!(
                "{} is in {}, but the invoice is in {currency}",
                what(),
                money.currency
            )));
        }
        hundredths(money.amount, what)
    };
    let roles: BTreeMap<&str, (usize, &RoleRate)> = billing
        .roles
        .iter()
        .enumerate()
        .map(|(position, role)| (role.id.as_str(), (position, role)))
        .collect();

    let mut seen = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut lines: BTreeMap<(Group, u64), Line> = BTreeMap::new();
    for entry in &billing.entries {
        let id = &entry.id;
        if !seen.insert(id.as_str()) {
            return Err(Error::InvalidInput(format!(
                "time entry {id} is listed twice; each entry is billed once"
            )));
        }
        if entry.project_id != billing.project_id {
            return Err(Error::InvalidInput(format!(
                "time entry {id} is for project {}, not {}: invoice each project's entries \
                 on their own",
                entry.project_id, billing.project_id
            )));
        }
        if entry.status != "approved" {
            skipped.push(Skipped {
                id: id.clone(),
                reason: format!("status {}, not approved", entry.status),
            });
            continue;
        }
        if !entry.billable {
            skipped.push(Skipped {
                id: id.clone(),
                reason: "not billable".into(),
            });
            continue;
        }
        let centi_hours = hundredths(entry.hours, || format!("`hours` of time entry {id}"))?;
        let day = date_part(&entry.date).ok_or_else(|| {
            Error::InvalidInput(format!(
                "`date` of time entry {id} must be YYYY-MM-DD, not `{}`",
                entry.date
            ))
        })?;
        let person = &entry.person_id;
        let override_rate = billing.person_rates.get(person);
        let (group, label, rate_cents) = match &entry.role_id {
            Some(role_id) => {
                let (position, role) = roles.get(role_id.as_str()).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "time entry {id} is for role {role_id}, which is not among `roles`"
                    ))
                })?;
                let (person, rate_cents) = match (override_rate, &role.bill_rate) {
                    (Some(money), _) => (
                        Some(person.clone()),
                        rate(money, &|| format!("`person_rates.{person}`"))?,
                    ),
                    (None, Some(money)) => (
                        None,
                        rate(money, &|| format!("the bill rate of role {role_id}"))?,
                    ),
                    (None, None) => {
                        return Err(Error::InvalidInput(format!(
                            "time entry {id}: role {role_id} has no `bill_rate` and person \
                             {person} no entry in `person_rates`"
                        )));
                    }
                };
                let label = match &person {
                    Some(person) => format!("{} ({})", role.name, person_name(billing, person)),
                    None => role.name.clone(),
                };
                (
                    Group::Role {
                        position: *position,
                        person,
                    },
                    label,
                    rate_cents,
                )
            }
            None => {
                let money = override_rate.ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "time entry {id} names no role, and person {person} has no entry in \
                         `person_rates`"
                    ))
                })?;
                (
                    Group::Person(person.clone()),
                    person_name(billing, person),
                    rate(money, &|| format!("`person_rates.{person}`"))?,
                )
            }
        };
        let line = lines.entry((group, rate_cents)).or_insert_with(|| Line {
            label,
            rate_cents,
            centi_hours: 0,
            first_day: day.clone(),
            last_day: day.clone(),
            entry_ids: Vec::new(),
        });
        line.centi_hours += centi_hours;
        line.first_day = line.first_day.clone().min(day.clone());
        line.last_day = line.last_day.clone().max(day);
        line.entry_ids.push(id.clone());
    }
    if lines.is_empty() {
        return Ok(None);
    }

    let netsuite = &billing.netsuite;
    let mut total_cents = 0u64;
    let mut invoice_lines = Vec::with_capacity(lines.len());
    let mut items = Vec::with_capacity(lines.len());
    for line in lines.into_values() {
        // Rounded half up to the cent once per line, as NetSuite rounds a line's amount.
        let amount = (u128::from(line.centi_hours) * u128::from(line.rate_cents) + 50) / 100;
        total_cents += u64::try_from(amount).map_err(|_| {
            Error::InvalidInput(format!("the amount of `{}` is too large", line.label))
        })?;
        let days = if line.first_day == line.last_day {
            line.first_day.clone()
        } else {
            format!("{} to {}", line.first_day, line.last_day)
        };
        let description = format!("{}, {days}", line.label);
        let quantity = from_hundredths(line.centi_hours);
        let rate = from_hundredths(line.rate_cents);
        items.push(json!({
            "item": { "id": netsuite.item_id },
            "quantity": quantity,
            "rate": rate,
            "description": description,
        }));
        invoice_lines.push(InvoiceLine {
            description,
            quantity,
            unit_price: Money {
                amount: rate,
                currency: currency.clone(),
            },
            time_entry_ids: line.entry_ids,
        });
    }
    let mut body = json!({
        "entity": { "id": netsuite.customer_id },
        "tranDate": date,
        "item": { "items": items },
    });
    if let Some(job_id) = &netsuite.job_id {
        body["job"] = json!({ "id": job_id });
    }
    Ok(Some(Billed {
        invoice: Invoice {
            customer: billing.customer.clone(),
            project_key: billing.project_key.clone(),
            date,
            lines: invoice_lines,
            currency: currency.clone(),
            external_ids: BTreeMap::from([("psa".to_owned(), billing.project_id.clone())]),
        },
        total: Money {
            amount: from_hundredths(total_cents),
            currency: currency.clone(),
        },
        netsuite: body,
        skipped,
    }))
}

fn person_name(billing: &Billing, person: &str) -> String {
    billing
        .people
        .get(person)
        .cloned()
        .unwrap_or_else(|| format!("person {person}"))
}

#[cfg(test)]
mod tests;
