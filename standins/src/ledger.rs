//! A ledger of side effects that honours `Idempotency-Key` the way Stripe and NetSuite do: the
//! first request with a key is applied, a repeat of it gets the first answer again and changes
//! nothing. Crash and retry tests point steps at it and then read, from the ledger itself, what
//! was applied, under which key, and how many repeats the keys absorbed.
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /effects/{name}` | `201` `{"seq","name","key","body"}`: the effect is applied (`seq` counts from 1) |
//!
//! - `Idempotency-Key` is required (`400` `missing_idempotency_key` without it); the body is
//!   JSON or empty (`400` `invalid_body`).
//! - A repeat (same key, name and body) gets the first `201` answer again with
//!   `Idempotent-Replayed: true` and is counted as a replay, not applied.
//! - The same key with another name or body is `422` `idempotency_key_reused`.
//! - A request whose key is still being handled is `409` `idempotency_key_in_flight` and is
//!   counted as an overlap: two callers ran the same keyed step at once.
//!
//! Each request is handled for the `latency` given to [`LedgerStandin::start`] before it is
//! applied, as an upstream system takes time: a caller that dies during that time leaves the
//! effect unapplied. Errors are `{"error":{"code","message"}}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde_json::{Value, json};

use crate::server::{FaultResponses, StandinCore, lock, standin_handle};

/// The header that names a request's effect.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A running ledger stand-in on `127.0.0.1`.
///
/// Clones share one server and one ledger. The server stops when the last clone is dropped, or
/// earlier through [`LedgerStandin::shutdown`].
#[derive(Clone)]
pub struct LedgerStandin {
    core: Arc<StandinCore>,
    state: Arc<LedgerState>,
}

standin_handle!(
    LedgerStandin,
    "a step that records side effects",
    "The error bodies are `{\"error\":{\"code\",\"message\"}}`: `500` `server_error`; `429` \
     `rate_limited` with `Retry-After`; `401` `unauthorized`."
);

/// One applied effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    /// Order of application, from 1.
    pub seq: u64,
    /// The `{name}` of `POST /effects/{name}`.
    pub name: String,
    /// The `Idempotency-Key` it was applied under.
    pub key: String,
    /// The request body (`null` when empty).
    pub body: Value,
}

/// When the ledger handled one applied effect: from the request's arrival to its application.
/// Tests of concurrency read whether two effects were being handled at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handling {
    /// The `{name}` of the effect.
    pub name: String,
    /// When the request arrived.
    pub arrived: Instant,
    /// When the effect was applied (after the latency).
    pub applied: Instant,
}

/// What the ledger saw besides the effects themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Repeats of an applied request, answered from the ledger without applying them.
    pub replays: u64,
    /// Requests that arrived while the first request with their key was being handled.
    pub overlaps: u64,
    /// Requests refused (no key, bad body, key reused for another request).
    pub refused: u64,
}

impl LedgerStandin {
    /// Starts on 127.0.0.1 with an ephemeral port; each request takes `latency` before it is
    /// applied.
    ///
    /// Must be called inside a Tokio runtime, which the server task then runs on.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(latency: Duration) -> anyhow::Result<LedgerStandin> {
        let (core, state) = StandinCore::start_with_state(
            "ledger",
            LedgerFaults,
            |_base_url| LedgerState {
                latency,
                book: Mutex::new(Book::default()),
            },
            router,
        )
        .await?;
        Ok(LedgerStandin {
            core: Arc::new(core),
            state,
        })
    }

    /// Every applied effect, in order.
    pub fn effects(&self) -> Vec<Effect> {
        lock(&self.state.book).effects.clone()
    }

    /// When each applied effect was handled, in order of application.
    pub fn handlings(&self) -> Vec<Handling> {
        lock(&self.state.book).handlings.clone()
    }

    /// Replays, overlaps and refusals so far.
    pub fn counts(&self) -> LedgerCounts {
        lock(&self.state.book).counts.clone()
    }
}

struct LedgerState {
    latency: Duration,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    keys: HashMap<String, Entry>,
    effects: Vec<Effect>,
    handlings: Vec<Handling>,
    counts: LedgerCounts,
}

enum Entry {
    /// The first request with the key is being handled.
    InFlight,
    /// Applied as `effects[index]`.
    Applied(usize),
}

fn router(state: Arc<LedgerState>) -> Router {
    Router::new()
        .route("/effects/{name}", post(apply))
        .with_state(state)
}

async fn apply(
    State(state): State<Arc<LedgerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = headers
        .get(IDEMPOTENCY_HEADER)
        .map(|k| String::from_utf8_lossy(k.as_bytes()).into_owned())
    else {
        lock(&state.book).counts.refused += 1;
        return error(
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
            "every effect needs an Idempotency-Key header",
        );
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(body) => body,
            Err(e) => {
                lock(&state.book).counts.refused += 1;
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    &format!("the body is not JSON: {e}"),
                );
            }
        }
    };
    {
        let mut book = lock(&state.book);
        match book.keys.get(&key) {
            Some(Entry::Applied(index)) => {
                let first = book.effects[*index].clone();
                if first.name != name || first.body != body {
                    book.counts.refused += 1;
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        &format!("key `{key}` was used for another request"),
                    );
                }
                book.counts.replays += 1;
                let mut response = (StatusCode::CREATED, axum::Json(first)).into_response();
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return response;
            }
            Some(Entry::InFlight) => {
                book.counts.overlaps += 1;
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_flight",
                    &format!("a request with key `{key}` is being handled"),
                );
            }
            None => {
                book.keys.insert(key.clone(), Entry::InFlight);
            }
        }
    }
    let arrived = Instant::now();
    // A caller that goes away during the work leaves nothing applied.
    let pending = Pending {
        state: &state,
        key: &key,
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let effect = {
        let mut book = lock(&state.book);
        let effect = Effect {
            seq: u64::try_from(book.effects.len()).unwrap_or(u64::MAX - 1) + 1,
            name,
            key: key.clone(),
            body,
        };
        let index = book.effects.len();
        book.handlings.push(Handling {
            name: effect.name.clone(),
            arrived,
            applied: Instant::now(),
        });
        book.effects.push(effect.clone());
        book.keys.insert(key.clone(), Entry::Applied(index));
        effect
    };
    drop(pending);
    (StatusCode::CREATED, axum::Json(effect)).into_response()
}

/// Forgets an in-flight key whose request ended before it was applied.
struct Pending<'a> {
    state: &'a LedgerState,
    key: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut book = lock(&self.state.book);
        if matches!(book.keys.get(self.key), Some(Entry::InFlight)) {
            book.keys.remove(self.key);
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

struct LedgerFaults;

impl FaultResponses for LedgerFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the ledger failed; try again",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs),
        );
        response
    }

    fn unauthorized(&self) -> Response {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the ledger takes no credentials; this refusal was asked for",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Misbehaviour;

    async fn post(
        ledger: &LedgerStandin,
        name: &str,
        key: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(format!("{}/effects/{name}", ledger.base_url()))
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    #[tokio::test]
    async fn a_key_applies_once_and_repeats_get_the_first_answer() {
        let ledger = LedgerStandin::start(Duration::ZERO).await.unwrap();
        let first = post(&ledger, "reserve", Some("run-1:reserve"), r#"{"n":1}"#).await;
        assert_eq!(first.status(), 201);
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first: Value = first.json().await.unwrap();
        assert_eq!(
            first,
            json!({"seq": 1, "name": "reserve", "key": "run-1:reserve", "body": {"n": 1}})
        );
        let again = post(&ledger, "reserve", Some("run-1:reserve"), r#"{"n":1}"#).await;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap(), first);
        let other = post(&ledger, "reserve", Some("run-2:reserve"), "").await;
        assert_eq!(other.json::<Value>().await.unwrap()["seq"], 2);

        assert_eq!(ledger.effects().len(), 2);
        assert_eq!(ledger.effects()[1].body, Value::Null);
        assert_eq!(
            ledger.counts(),
            LedgerCounts {
                replays: 1,
                ..LedgerCounts::default()
            }
        );
    }

    #[tokio::test]
    async fn missing_keys_bad_bodies_and_reused_keys_are_refused() {
        let ledger = LedgerStandin::start(Duration::ZERO).await.unwrap();
        let missing = post(&ledger, "reserve", None, "{}").await;
        assert_eq!(missing.status(), 400);
        let missing: Value = missing.json().await.unwrap();
        assert_eq!(missing["error"]["code"], "missing_idempotency_key");
        let bad = post(&ledger, "reserve", Some("k"), "not json").await;
        assert_eq!(bad.status(), 400);
        assert_eq!(
            bad.json::<Value>().await.unwrap()["error"]["code"],
            "invalid_body"
        );
        assert_eq!(
            post(&ledger, "reserve", Some("k"), "{}").await.status(),
            201
        );
        for (name, body) in [("reserve", r#"{"n":2}"#), ("charge", "{}")] {
            let reused = post(&ledger, name, Some("k"), body).await;
            assert_eq!(reused.status(), 422);
            assert_eq!(
                reused.json::<Value>().await.unwrap()["error"]["code"],
                "idempotency_key_reused"
            );
        }
        assert_eq!(ledger.effects().len(), 1);
        assert_eq!(ledger.counts().refused, 4);
        assert_eq!(ledger.requests().len(), 5);
    }

    #[tokio::test]
    async fn a_repeat_while_the_first_is_handled_is_an_overlap() {
        let ledger = LedgerStandin::start(Duration::from_millis(300))
            .await
            .unwrap();
        let slow = tokio::spawn({
            let ledger = ledger.clone();
            async move { post(&ledger, "reserve", Some("k"), "{}").await.status() }
        });
        // Poll until the first request is in the ledger's hands, then repeat it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ledger.requests().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no request arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let overlap = post(&ledger, "reserve", Some("k"), "{}").await;
        assert_eq!(overlap.status(), 409);
        assert_eq!(
            overlap.json::<Value>().await.unwrap()["error"]["code"],
            "idempotency_key_in_flight"
        );
        assert_eq!(slow.await.unwrap(), 201);
        assert_eq!(ledger.effects().len(), 1);
        assert_eq!(ledger.counts().overlaps, 1);
    }

    #[tokio::test]
    async fn a_request_abandoned_before_it_is_applied_leaves_nothing() {
        let ledger = LedgerStandin::start(Duration::from_secs(30)).await.unwrap();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            post(&ledger, "reserve", Some("k"), "{}"),
        )
        .await;
        assert!(abandoned.is_err(), "the request should still be pending");
        // The server notices the closed connection and drops the handler, forgetting the key.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while matches!(
            lock(&ledger.state.book).keys.get("k"),
            Some(Entry::InFlight)
        ) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the key stayed in flight"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(ledger.effects().is_empty());
    }

    #[tokio::test]
    async fn misbehaviours_answer_with_the_ledger_error_shape() {
        let ledger = LedgerStandin::start(Duration::ZERO).await.unwrap();
        ledger.misbehave(Misbehaviour::RateLimited {
            times: 1,
            retry_after_secs: 3,
        });
        let limited = post(&ledger, "reserve", Some("k"), "{}").await;
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "3");
        assert_eq!(
            limited.json::<Value>().await.unwrap()["error"]["code"],
            "rate_limited"
        );
        assert!(ledger.effects().is_empty());
        assert_eq!(
            post(&ledger, "reserve", Some("k"), "{}").await.status(),
            201
        );
        ledger.shutdown().await;
    }
}
