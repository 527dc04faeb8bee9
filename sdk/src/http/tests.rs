use super::*;
use crate::wit::connector::wasi::http::types::ErrorCode;

fn url(s: &str) -> Url {
    Url::parse(s).expect("valid URL")
}

#[test]
fn urls_split_into_scheme_authority_and_path() {
    assert_eq!(
        url("https://acme.atlassian.net/rest/api/3/issue?expand=names#x"),
        Url {
            https: true,
            authority: "acme.atlassian.net".into(),
            path_with_query: "/rest/api/3/issue?expand=names".into(),
        }
    );
    assert_eq!(url("http://127.0.0.1:8080").path_with_query, "/");
    assert_eq!(url("http://127.0.0.1:8080").host(), "127.0.0.1");
    assert_eq!(url("HTTP://h?q=1").path_with_query, "/?q=1");
    assert_eq!(url("http://[::1]:80/x").host(), "[::1]");
}

#[test]
fn bad_urls_are_invalid_input() {
    for bad in [
        "acme.net/x",
        "ftp://h/x",
        "https:///x",
        "https://user:pw@h/",
    ] {
        assert!(
            matches!(Url::parse(bad), Err(Error::InvalidInput(m)) if m.contains(bad)),
            "{bad}"
        );
    }
}

#[test]
fn json_body_sets_content_type_once() {
    let request = Request::post("http://h/")
        .header("Content-Type", "text/plain")
        .json(&serde_json::json!({"a": 1}))
        .expect("serializes");
    assert_eq!(request.body, br#"{"a":1}"#);
    assert_eq!(
        request.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
}

#[test]
fn sending_outside_a_host_is_unavailable() {
    assert!(matches!(
        Request::get("http://h/").send(),
        Err(Error::Unavailable(m)) if m.contains("only available inside a Junction host")
    ));
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response::new(status, headers, body)
}

#[test]
fn encode_component_keeps_only_unreserved_characters() {
    assert_eq!(encode_component("Abc-1.2_3~"), "Abc-1.2_3~");
    assert_eq!(
        encode_component("eid:CRM 42/x?y=1&z=+#"),
        "eid%3ACRM%2042%2Fx%3Fy%3D1%26z%3D%2B%23"
    );
    assert_eq!(encode_component("'Closed Won'"), "%27Closed%20Won%27");
    assert_eq!(encode_component("é"), "%C3%A9");
    assert_eq!(encode_component(""), "");
}

#[test]
fn header_lookup_ignores_case() {
    let r = response(200, &[("Content-Type", "application/json")], "{}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("CONTENT-TYPE"), Some("application/json"));
    assert_eq!(r.header("etag"), None);
}

#[test]
fn json_of_a_broken_body_is_internal() {
    let r = response(200, &[], "<html>");
    assert!(matches!(
        r.json::<serde_json::Value>(),
        Err(Error::Internal(_))
    ));
    let r = response(200, &[], r#"{"id":"1"}"#);
    assert_eq!(
        r.json::<serde_json::Value>().expect("json"),
        serde_json::json!({"id": "1"})
    );
}

#[test]
fn ok_maps_statuses_to_error_cases() {
    assert!(response(201, &[], "").ok().is_ok());
    let case = |status, headers: &[(&str, &str)]| response(status, headers, "nope").ok();
    assert!(matches!(case(400, &[]), Err(Error::InvalidInput(m)) if m == "status 400: nope"));
    assert!(matches!(case(401, &[]), Err(Error::Unauthorized(_))));
    assert!(matches!(case(403, &[]), Err(Error::Unauthorized(_))));
    assert!(matches!(case(404, &[]), Err(Error::NotFound(_))));
    assert!(matches!(case(409, &[]), Err(Error::Conflict(_))));
    assert_eq!(
        case(429, &[("Retry-After", "3")]).map(|_| ()),
        Err(Error::RateLimited {
            retry_after_ms: 3000
        })
    );
    assert_eq!(
        case(429, &[]).map(|_| ()),
        Err(Error::RateLimited {
            retry_after_ms: 1000
        })
    );
    assert!(matches!(case(503, &[]), Err(Error::Unavailable(m)) if m.contains("503")));
    assert!(matches!(case(302, &[]), Err(Error::Internal(_))));
    let built = Response::new(201, &[("Location", "/x/1")], "{}");
    assert_eq!(built.header("location"), Some("/x/1"));
    assert_eq!(built.body, b"{}");
}

#[test]
fn transport_errors_map_to_clear_cases() {
    let denied = transport::transport_error(&ErrorCode::HttpRequestDenied, "evil.example");
    assert!(matches!(
        denied,
        Error::Internal(m) if m.starts_with("outbound request to evil.example denied by the host")
    ));
    assert!(matches!(
        transport::transport_error(&ErrorCode::ConnectionRefused, "h"),
        Error::Unavailable(m) if m.contains("ConnectionRefused")
    ));
    assert!(matches!(
        transport::transport_error(&ErrorCode::HttpRequestUriInvalid, "h"),
        Error::InvalidInput(_)
    ));
    assert!(matches!(
        transport::transport_error(&ErrorCode::HttpResponseBodySize(Some(9)), "h"),
        Error::Internal(m) if m.contains("larger than the host allows")
    ));
}
