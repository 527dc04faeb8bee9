//! What every stand-in shares: a loopback server with its own lifetime, a log of the requests it
//! received, and a queue of failures to play before handling the next requests.
//!
//! A stand-in (see [`crate::jira`]) builds its `Router` and the error bodies of its API
//! ([`FaultResponses`]); [`StandinCore`] does the rest.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod auth;
mod fields;
mod idempotency;
mod lifecycle;
mod time;
mod webhooks;
pub(crate) use auth::{behind_authorization, has_bearer_token};
pub(crate) use fields::{
    FieldError, json_object, only_known_fields, optional_date, optional_money, optional_number,
    optional_text, query_number, required_text,
};
pub(crate) use idempotency::{IdempotencyKeys, honour_idempotency_key};
pub(crate) use lifecycle::Lifecycle;
pub(crate) use time::{rfc3339_millis, unix_millis};
pub use webhooks::{WEBHOOK_ATTEMPTS, WebhookAttempt};
pub(crate) use webhooks::{Webhooks, hmac_sha256};

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
    /// Answer `503 Service Unavailable` as a system down for maintenance does (the plain page
    /// of its load balancer, not the API's JSON), until [`times`] requests have been refused or
    /// the handle's `behave` clears the queue.
    Unavailable {
        /// How many requests are refused (`u32::MAX`: until `behave`).
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
            | Misbehaviour::Unavailable { times }
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
    Unavailable,
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
                Misbehaviour::Unavailable { .. } => Fault::Unavailable,
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
        Some(Fault::Unavailable) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>503 Service Unavailable</h1></body></html>",
            )
                .into_response();
        }
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

    pub(crate) fn behave(&self) {
        lock(&self.harness.faults).clear();
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

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

            /// Drops every queued misbehaviour: the next request is handled normally.
            pub fn behave(&self) {
                self.core.behave();
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

#[cfg(test)]
mod tests;
