//! Maps a Salesforce opportunity and its account to a canonical v1
//! [`Engagement`]: the customer and the project that delivers the deal.
//!
//! Input: `{"opportunity": <Opportunity record>, "account": <Account record>}`
//! as the REST API returns them (`GET /sobjects/Opportunity/{id}`,
//! `GET /sobjects/Account/{id}`); instead of `account`, the opportunity may
//! carry its account as the relationship field `Account` (a SOQL query
//! selecting `Account.Name, ...`).
//!
//! Only closed-won opportunities (`IsWon`, or `StageName` `Closed Won`)
//! become engagements: any other stage yields no output. The mapping:
//!
//! - customer `name`: `Account.Name` (required); `domain`: the host of
//!   `Website`; `country`: `BillingCountry`; `currency`: `CurrencyIsoCode`;
//!   `external_ids`: `{"salesforce": Account.Id}`.
//! - project `name`: `Name` (required); `key`: derived from the name as
//!   [`project_key`] does; `budget`: `Amount` in `CurrencyIsoCode` (the
//!   account's, else USD); `start_date`: `CloseDate`; `status`: `planned`;
//!   `customer`: the customer's name; `external_ids`: `{"salesforce": Id}`.

use std::collections::BTreeMap;

use junction_sdk::canonical::{
    Customer, Engagement, Money, Project, ProjectStatus, date_part, project_key,
};
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::Deserialize;

struct OpportunityToProject;

impl Transform for OpportunityToProject {
    type Input = Input;
    type Output = Engagement;

    fn apply(input: Input) -> Result<Vec<Engagement>> {
        Ok(engagement(input)?.into_iter().collect())
    }
}

junction_sdk::export_transform!(OpportunityToProject);

/// The transform's input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Input {
    /// The Opportunity record.
    pub opportunity: Opportunity,
    /// The Account record, unless the opportunity carries it as `Account`.
    #[serde(default)]
    pub account: Option<Account>,
}

/// The Opportunity fields this transform reads (Salesforce field names).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(non_snake_case)] // Salesforce's field names
pub struct Opportunity {
    /// Record id.
    pub Id: String,
    /// Opportunity name.
    pub Name: Option<String>,
    /// Stage label, e.g. `Closed Won`.
    pub StageName: Option<String>,
    /// True once won (read-only, derived from the stage).
    #[serde(default)]
    pub IsWon: Option<bool>,
    /// Close date, `YYYY-MM-DD`.
    pub CloseDate: Option<String>,
    /// Amount, in the record's currency.
    pub Amount: Option<f64>,
    /// ISO 4217 currency (multi-currency orgs only).
    #[serde(default)]
    pub CurrencyIsoCode: Option<String>,
    /// The account, when queried through the relationship.
    #[serde(default)]
    pub Account: Option<Account>,
}

/// The Account fields this transform reads.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(non_snake_case)] // Salesforce's field names
pub struct Account {
    /// Record id.
    #[serde(default)]
    pub Id: Option<String>,
    /// Account name.
    pub Name: Option<String>,
    /// Web site, e.g. `https://www.acme.example`.
    #[serde(default)]
    pub Website: Option<String>,
    /// Billing country.
    #[serde(default)]
    pub BillingCountry: Option<String>,
    /// ISO 4217 currency (multi-currency orgs only).
    #[serde(default)]
    pub CurrencyIsoCode: Option<String>,
}

fn text(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn invalid(message: String) -> Error {
    Error::InvalidInput(message)
}

/// The engagement of a closed-won opportunity, `None` for any other stage.
pub fn engagement(input: Input) -> Result<Option<Engagement>> {
    let mut opportunity = input.opportunity;
    let won = opportunity.IsWon.unwrap_or_else(|| {
        opportunity
            .StageName
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("closed won"))
    });
    if !won {
        return Ok(None);
    }
    let account = input
        .account
        .or_else(|| opportunity.Account.take())
        .ok_or_else(|| invalid("`account` is missing (or `opportunity.Account`)".into()))?;
    let customer_name =
        text(account.Name).ok_or_else(|| invalid("`account.Name` is missing".into()))?;
    let name =
        text(opportunity.Name).ok_or_else(|| invalid("`opportunity.Name` is missing".into()))?;
    let key = project_key(&name).ok_or_else(|| {
        invalid(format!(
            "`opportunity.Name` `{name}` has fewer than 2 ASCII letters to derive a project key from"
        ))
    })?;
    let currency = text(opportunity.CurrencyIsoCode)
        .or_else(|| text(account.CurrencyIsoCode.clone()))
        .map(|c| c.to_ascii_uppercase());
    let budget = match opportunity.Amount {
        None => None,
        Some(amount) if !amount.is_finite() || amount < 0.0 => {
            return Err(invalid(format!(
                "`opportunity.Amount` `{amount}` is not an amount"
            )));
        }
        Some(amount) => Some(Money {
            amount,
            currency: currency.clone().unwrap_or_else(|| "USD".into()),
        }),
    };
    let start_date =
        match text(opportunity.CloseDate) {
            None => None,
            Some(date) => Some(date_part(&date).ok_or_else(|| {
                invalid(format!("`opportunity.CloseDate` `{date}` is not a date"))
            })?),
        };
    let mut customer_ids = BTreeMap::new();
    if let Some(id) = text(account.Id) {
        customer_ids.insert("salesforce".to_string(), id);
    }
    Ok(Some(Engagement {
        customer: Customer {
            name: customer_name.clone(),
            domain: text(account.Website).as_deref().and_then(domain),
            email: None,
            country: text(account.BillingCountry),
            currency,
            external_ids: customer_ids,
        },
        project: Project {
            name,
            key,
            customer: Some(customer_name),
            budget,
            start_date,
            status: ProjectStatus::Planned,
            external_ids: BTreeMap::from([("salesforce".to_string(), opportunity.Id)]),
        },
    }))
}

/// The host of a web site, without `www.`: `https://www.acme.example/x` -> `acme.example`.
fn domain(website: &str) -> Option<String> {
    let rest = website.split_once("://").map_or(website, |(_, rest)| rest);
    let host = rest
        .split(['/', '?', '#', ':'])
        .next()?
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    (host.contains('.') && !host.starts_with('.')).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_sdk::canonical::is_project_key;
    use serde_json::{Value, json};

    fn input(opportunity: Value, account: Value) -> Input {
        serde_json::from_value(json!({"opportunity": opportunity, "account": account})).unwrap()
    }

    fn won() -> Value {
        json!({
            "attributes": {"type": "Opportunity", "url": "/services/data/v60.0/sobjects/Opportunity/006000000000001AAA"},
            "Id": "006000000000001AAA",
            "Name": "Globex ERP migration",
            "StageName": "Closed Won",
            "CloseDate": "2026-11-20",
            "Amount": 250000,
            "AccountId": "001000000000001AAA"
        })
    }

    fn account() -> Value {
        json!({
            "attributes": {"type": "Account"},
            "Id": "001000000000001AAA",
            "Name": "Globex Corporation",
            "Website": "https://www.globex.example/about",
            "BillingCountry": "US"
        })
    }

    #[test]
    fn closed_won_opportunity_becomes_customer_and_planned_project() {
        let engagement = engagement(input(won(), account())).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&engagement).unwrap(),
            json!({
                "customer": {
                    "name": "Globex Corporation",
                    "domain": "globex.example",
                    "email": null,
                    "country": "US",
                    "currency": null,
                    "external_ids": {"salesforce": "001000000000001AAA"}
                },
                "project": {
                    "name": "Globex ERP migration",
                    "key": "GLOBEXERPM",
                    "customer": "Globex Corporation",
                    "budget": {"amount": 250000.0, "currency": "USD"},
                    "start_date": "2026-11-20",
                    "status": "planned",
                    "external_ids": {"salesforce": "006000000000001AAA"}
                }
            })
        );
        assert!(is_project_key(&engagement.project.key));
    }

    #[test]
    fn other_stages_yield_nothing_and_is_won_decides() {
        let mut open = won();
        open["StageName"] = json!("Negotiation/Review");
        assert_eq!(engagement(input(open, account())).unwrap(), None);
        let mut custom_stage = won();
        custom_stage["StageName"] = json!("Signed");
        custom_stage["IsWon"] = json!(true);
        assert!(
            engagement(input(custom_stage, account()))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn account_may_come_through_the_relationship_field() {
        let mut opportunity = won();
        opportunity["Account"] = json!({"Name": "Initech", "CurrencyIsoCode": "eur"});
        let input: Input = serde_json::from_value(json!({"opportunity": opportunity})).unwrap();
        let engagement = engagement(input).unwrap().unwrap();
        assert_eq!(engagement.customer.name, "Initech");
        assert_eq!(engagement.project.budget.unwrap().currency, "EUR");
        assert!(engagement.customer.external_ids.is_empty());
    }

    #[test]
    fn missing_or_bad_fields_are_invalid_input_naming_the_field() {
        let cases: [(&str, Value, Value); 5] = [
            ("account.Name", won(), json!({"Id": "001"})),
            (
                "opportunity.Name",
                json!({"Id": "006", "StageName": "Closed Won"}),
                account(),
            ),
            (
                "opportunity.CloseDate",
                {
                    let mut o = won();
                    o["CloseDate"] = json!("20/11/2026");
                    o
                },
                account(),
            ),
            (
                "opportunity.Amount",
                {
                    let mut o = won();
                    o["Amount"] = json!(-5);
                    o
                },
                account(),
            ),
            (
                "opportunity.Name",
                {
                    let mut o = won();
                    o["Name"] = json!("42");
                    o
                },
                account(),
            ),
        ];
        for (field, opportunity, account) in cases {
            let Err(Error::InvalidInput(message)) = engagement(input(opportunity, account)) else {
                panic!("expected invalid input for {field}");
            };
            assert!(message.contains(field), "{field}: {message}");
        }
        let no_account: Input = serde_json::from_value(json!({"opportunity": won()})).unwrap();
        assert!(
            matches!(engagement(no_account), Err(Error::InvalidInput(m)) if m.contains("account"))
        );
    }

    #[test]
    fn domains_come_from_web_sites() {
        assert_eq!(
            domain("https://www.acme.example/x").as_deref(),
            Some("acme.example")
        );
        assert_eq!(domain("acme.example").as_deref(), Some("acme.example"));
        assert_eq!(
            domain("http://ACME.example:8080").as_deref(),
            Some("acme.example")
        );
        assert_eq!(domain("not a site"), None);
    }

    #[test]
    fn apply_runs_on_json_text() {
        let text = json!({"opportunity": won(), "account": account()}).to_string();
        let outputs = junction_sdk::apply_json::<OpportunityToProject>(&text).unwrap();
        assert_eq!(outputs.len(), 1);
        let engagement: Value = serde_json::from_str(&outputs[0]).unwrap();
        assert_eq!(engagement["project"]["key"], "GLOBEXERPM");
    }
}
