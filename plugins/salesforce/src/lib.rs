//! Salesforce connector: sObject records, external-ID upserts, SOQL queries
//! with paging, and composite requests, over the REST API.
//!
//! Connection settings: `instance_url`, the org's My Domain URL (e.g.
//! `https://acme.my.salesforce.com`), and optionally `api_version` (`v60.0`
//! by default) and `closed_won_stage` (`Closed Won` by default). The host
//! adds the OAuth access token; this plugin never sees it.
//!
//! Operations take and return Salesforce's own shapes: records are field
//! maps (`{"Name": "Acme"}`), query pages are `{"totalSize", "done",
//! "records", "nextRecordsUrl"}`, and `composite` takes and returns the body
//! of `/composite`.
//!
//! Stream (`read`, and the `read` operation): `closed-won-opportunities`,
//! the opportunities at the closed-won stage, oldest change first. Its
//! cursor resumes mid-query (the query locator) and, once a query is read to
//! its end, from the last change seen: the records changed at that second are
//! read again, so a consumer de-duplicates by `Id`.
//!
//! Errors: Salesforce's `[{"message","errorCode","fields"}]` arrays map to
//! invalid input naming the code and fields (400), a conflict for
//! `DUPLICATE_VALUE` and `DUPLICATES_DETECTED`, unauthorized (401, 403),
//! not found (404), rate limited for `REQUEST_LIMIT_EXCEEDED` (after
//! `Retry-After`, or a minute for the daily allocation) and 429, and
//! unavailable for 5xx. `Sforce-Limit-Info` is logged as a warning once the
//! org has used 90% of its API requests; the host itself holds the
//! connection back when it reaches the limit.

mod api;
mod closed_won;
mod composite;
mod query;
mod records;

#[cfg(test)]
mod tests;

use junction_sdk::{Connector, Context, Error, JsonSchema, Operation, Operations, Page, Result};

use crate::closed_won::read_closed_won;
use crate::composite::composite;
use crate::query::{query, run_query};
use crate::records::{create_record, get_record, update_record, upsert_record};

struct Salesforce;

impl Connector for Salesforce {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new(
                "create-record",
                "Creates an sObject record",
                create_record,
            ))
            .with(
                Operation::new("get-record", "Reads an sObject record by id", get_record)
                    .idempotent(),
            )
            .with(
                Operation::new(
                    "update-record",
                    "Sets fields of an sObject record",
                    update_record,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "upsert-record",
                    "Creates or updates the sObject record with an external id",
                    upsert_record,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "query",
                    "Runs a SOQL query, or reads the next page of one with its nextRecordsUrl",
                    query,
                )
                .idempotent(),
            )
            .with(Operation::new(
                "composite",
                "Runs up to 25 subrequests in one call, all or none when allOrNone is set",
                composite,
            ))
            .with(Operation::read::<Salesforce>())
    }

    fn check(ctx: &Context) -> Result<()> {
        run_query(ctx, "SELECT Id FROM Account LIMIT 1").map(drop)
    }

    fn read(ctx: &Context, stream: &str, cursor: Option<String>) -> Result<Page> {
        match stream {
            CLOSED_WON => read_closed_won(ctx, cursor),
            other => Err(Error::InvalidInput(format!(
                "unknown stream `{other}`; this connector offers: {CLOSED_WON}"
            ))),
        }
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(Salesforce);

/// Settings of a Salesforce connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com`.
    instance_url: String,
    /// REST API version, e.g. `v60.0` (the default).
    api_version: Option<String>,
    /// The opportunity stage that means closed-won; `Closed Won` by default.
    closed_won_stage: Option<String>,
}

const DEFAULT_API_VERSION: &str = "v60.0";
const CLOSED_WON: &str = "closed-won-opportunities";
/// How long to wait when the org's daily API allocation is used up and
/// Salesforce gives no `Retry-After` (the host pauses as long).
const DAILY_LIMIT_WAIT_MS: u64 = 60_000;
