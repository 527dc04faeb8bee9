use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::fields::is_calendar_date;
use super::*;

#[test]
fn formats_rfc3339_with_millis() {
    assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    // 2000-02-29 (a leap day in a century year divisible by 400) 12:34:56.789
    let leap = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
    assert_eq!(rfc3339_millis(leap), "2000-02-29T12:34:56.789Z");
    let new_year = UNIX_EPOCH + Duration::from_secs(1_704_067_199);
    assert_eq!(rfc3339_millis(new_year), "2023-12-31T23:59:59.000Z");
    let next = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
    assert_eq!(rfc3339_millis(next), "2024-01-01T00:00:00.000Z");
}

struct Plain;
impl FaultResponses for Plain {
    fn server_error(&self) -> Response {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
    fn rate_limited(&self, _: u64) -> Response {
        StatusCode::TOO_MANY_REQUESTS.into_response()
    }
    fn unauthorized(&self) -> Response {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

#[test]
fn calendar_dates_must_exist() {
    for good in ["2024-02-29", "2000-02-29", "2023-12-31", "1999-01-01"] {
        assert!(is_calendar_date(good), "{good}");
    }
    for bad in [
        "2023-02-29",
        "1900-02-29",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-1-01",
        "2024/01/01",
        "2024-01-01T00:00:00Z",
        "+024-01-01",
    ] {
        assert!(!is_calendar_date(bad), "{bad}");
    }
}

#[test]
fn lifecycles_allow_listed_moves_and_name_the_others() {
    let lifecycle = Lifecycle {
        moves: &[("draft", "sent"), ("sent", "done")],
    };
    assert!(lifecycle.check("status", "draft", "sent").is_ok());
    assert!(lifecycle.check("status", "done", "done").is_ok());
    let skipped = lifecycle.check("status", "draft", "done").unwrap_err();
    assert_eq!(skipped.field, "status");
    assert_eq!(
        skipped.message,
        "cannot move from draft to done: from draft it can move to sent"
    );
    let back = lifecycle.check("status", "done", "draft").unwrap_err();
    assert_eq!(
        back.message,
        "cannot move from done to draft: done is final"
    );
    let unknown = lifecycle.check("state", "draft", "lost").unwrap_err();
    assert_eq!(
        unknown.message,
        "\"lost\" is not a status; the statuses are done, draft, sent"
    );
}

#[test]
fn faults_play_in_queue_order_and_skip_zero_times() {
    let harness = Harness {
        requests: Mutex::new(Vec::new()),
        faults: Mutex::new(VecDeque::from([
            Misbehaviour::ServerError { times: 0 },
            Misbehaviour::Unauthorized { times: 2 },
            Misbehaviour::RateLimited {
                times: 1,
                retry_after_secs: 7,
            },
        ])),
        responses: Box::new(Plain),
    };
    assert!(matches!(harness.take_fault(), Some(Fault::Unauthorized)));
    assert!(matches!(harness.take_fault(), Some(Fault::Unauthorized)));
    assert!(matches!(
        harness.take_fault(),
        Some(Fault::RateLimited {
            retry_after_secs: 7
        })
    ));
    assert!(harness.take_fault().is_none());
    assert!(harness.take_fault().is_none());
}
