//! CRM objects: validation, associations, and create, read, update and list of one object type.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::server::{lock, rfc3339_millis};

use super::errors::{object_not_found, validation_error};
use super::*;

/// Resolves `{object_type}`, or answers the 400 HubSpot gives for an unknown type.
pub(super) fn object_type(name: &str) -> Result<ObjectType, Response> {
    ObjectType::parse(name)
        .ok_or_else(|| validation_error(&format!("Unable to infer object type from: {name}")))
}

pub(super) fn parse_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        validation_error(&format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// The `properties` object of an input, as strings (HubSpot stores every value as a string).
pub(super) fn input_properties(input: &Value) -> Result<Map<String, Value>, Response> {
    let Some(properties) = input.get("properties").and_then(Value::as_object) else {
        return Err(validation_error(
            "Invalid input JSON: the \"properties\" object is required",
        ));
    };
    Ok(properties
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(_) | Value::Null => value.clone(),
                other => Value::String(other.to_string()),
            };
            (name.clone(), value)
        })
        .collect())
}

/// Checks the properties an object would have after a create or update.
pub(super) fn validate(kind: ObjectType, properties: &Map<String, Value>) -> Result<(), Response> {
    if kind != ObjectType::Deals {
        return Ok(());
    }
    let text = |name: &str| properties.get(name).and_then(Value::as_str).unwrap_or("");
    if text("dealname").trim().is_empty() {
        return Err(validation_error(
            "Property values were not valid: [{\"isValid\":false,\"message\":\"dealname is \
             required\",\"error\":\"REQUIRED_FIELD\",\"name\":\"dealname\"}]",
        ));
    }
    let stage = text("dealstage");
    if !DEAL_STAGES.contains(&stage) {
        return Err(validation_error(&format!(
            "Property values were not valid: [{{\"isValid\":false,\"message\":\"{stage} was not \
             one of the allowed options: {}\",\"error\":\"INVALID_OPTION\",\"name\":\"dealstage\"}}]",
            DEAL_STAGES.join(", ")
        )));
    }
    Ok(())
}

pub(super) fn new_object(
    store: &Store,
    kind: ObjectType,
    mut properties: Map<String, Value>,
    associations: Vec<u64>,
) -> CrmObject {
    let now = rfc3339_millis(SystemTime::now());
    if kind == ObjectType::Deals && !properties.contains_key("pipeline") {
        properties.insert("pipeline".into(), json!("default"));
    }
    CrmObject {
        kind,
        id: FIRST_OBJECT_ID + store.objects.len() as u64 + 1,
        properties,
        associations,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The ids a create's `associations` (`[{"to": {"id"}, "types": [...]}]`) point at, each an
/// existing object of the other type.
fn input_associations(store: &Store, kind: ObjectType, body: &Value) -> Result<Vec<u64>, Response> {
    let other = match kind {
        ObjectType::Deals => ObjectType::Companies,
        ObjectType::Companies => ObjectType::Deals,
    };
    let Some(list) = body.get("associations") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(validation_error("associations must be an array"));
    };
    list.iter()
        .map(|a| {
            let id = match &a["to"]["id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(validation_error("associations[].to.id is required")),
            };
            find(store, other, &id)
                .map(|index| store.objects[index].id)
                .ok_or_else(|| {
                    validation_error(&format!(
                        "association target {id} does not exist (associations[].to.id)"
                    ))
                })
        })
        .collect()
}

/// `{"companies": {"results": [{"id", "type": "deal_to_company"}]}}` for the types `names`
/// asks for (`companies`, `deals`).
fn associations_json(store: &Store, object: &CrmObject, names: &str) -> Value {
    let mut out = Map::new();
    for name in names.split(',').map(str::trim) {
        let Some(other) = ObjectType::parse(name) else {
            continue;
        };
        if other == object.kind {
            continue;
        }
        let ids: Vec<u64> = match object.kind {
            // A deal holds its companies.
            ObjectType::Deals => object.associations.clone(),
            // A company's deals are the deals that hold it.
            ObjectType::Companies => store
                .objects
                .iter()
                .filter(|o| o.kind == ObjectType::Deals && o.associations.contains(&object.id))
                .map(|o| o.id)
                .collect(),
        };
        let kind = match object.kind {
            ObjectType::Deals => "deal_to_company",
            ObjectType::Companies => "company_to_deal",
        };
        let results: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id.to_string(), "type": kind}))
            .collect();
        let key = match other {
            ObjectType::Deals => "deals",
            ObjectType::Companies => "companies",
        };
        out.insert(key.into(), json!({ "results": results }));
    }
    Value::Object(out)
}

pub(super) async fn create(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    body: Bytes,
) -> Response {
    let created = object_type(&object_type_name).and_then(|kind| {
        let body = parse_json(&body)?;
        let properties = input_properties(&body)?;
        validate(kind, &properties)?;
        let mut store = lock(&state.store);
        let associations = input_associations(&store, kind, &body)?;
        let object = new_object(&store, kind, properties, associations);
        let json = object.to_json(None);
        store.objects.push(object);
        Ok(json)
    });
    match created {
        Ok(json) => (StatusCode::CREATED, axum::Json(json)).into_response(),
        Err(response) => response,
    }
}

/// The query of a read, with its repeated parameters as HubSpot's own
/// clients send them (`properties=a&properties=b`, or `properties=a,b`).
pub(super) struct ReadQuery(Vec<(String, String)>);

impl ReadQuery {
    /// Every value of `key`, comma-separated lists split; `None` when absent.
    fn list(&self, key: &str) -> Option<Vec<String>> {
        let mut found = None::<Vec<String>>;
        for (_, value) in self.0.iter().filter(|(k, _)| k == key) {
            found.get_or_insert_with(Vec::new).extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            );
        }
        found
    }

    /// The last value of `key`.
    fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ReadQuery {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(ReadQuery(pairs)),
            Err(e) => Err(validation_error(&format!("Invalid query string: {e}"))),
        }
    }
}

pub(super) async fn get_object(
    State(state): State<Arc<HubspotState>>,
    Path((object_type_name, id)): Path<(String, String)>,
    query: ReadQuery,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let store = lock(&state.store);
    let only = query.list("properties");
    match find(&store, kind, &id) {
        Some(index) => {
            let object = &store.objects[index];
            let mut json = object.read_json(only.as_deref());
            if let Some(names) = query.list("associations") {
                json["associations"] = associations_json(&store, object, &names.join(","));
            }
            axum::Json(json).into_response()
        }
        None => object_not_found(&id),
    }
}

pub(super) fn find(store: &Store, kind: ObjectType, id: &str) -> Option<usize> {
    let id = id.parse::<u64>().ok()?;
    store
        .objects
        .iter()
        .position(|o| o.kind == kind && o.id == id)
}

pub(super) async fn update(
    State(state): State<Arc<HubspotState>>,
    Path((object_type_name, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let updated = object_type(&object_type_name).and_then(|kind| {
        let properties = input_properties(&parse_json(&body)?)?;
        let mut store = lock(&state.store);
        let Some(index) = find(&store, kind, &id) else {
            return Err(object_not_found(&id));
        };
        let mut merged = store.objects[index].properties.clone();
        merged.extend(properties);
        validate(kind, &merged)?;
        let object = &mut store.objects[index];
        object.properties = merged;
        object.updated_at = rfc3339_millis(SystemTime::now());
        Ok(object.to_json(None))
    });
    match updated {
        Ok(json) => axum::Json(json).into_response(),
        Err(response) => response,
    }
}

pub(super) async fn list(
    State(state): State<Arc<HubspotState>>,
    Path(object_type_name): Path<String>,
    query: ReadQuery,
) -> Response {
    let kind = match object_type(&object_type_name) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let limit = match query.one("limit").map(str::parse::<usize>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(limit)) => limit.clamp(1, MAX_PAGE_SIZE),
        Some(Err(_)) => return validation_error("Invalid value for limit; expected a number"),
    };
    // `after` is the id of the first object of the page, as HubSpot's cursors are for lists.
    let after = match query.one("after").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => return validation_error("Invalid value for after; expected a cursor"),
    };
    let only = query.list("properties");
    let store = lock(&state.store);
    let mut matching = store
        .objects
        .iter()
        .filter(|o| o.kind == kind && o.id >= after);
    let results: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|o| o.read_json(only.as_deref()))
        .collect();
    let mut page = json!({ "results": results });
    if let (Some(next), Some(object)) = (matching.next(), page.as_object_mut()) {
        let mut link = format!(
            "{}/crm/v3/objects/{object_type_name}?limit={limit}&after={}",
            state.base_url, next.id
        );
        if let Some(properties) = &only {
            link.push_str(&format!("&properties={}", properties.join(",")));
        }
        object.insert(
            "paging".into(),
            json!({ "next": { "after": next.id.to_string(), "link": link } }),
        );
    }
    axum::Json(page).into_response()
}
