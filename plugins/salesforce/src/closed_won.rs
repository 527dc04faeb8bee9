//! The `closed-won-opportunities` stream and its cursor.

use junction_sdk::{Context, Error, Page, Result};
use serde::{Deserialize, Serialize};

use crate::query::{QueryPage, next_page, run_query, soql_quote};

/// Where `closed-won-opportunities` stands: the last change read to the end
/// of a query, and the query locator of the page to read next, if any.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
}

impl Cursor {
    pub(crate) fn parse(text: Option<&str>) -> Result<Cursor> {
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

    pub(crate) fn text(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("serializing a cursor: {e}")))
    }
}

/// A `LastModifiedDate` (`2024-05-01T09:30:00.000+0000`) as a SOQL datetime
/// literal, to the second (`2024-05-01T09:30:00Z`): Salesforce keeps no finer
/// time, and a query at the second reads the changes of that second again
/// rather than miss one. Refuses anything else, since it goes into a query.
pub(crate) fn soql_datetime(value: &str) -> Result<String> {
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

pub(crate) fn closed_won_soql(ctx: &Context, since: Option<&str>) -> Result<String> {
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

pub(crate) fn read_closed_won(ctx: &Context, cursor: Option<String>) -> Result<Page> {
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

pub(crate) fn closed_won_page(page: QueryPage, since: Option<String>) -> Result<Page> {
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
