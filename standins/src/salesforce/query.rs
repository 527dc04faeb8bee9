//! SOQL: the parsed subset, its comparisons, and `query` / `queryMore` paging.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::records::key_prefix;
use super::reply::Reply;
use super::*;

/// A parsed SOQL query of the supported subset.
#[derive(Debug, PartialEq)]
pub(super) struct Soql {
    pub(super) fields: Vec<String>,
    pub(super) kind: String,
    pub(super) conditions: Vec<Condition>,
    pub(super) order_by: Option<(String, bool)>,
    pub(super) limit: Option<usize>,
}

/// `field op literal` in a `WHERE` clause.
#[derive(Debug, PartialEq)]
pub(super) struct Condition {
    pub(super) field: String,
    pub(super) op: Comparison,
    pub(super) literal: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    pub(super) fn holds(self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self, ordering) {
            (Comparison::Equal, o) => o == Some(Equal),
            (Comparison::NotEqual, o) => o != Some(Equal),
            (Comparison::Less, o) => o == Some(Less),
            (Comparison::LessOrEqual, o) => matches!(o, Some(Less | Equal)),
            (Comparison::Greater, o) => o == Some(Greater),
            (Comparison::GreaterOrEqual, o) => matches!(o, Some(Greater | Equal)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Comma,
    Compare(Comparison),
}

fn tokenize(soql: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = soql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let or_equal = chars.next_if_eq(&'=').is_some();
                tokens.push(Token::Compare(match (c, or_equal) {
                    ('=', false) => Comparison::Equal,
                    ('!', true) => Comparison::NotEqual,
                    ('<', false) => Comparison::Less,
                    ('<', true) => Comparison::LessOrEqual,
                    ('>', false) => Comparison::Greater,
                    ('>', true) => Comparison::GreaterOrEqual,
                    _ => return Err(format!("unexpected token: '{c}'")),
                }));
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => text.push('\n'),
                            Some(escaped) => text.push(escaped),
                            None => return Err("unterminated string".into()),
                        },
                        Some('\'') => break,
                        Some(other) => text.push(other),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Text(text));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut word = String::new();
                // `:` and `+` appear in datetime literals, `2024-05-01T09:30:00+00:00`.
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || "_.-:+".contains(c) {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(tokens)
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

pub(super) fn parse_soql(soql: &str) -> Result<Soql, String> {
    let tokens = tokenize(soql)?;
    let mut at = 0;
    if !is_keyword(tokens.first(), "SELECT") {
        return Err("expecting SELECT".into());
    }
    at += 1;
    let mut fields = Vec::new();
    loop {
        match tokens.get(at) {
            Some(Token::Word(w)) if !w.eq_ignore_ascii_case("FROM") => fields.push(w.clone()),
            _ => return Err("expecting a field name".into()),
        }
        at += 1;
        if tokens.get(at) == Some(&Token::Comma) {
            at += 1;
        } else {
            break;
        }
    }
    if !is_keyword(tokens.get(at), "FROM") {
        return Err("expecting FROM".into());
    }
    let Some(Token::Word(kind)) = tokens.get(at + 1) else {
        return Err("expecting an object type after FROM".into());
    };
    at += 2;
    let mut conditions = Vec::new();
    if is_keyword(tokens.get(at), "WHERE") {
        at += 1;
        loop {
            let (Some(Token::Word(field)), Some(Token::Compare(op)), Some(value)) =
                (tokens.get(at), tokens.get(at + 1), tokens.get(at + 2))
            else {
                return Err("expecting a condition field = value".into());
            };
            let value = match value {
                Token::Text(text) => json!(text),
                Token::Word(w) if w.eq_ignore_ascii_case("null") => Value::Null,
                Token::Word(w) if w.eq_ignore_ascii_case("true") => json!(true),
                Token::Word(w) if w.eq_ignore_ascii_case("false") => json!(false),
                Token::Word(w) if datetime_key(w).is_some() => json!(w),
                Token::Word(w) => match w.parse::<f64>() {
                    Ok(n) => json!(n),
                    Err(_) => return Err(format!("unexpected value: {w}")),
                },
                _ => return Err("expecting a value".into()),
            };
            conditions.push(Condition {
                field: field.clone(),
                op: *op,
                literal: value,
            });
            at += 3;
            if is_keyword(tokens.get(at), "AND") {
                at += 1;
            } else {
                break;
            }
        }
    }
    let mut order_by = None;
    if is_keyword(tokens.get(at), "ORDER") {
        let (true, Some(Token::Word(field))) =
            (is_keyword(tokens.get(at + 1), "BY"), tokens.get(at + 2))
        else {
            return Err("expecting ORDER BY field".into());
        };
        at += 3;
        let descending = is_keyword(tokens.get(at), "DESC");
        if descending || is_keyword(tokens.get(at), "ASC") {
            at += 1;
        }
        order_by = Some((field.clone(), descending));
    }
    let mut limit = None;
    if is_keyword(tokens.get(at), "LIMIT") {
        match tokens.get(at + 1) {
            Some(Token::Word(n)) => {
                limit = Some(
                    n.parse::<usize>()
                        .map_err(|_| "expecting a number after LIMIT")?,
                );
            }
            _ => return Err("expecting a number after LIMIT".into()),
        }
        at += 2;
    }
    if let Some(extra) = tokens.get(at) {
        return Err(format!("unexpected token: {extra:?}"));
    }
    Ok(Soql {
        fields,
        kind: kind.clone(),
        conditions,
        order_by,
        limit,
    })
}

/// A UTC datetime (`2024-05-01T09:30:00Z`, `2024-05-01T09:30:00.000+0000`, `...+00:00`) as
/// its seconds and milliseconds, which order it; `None` for anything else.
pub(super) fn datetime_key(text: &str) -> Option<(&str, u32)> {
    let seconds = text.get(..19)?;
    let shape = seconds.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    let rest = &text[19..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(
            after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len()),
        ),
        None => ("", rest),
    };
    if !shape || fraction.len() > 3 || !matches!(zone, "Z" | "+0000" | "+00:00") {
        return None;
    }
    Some((seconds, format!("{fraction:0<3}").parse().ok()?))
}

/// How a stored value compares with a SOQL literal: text case-insensitively (datetimes by
/// time), numbers by value, null before everything; `None` when they do not compare.
pub(super) fn soql_compare(stored: Option<&Value>, literal: &Value) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (stored.unwrap_or(&Value::Null), literal) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        (Value::String(a), Value::String(b)) => match (datetime_key(a), datetime_key(b)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        },
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (a, b) => (a == b).then_some(Ordering::Equal),
    }
}

pub(super) fn run_query(store: &mut Store, context: &Context<'_>, soql: &str) -> Reply {
    let query = match parse_soql(soql) {
        Ok(query) => query,
        Err(message) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                &format!("unexpected token or syntax: {message}"),
                &[],
            );
        }
    };
    if key_prefix(&query.kind).is_none() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name.",
                query.kind
            ),
            &[],
        );
    }
    let value_of = |r: &SObject, field: &str| r.field(field).map(|(_, v)| v);
    let mut matching: Vec<&SObject> = store
        .records
        .iter()
        .filter(|r| {
            r.kind.eq_ignore_ascii_case(&query.kind)
                && query.conditions.iter().all(|c| {
                    c.op.holds(soql_compare(value_of(r, &c.field).as_ref(), &c.literal))
                })
        })
        .collect();
    if let Some((field, descending)) = &query.order_by {
        matching.sort_by(|a, b| {
            let b_value = value_of(b, field).unwrap_or(Value::Null);
            let ordering = soql_compare(value_of(a, field).as_ref(), &b_value)
                .unwrap_or(std::cmp::Ordering::Equal);
            if *descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let rows: Vec<Value> = matching
        .into_iter()
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|r| {
            let mut row = Map::new();
            row.insert("attributes".into(), r.attributes(context.version));
            for field in &query.fields {
                let (name, value) = r.field(field).unwrap_or((field.clone(), Value::Null));
                row.insert(name, value);
            }
            Value::Object(row)
        })
        .collect();
    let locator = format!("01g5g{:010}", NEXT_LOCATOR.fetch_add(1, Ordering::Relaxed));
    let page = page_of(context, &rows, &locator, 0);
    if rows.len() > context.batch_size {
        store.cursors.insert(locator, rows);
    }
    Reply::ok(page)
}

fn page_of(context: &Context<'_>, rows: &[Value], locator: &str, offset: usize) -> Value {
    let end = offset.saturating_add(context.batch_size).min(rows.len());
    let records = rows.get(offset..end).unwrap_or_default();
    let mut page = json!({
        "totalSize": rows.len(),
        "done": end >= rows.len(),
        "records": records,
    });
    if end < rows.len()
        && let Some(object) = page.as_object_mut()
    {
        object.insert(
            "nextRecordsUrl".into(),
            json!(format!(
                "/services/data/{}/query/{locator}-{end}",
                context.version
            )),
        );
    }
    page
}

pub(super) fn query_more(store: &Store, context: &Context<'_>, locator: &str) -> Reply {
    let page = locator.rsplit_once('-').and_then(|(cursor, offset)| {
        let rows = store.cursors.get(cursor)?;
        let offset = offset.parse::<usize>().ok()?;
        Some(page_of(context, rows, cursor, offset))
    });
    match page {
        Some(page) => Reply::ok(page),
        None => Reply::error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
            &[],
        ),
    }
}
