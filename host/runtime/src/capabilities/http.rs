//! Outbound `wasi:http`. Every request a plugin sends passes through
//! [`Outbound`]: the egress policy (allowlist, manifest, non-public
//! addresses after DNS), the connection's rate limit, host-side credentials
//! (so they never enter guest memory), timeouts bounded by the call's
//! deadline and a cap on the response body. Requests leave through the
//! connection's pooled keep-alive client ([`Net`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::credentials::{Credentials, Mask};
use super::egress::{EgressDenied, EgressPolicy};
use super::oauth::{TOKEN_RESPONSE_BYTES, TOKEN_TIMEOUT};
use super::quota::{OutboundBudget, Quota, Refusals};
use super::ratelimit::RateGate;
use crate::trace::{TRACEPARENT, TraceContext};

/// Per-request timeouts used when the plugin sets none (each is further
/// bounded by what is left of the call's deadline).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest request body the host buffers to resend it once with a fresh
/// OAuth token after a 401.
const REPLAY_BODY_BYTES: usize = 1024 * 1024;

/// The network of one connection: its egress policy, one pooled keep-alive
/// client, its credentials (static headers, OAuth token source, the hosts
/// they go to) and its rate gate.
/// Shared by every call on the connection; rebuilt when the connection changes.
pub struct Net {
    pub(crate) policy: EgressPolicy,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<PinnedResolver>>, WasiBody>,
    pinned: Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>,
    pub(crate) credentials: Credentials,
    pub(crate) rate: Option<RateGate>,
    response_bytes: u64,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// A connection's network with its own connection pool.
    pub fn new(
        policy: EgressPolicy,
        credentials: Credentials,
        rate: Option<RateGate>,
        response_bytes: u64,
    ) -> Net {
        let pinned: Arc<Mutex<HashMap<String, Vec<SocketAddr>>>> = Arc::default();
        let mut http = HttpConnector::new_with_resolver(PinnedResolver {
            pinned: pinned.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Net {
            policy,
            client,
            pinned,
            credentials,
            rate,
            response_bytes,
        }
    }

    /// Resolves and checks `host:port` (allowlist and addresses, or only
    /// addresses when `listed` is false: a token endpoint the operator set),
    /// and pins the checked addresses so the connection pool dials nothing else.
    pub(crate) async fn admit(
        &self,
        host: &str,
        port: u16,
        listed: bool,
    ) -> Result<(), EgressDenied> {
        let addrs = if listed {
            self.policy.resolve_checked(host, port).await?
        } else {
            self.policy.resolve(host, port).await?
        };
        self.pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.trim_end_matches('.').to_ascii_lowercase(), addrs);
        Ok(())
    }

    /// Sends an admitted request on the pool with a first-byte timeout.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        first_byte: Duration,
    ) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
        match tokio::time::timeout(first_byte, self.client.request(request)).await {
            Err(_) => Err(HttpError::HttpResponseTimeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(classify_client_error(&e)),
        }
    }
}

/// One rustls configuration (webpki roots, ring) for every connection.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    // The ring provider supports the default versions; this
                    // arm only exists to avoid a panic path.
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

fn classify_client_error(e: &hyper_util::client::legacy::Error) -> HttpError {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => HttpError::ConnectionTimeout,
                _ => HttpError::InternalError(Some(io.to_string())),
            };
        }
        if err.to_string().contains("tls") || err.to_string().contains("certificate") {
            return HttpError::TlsProtocolError;
        }
        source = err.source();
    }
    if e.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::HttpProtocolError
    }
}

/// The pool's resolver: only addresses [`Net::admit`] checked for this call.
#[derive(Clone)]
struct PinnedResolver {
    pinned: Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>,
}

impl tower::Service<Name> for PinnedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let key = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let key = key
            .strip_prefix('[')
            .and_then(|k| k.strip_suffix(']'))
            .unwrap_or(&key)
            .to_string();
        let found = self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        std::future::ready(match found {
            Some(addrs) => Ok(addrs.into_iter()),
            None => Err(std::io::Error::other(format!(
                "{key} was not checked by the egress policy"
            ))),
        })
    }
}

/// What a call learned from its outbound requests, and what it may still
/// send and read.
#[derive(Debug, Default)]
pub struct Signals {
    /// Set when the connection's rate limit refused a request: how long to wait.
    pub rate_limited: Mutex<Option<Duration>>,
    /// Set when the egress policy refused a request: the refusal and the
    /// setting that would allow it.
    pub egress_denied: Mutex<Option<(String, &'static str)>>,
    /// The call's outbound requests and response bytes left.
    pub budget: OutboundBudget,
    /// The quotas that refused something in this call.
    pub refusals: Refusals,
}

/// The outbound side of one call.
#[derive(Clone, Default)]
pub struct Outbound {
    /// The connection's network; `None`: this call has no network.
    pub net: Option<Arc<Net>>,
    /// For refusal logs.
    pub plugin: Arc<str>,
    /// For refusal logs.
    pub connection: Arc<str>,
    /// The call's deadline; no request outlives it.
    pub deadline: Option<Instant>,
    /// Shared with the runtime, which reads it when the call ends.
    pub signals: Arc<Signals>,
    /// The call's trace, for the `traceparent` of requests when their span
    /// has no context of its own (traces are not exported).
    pub trace: Option<TraceContext>,
    /// Where the requests are counted; `None`: nowhere.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Outbound {
    fn remaining(&self) -> Duration {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::MAX)
    }

    fn note_reflected(&self, target: &str) {
        tracing::warn!(
            plugin = %self.plugin,
            connection = %self.connection,
            target = %target,
            "the response echoed the connection's credentials; the host masked them"
        );
    }

    fn refuse(&self, target: &str, reason: &dyn std::fmt::Display) {
        tracing::warn!(
            plugin = %self.plugin,
            connection = %self.connection,
            target = %target,
            reason = %reason,
            "outbound request refused"
        );
    }

    /// [`exchange`](Self::exchange), counted in the metrics.
    async fn send(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let Some(metrics) = self.metrics.clone() else {
            return self.exchange(request, options).await;
        };
        let connection = self.connection.clone();
        let host = request.uri().host().unwrap_or_default().to_string();
        let result = self.exchange(request, options).await;
        metrics.record_outbound(&connection, &host, outbound_status(&result));
        result
    }

    async fn exchange(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let (host, port) = host_and_port(request.uri());
        let target = format!("{host}:{port}");
        let Some(net) = self.net.clone() else {
            self.refuse(&target, &"this call has no network access");
            return Err(HttpError::HttpRequestDenied);
        };
        if !self.signals.budget.take_request() {
            self.signals.refusals.note(Quota::OutboundRequests);
            self.refuse(
                &target,
                &"the call has sent its quota of requests (`[limits] outbound_requests`)",
            );
            return Err(HttpError::InternalError(Some(
                "this call has sent as many requests as `[limits] outbound_requests` allows".into(),
            )));
        }
        if let Err(denied) = net.admit(&host, port, true).await {
            self.refuse(&target, &denied);
            if let Some(fix) = denied.fix() {
                *self
                    .signals
                    .egress_denied
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some((denied.to_string(), fix));
            }
            return Err(match denied {
                EgressDenied::NonPublicAddress { .. } => HttpError::DestinationIpProhibited,
                EgressDenied::Unresolvable { .. } => HttpError::DnsError {
                    rcode: Some("NXDOMAIN".into()),
                    info_code: None,
                },
                _ => HttpError::HttpRequestDenied,
            });
        }
        let waited = match &net.rate {
            Some(rate) => rate.acquire(self.remaining()).await,
            None => Ok(Duration::ZERO),
        };
        if let (Ok(waited), Some(m)) = (&waited, &self.metrics)
            && !waited.is_zero()
        {
            m.record_rate_wait(&self.connection, *waited);
        }
        if let Err(retry_after) = waited {
            self.refuse(
                &target,
                &format_args!("rate limit; retry after {retry_after:?}"),
            );
            *self
                .signals
                .rate_limited
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(retry_after);
            return Err(HttpError::ConnectionLimitReached);
        }
        let options = options.unwrap_or(RequestOptions {
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
        });
        let first_byte = options
            .first_byte_timeout
            .unwrap_or(FIRST_BYTE_TIMEOUT)
            .min(self.remaining());
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(BETWEEN_BYTES_TIMEOUT);

        let (mut parts, body) = request.into_parts();
        // Credentials only for the connection's credential hosts.
        let credentialed = net.credentials.go_to(&host, port);
        if credentialed {
            for (name, value) in &net.credentials.inject {
                parts.headers.insert(name.clone(), value.clone());
            }
        }
        // The host's trace context, whatever the plugin put there.
        let trace = TraceContext::of_or(&tracing::Span::current(), self.trace.as_ref());
        if let Ok(value) = HeaderValue::from_str(&trace.traceparent()) {
            parts.headers.insert(TRACEPARENT, value);
        }
        let oauth = net.credentials.oauth.as_ref().filter(|_| credentialed);
        let (mut response, token) = match oauth {
            None => (
                net.send(http::Request::from_parts(parts, body), first_byte)
                    .await?,
                None,
            ),
            Some(oauth) => {
                // Buffer the body so the request can be sent again with a
                // fresh token if the system says the cached one is stale.
                let body = http_body_util::Limited::new(body, REPLAY_BODY_BYTES)
                    .collect()
                    .await
                    .map_err(|_| HttpError::HttpRequestBodySize(Some(REPLAY_BODY_BYTES as u64)))?
                    .to_bytes();
                let token = oauth
                    .bearer(&TokenHttp(net.clone()), None)
                    .await
                    .map_err(|e| {
                        self.refuse(&target, &e);
                        HttpError::InternalError(Some(e.to_string()))
                    })?;
                let response = net.send(rebuild(&parts, &body, &token), first_byte).await?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    let fresh = oauth
                        .bearer(&TokenHttp(net.clone()), Some(&token))
                        .await
                        .map_err(|e| {
                            self.refuse(&target, &e);
                            HttpError::InternalError(Some(e.to_string()))
                        })?;
                    let response = net
                        .send(
                            rebuild(&parts, &body, &fresh),
                            first_byte.min(self.remaining()),
                        )
                        .await?;
                    (response, Some(fresh))
                } else {
                    (response, Some(token))
                }
            }
        };
        if let Some(rate) = &net.rate {
            rate.observe(response.status(), response.headers());
        }
        // An upstream that echoes the credentials back does not hand them to the guest.
        let mask = net.credentials.mask_for(token.as_ref());
        if mask.apply_headers(response.headers_mut()) > 0 {
            self.note_reflected(&target);
        }
        let cap = net.response_bytes;
        let outbound = self.clone();
        Ok(response.map(|incoming| {
            CappedBody {
                inner: incoming,
                seen: 0,
                cap,
                held: bytes::BytesMut::new(),
                trailers: None,
                target: if mask.is_empty() {
                    String::new()
                } else {
                    target.clone()
                },
                mask,
                outbound,
                between_bytes,
                timer: Box::pin(tokio::time::sleep(between_bytes)),
            }
            .boxed_unsync()
        }))
    }
}

/// The status label of an outbound request's result.
fn outbound_status<T>(result: &Result<http::Response<T>, HttpError>) -> crate::metrics::HttpStatus {
    use crate::metrics::HttpStatus;
    match result {
        Ok(response) => HttpStatus::Code(response.status().as_u16()),
        Err(
            HttpError::HttpRequestDenied
            | HttpError::DestinationIpProhibited
            | HttpError::ConnectionLimitReached,
        ) => HttpStatus::Refused,
        Err(_) => HttpStatus::Error,
    }
}

/// The request of `parts` and `body` again, with `token` as its credentials.
fn rebuild(
    parts: &http::request::Parts,
    body: &Bytes,
    token: &HeaderValue,
) -> http::Request<WasiBody> {
    let mut request = http::Request::new(full(body.clone()));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, token.clone());
    request
}

/// A buffered body as a [`WasiBody`].
pub(crate) fn full(bytes: Bytes) -> WasiBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        drop(fut);
        let outbound = self.clone();
        let span = request_span(&request);
        Box::new(async move {
            let response = outbound
                .send(request, options)
                .instrument(span.clone())
                .await;
            record_response(&span, &response);
            let response = response?;
            // The pooled client drives the connection itself.
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(std::future::ready(Ok(())));
            Ok((response, io))
        })
    }
}

/// The span of one outbound request (a child of the plugin call's span).
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let method = request.method().as_str();
    tracing::info_span!(
        "http.client",
        otel.name = %method,
        otel.kind = "client",
        http.request.method = %method,
        server.address = %request.uri().host().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
        http.retry_after = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Records the status and `Retry-After` of a response (or why there is none).
fn record_response<B>(span: &tracing::Span, response: &Result<http::Response<B>, HttpError>) {
    match response {
        Ok(response) => {
            span.record("http.response.status_code", response.status().as_u16());
            if let Some(retry) = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
            {
                span.record("http.retry_after", retry);
            }
        }
        Err(e) => {
            span.record("error.type", tracing::field::debug(e));
        }
    }
}

/// A response body that fails once it passes `cap` bytes or when no bytes
/// arrive for `between_bytes`.
struct CappedBody {
    inner: hyper::body::Incoming,
    seen: u64,
    cap: u64,
    /// The end of what was read, held back until the next chunk shows
    /// whether a credential continues across the boundary.
    held: bytes::BytesMut,
    /// Trailers that arrived while `held` still had bytes to give.
    trailers: Option<Frame<Bytes>>,
    mask: Mask,
    /// The call and `host:port`, for the warning when a credential is masked.
    outbound: Outbound,
    target: String,
    between_bytes: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl CappedBody {
    /// Counts `len` more bytes read against the response's cap and the call's budget.
    fn count(&mut self, len: u64) -> Result<(), HttpError> {
        self.seen = self.seen.saturating_add(len);
        if self.seen > self.cap {
            return Err(HttpError::HttpResponseBodySize(Some(self.seen)));
        }
        let signals = &self.outbound.signals;
        if !signals.budget.take_bytes(len) {
            signals.refusals.note(Quota::ResponseBytes);
            return Err(HttpError::HttpResponseBodySize(Some(self.seen)));
        }
        Ok(())
    }

    /// `data` with the credentials masked, keeping back the bytes that may
    /// be the start of one split across chunks.
    fn masked(&mut self, data: &[u8]) -> Bytes {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        if self.mask.apply(&mut buf) > 0 {
            self.outbound.note_reflected(&self.target);
        }
        let keep = self.mask.overlap().min(buf.len());
        let out = buf.split_to(buf.len() - keep);
        self.held = buf;
        out.freeze()
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.timer.as_mut().reset(next);
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if let Err(e) = self.count(data.len() as u64) {
                            return Poll::Ready(Some(Err(e)));
                        }
                        if self.mask.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Frame::data(self.masked(&data))
                    }
                    // Trailers come after what is held back.
                    Err(trailers) if !self.held.is_empty() => {
                        self.trailers = Some(trailers);
                        Frame::data(std::mem::take(&mut self.held).freeze())
                    }
                    Err(trailers) => trailers,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) if !self.held.is_empty() => Poll::Ready(Some(Ok(Frame::data(
                std::mem::take(&mut self.held).freeze(),
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() && self.held.is_empty() && self.trailers.is_none()
    }
}

/// Normalises an allowlist entry: lower case, no scheme, no path.
pub fn normalize_host_entry(entry: &str) -> Result<String, String> {
    let trimmed = entry.trim().to_ascii_lowercase();
    super::egress::HostPattern::parse(&trimmed).map_err(|e| e.to_string())?;
    if trimmed.contains('/') || trimmed.contains('@') {
        return Err(format!("`{entry}` is not a host or host:port"));
    }
    Ok(trimmed)
}

/// The `oauth2` crate's HTTP client: the connection's pool.
pub(crate) struct TokenHttp(pub(crate) Arc<Net>);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, std::io::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send_token_request(&self.0, request))
    }
}

/// The host of `uri` and its port (the scheme's default when it names none).
fn host_and_port(uri: &http::Uri) -> (String, u16) {
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    (
        uri.host().unwrap_or_default().to_string(),
        uri.port_u16().unwrap_or(default),
    )
}

/// Sends a token request through the connection's pool. The token endpoint
/// is the operator's choice, so it needs no allowlist entry, but it is held
/// to the non-public address rule like everything else.
async fn send_token_request(
    net: &Net,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let io = |m: String| std::io::Error::other(m);
    let (host, port) = host_and_port(request.uri());
    net.admit(&host, port, false)
        .await
        .map_err(|e| io(e.to_string()))?;
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, full(Bytes::from(body)));
    let response = net
        .send(request, TOKEN_TIMEOUT)
        .await
        .map_err(|e| io(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(
        TOKEN_TIMEOUT,
        http_body_util::Limited::new(body, TOKEN_RESPONSE_BYTES).collect(),
    )
    .await
    .map_err(|_| io("the token response timed out".into()))?
    .map_err(|e| io(format!("reading the token response: {e}")))?
    .to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

#[cfg(test)]
mod tests;
