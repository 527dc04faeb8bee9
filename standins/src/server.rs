//! What every stand-in shares: a loopback server with its own lifetime, a log of the requests it
//! received, and a queue of failures to play before handling the next requests.
//!
//! A stand-in (see [`crate::jira`]) builds its `Router` and the error bodies of its API
//! ([`FaultResponses`]); [`StandinCore`] does the rest.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2_011::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Request bodies larger than this are refused with `413`; no connector sends anything close.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long [`StandinCore::shutdown`] lets in-flight requests finish before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A failure a stand-in plays, before authentication and routing, for each of the next `times`
/// requests it receives, whatever they are.
///
/// Queued misbehaviours are played in the order they were queued: two calls
/// `misbehave(ServerError { times: 1 })` then `misbehave(RateLimited { times: 2, .. })` make the
/// next request fail with a server error and the two after it with a rate limit. `times: 0` does
/// nothing. Every request is recorded, including the ones that misbehave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Answer `500 Internal Server Error` with the API's error body.
    ServerError {
        /// How many requests fail.
        times: u32,
    },
    /// Answer `429 Too Many Requests` with a `Retry-After` header (and whatever rate-limit
    /// headers the real API sends) and the API's error body.
    RateLimited {
        /// How many requests are refused.
        times: u32,
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer `401 Unauthorized` as for missing credentials, even when the request carries valid
    /// ones (a revoked or expired token).
    Unauthorized {
        /// How many requests are refused.
        times: u32,
    },
    /// Wait, then handle the request normally (authentication included).
    Latency {
        /// How many requests are delayed.
        times: u32,
        /// How long each of them waits before it is handled.
        millis: u64,
    },
}

impl Misbehaviour {
    fn times_mut(&mut self) -> &mut u32 {
        match self {
            Misbehaviour::ServerError { times }
            | Misbehaviour::RateLimited { times, .. }
            | Misbehaviour::Unauthorized { times }
            | Misbehaviour::Latency { times, .. } => times,
        }
    }
}

/// One request a stand-in received, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method, upper-case (`"GET"`, `"POST"`).
    pub method: String,
    /// The path, without the query string (`"/rest/api/3/issue"`).
    pub path: String,
    /// The query string without the leading `?`, or `None` when the URL has none.
    pub query: Option<String>,
    /// The headers, by lower-case name. A header sent several times has its values joined with
    /// `", "`; a value that is not UTF-8 is converted lossily.
    pub headers: BTreeMap<String, String>,
    /// The body bytes; empty when the request had none.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The value of header `name` (any case), or `None` when the request did not carry it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON, or `None` when it is empty or not JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn from_parts(parts: &Parts, body: &Bytes) -> Self {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
        RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body: body.to_vec(),
        }
    }
}

/// The bodies and headers one API answers with when a [`Misbehaviour`] is played.
pub(crate) trait FaultResponses: Send + Sync + 'static {
    /// The `500` response.
    fn server_error(&self) -> Response;
    /// The `429` response; it must carry `Retry-After: retry_after_secs`.
    fn rate_limited(&self, retry_after_secs: u64) -> Response;
    /// The `401` response.
    fn unauthorized(&self) -> Response;
}

/// One request's worth of a queued [`Misbehaviour`].
enum Fault {
    ServerError,
    RateLimited { retry_after_secs: u64 },
    Unauthorized,
    Latency(Duration),
}

/// The state the recording/misbehaving middleware shares with the handle.
struct Harness {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Misbehaviour>>,
    responses: Box<dyn FaultResponses>,
}

impl Harness {
    fn take_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        loop {
            let front = faults.front_mut()?;
            let times = front.times_mut();
            if *times == 0 {
                faults.pop_front();
                continue;
            }
            *times -= 1;
            return Some(match *front {
                Misbehaviour::ServerError { .. } => Fault::ServerError,
                Misbehaviour::RateLimited {
                    retry_after_secs, ..
                } => Fault::RateLimited { retry_after_secs },
                Misbehaviour::Unauthorized { .. } => Fault::Unauthorized,
                Misbehaviour::Latency { millis, .. } => {
                    Fault::Latency(Duration::from_millis(millis))
                }
            });
        }
    }
}

/// Records the request, then plays the next queued fault, if any, before the stand-in's own
/// authentication and routing.
async fn record_and_misbehave(
    State(harness): State<Arc<Harness>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    lock(&harness.requests).push(RecordedRequest::from_parts(&parts, &body));
    match harness.take_fault() {
        Some(Fault::ServerError) => return harness.responses.server_error(),
        Some(Fault::RateLimited { retry_after_secs }) => {
            return harness.responses.rate_limited(retry_after_secs);
        }
        Some(Fault::Unauthorized) => return harness.responses.unauthorized(),
        Some(Fault::Latency(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A running loopback server with its request log and fault queue.
///
/// Dropping it stops the server: the shutdown sender is dropped with it, which ends the serve
/// loop gracefully (idle connections closed, in-flight requests finished).
pub(crate) struct StandinCore {
    addr: SocketAddr,
    harness: Arc<Harness>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl StandinCore {
    /// Binds `127.0.0.1` on an ephemeral port and serves the router that `app` builds from the
    /// base URL (`http://127.0.0.1:PORT`), behind the recording and misbehaving middleware.
    pub(crate) async fn start(
        name: &'static str,
        responses: impl FaultResponses,
        app: impl FnOnce(String) -> Router,
    ) -> anyhow::Result<StandinCore> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| anyhow::anyhow!("binding the {name} stand-in to 127.0.0.1: {e}"))?;
        let addr = listener.local_addr()?;
        let harness = Arc::new(Harness {
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            responses: Box::new(responses),
        });
        let router = app(format!("http://{addr}")).layer(middleware::from_fn_with_state(
            harness.clone(),
            record_and_misbehave,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // Either an explicit shutdown or the sender dropped with the last handle.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(standin = name, %error, "stand-in server stopped with an error");
            }
        });
        tracing::debug!(standin = name, %addr, "stand-in listening");
        Ok(StandinCore {
            addr,
            harness,
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
        })
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.harness.requests).clone()
    }

    pub(crate) fn misbehave(&self, misbehaviour: Misbehaviour) {
        lock(&self.harness.faults).push_back(misbehaviour);
    }

    /// Stops accepting connections, lets in-flight requests finish (aborting after a grace
    /// period) and returns once the server task has ended. Calling it again does nothing.
    pub(crate) async fn shutdown(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Whether `headers` carry `Authorization: Bearer {token}` (the scheme in any case).
pub(crate) fn has_bearer_token(headers: &axum::http::HeaderMap, token: &str) -> bool {
    authorization(headers, "bearer") == Some(token)
}

/// The credentials of `Authorization: {scheme} {credentials}` (the scheme in any case), or
/// `None` when the header is absent or has another scheme.
fn authorization<'h>(headers: &'h axum::http::HeaderMap, scheme: &str) -> Option<&'h str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(sent, _)| sent.eq_ignore_ascii_case(scheme))
        .map(|(_, credentials)| credentials.trim())
}

/// `router` behind a check of `Authorization: {scheme} {secret}` (the scheme, such as `Bearer`
/// or `API-Key`, in any case): requests without it are answered `refused()`.
pub(crate) fn behind_authorization<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    scheme: &'static str,
    secret: &str,
    refused: fn() -> Response,
) -> Router<S> {
    let required = Arc::new(RequiredAuthorization {
        scheme,
        secret: secret.to_owned(),
        refused,
    });
    router.layer(middleware::from_fn_with_state(
        required,
        require_authorization,
    ))
}

/// The credentials a stand-in wants and its answer to a request without them.
struct RequiredAuthorization {
    scheme: &'static str,
    secret: String,
    refused: fn() -> Response,
}

async fn require_authorization(
    State(required): State<Arc<RequiredAuthorization>>,
    request: Request,
    next: Next,
) -> Response {
    if authorization(request.headers(), required.scheme) == Some(required.secret.as_str()) {
        next.run(request).await
    } else {
        (required.refused)()
    }
}

/// Milliseconds since the Unix epoch of `time` (0 before it).
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    u64::try_from(
        time.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `time` as an RFC 3339 UTC timestamp with milliseconds, e.g. `2024-05-01T09:30:00.123Z`.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01, counting in 400-year
/// eras of 146 097 days that start on 1 March, so the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl StandinCore {
    /// [`StandinCore::start`] for a stand-in whose router shares one state with its handle:
    /// `state` builds it from the base URL, `router` serves it, and both come back.
    pub(crate) async fn start_with_state<S: Send + Sync + 'static>(
        name: &'static str,
        responses: impl FaultResponses,
        state: impl FnOnce(String) -> S,
        router: impl FnOnce(Arc<S>) -> Router,
    ) -> anyhow::Result<(StandinCore, Arc<S>)> {
        let mut built = None;
        let core = StandinCore::start(name, responses, |base_url| {
            let state = Arc::new(state(base_url));
            built = Some(state.clone());
            router(state)
        })
        .await?;
        let state =
            built.ok_or_else(|| anyhow::anyhow!("the {name} stand-in router was never built"))?;
        Ok((core, state))
    }
}

/// Implements what every stand-in handle offers — `Debug`, `base_url`, `host`, `requests`,
/// `misbehave` and `shutdown` — on a struct with a `core: Arc<StandinCore>` field.
///
/// `$system` names the API in the docs ("a PSA connector"); `$faults` documents the bodies and
/// headers the stand-in answers misbehaviours with.
macro_rules! standin_handle {
    ($handle:ident, $system:literal, $faults:literal) => {
        impl std::fmt::Debug for $handle {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("base_url", &self.core.base_url())
                    .finish_non_exhaustive()
            }
        }

        impl $handle {
            #[doc = concat!(
                                "The base URL to give ", $system,
                                ", `http://127.0.0.1:PORT` (no trailing slash)."
                            )]
            pub fn base_url(&self) -> String {
                self.core.base_url()
            }

            /// The `127.0.0.1:PORT` authority, for outbound-host allowlists.
            pub fn host(&self) -> String {
                self.core.host()
            }

            /// Every request received so far, in arrival order, including refused and
            /// misbehaved ones.
            pub fn requests(&self) -> Vec<$crate::RecordedRequest> {
                self.core.requests()
            }

            #[doc = concat!(
                                "Queues `misbehaviour` for the next requests; see [`Misbehaviour`]",
                                "(crate::Misbehaviour) for the order of play.\n\n", $faults
                            )]
            pub fn misbehave(&self, misbehaviour: $crate::Misbehaviour) {
                self.core.misbehave(misbehaviour);
            }

            /// Stops the server for every clone and waits until it has stopped. Calling it
            /// again does nothing.
            pub async fn shutdown(&self) {
                self.core.shutdown().await;
            }
        }
    };
}
pub(crate) use standin_handle;

/// Implements `subscribe_webhooks` and `webhooks` on a stand-in handle whose state has a
/// `webhooks: Webhooks` field. `$events` names the events sent; `$signing` documents how they
/// are signed.
macro_rules! standin_webhooks {
    ($handle:ident, $events:literal, $signing:literal) => {
        impl $handle {
            #[doc = concat!(
                "Sends ", $events, " from now on to `url`, signed with `secret`; replaces an ",
                "earlier subscription. Without one, no webhook is sent.\n\n", $signing
            )]
            pub fn subscribe_webhooks(&self, url: &str, secret: &str) {
                self.state.webhooks.subscribe(url, secret);
            }

            /// Every webhook delivery attempt so far, in the order made: each event is POSTed
            /// in the background, in the order the events happened, and retried up to
            /// [`WEBHOOK_ATTEMPTS`](crate::WEBHOOK_ATTEMPTS) times until the receiver answers
            /// 2xx.
            pub fn webhooks(&self) -> Vec<$crate::WebhookAttempt> {
                self.state.webhooks.attempts()
            }
        }
    };
}
pub(crate) use standin_webhooks;

/// Adds the `X-RateLimit-*` headers many APIs send with a `429` (`-Limit: limit`,
/// `-Remaining: 0`, `-Reset`: the Unix second the window reopens) and `Retry-After`.
pub(crate) fn with_rate_limit_headers(
    mut response: Response,
    limit: u32,
    retry_after_secs: u64,
) -> Response {
    let reset = unix_millis(SystemTime::now()) / 1000 + retry_after_secs;
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    response
}

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

/// A lifecycle: which status may follow which. A status may always be set to itself (a retried
/// request changes nothing).
pub(crate) struct Lifecycle {
    /// `(from, to)` pairs.
    pub(crate) moves: &'static [(&'static str, &'static str)],
}

impl Lifecycle {
    /// Whether `name` is a status of this lifecycle.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.moves
            .iter()
            .any(|(from, to)| *from == name || *to == name)
    }

    /// Checks the move of `field` from `from` to `to`, naming the moves allowed from `from`.
    pub(crate) fn check(&self, field: &str, from: &str, to: &str) -> Result<(), FieldError> {
        if !self.knows(to) {
            let mut all: Vec<&str> = self.moves.iter().flat_map(|(a, b)| [*a, *b]).collect();
            all.sort_unstable();
            all.dedup();
            return Err(FieldError::new(
                field,
                format!(
                    "{to:?} is not a status; the statuses are {}",
                    all.join(", ")
                ),
            ));
        }
        if from == to || self.moves.contains(&(from, to)) {
            return Ok(());
        }
        let allowed: Vec<&str> = self
            .moves
            .iter()
            .filter(|(a, _)| *a == from)
            .map(|(_, b)| *b)
            .collect();
        let allowed = if allowed.is_empty() {
            format!("{from} is final")
        } else {
            format!("from {from} it can move to {}", allowed.join(", "))
        };
        Err(FieldError::new(
            field,
            format!("cannot move from {from} to {to}: {allowed}"),
        ))
    }
}

/// Makes creates with an `Idempotency-Key` header safe to retry, as Stripe defines it: the
/// first successful (2xx) answer to a key is kept, and a later request with the same key,
/// method, path and body gets that answer again with `Idempotent-Replayed: true` without being
/// handled. The same key with another request is refused with the stand-in's `reused` answer.
/// Failed answers are not kept, so a key can be retried after an error. Requests with a key are
/// handled one at a time, so two concurrent retries cannot both create.
pub(crate) struct IdempotencyKeys {
    answers: tokio::sync::Mutex<HashMap<String, KeptAnswer>>,
    reused: fn(&str) -> Response,
}

/// The header whose value makes a create idempotent.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

struct KeptAnswer {
    request: (String, String, Bytes),
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl IdempotencyKeys {
    pub(crate) fn new(reused: fn(&str) -> Response) -> IdempotencyKeys {
        IdempotencyKeys {
            answers: tokio::sync::Mutex::new(HashMap::new()),
            reused,
        }
    }
}

/// The middleware of [`IdempotencyKeys`]; only `POST` requests are concerned.
pub(crate) async fn honour_idempotency_key(
    State(keys): State<Arc<IdempotencyKeys>>,
    request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(|k| String::from_utf8_lossy(k.as_bytes()).into_owned());
    let Some(key) = key.filter(|_| request.method() == axum::http::Method::POST) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let fingerprint = (
        parts.method.to_string(),
        parts.uri.path().to_owned(),
        body.clone(),
    );
    let mut answers = keys.answers.lock().await;
    if let Some(kept) = answers.get(&key) {
        if kept.request != fingerprint {
            return (keys.reused)(&key);
        }
        let mut response = (kept.status, kept.headers.clone(), kept.body.clone()).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return response;
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    answers.insert(
        key,
        KeptAnswer {
            request: fingerprint,
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        },
    );
    Response::from_parts(parts, Body::from(body))
}

/// HMAC-SHA256 of `message` keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail; an empty MAC (which no
    // receiver accepts) is the fallback should that ever change.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac.chain_update(message).finalize().into_bytes().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// How many times an outbound webhook is tried before it is given up.
pub const WEBHOOK_ATTEMPTS: u32 = 3;

/// The pause after a failed webhook attempt, doubled after each further failure.
const WEBHOOK_FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How long a webhook receiver has to answer one attempt.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One attempt at delivering an outbound webhook, as a stand-in made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// The event type, e.g. `proposal.accepted`.
    pub event: String,
    /// The URL the event was POSTed to.
    pub url: String,
    /// 1 for the first attempt, up to [`WEBHOOK_ATTEMPTS`].
    pub attempt: u32,
    /// The headers sent, signature included, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The exact body sent, the bytes the signature covers.
    pub body: String,
    /// The receiver's status code, or `None` when it did not answer.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout), or `None` when there was one.
    pub error: Option<String>,
}

impl WebhookAttempt {
    /// Whether the receiver took the event (answered 2xx).
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The value of header `name` (any case), or `None` when it was not sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON (`null` if it is not JSON, which a stand-in never sends).
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Where a stand-in sends its webhooks, and the secret it signs them with.
struct Subscription {
    url: String,
    secret: String,
}

/// One event waiting to be delivered.
struct Outgoing {
    event: String,
    url: String,
    body: String,
    headers: BTreeMap<String, String>,
}

/// A stand-in's outbound webhooks: one subscription, a background worker that POSTs events in
/// the order they happened and retries each up to [`WEBHOOK_ATTEMPTS`] times (any answer but
/// 2xx, or none, is a failure), and the log of every attempt.
///
/// Signing is the stand-in's: [`Webhooks::send`] takes the headers to add, computed from the
/// secret and the exact body.
pub(crate) struct Webhooks {
    subscription: Mutex<Option<Subscription>>,
    queue: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    attempts: Arc<Mutex<Vec<WebhookAttempt>>>,
}

impl Webhooks {
    /// Starts the delivery worker on the current Tokio runtime; it ends when this is dropped.
    pub(crate) fn start(standin: &'static str) -> anyhow::Result<Webhooks> {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("building the {standin} webhook client: {e}"))?;
        let (queue, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = attempts.clone();
        tokio::spawn(async move {
            while let Some(event) = outgoing.recv().await {
                deliver(standin, &client, &event, &log).await;
            }
        });
        Ok(Webhooks {
            subscription: Mutex::new(None),
            queue,
            attempts,
        })
    }

    /// Sends later events to `url`, signed with `secret`; replaces an earlier subscription.
    pub(crate) fn subscribe(&self, url: &str, secret: &str) {
        *lock(&self.subscription) = Some(Subscription {
            url: url.to_owned(),
            secret: secret.to_owned(),
        });
    }

    /// Queues `body` as event `event` for the subscriber, with `Content-Type: application/json`
    /// and the headers `sign(secret, body)` returns. Does nothing without a subscription.
    pub(crate) fn send(
        &self,
        event: &str,
        body: String,
        sign: impl FnOnce(&str, &[u8]) -> Vec<(&'static str, String)>,
    ) {
        let subscription = lock(&self.subscription);
        let Some(subscription) = subscription.as_ref() else {
            tracing::debug!(event, "no webhook subscription; event not sent");
            return;
        };
        let mut headers =
            BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]);
        for (name, value) in sign(&subscription.secret, body.as_bytes()) {
            headers.insert(name.to_ascii_lowercase(), value);
        }
        let outgoing = Outgoing {
            event: event.to_owned(),
            url: subscription.url.clone(),
            body,
            headers,
        };
        if self.queue.send(outgoing).is_err() {
            tracing::warn!(event, "the webhook worker has stopped; event not sent");
        }
    }

    /// Every attempt so far, in the order they were made.
    pub(crate) fn attempts(&self) -> Vec<WebhookAttempt> {
        lock(&self.attempts).clone()
    }
}

async fn deliver(
    standin: &'static str,
    client: &reqwest::Client,
    event: &Outgoing,
    log: &Mutex<Vec<WebhookAttempt>>,
) {
    let mut backoff = WEBHOOK_FIRST_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let mut request = client.post(&event.url).body(event.body.clone());
        for (name, value) in &event.headers {
            request = request.header(name, value);
        }
        let (status, error) = match request.send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let record = WebhookAttempt {
            event: event.event.clone(),
            url: event.url.clone(),
            attempt,
            headers: event.headers.clone(),
            body: event.body.clone(),
            status,
            error,
        };
        let delivered = record.delivered();
        tracing::debug!(standin, event = %event.event, attempt, ?status, "webhook attempt");
        lock(log).push(record);
        if delivered {
            return;
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::warn!(standin, event = %event.event, url = %event.url, "webhook given up");
}

#[cfg(test)]
mod tests {
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
}
