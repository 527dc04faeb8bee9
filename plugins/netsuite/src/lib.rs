//! NetSuite connector: customers, jobs (projects) and invoices over the REST
//! record service (SuiteTalk REST web services).
//!
//! Connection setting `base_url`, the account's REST host, e.g.
//! `https://1234567.suitetalk.api.netsuite.com`. The host adds the OAuth
//! access token; this plugin never sees it.
//!
//! Records are NetSuite's own shapes (`{"companyName": "Acme",
//! "subsidiary": {"id": "1"}}`). NetSuite answers a create or upsert with
//! `204` and the new record's URL in `Location`; the operations return the id
//! from it. Every write is an upsert by external id (`PUT
//! /{type}/eid:{externalId}`), which NetSuite honours on synchronous requests,
//! so a retried or replayed write makes one record: the external id given,
//! or, for a job or invoice given none, `junction-` and a UUID derived from
//! the call's idempotency key (the same for every retry). NetSuite's own
//! `X-NetSuite-Idempotency-Key` counts only on asynchronous requests, so it
//! is not what this connector relies on.
//!
//! Errors: NetSuite's `{"o:errorDetails": [{"detail", "o:errorCode",
//! "o:errorPath"}]}` bodies map to invalid input naming the field
//! (`o:errorPath`), a conflict for `DUP_RCRD`, `DUP_ENTITY` and
//! `IDEMPOTENCY_ERROR`, unauthorized (401, 403), not found (404), rate
//! limited (429, after `Retry-After`) and unavailable (5xx).

use junction_sdk::http::{Request, Response, encode_component};
use junction_sdk::rest::refusal;
use junction_sdk::{Connector, Context, Error, JsonSchema, Operation, Operations, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

struct Netsuite;

impl Connector for Netsuite {
    fn operations() -> Operations {
        Operations::new()
            .with(
                Operation::new(
                    "upsert-customer",
                    "Creates or updates the customer with an external id",
                    upsert_customer,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "create-job",
                    "Creates a job (project) for a customer, or updates the one with its external id",
                    create_job,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "create-invoice",
                    "Creates an invoice (entity, job, item lines), once per external id or idempotency key",
                    create_invoice,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "get-customer",
                    "Reads a customer by internal or external id",
                    get_customer,
                )
                .idempotent(),
            )
            .with(
                Operation::new(
                    "get-job",
                    "Reads a job by internal or external id",
                    get_job,
                )
                .idempotent(),
            )
    }

    fn check(ctx: &Context) -> Result<()> {
        // A customer id that cannot exist: 404 proves the credentials work.
        match send(Request::get(record_url(ctx, "customer", "0")?)) {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(Netsuite);

/// Settings of a NetSuite connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The account's REST host, e.g. `https://1234567.suitetalk.api.netsuite.com`.
    base_url: String,
}

const RECORD_PATH: &str = "/services/rest/record/v1";

fn record_url(ctx: &Context, record_type: &str, reference: &str) -> Result<String> {
    let base = ctx.require_config("base_url")?;
    let base = base.trim_end_matches('/');
    Ok(if reference.is_empty() {
        format!("{base}{RECORD_PATH}/{record_type}")
    } else {
        format!("{base}{RECORD_PATH}/{record_type}/{reference}")
    })
}

/// Sends `request` and passes a 2xx response through; every other status
/// becomes the error case NetSuite's error body says.
fn send(request: Request) -> Result<Response> {
    let response = request.header("accept", "application/json").send()?;
    if response.is_success() {
        return Ok(response);
    }
    Err(failure(response))
}

/// Sends a write and returns the id of the record NetSuite names in `Location`.
fn write(request: Request) -> Result<String> {
    let response = send(request)?;
    let location = response.header("location").unwrap_or_default();
    let id = location.rsplit('/').next().unwrap_or_default();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Internal(format!(
            "NetSuite answered {} without the new record's URL in Location (got `{location}`)",
            response.status
        )));
    }
    Ok(id.to_owned())
}

/// The external id a job or invoice is upserted by: the one given, else one
/// derived from the call's idempotency key; `None` when there is neither.
fn upsert_id(ctx: &Context, given: Option<String>) -> Option<String> {
    given.or_else(|| {
        ctx.idempotency_key
            .as_deref()
            .map(|key| format!("junction-{}", idempotency_uuid(key)))
    })
}

/// The write of a `record_type` record: an upsert by `external_id`, or a
/// plain create without one.
fn upsert_request(ctx: &Context, record_type: &str, external_id: Option<&str>) -> Result<Request> {
    Ok(match external_id {
        Some(external_id) => {
            Request::put(record_url(ctx, record_type, &external_ref(external_id)?)?)
        }
        None => Request::post(record_url(ctx, record_type, "")?),
    })
}

/// A stable UUID for `key`: `key` itself when it is one, else
/// a UUID derived from it (FNV-1a, 128 bits, with the version 8 and variant
/// bits of RFC 9562), the same for the same key.
fn idempotency_uuid(key: &str) -> String {
    let is_uuid = key.len() == 36
        && key.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if is_uuid {
        return key.to_ascii_lowercase();
    }
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in key.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    hash = (hash & !(0xf << 76)) | (0x8 << 76);
    hash = (hash & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{hash:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// NetSuite's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "o:errorDetails")]
    details: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    detail: String,
    #[serde(default, rename = "o:errorCode")]
    code: String,
    #[serde(default, rename = "o:errorPath")]
    path: Option<String>,
}

/// The error case of a failed request, from its status and NetSuite's body.
fn failure(response: Response) -> Error {
    let status = response.status;
    let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_default();
    if status == 429 || body.details.is_empty() {
        return match response.ok() {
            Ok(_) => Error::Internal(format!("NetSuite answered {status}")),
            Err(error) => error,
        };
    }
    let described: Vec<String> = body
        .details
        .iter()
        .map(|d| match &d.path {
            Some(path) => format!("{path}: {} ({})", d.detail, d.code),
            None => format!("{} ({})", d.detail, d.code),
        })
        .collect();
    let message = format!("NetSuite says {}", described.join("; "));
    let has = |codes: &[&str]| {
        body.details
            .iter()
            .any(|d| codes.contains(&d.code.as_str()))
    };
    if has(&["DUP_RCRD", "DUP_ENTITY", "IDEMPOTENCY_ERROR"]) {
        return Error::Conflict(format!("status {status}: {message}"));
    }
    refusal(&response, &message)
}

/// `eid:` and the external id, escaped for a path segment.
fn external_ref(external_id: &str) -> Result<String> {
    if external_id.is_empty() {
        return Err(Error::InvalidInput(
            "`external_id` must not be empty".into(),
        ));
    }
    Ok(format!("eid:{}", encode_component(external_id)))
}

/// Input of `upsert-customer`.
#[derive(Debug, Deserialize, JsonSchema)]
struct UpsertCustomer {
    /// The customer's external id, e.g. the CRM's account id.
    external_id: String,
    /// The customer's fields; `companyName` is required for a new customer.
    fields: Map<String, Value>,
}

/// A saved record.
#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Saved {
    /// NetSuite's internal id.
    id: String,
    /// The external id, when the record has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
}

fn upsert_customer(ctx: &Context, input: UpsertCustomer) -> Result<Saved> {
    let url = record_url(ctx, "customer", &external_ref(&input.external_id)?)?;
    let id = write(Request::put(url).json(&input.fields)?)?;
    Ok(Saved {
        id,
        external_id: Some(input.external_id),
    })
}

/// Input of `create-job`.
#[derive(Debug, Deserialize, JsonSchema)]
struct CreateJob {
    /// The internal id of the customer the job is for.
    customer_id: String,
    /// The job's fields; `companyName` (the job's name) is required.
    fields: Map<String, Value>,
    /// An external id: the job is created or updated by it. Absent: one
    /// derived from the call's idempotency key.
    #[serde(default)]
    external_id: Option<String>,
}

fn job_body(input: &CreateJob) -> Result<Value> {
    if input.customer_id.is_empty() || !input.customer_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidInput(format!(
            "`customer_id` must be a NetSuite internal id such as 1001, not `{}`",
            input.customer_id
        )));
    }
    let mut body = input.fields.clone();
    body.insert("parent".into(), json!({ "id": input.customer_id }));
    Ok(Value::Object(body))
}

fn create_job(ctx: &Context, input: CreateJob) -> Result<Saved> {
    let body = job_body(&input)?;
    let external_id = upsert_id(ctx, input.external_id);
    let request = upsert_request(ctx, "job", external_id.as_deref())?;
    let id = write(request.json(&body)?)?;
    Ok(Saved { id, external_id })
}

/// Input of `get-customer` and `get-job`: exactly one of the ids.
#[derive(Debug, Deserialize, JsonSchema)]
struct GetRecord {
    /// NetSuite's internal id, e.g. `1001`.
    #[serde(default)]
    id: Option<String>,
    /// The external id.
    #[serde(default)]
    external_id: Option<String>,
}

fn get_record(ctx: &Context, record_type: &str, input: GetRecord) -> Result<Value> {
    let reference = match (input.id, input.external_id) {
        (Some(id), None) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => id,
        (Some(id), None) => {
            return Err(Error::InvalidInput(format!(
                "`id` must be a NetSuite internal id such as 1001, not `{id}`"
            )));
        }
        (None, Some(external_id)) => external_ref(&external_id)?,
        _ => {
            return Err(Error::InvalidInput(
                "give exactly one of `id` and `external_id`".into(),
            ));
        }
    };
    send(Request::get(record_url(ctx, record_type, &reference)?))?.json()
}

/// Input of `create-invoice`.
#[derive(Debug, Deserialize, JsonSchema)]
struct CreateInvoice {
    /// The invoice's fields, NetSuite names: `entity: {"id"}`, `job: {"id"}`,
    /// `tranDate`, `item: {"items": [{"item": {"id"}, "quantity", "rate",
    /// "description"}]}`.
    fields: Map<String, Value>,
    /// The invoice's external id, e.g. the billing run's. Absent: one
    /// derived from the call's idempotency key.
    #[serde(default)]
    external_id: Option<String>,
}

/// Creates the invoice, upserted by its external id: a retried or replayed
/// step gets the invoice the first attempt made, not a second one.
fn create_invoice(ctx: &Context, input: CreateInvoice) -> Result<Saved> {
    let external_id = upsert_id(ctx, input.external_id);
    let request = upsert_request(ctx, "invoice", external_id.as_deref())?.json(&input.fields)?;
    let id = write(request)?;
    Ok(Saved { id, external_id })
}

fn get_customer(ctx: &Context, input: GetRecord) -> Result<Value> {
    get_record(ctx, "customer", input)
}

fn get_job(ctx: &Context, input: GetRecord) -> Result<Value> {
    get_record(ctx, "job", input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response::new(status, headers, body.to_string())
    }

    fn error_body(status: u16, code: &str, detail: &str, path: Option<&str>) -> Value {
        let mut item = json!({"detail": detail, "o:errorCode": code});
        if let Some(path) = path {
            item["o:errorPath"] = json!(path);
        }
        json!({"type": "https://www.rfc-editor.org/rfc/rfc9110.html", "title": "Bad Request",
               "status": status, "o:errorDetails": [item]})
    }

    #[test]
    fn error_details_map_to_error_cases() {
        let missing = error_body(
            400,
            "USER_ERROR",
            "Please enter value(s) for: Company Name",
            Some("companyName"),
        );
        assert_eq!(
            failure(response(400, &[], missing)),
            Error::InvalidInput(
                "status 400: NetSuite says companyName: Please enter value(s) for: Company \
                 Name (USER_ERROR)"
                    .into()
            )
        );
        let duplicate = error_body(
            400,
            "DUP_RCRD",
            "A customer with external ID 'X' already exists.",
            Some("externalId"),
        );
        assert!(
            matches!(failure(response(400, &[], duplicate)), Error::Conflict(m) if m.contains("DUP_RCRD"))
        );
        let replay = error_body(
            400,
            "IDEMPOTENCY_ERROR",
            "A request with the same idempotency key is already submitted.",
            None,
        );
        assert!(matches!(
            failure(response(400, &[], replay)),
            Error::Conflict(_)
        ));
        let login = error_body(401, "INVALID_LOGIN", "Invalid login attempt.", None);
        assert!(
            matches!(failure(response(401, &[], login)), Error::Unauthorized(m) if m.contains("INVALID_LOGIN"))
        );
        let missing = error_body(
            404,
            "NONEXISTENT_ID",
            "The record instance does not exist.",
            None,
        );
        assert!(matches!(
            failure(response(404, &[], missing)),
            Error::NotFound(_)
        ));
        let busy = error_body(
            429,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded.",
            None,
        );
        assert_eq!(
            failure(response(429, &[("Retry-After", "4")], busy)),
            Error::RateLimited {
                retry_after_ms: 4000
            }
        );
        let broken = error_body(
            500,
            "UNEXPECTED_ERROR",
            "An unexpected error occurred.",
            None,
        );
        assert!(
            matches!(failure(response(500, &[], broken)), Error::Unavailable(m) if m.contains("UNEXPECTED_ERROR"))
        );
        let html = Response::new(502, &[], "<html>");
        assert!(matches!(failure(html), Error::Unavailable(_)));
    }

    #[test]
    fn idempotency_keys_become_stable_uuids() {
        let uuid = idempotency_uuid("run-42:customer");
        assert_eq!(uuid, idempotency_uuid("run-42:customer"));
        assert_ne!(uuid, idempotency_uuid("run-42:job"));
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8", "version 8: {uuid}");
        assert!("89ab".contains(&uuid[19..20]), "RFC 9562 variant: {uuid}");
        assert_eq!(
            idempotency_uuid("CAC827EA-3543-4CDA-ADD2-BAE634326C27"),
            "cac827ea-3543-4cda-add2-bae634326c27"
        );
    }

    #[test]
    fn job_body_links_the_customer() {
        let input: CreateJob = serde_json::from_value(json!({
            "customer_id": "1001", "fields": {"companyName": "Acme rollout"}
        }))
        .unwrap();
        assert_eq!(
            job_body(&input).unwrap(),
            json!({"companyName": "Acme rollout", "parent": {"id": "1001"}})
        );
        let input: CreateJob = serde_json::from_value(json!({
            "customer_id": "1001/../../x", "fields": {}
        }))
        .unwrap();
        assert!(
            matches!(job_body(&input), Err(Error::InvalidInput(m)) if m.contains("customer_id"))
        );
    }

    #[test]
    fn references_are_one_id_escaped_for_the_path() {
        assert_eq!(external_ref("CRM 42/x").unwrap(), "eid:CRM%2042%2Fx");
        assert!(external_ref("").is_err());
        let ctx = Context::default();
        let get = |id: Option<&str>, external_id: Option<&str>| {
            get_customer(
                &ctx,
                GetRecord {
                    id: id.map(str::to_owned),
                    external_id: external_id.map(str::to_owned),
                },
            )
        };
        assert!(
            matches!(get(None, None), Err(Error::InvalidInput(m)) if m.contains("exactly one"))
        );
        assert!(
            matches!(get(Some("1"), Some("x")), Err(Error::InvalidInput(m)) if m.contains("exactly one"))
        );
        assert!(
            matches!(get(Some("../job"), None), Err(Error::InvalidInput(m)) if m.contains("internal id"))
        );
    }

    #[test]
    fn operations_are_described() {
        let names: Vec<_> = Netsuite::operations().names().map(str::to_owned).collect();
        assert_eq!(
            names,
            [
                "upsert-customer",
                "create-job",
                "create-invoice",
                "get-customer",
                "get-job"
            ]
        );
    }
}
