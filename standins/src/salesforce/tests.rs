use std::collections::HashMap;

use serde_json::json;

use super::composite::resolve_references;
use super::query::{Comparison, Condition, Soql, datetime_key, parse_soql, soql_compare};
use super::records::new_id;
use super::*;

#[test]
fn ids_have_the_case_safe_suffix() {
    let id = new_id("001");
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("0015g"));
    assert!(id.ends_with("AAA"));
    // `Q` is the third character of the first chunk: bit 2, the fifth letter.
    assert!(new_id("00Q").ends_with("EAA"));
}

#[test]
fn parses_the_soql_subset() {
    let query = parse_soql(
        "select Id, Name FROM Account where Name = 'O\\'Brien & Co' and Rating >= 3 \
         AND LastModifiedDate < 2024-05-01T09:30:00Z order by Name desc LIMIT 5",
    );
    let condition = |field: &str, op, literal| Condition {
        field: field.into(),
        op,
        literal,
    };
    assert_eq!(
        query,
        Ok(Soql {
            fields: vec!["Id".into(), "Name".into()],
            kind: "Account".into(),
            conditions: vec![
                condition("Name", Comparison::Equal, json!("O'Brien & Co")),
                condition("Rating", Comparison::GreaterOrEqual, json!(3.0)),
                condition(
                    "LastModifiedDate",
                    Comparison::Less,
                    json!("2024-05-01T09:30:00Z")
                ),
            ],
            order_by: Some(("Name".into(), true)),
            limit: Some(5),
        })
    );
    let ops = parse_soql("SELECT Id FROM Account WHERE A != 1 AND B > 2 AND C <= 3 ORDER BY A")
        .map(|q| {
            (
                q.conditions.iter().map(|c| c.op).collect::<Vec<_>>(),
                q.order_by,
            )
        });
    assert_eq!(
        ops,
        Ok((
            vec![
                Comparison::NotEqual,
                Comparison::Greater,
                Comparison::LessOrEqual
            ],
            Some(("A".into(), false))
        ))
    );
    for malformed in [
        "",
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM",
        "SELECT Id FROM Account WHERE Name",
        "SELECT Id FROM Account WHERE Name = 'open",
        "SELECT Id FROM Account WHERE Name ! 'x'",
        "SELECT Id FROM Account ORDER Name",
        "SELECT Id FROM Account WHERE CreatedDate > 2024-05-01",
        "SELECT Id FROM Account LIMIT many",
    ] {
        assert!(parse_soql(malformed).is_err(), "{malformed}");
    }
}

#[test]
fn datetimes_compare_by_time_whatever_their_notation() {
    use std::cmp::Ordering;
    let stored = json!("2024-05-01T09:30:00.250+0000");
    let at = |literal: &str| soql_compare(Some(&stored), &json!(literal));
    assert_eq!(at("2024-05-01T09:30:00Z"), Some(Ordering::Greater));
    assert_eq!(at("2024-05-01T09:30:00.25+00:00"), Some(Ordering::Equal));
    assert_eq!(at("2024-05-01T09:30:01Z"), Some(Ordering::Less));
    assert_eq!(datetime_key("2024-05-01T09:30:00+0200"), None);
    assert_eq!(
        soql_compare(Some(&json!("acme")), &json!("ACME")),
        Some(Ordering::Equal)
    );
    assert_eq!(soql_compare(None, &json!(1)), Some(Ordering::Less));
}

#[test]
fn resolves_composite_references() {
    let results = HashMap::from([("acct".to_owned(), json!({"id": "001X", "n": 2}))]);
    assert_eq!(
        resolve_references("/sobjects/Account/@{acct.id}?n=@{acct.n}", &results),
        Ok("/sobjects/Account/001X?n=2".to_owned())
    );
    assert_eq!(
        resolve_references("@{missing.id}", &results),
        Err("missing.id".to_owned())
    );
}

#[test]
fn versions() {
    assert!(is_version("v60.0"));
    assert!(is_version("v59.0"));
    assert!(!is_version("60.0"));
    assert!(!is_version("vX.0"));
    assert!(!is_version("v60"));
}
