//! Request-input checks shared by the stand-ins: JSON objects, known fields, text, dates, numbers,
//! money and query numbers, refused as a [`FieldError`].

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// A request input refused by a stand-in: the field (a JSON member, a query parameter or a
/// header) and why. Each stand-in renders it in its API's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The body as a JSON object, or why not (the field is empty: the body as a whole).
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, FieldError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(FieldError::new("", "the body must be a JSON object")),
        Err(e) => Err(FieldError::new(
            "",
            format!(
                "the body is not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// Refuses members of `object` that are not in `known`, naming the first unknown one.
pub(crate) fn only_known_fields(
    object: &Map<String, Value>,
    known: &[&str],
) -> Result<(), FieldError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(FieldError::new(
            unknown,
            format!("unknown field; the known ones are {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Member `field` as a non-blank string, trimmed: `Ok(None)` when absent or `null`.
pub(crate) fn optional_text(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Some(Value::String(_)) => Err(FieldError::new(field, "must not be blank")),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

/// Member `field` as a non-blank string, trimmed.
pub(crate) fn required_text(
    object: &Map<String, Value>,
    field: &str,
) -> Result<String, FieldError> {
    optional_text(object, field)?.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Member `field` as a calendar date `YYYY-MM-DD`: `Ok(None)` when absent or `null`.
pub(crate) fn optional_date(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, FieldError> {
    let Some(text) = optional_text(object, field)? else {
        return Ok(None);
    };
    if is_calendar_date(&text) {
        Ok(Some(text))
    } else {
        Err(FieldError::new(
            field,
            format!("{text:?} is not a date of the form YYYY-MM-DD"),
        ))
    }
}

/// Whether `text` is `YYYY-MM-DD` naming a day that exists (leap years included).
pub(crate) fn is_calendar_date(text: &str) -> bool {
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        text[0..4].parse::<u32>(),
        text[5..7].parse::<u32>(),
        text[8..10].parse::<u32>(),
    ) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// Member `field` as a finite number: `Ok(None)` when absent or `null`.
pub(crate) fn optional_number(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<f64>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| FieldError::new(field, "must be a number")),
    }
}

/// Member `field` as an amount of money, `{"amount": number >= 0, "currency": "USD"}` (an ISO
/// 4217 code, three upper-case letters): `Ok(None)` when absent or `null`. Errors name the
/// inner member, e.g. `budget.currency`.
pub(crate) fn optional_money(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Value>, FieldError> {
    let money = match object.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(money)) => money,
        Some(_) => {
            return Err(FieldError::new(
                field,
                "must be an object {\"amount\", \"currency\"}",
            ));
        }
    };
    let inner = |name: &str| format!("{field}.{name}");
    only_known_fields(money, &["amount", "currency"])
        .map_err(|e| FieldError::new(&inner(&e.field), e.message))?;
    let amount = optional_number(money, "amount")
        .map_err(|e| FieldError::new(&inner("amount"), e.message))?
        .ok_or_else(|| FieldError::new(&inner("amount"), "is required"))?;
    if amount < 0.0 {
        return Err(FieldError::new(&inner("amount"), "must not be negative"));
    }
    let currency = required_text(money, "currency")
        .map_err(|e| FieldError::new(&inner("currency"), e.message))?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(FieldError::new(
            &inner("currency"),
            format!("{currency:?} is not an ISO 4217 code such as USD"),
        ));
    }
    Ok(Some(json!({ "amount": amount, "currency": currency })))
}

/// Query parameter `name` as a whole number of at least `min`: `Ok(None)` when absent.
pub(crate) fn query_number(
    query: &HashMap<String, String>,
    name: &str,
    min: u64,
) -> Result<Option<u64>, FieldError> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .map(Some)
            .ok_or_else(|| {
                FieldError::new(
                    name,
                    format!("{text:?} is not a whole number of at least {min}"),
                )
            }),
    }
}
