//! Helpers for connectors over paged JSON REST APIs: the error case of a
//! refused request with the system's own explanation, the `page_size`
//! setting, page and page-size inputs, and cursors that are page numbers.
//!
//! ```
//! use junction_sdk::{Error, http::Response, rest};
//!
//! let refused = Response::new(422, &[], r#"{"errors":[{"field":"budget.currency"}]}"#);
//! let error = rest::refusal(&refused, "the PSA refused `budget.currency`: not an ISO 4217 code");
//! assert!(matches!(error, Error::InvalidInput(m) if m.contains("budget.currency")));
//! ```

use crate::http::Response;
use crate::{Context, Error, Result};

/// The error case of the failed `response`, as [`Response::ok`] maps its
/// status (422 invalid input, 409 conflict, 429 rate limited after
/// `Retry-After`, ...), with `message` (what the system said, rewritten for
/// an operator) in place of the raw body.
pub fn refusal(response: &Response, message: &str) -> Error {
    let rewritten = Response {
        status: response.status,
        headers: response.headers.clone(),
        body: message.as_bytes().to_vec(),
    };
    match rewritten.ok() {
        Err(error) => error,
        Ok(_) => Error::Internal(format!(
            "status {} is a success, not a refusal: {message}",
            response.status
        )),
    }
}

/// The connection setting `page_size`: records per page of a stream, from 1
/// to `max`; `default` when the connection has none. Anything else is
/// [`Error::InvalidInput`] naming the setting and the range.
pub fn page_size(ctx: &Context, default: u32, max: u32) -> Result<u32> {
    parse_page_size(ctx.config("page_size"), default, max)
}

fn parse_page_size(setting: Option<String>, default: u32, max: u32) -> Result<u32> {
    let Some(text) = setting else {
        return Ok(default);
    };
    text.trim()
        .parse()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "setting `page_size` must be a number from 1 to {max}, not `{text}`"
            ))
        })
}

/// The page and page size a list operation asks for: `page` from 1 (1 when
/// absent) and `size` from 1 to `max` (the `page_size` setting, else
/// `default`, when absent). `size_field` names the size in errors, e.g.
/// `per_page`.
pub fn paging(
    ctx: &Context,
    page: Option<u32>,
    size: Option<u32>,
    size_field: &str,
    (default, max): (u32, u32),
) -> Result<(u32, u32)> {
    let size = match size {
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            return Err(Error::InvalidInput(format!(
                "`{size_field}` must be from 1 to {max}, not {n}"
            )));
        }
        None => page_size(ctx, default, max)?,
    };
    match page {
        Some(0) => Err(Error::InvalidInput("`page` starts at 1".into())),
        page => Ok((page.unwrap_or(1), size)),
    }
}

/// The error for a stream a connector does not offer, listing those it does.
pub fn unknown_stream(stream: &str, offered: &[&str]) -> Error {
    Error::InvalidInput(format!(
        "unknown stream `{stream}`; this connector offers: {}",
        offered.join(", ")
    ))
}

/// The page a cursor of `stream` names, for streams whose cursor is the next
/// page number (from 1); page 1 without a cursor. Anything else is
/// [`Error::InvalidInput`].
pub fn page_cursor(stream: &str, cursor: Option<&str>) -> Result<u32> {
    match cursor {
        None => Ok(1),
        Some(text) => text.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            Error::InvalidInput(format!(
                "cursor `{text}` of stream `{stream}` is not one this connector returned"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        Response::new(status, headers, "{\"raw\":true}")
    }

    #[test]
    fn refusals_keep_the_status_case_and_say_the_message() {
        assert_eq!(
            refusal(&response(422, &[]), "`hours`: must be more than 0"),
            Error::InvalidInput("status 422: `hours`: must be more than 0".into())
        );
        assert!(
            matches!(refusal(&response(409, &[]), "taken"), Error::Conflict(m) if m.ends_with("taken"))
        );
        assert!(matches!(
            refusal(&response(401, &[]), "expired"),
            Error::Unauthorized(_)
        ));
        assert!(matches!(
            refusal(&response(404, &[]), "gone"),
            Error::NotFound(_)
        ));
        assert!(matches!(
            refusal(&response(503, &[]), "down"),
            Error::Unavailable(_)
        ));
        assert_eq!(
            refusal(&response(429, &[("Retry-After", "2")]), "slow down"),
            Error::RateLimited {
                retry_after_ms: 2000
            }
        );
        assert!(matches!(
            refusal(&response(200, &[]), "fine"),
            Error::Internal(_)
        ));
    }

    #[test]
    fn page_size_defaults_and_is_checked() {
        // Outside a host the connection has no settings.
        assert_eq!(page_size(&Context::default(), 50, 100), Ok(50));
        assert_eq!(parse_page_size(Some(" 100 ".into()), 50, 100), Ok(100));
        for bad in ["0", "101", "ten", ""] {
            assert!(
                matches!(parse_page_size(Some(bad.into()), 50, 100), Err(Error::InvalidInput(m)) if m.contains("from 1 to 100")),
                "{bad}"
            );
        }
    }

    #[test]
    fn paging_checks_the_page_and_its_size() {
        let ctx = Context::default();
        assert_eq!(paging(&ctx, None, None, "count", (50, 100)), Ok((1, 50)));
        assert_eq!(
            paging(&ctx, Some(3), Some(100), "count", (50, 100)),
            Ok((3, 100))
        );
        assert!(
            matches!(paging(&ctx, None, Some(101), "count", (50, 100)), Err(Error::InvalidInput(m)) if m.contains("`count` must be from 1 to 100"))
        );
        assert!(
            matches!(paging(&ctx, Some(0), None, "count", (50, 100)), Err(Error::InvalidInput(m)) if m.contains("`page`"))
        );
        assert_eq!(
            unknown_stream("deals", &["people", "time"]),
            Error::InvalidInput(
                "unknown stream `deals`; this connector offers: people, time".into()
            )
        );
    }

    #[test]
    fn page_cursors_are_page_numbers() {
        assert_eq!(page_cursor("people", None), Ok(1));
        assert_eq!(page_cursor("people", Some("3")), Ok(3));
        for bad in ["0", "-1", "x", ""] {
            assert!(
                matches!(page_cursor("people", Some(bad)), Err(Error::InvalidInput(m)) if m.contains("`people`")),
                "{bad}"
            );
        }
    }
}
