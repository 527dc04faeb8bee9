//! Loopback stand-ins of the SaaS APIs that Junction's connectors talk to, for end-to-end tests
//! and `junction demo`.
//!
//! Each stand-in is a small HTTP server on `127.0.0.1` with an ephemeral port that speaks the
//! real API's paths, authentication, response shapes and error bodies for the slice of the API
//! the connectors use, keeps what it is sent in memory, records every request, and can be told to
//! misbehave (server errors, rate limits, revoked credentials, latency) so retry and back-off
//! paths can be tested without the real service.
//!
//! Stand-ins so far: [`JiraStandin`] (Jira Cloud REST v3), [`SalesforceStandin`] (Salesforce REST),
//! [`HubspotStandin`] (HubSpot CRM v3, with signed webhook deliveries) and [`NetsuiteStandin`]
//! (NetSuite REST record service).
//!
//! # Example
//!
//! ```
//! use junction_standins::{JiraStandin, Misbehaviour};
//!
//! # fn main() -> anyhow::Result<()> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let jira = JiraStandin::start("demo@example.com", "api-token").await?;
//! let client = reqwest::Client::new();
//!
//! let created = client
//!     .post(format!("{}/rest/api/3/project", jira.base_url()))
//!     .basic_auth("demo@example.com", Some("api-token"))
//!     .json(&serde_json::json!({
//!         "key": "ACME", "name": "Acme rollout", "projectTypeKey": "software",
//!         "leadAccountId": junction_standins::jira::ACCOUNT_ID,
//!     }))
//!     .send()
//!     .await?;
//! assert_eq!(created.status(), 201);
//! assert_eq!(jira.projects()[0]["key"], "ACME");
//!
//! // The next request is refused with 429 and `Retry-After: 2`.
//! jira.misbehave(Misbehaviour::RateLimited { times: 1, retry_after_secs: 2 });
//! let limited = client
//!     .get(format!("{}/rest/api/3/myself", jira.base_url()))
//!     .basic_auth("demo@example.com", Some("api-token"))
//!     .send()
//!     .await?;
//! assert_eq!(limited.status(), 429);
//! assert_eq!(limited.headers()["retry-after"], "2");
//! assert_eq!(jira.requests().len(), 2);
//!
//! jira.shutdown().await;
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! # Adding a stand-in
//!
//! A new API gets a module beside [`jira`] with a handle type that wraps the shared server core
//! (recording, misbehaviour, lifetime) and supplies its own router and error bodies.

#![deny(missing_docs)]

pub mod contract;
pub mod hubspot;
pub mod jira;
pub mod ledger;
pub mod netsuite;
pub mod proposal;
pub mod psa;
pub mod salesforce;
mod server;

pub use contract::ContractStandin;
pub use hubspot::HubspotStandin;
pub use jira::JiraStandin;
pub use ledger::LedgerStandin;
pub use netsuite::NetsuiteStandin;
pub use proposal::ProposalStandin;
pub use psa::PsaStandin;
pub use salesforce::SalesforceStandin;
pub use server::{Misbehaviour, RecordedRequest, WEBHOOK_ATTEMPTS, WebhookAttempt};
