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

use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::rest::refusal;
use junction_sdk::{Connector, Context, Error, JsonSchema, Operation, Operations, Page, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// `{instance_url}/services/data/{version}`.
fn data_url(ctx: &Context) -> Result<String> {
    let instance = ctx.require_config("instance_url")?;
    let version = ctx
        .config("api_version")
        .unwrap_or_else(|| DEFAULT_API_VERSION.into());
    let valid = version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if !valid {
        return Err(Error::InvalidInput(format!(
            "setting `api_version` must look like `v60.0`, not `{version}`"
        )));
    }
    Ok(format!(
        "{}/services/data/{version}",
        instance.trim_end_matches('/')
    ))
}

/// Refuses a name that is not an API name (`Account`, `External_Id__c`):
/// names go into paths and SOQL, so nothing else may pass.
fn api_name<'a>(what: &str, name: &'a str) -> Result<&'a str> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(Error::InvalidInput(format!(
            "`{what}` must be a Salesforce API name such as `Account` or `External_Id__c`, not `{name}`"
        )))
    }
}

/// Refuses anything but a 15- or 18-character record id.
fn record_id(id: &str) -> Result<&str> {
    if matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(Error::InvalidInput(format!(
            "`id` must be a 15- or 18-character Salesforce id, not `{id}`"
        )))
    }
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case its Salesforce error array says.
fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    warn_near_limit(&response);
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// One entry of Salesforce's error array.
#[derive(Debug, Clone, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error_code)?;
        if !self.fields.is_empty() {
            write!(f, " on {}", self.fields.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The error case of a failed request (or composite subrequest): what its
/// Salesforce error array says, or the SDK's status mapping when the body is
/// not one.
fn failure(response: Response) -> Error {
    let errors: Vec<ApiError> = serde_json::from_slice(&response.body).unwrap_or_default();
    let status = response.status;
    let has = |codes: &[&str]| {
        errors
            .iter()
            .any(|e| codes.contains(&e.error_code.as_str()))
    };
    if has(&["REQUEST_LIMIT_EXCEEDED"]) || status == 429 {
        return Error::RateLimited {
            retry_after_ms: response.retry_after_ms().unwrap_or(DAILY_LIMIT_WAIT_MS),
        };
    }
    if errors.is_empty() {
        return match response.ok() {
            Ok(_) => Error::Internal(format!("Salesforce answered {status} without a body")),
            Err(error) => error,
        };
    }
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let message = format!("Salesforce says {}", described.join("; "));
    if has(&["DUPLICATE_VALUE", "DUPLICATES_DETECTED"]) {
        return Error::Conflict(format!("status {status}: {message}"));
    }
    refusal(&response, &message)
}

/// Logs a warning when `Sforce-Limit-Info: api-usage=N/M` says the org has
/// used 90% of its API requests.
fn warn_near_limit(response: &Response) {
    if let Some((used, max)) = response.header("sforce-limit-info").and_then(api_usage)
        && used.saturating_mul(10) >= max.saturating_mul(9)
    {
        junction_sdk::log::warn(format!(
            "Salesforce API usage is at {used} of {max} requests"
        ));
    }
}

/// `api-usage=25/5000` (possibly among other comma-separated entries).
fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// Input of `create-record`.
#[derive(Debug, Deserialize, JsonSchema)]
struct CreateRecord {
    /// The sObject type, e.g. `Account`.
    sobject: String,
    /// Field values by API name, e.g. `{"Name": "Acme"}`.
    fields: Map<String, Value>,
}

/// A saved record: its id and whether this call created it.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Saved {
    /// The record's 18-character id.
    id: String,
    /// True when the call created the record, false when it updated one.
    created: bool,
}

fn create_record(ctx: &Context, input: CreateRecord) -> Result<Saved> {
    let sobject = api_name("sobject", &input.sobject)?;
    let url = format!("{}/sobjects/{sobject}/", data_url(ctx)?);
    let response = send(Request::post(url).json(&input.fields)?)?;
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    let created: Created = response.json()?;
    Ok(Saved {
        id: created.id,
        created: true,
    })
}

/// Input of `get-record`.
#[derive(Debug, Deserialize, JsonSchema)]
struct GetRecord {
    /// The sObject type, e.g. `Account`.
    sobject: String,
    /// The record id, 15 or 18 characters.
    id: String,
    /// The fields to read; every field when absent.
    #[serde(default)]
    fields: Option<Vec<String>>,
}

/// The record as Salesforce returns it: `attributes`, `Id` and the fields.
fn get_record(ctx: &Context, input: GetRecord) -> Result<Value> {
    let sobject = api_name("sobject", &input.sobject)?;
    let id = record_id(&input.id)?;
    let mut url = format!("{}/sobjects/{sobject}/{id}", data_url(ctx)?);
    if let Some(fields) = &input.fields {
        let names = fields
            .iter()
            .map(|f| api_name("fields", f))
            .collect::<Result<Vec<_>>>()?;
        url.push_str("?fields=");
        url.push_str(&names.join(","));
    }
    send(Request::get(url))?.json()
}

/// Input of `update-record`.
#[derive(Debug, Deserialize, JsonSchema)]
struct UpdateRecord {
    /// The sObject type, e.g. `Account`.
    sobject: String,
    /// The record id, 15 or 18 characters.
    id: String,
    /// The fields to set, by API name.
    fields: Map<String, Value>,
}

/// Output of `update-record`.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
struct Updated {
    /// The id of the updated record.
    id: String,
}

fn update_record(ctx: &Context, input: UpdateRecord) -> Result<Updated> {
    let sobject = api_name("sobject", &input.sobject)?;
    let id = record_id(&input.id)?;
    let url = format!("{}/sobjects/{sobject}/{id}", data_url(ctx)?);
    send(Request::patch(url).json(&input.fields)?)?;
    Ok(Updated { id: id.into() })
}

/// Input of `upsert-record`.
#[derive(Debug, Deserialize, JsonSchema)]
struct UpsertRecord {
    /// The sObject type, e.g. `Account`.
    sobject: String,
    /// The external-ID field that addresses the record, e.g. `External_Id__c`.
    external_id_field: String,
    /// Its value.
    external_id: String,
    /// The other fields to set, by API name.
    fields: Map<String, Value>,
}

fn upsert_record(ctx: &Context, input: UpsertRecord) -> Result<Saved> {
    let sobject = api_name("sobject", &input.sobject)?;
    let field = api_name("external_id_field", &input.external_id_field)?;
    if input.external_id.is_empty() {
        return Err(Error::InvalidInput(
            "`external_id` must not be empty".into(),
        ));
    }
    let url = format!(
        "{}/sobjects/{sobject}/{field}/{}",
        data_url(ctx)?,
        encode_component(&input.external_id)
    );
    let response = send(Request::patch(url).json(&input.fields)?)?;
    // 201 with a body when created; 200 with one when updated (API v46.0 and
    // later), or 204 without one (earlier versions): then look the id up.
    if response.status == 204 {
        let soql = format!(
            "SELECT Id FROM {sobject} WHERE {field} = {} LIMIT 1",
            soql_quote(&input.external_id)
        );
        let page = run_query(ctx, &soql)?;
        let id = page
            .records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "Salesforce updated {sobject} {field} = `{}` but no such record is found",
                    input.external_id
                ))
            })?;
        return Ok(Saved {
            id: id.into(),
            created: false,
        });
    }
    #[derive(Deserialize)]
    struct Upserted {
        id: String,
        #[serde(default)]
        created: Option<bool>,
    }
    let upserted: Upserted = response.json()?;
    Ok(Saved {
        id: upserted.id,
        created: upserted.created.unwrap_or(response.status == 201),
    })
}

/// `text` as a SOQL string literal.
fn soql_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Input of `query`: a SOQL query, or the `nextRecordsUrl` of a page.
#[derive(Debug, Deserialize, JsonSchema)]
struct Query {
    /// The SOQL query, e.g. `SELECT Id, Name FROM Account`.
    #[serde(default)]
    soql: Option<String>,
    /// The `nextRecordsUrl` of the previous page, to read the next one.
    #[serde(default, rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
}

/// A page of query results, as Salesforce returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct QueryPage {
    /// Records matching the query, on every page.
    #[serde(rename = "totalSize")]
    total_size: u64,
    /// True on the last page.
    done: bool,
    /// This page's records, each with `attributes` and the selected fields.
    records: Vec<Value>,
    /// Where the next page is; absent on the last page.
    #[serde(
        rename = "nextRecordsUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    next_records_url: Option<String>,
}

fn query(ctx: &Context, input: Query) -> Result<QueryPage> {
    match (input.soql, input.next_records_url) {
        (Some(soql), None) => run_query(ctx, &soql),
        (None, Some(next)) => next_page(ctx, &next),
        _ => Err(Error::InvalidInput(
            "give exactly one of `soql` and `nextRecordsUrl`".into(),
        )),
    }
}

fn run_query(ctx: &Context, soql: &str) -> Result<QueryPage> {
    let url = format!("{}/query?q={}", data_url(ctx)?, encode_component(soql));
    send(Request::get(url))?.json()
}

/// The page at `next`, a `nextRecordsUrl` Salesforce gave.
fn next_page(ctx: &Context, next: &str) -> Result<QueryPage> {
    let valid = next.starts_with("/services/data/")
        && next.contains("/query/")
        && next
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.-_".contains(c));
    if !valid {
        return Err(Error::InvalidInput(format!(
            "`nextRecordsUrl` must be one Salesforce returned, such as \
             /services/data/v60.0/query/01gD0000002HU6KIAW-2000, not `{next}`"
        )));
    }
    let instance = ctx.require_config("instance_url")?;
    let url = format!("{}{next}", instance.trim_end_matches('/'));
    send(Request::get(url))?.json()
}

/// Input of `composite`: the body of Salesforce's `/composite`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct Composite {
    /// When true, a failing subrequest rolls back all of them, and the call
    /// fails with that subrequest's error. Salesforce's default is false.
    #[serde(rename = "allOrNone", default)]
    all_or_none: bool,
    /// The subrequests, run in order.
    #[serde(rename = "compositeRequest")]
    composite_request: Vec<Subrequest>,
}

/// One subrequest of `composite`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
struct Subrequest {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    method: String,
    /// The resource, e.g. `/services/data/v60.0/sobjects/Account`, or
    /// relative to the API version: `sobjects/Account`. May refer to earlier
    /// results as `@{referenceId.field}`.
    url: String,
    /// Names this subrequest's result for later references.
    #[serde(rename = "referenceId")]
    reference_id: String,
    /// The request body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

/// Output of `composite`: Salesforce's answer.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct CompositeResult {
    /// One response per subrequest, in order.
    #[serde(rename = "compositeResponse")]
    composite_response: Vec<SubResponse>,
}

/// The response to one subrequest.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct SubResponse {
    /// The response body: a result object, or an error array.
    body: Value,
    /// Response headers, e.g. `Location`.
    #[serde(rename = "httpHeaders", default)]
    http_headers: Map<String, Value>,
    /// The response status.
    #[serde(rename = "httpStatusCode")]
    http_status_code: u16,
    /// The subrequest's `referenceId`.
    #[serde(rename = "referenceId")]
    reference_id: String,
}

fn composite(ctx: &Context, mut input: Composite) -> Result<CompositeResult> {
    let base = data_url(ctx)?;
    let prefix = &base[base.find("/services/").unwrap_or(0)..];
    for sub in &mut input.composite_request {
        if sub.reference_id.is_empty() {
            return Err(Error::InvalidInput(
                "every subrequest needs a `referenceId`".into(),
            ));
        }
        if !sub.url.starts_with("/services/") {
            sub.url = format!("{prefix}/{}", sub.url.trim_start_matches('/'));
        }
    }
    let url = format!("{base}/composite");
    let result: CompositeResult = send(Request::post(url).json(&input)?)?.json()?;
    if input.all_or_none {
        let failed = |halted_too: bool| {
            result.composite_response.iter().find(|r| {
                r.http_status_code >= 400
                    && (halted_too || !errors_of(&r.body).iter().all(|e| e.error_code == HALTED))
            })
        };
        if let Some(sub) = failed(false).or_else(|| failed(true)) {
            let response = Response::new(sub.http_status_code, &[], sub.body.to_string());
            return Err(prefixed(failure(response), &sub.reference_id));
        }
    }
    Ok(result)
}

const HALTED: &str = "PROCESSING_HALTED";

fn errors_of(body: &Value) -> Vec<ApiError> {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

/// `error` with its message saying which subrequest failed.
fn prefixed(error: Error, reference_id: &str) -> Error {
    let say = |m: String| format!("subrequest `{reference_id}`: {m}");
    match error {
        Error::InvalidInput(m) => Error::InvalidInput(say(m)),
        Error::Unauthorized(m) => Error::Unauthorized(say(m)),
        Error::NotFound(m) => Error::NotFound(say(m)),
        Error::Conflict(m) => Error::Conflict(say(m)),
        Error::Unavailable(m) => Error::Unavailable(say(m)),
        Error::Internal(m) => Error::Internal(say(m)),
        limited @ Error::RateLimited { .. } => limited,
    }
}

/// Where `closed-won-opportunities` stands: the last change read to the end
/// of a query, and the query locator of the page to read next, if any.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

impl Cursor {
    fn parse(text: Option<&str>) -> Result<Cursor> {
        let Some(text) = text else {
            return Ok(Cursor::default());
        };
        let cursor: Cursor = serde_json::from_str(text).map_err(|_| {
            Error::InvalidInput(format!(
                "cursor `{text}` is not one this connector returned"
            ))
        })?;
        if let Some(since) = &cursor.since {
            soql_datetime(since)?;
        }
        Ok(cursor)
    }

    fn text(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("serializing a cursor: {e}")))
    }
}

/// A `LastModifiedDate` (`2024-05-01T09:30:00.000+0000`) as a SOQL datetime
/// literal, to the second (`2024-05-01T09:30:00Z`): Salesforce keeps no finer
/// time, and a query at the second reads the changes of that second again
/// rather than miss one. Refuses anything else, since it goes into a query.
fn soql_datetime(value: &str) -> Result<String> {
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    let seconds = value.get(..19).unwrap_or_default();
    let shape = "dddd-dd-ddTdd:dd:dd";
    let valid_seconds = seconds.len() == 19
        && seconds.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            s => c == s,
        });
    let rest = value.get(19..).unwrap_or_default();
    let zone = match rest.strip_prefix('.') {
        Some(fraction) => match fraction.get(..3) {
            Some(millis) if digits(millis) => &fraction[3..],
            _ => "invalid",
        },
        None => rest,
    };
    if valid_seconds && matches!(zone, "" | "Z" | "+0000") {
        Ok(format!("{seconds}Z"))
    } else {
        Err(Error::InvalidInput(format!(
            "`{value}` is not a UTC time such as 2024-05-01T09:30:00.000+0000"
        )))
    }
}

fn closed_won_soql(ctx: &Context, since: Option<&str>) -> Result<String> {
    let stage = ctx
        .config("closed_won_stage")
        .unwrap_or_else(|| "Closed Won".into());
    let mut soql = format!(
        "SELECT Id, Name, AccountId, Amount, CloseDate, StageName, LastModifiedDate \
         FROM Opportunity WHERE StageName = {}",
        soql_quote(&stage)
    );
    if let Some(since) = since {
        soql.push_str(&format!(
            " AND LastModifiedDate >= {}",
            soql_datetime(since)?
        ));
    }
    soql.push_str(" ORDER BY LastModifiedDate ASC");
    Ok(soql)
}

fn read_closed_won(ctx: &Context, cursor: Option<String>) -> Result<Page> {
    let cursor = Cursor::parse(cursor.as_deref())?;
    let page = match &cursor.next {
        // A query locator lives 15 minutes; when it has expired, the query
        // runs again from the last change read to its end.
        Some(next) => match next_page(ctx, next) {
            Err(Error::InvalidInput(m)) if m.contains("INVALID_QUERY_LOCATOR") => {
                run_query(ctx, &closed_won_soql(ctx, cursor.since.as_deref())?)?
            }
            other => other?,
        },
        None => run_query(ctx, &closed_won_soql(ctx, cursor.since.as_deref())?)?,
    };
    closed_won_page(page, cursor.since)
}

fn closed_won_page(page: QueryPage, since: Option<String>) -> Result<Page> {
    let next_cursor = match page.next_records_url {
        Some(next) => Cursor {
            since,
            next: Some(next),
        },
        None => Cursor {
            since: page
                .records
                .iter()
                .rev()
                .find_map(|r| r.get("LastModifiedDate")?.as_str().map(str::to_owned))
                .or(since),
            next: None,
        },
    };
    let done = next_cursor.next.is_none();
    Page::from_records(&page.records, Some(next_cursor.text()?), done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response::new(status, headers, body.to_string())
    }

    fn error_of(status: u16, headers: &[(&str, &str)], body: Value) -> Error {
        failure(response(status, headers, body))
    }

    fn array(code: &str, message: &str, fields: &[&str]) -> Value {
        json!([{"message": message, "errorCode": code, "fields": fields}])
    }

    #[test]
    fn error_arrays_map_to_error_cases() {
        let missing = error_of(
            400,
            &[],
            array(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Name]",
                &["Name"],
            ),
        );
        assert_eq!(
            missing,
            Error::InvalidInput(
                "status 400: Salesforce says REQUIRED_FIELD_MISSING on Name: Required fields are missing: [Name]"
                    .into()
            )
        );
        assert!(matches!(
            error_of(400, &[], array("DUPLICATE_VALUE", "duplicate value found", &[])),
            Error::Conflict(m) if m.contains("DUPLICATE_VALUE")
        ));
        assert!(matches!(
            error_of(401, &[], array("INVALID_SESSION_ID", "Session expired or invalid", &[])),
            Error::Unauthorized(m) if m.contains("INVALID_SESSION_ID")
        ));
        assert!(matches!(
            error_of(
                404,
                &[],
                array("NOT_FOUND", "The requested resource does not exist", &[])
            ),
            Error::NotFound(_)
        ));
        assert!(matches!(
            error_of(500, &[], array("UNKNOWN_EXCEPTION", "An unexpected error occurred", &[])),
            Error::Unavailable(m) if m.contains("UNKNOWN_EXCEPTION")
        ));
    }

    #[test]
    fn request_limits_are_rate_limits() {
        let limited = array(
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        );
        assert_eq!(
            error_of(403, &[], limited.clone()),
            Error::RateLimited {
                retry_after_ms: 60_000
            }
        );
        assert_eq!(
            error_of(429, &[("Retry-After", "3")], limited),
            Error::RateLimited {
                retry_after_ms: 3000
            }
        );
        assert_eq!(
            error_of(429, &[], json!({})),
            Error::RateLimited {
                retry_after_ms: 60_000
            }
        );
    }

    #[test]
    fn bodies_that_are_not_error_arrays_get_the_status_mapping() {
        assert!(matches!(
            error_of(503, &[], json!("<html>")),
            Error::Unavailable(m) if m.contains("503")
        ));
        assert!(matches!(
            error_of(401, &[], json!({})),
            Error::Unauthorized(_)
        ));
    }

    #[test]
    fn api_usage_is_read_from_the_limit_header() {
        assert_eq!(api_usage("api-usage=25/15000"), Some((25, 15000)));
        assert_eq!(
            api_usage("per-app-api-usage=2/250(appName=x), api-usage=9/10"),
            Some((9, 10))
        );
        assert_eq!(api_usage("api-usage=many"), None);
    }

    #[test]
    fn names_and_ids_that_would_change_the_request_are_refused() {
        assert!(api_name("sobject", "Account").is_ok());
        assert!(api_name("sobject", "Project__c").is_ok());
        for bad in ["", "Account/001", "Name, (SELECT", "1Account", "Acc ount"] {
            assert!(
                matches!(api_name("sobject", bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        assert!(record_id("0015g00000AbCdEAAA").is_ok());
        assert!(record_id("0015g00000AbCdE").is_ok());
        assert!(record_id("../query?q=x").is_err());
        assert!(next_page(&Context::default(), "https://evil.example/x").is_err());
        assert!(next_page(&Context::default(), "/services/data/v60.0/sobjects/x").is_err());
    }

    #[test]
    fn soql_literals_are_escaped() {
        assert_eq!(soql_quote("O'Brien \\ Co"), "'O\\'Brien \\\\ Co'");
        assert_eq!(
            soql_datetime("2024-05-01T09:30:00.000+0000"),
            Ok("2024-05-01T09:30:00Z".into())
        );
        assert_eq!(
            soql_datetime("2024-05-01T09:30:00Z"),
            Ok("2024-05-01T09:30:00Z".into())
        );
        assert_eq!(
            soql_datetime("2024-05-01T09:30:00.123Z"),
            Ok("2024-05-01T09:30:00Z".into())
        );
        for bad in [
            "2024-05-01",
            "2024-05-01T09:30:00.1Z",
            "2024-05-01T09:30:00+0200",
            "2024-05-01T09:30:00Z OR Id != null",
        ] {
            assert!(soql_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closed_won_query_resumes_from_the_cursor() {
        let ctx = Context::default();
        assert_eq!(
            closed_won_soql(&ctx, None).unwrap(),
            "SELECT Id, Name, AccountId, Amount, CloseDate, StageName, LastModifiedDate FROM \
             Opportunity WHERE StageName = 'Closed Won' ORDER BY LastModifiedDate ASC"
        );
        assert!(
            closed_won_soql(&ctx, Some("2024-05-01T09:30:00.000+0000"))
                .unwrap()
                .contains("AND LastModifiedDate >= 2024-05-01T09:30:00Z ORDER BY")
        );
        assert!(matches!(
            Cursor::parse(Some("{\"since\": \"yesterday\"}")),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            Cursor::parse(Some("page 2")),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn closed_won_pages_carry_the_locator_then_the_last_change() {
        let record = |t: &str| json!({"Id": "0065g0000000001AAA", "LastModifiedDate": t});
        let middle = QueryPage {
            total_size: 3,
            done: false,
            records: vec![record("2024-05-01T09:30:00.000+0000")],
            next_records_url: Some("/services/data/v60.0/query/01g-1".into()),
        };
        let page = closed_won_page(middle, Some("2024-01-01T00:00:00Z".into())).unwrap();
        assert!(!page.done);
        assert_eq!(
            page.next_cursor.as_deref(),
            Some(r#"{"since":"2024-01-01T00:00:00Z","next":"/services/data/v60.0/query/01g-1"}"#)
        );
        let last = QueryPage {
            total_size: 3,
            done: true,
            records: vec![
                record("2024-05-01T09:30:00.000+0000"),
                record("2024-05-02T10:00:00.000+0000"),
            ],
            next_records_url: None,
        };
        let page = closed_won_page(last, None).unwrap();
        assert!(page.done);
        assert_eq!(page.records.len(), 2);
        assert_eq!(
            page.next_cursor.as_deref(),
            Some(r#"{"since":"2024-05-02T10:00:00.000+0000"}"#)
        );
        let empty = QueryPage {
            total_size: 0,
            done: true,
            records: vec![],
            next_records_url: None,
        };
        let page = closed_won_page(empty, Some("2024-05-02T10:00:00.000+0000".into())).unwrap();
        assert_eq!(
            page.next_cursor.as_deref(),
            Some(r#"{"since":"2024-05-02T10:00:00.000+0000"}"#)
        );
    }

    #[test]
    fn composite_failures_name_the_subrequest() {
        let error = prefixed(Error::InvalidInput("bad".into()), "newAccount");
        assert_eq!(
            error,
            Error::InvalidInput("subrequest `newAccount`: bad".into())
        );
    }

    #[test]
    fn operations_are_described() {
        let ops = Salesforce::operations();
        let names: Vec<_> = ops.names().collect();
        assert_eq!(
            names,
            [
                "create-record",
                "get-record",
                "update-record",
                "upsert-record",
                "query",
                "composite",
                "read"
            ]
        );
    }

    #[test]
    fn query_needs_exactly_one_of_soql_and_a_page() {
        let ctx = Context::default();
        let neither = Query {
            soql: None,
            next_records_url: None,
        };
        assert!(
            matches!(query(&ctx, neither), Err(Error::InvalidInput(m)) if m.contains("exactly one"))
        );
    }
}
