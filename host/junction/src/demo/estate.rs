//! The demo's estate: the stand-ins with their seed data and credentials,
//! and what the story does in them (a closed-won deal, a signed contract).

use anyhow::Context;
use junction_standins::psa::NewPerson;
use junction_standins::{
    ContractStandin, HubspotStandin, JiraStandin, NetsuiteStandin, PsaStandin, SalesforceStandin,
};
use serde_json::{Value, json};

use super::client::saas;

pub(super) const HUBSPOT_TOKEN: &str = "demo-hubspot-private-app-token";
/// The secret HubSpot signs its webhooks with (the app's client secret).
pub const HUBSPOT_SECRET: &str = "demo-hubspot-client-secret";
/// The access token the Salesforce stand-in accepts.
pub const SALESFORCE_TOKEN: &str = "demo-salesforce-access-token";
pub(super) const NETSUITE_TOKEN: &str = "demo-netsuite-access-token";
/// The access token the PSA stand-in accepts.
pub const PSA_TOKEN: &str = "demo-psa-access-token";
pub(super) const JIRA_EMAIL: &str = "demo@junction.example";
pub(super) const JIRA_TOKEN: &str = "demo-jira-api-token";
/// The access token the contract stand-in accepts.
pub const CONTRACT_TOKEN: &str = "demo-contract-access-token";
/// The key the contract tool signs its webhooks with.
pub const CONTRACT_SECRET: &str = "demo-contract-connect-hmac-key";

/// The SaaS tools of the story, each a stand-in on loopback; the demo and
/// the shipped flows' end-to-end tests use the same estate.
pub struct Estate {
    /// The CRM.
    pub hubspot: HubspotStandin,
    /// The other CRM, for firms that sell in Salesforce.
    pub salesforce: SalesforceStandin,
    /// The ERP.
    pub netsuite: NetsuiteStandin,
    /// The PSA, with five people to staff.
    pub psa: PsaStandin,
    /// The project tool.
    pub jira: JiraStandin,
    /// The contract tool.
    pub contracts: ContractStandin,
}

impl Estate {
    /// Starts every stand-in and seeds the PSA's people.
    pub async fn start() -> anyhow::Result<Estate> {
        let estate = Estate {
            hubspot: HubspotStandin::start(HUBSPOT_TOKEN).await?,
            salesforce: SalesforceStandin::start(SALESFORCE_TOKEN).await?,
            netsuite: NetsuiteStandin::start(NETSUITE_TOKEN).await?,
            psa: PsaStandin::start(PSA_TOKEN).await?,
            jira: JiraStandin::start(JIRA_EMAIL, JIRA_TOKEN).await?,
            contracts: ContractStandin::start(CONTRACT_TOKEN).await?,
        };
        for (name, skills, hours, cost) in [
            ("Ada Lovelace", &["delivery", "netsuite"][..], 120.0, 95.0),
            ("Grace Hopper", &["netsuite", "finance"][..], 160.0, 80.0),
            ("Alan Turing", &["integration", "rust"][..], 140.0, 85.0),
            (
                "Edsger Dijkstra",
                &["integration", "netsuite"][..],
                60.0,
                70.0,
            ),
            ("Barbara Liskov", &["delivery"][..], 40.0, 110.0),
        ] {
            estate.psa.add_person(NewPerson {
                name: name.into(),
                email: format!(
                    "{}@consultancy.example",
                    name.to_lowercase().replace(' ', ".")
                ),
                skills: skills.iter().map(|s| s.to_string()).collect(),
                available_hours: hours,
                cost_rate: cost,
                currency: "USD".into(),
            });
        }
        Ok(estate)
    }

    /// The connections the story needs, as `PUT /v1/connections/{name}`
    /// bodies (the contract tool's is [`Estate::contracts_connection`]).
    pub fn connections(&self) -> Vec<(&'static str, Value)> {
        let reach =
            |host: String| json!({"allowed_hosts": [host.clone()], "private_hosts": [host]});
        let with = |mut spec: Value, host: String| {
            let extra = reach(host);
            for (k, v) in extra.as_object().into_iter().flatten() {
                spec[k] = v.clone();
            }
            spec
        };
        vec![
            (
                "hubspot",
                with(
                    json!({
                        "plugin": "hubspot",
                        "config": {"base_url": self.hubspot.base_url()},
                        "auth": {"type": "bearer", "token": HUBSPOT_TOKEN},
                        "webhook": {"scheme": "hubspot_v3", "secret": HUBSPOT_SECRET},
                    }),
                    self.hubspot.host(),
                ),
            ),
            (
                "salesforce",
                with(
                    json!({
                        "plugin": "salesforce",
                        "config": {"instance_url": self.salesforce.base_url()},
                        "auth": {"type": "bearer", "token": SALESFORCE_TOKEN},
                    }),
                    self.salesforce.host(),
                ),
            ),
            (
                "netsuite",
                with(
                    json!({
                        "plugin": "netsuite",
                        "config": {"base_url": self.netsuite.base_url()},
                        "auth": {"type": "bearer", "token": NETSUITE_TOKEN},
                    }),
                    self.netsuite.host(),
                ),
            ),
            (
                "psa",
                with(
                    json!({
                        "plugin": "psa",
                        "config": {"base_url": self.psa.base_url()},
                        "auth": {"type": "bearer", "token": PSA_TOKEN},
                    }),
                    self.psa.host(),
                ),
            ),
            (
                "jira",
                with(
                    json!({
                        "plugin": "jira",
                        "config": {"base_url": self.jira.base_url()},
                        "auth": {"type": "basic", "username": JIRA_EMAIL, "password": JIRA_TOKEN},
                    }),
                    self.jira.host(),
                ),
            ),
        ]
    }

    /// The contract tool's connection, with its signed webhooks.
    pub fn contracts_connection(&self) -> Value {
        json!({
            "plugin": "contract",
            "config": {
                "base_url": self.contracts.base_url(),
                "account_id": junction_standins::contract::ACCOUNT_ID,
            },
            "auth": {"type": "bearer", "token": CONTRACT_TOKEN},
            "webhook": {
                "scheme": {"generic_hmac": {"header": "x-docusign-signature-1", "encoding": "base64"}},
                "secret": CONTRACT_SECRET,
            },
            "allowed_hosts": [self.contracts.host()],
            "private_hosts": [self.contracts.host()],
        })
    }
}

/// Creates, in the HubSpot stand-in as a salesperson would, a company and a
/// deal associated with it, then moves the deal to closed-won; returns the deal id.
pub async fn crm_deal(hubspot: &HubspotStandin, currency: &str) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let company = saas(
        http.post(format!("{}/crm/v3/objects/companies", hubspot.base_url()))
            .bearer_auth(HUBSPOT_TOKEN)
            .json(&json!({"properties": {
                "name": "Globex Corporation", "domain": "globex.example", "country": "United States"
            }})),
    )
    .await?;
    let company_id = company["id"].as_str().context("company without id")?;
    let deal = saas(
        http.post(format!("{}/crm/v3/objects/deals", hubspot.base_url()))
            .bearer_auth(HUBSPOT_TOKEN)
            .json(&json!({
                "properties": {
                    "dealname": "Globex ERP rollout", "amount": "250000",
                    "closedate": "2026-12-01T00:00:00.000Z", "dealstage": "contractsent",
                    "pipeline": "default", "deal_currency_code": currency
                },
                "associations": [{
                    "to": {"id": company_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]
                }]
            })),
    )
    .await?;
    let deal_id = deal["id"].as_str().context("deal without id")?.to_string();
    saas(
        http.patch(format!(
            "{}/crm/v3/objects/deals/{deal_id}",
            hubspot.base_url()
        ))
        .bearer_auth(HUBSPOT_TOKEN)
        .json(&json!({"properties": {"dealstage": "closedwon"}})),
    )
    .await?;
    deal_id
        .parse()
        .with_context(|| format!("deal id `{deal_id}` is not a number"))
}

/// Sends a contract for the PSA project `external_id` from the contract stand-in.
pub async fn send_contract(
    contracts: &ContractStandin,
    external_id: &str,
) -> anyhow::Result<String> {
    let created = saas(
        reqwest::Client::new()
            .post(format!(
                "{}{}/contracts",
                contracts.base_url(),
                junction_standins::contract::API_PATH
            ))
            .bearer_auth(CONTRACT_TOKEN)
            .json(&json!({
                "title": "Globex ERP rollout: statement of work",
                "signers": [{"name": "Hank Scorpio", "email": "hank@globex.example"}],
                "externalReference": external_id,
                "value": {"amount": 250000, "currency": "USD"},
                "status": "sent"
            })),
    )
    .await?;
    Ok(created["contractId"]
        .as_str()
        .context("contract without id")?
        .to_string())
}
