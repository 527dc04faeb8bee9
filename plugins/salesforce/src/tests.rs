use super::*;
use serde_json::json;

use junction_sdk::http::Response;
use junction_sdk::{Context, Error};
use serde_json::Value;

use crate::api::{api_name, api_usage, failure, record_id};
use crate::closed_won::{Cursor, closed_won_page, closed_won_soql, soql_datetime};
use crate::composite::prefixed;
use crate::query::{Query, QueryPage, next_page, query, soql_quote};

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
