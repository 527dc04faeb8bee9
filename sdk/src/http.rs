//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! The host decides which hosts a connection may reach and adds the
//! connection's credentials itself, so requests carry no secrets:
//!
//! ```no_run
//! # use junction_sdk::{http, Result};
//! # #[derive(serde::Deserialize)] struct Issue { key: String }
//! # fn example() -> Result<()> {
//! let response = http::Request::post("https://acme.atlassian.net/rest/api/3/issue")
//!     .header("Accept", "application/json")
//!     .json(&serde_json::json!({ "fields": { "summary": "Kickoff" } }))?
//!     .send()?;
//! let issue: Issue = response.ok()?.json()?;
//! # Ok(()) }
//! ```
//!
//! [`Request::send`] fails only when no response arrived: a refused or
//! unreachable host. Any status, 4xx and 5xx included, is a [`Response`];
//! [`Response::ok`] turns the usual error statuses into [`Error`] cases.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `HEAD`
    Head,
}

/// An outbound request, built then [sent](Request::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header (name, value) pairs, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes; empty for none.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Adds a header; earlier headers of the same name are kept.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body to raw bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self> {
        self.body = serde_json::to_vec(value)
            .map_err(|e| Error::Internal(format!("serializing the request body: {e}")))?;
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("content-type".into(), "application/json".into()));
        Ok(self)
    }

    /// Sends the request and reads the whole response.
    ///
    /// Fails when no response arrived: [`Error::Internal`] when the host
    /// refuses the destination (not on the allowlist or not granted),
    /// [`Error::Unavailable`] when it cannot be reached, [`Error::InvalidInput`]
    /// when the URL or headers are malformed.
    pub fn send(self) -> Result<Response> {
        let url = Url::parse(&self.url)?;
        if cfg!(target_arch = "wasm32") {
            transport::send(&self, &url)
        } else {
            Err(Error::Unavailable(format!(
                "request to {}: outbound HTTP is only available inside a Junction host",
                url.host()
            )))
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs as received.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, `headers` and `body`, e.g. to unit-test how
    /// a connector maps its system's answers.
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text; invalid UTF-8 is replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON. A body that is not the expected JSON is
    /// [`Error::Internal`]: the remote system broke its contract, not the caller.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Internal(format!(
                "response body (status {}) is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// `Retry-After` in milliseconds, when it is a number of seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        let seconds: f64 = self.header("retry-after")?.trim().parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
    }

    /// The response itself for a 2xx status; otherwise the usual mapping:
    /// 400/422 invalid input, 401/403 unauthorized, 404 not found, 409
    /// conflict, 429 rate limited (after `Retry-After`, 1 s when absent), 5xx
    /// unavailable, anything else internal. The message carries the status
    /// and the start of the body.
    pub fn ok(self) -> Result<Self> {
        if self.is_success() {
            return Ok(self);
        }
        let mut text = self.text();
        if text.len() > 500 {
            let mut end = 500;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        let message = format!("status {}: {text}", self.status);
        Err(match self.status {
            400 | 422 => Error::InvalidInput(message),
            401 | 403 => Error::Unauthorized(message),
            404 => Error::NotFound(message),
            409 => Error::Conflict(message),
            429 => Error::RateLimited {
                retry_after_ms: self.retry_after_ms().unwrap_or(1000),
            },
            500..=599 => Error::Unavailable(message),
            _ => Error::Internal(message),
        })
    }
}

/// `text` percent-encoded for use as one path segment or one query value:
/// every byte but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// becomes `%XX`, so `/`, `?`, `&`, `=`, `+`, `#` and spaces cannot change
/// what the URL addresses.
///
/// ```
/// use junction_sdk::http::encode_component;
/// assert_eq!(encode_component("SELECT Id FROM Account"), "SELECT%20Id%20FROM%20Account");
/// assert_eq!(encode_component("a/b?c=d&e"), "a%2Fb%3Fc%3Dd%26e");
/// ```
pub fn encode_component(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The parts of an absolute URL that `wasi:http` wants separately.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidInput(format!("invalid URL `{url}`: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("it is not absolute"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("only http and https are supported")),
        };
        // The fragment never goes on the wire.
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in URLs are not allowed; the host adds them",
            ));
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }

    /// The host without the port, for messages.
    fn host(&self) -> &str {
        if self.authority.starts_with('[') {
            return self
                .authority
                .split_inclusive(']')
                .next()
                .unwrap_or(&self.authority);
        }
        self.authority.split(':').next().unwrap_or(&self.authority)
    }
}

mod transport {
    use super::{Method, Request, Response, Url};
    use crate::wit::connector::wasi::http::outgoing_handler;
    use crate::wit::connector::wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
        Scheme, http_error_code,
    };
    use crate::wit::connector::wasi::io::streams::StreamError;
    use crate::{Error, Result};

    /// `blocking-write-and-flush` accepts at most this many bytes per call.
    const WRITE_CHUNK: usize = 4096;
    const READ_CHUNK: u64 = 64 * 1024;

    pub(super) fn send(request: &Request, url: &Url) -> Result<Response> {
        let host = url.host();
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect();
        let headers = Fields::from_list(&entries).map_err(|e| {
            Error::InvalidInput(format!("request to {host} has an invalid header: {e:?}"))
        })?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
            Method::Head => WasiMethod::Head,
        };
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let malformed =
            |what: &str| Error::InvalidInput(format!("request to {host}: invalid {what}"));
        outgoing
            .set_method(&method)
            .map_err(|()| malformed("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| malformed("scheme"))?;
        outgoing
            .set_authority(Some(&url.authority))
            .map_err(|()| malformed("authority"))?;
        outgoing
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| malformed("path"))?;
        let body = outgoing
            .body()
            .map_err(|()| Error::Internal("request body taken twice".into()))?;

        // Sending before writing the body lets a body larger than the host's
        // write buffer stream out instead of waiting for a reader.
        let future =
            outgoing_handler::handle(outgoing, None).map_err(|c| transport_error(&c, host))?;
        let write_failed = write_body(body, &request.body, host).err();

        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => return Err(transport_error(&code, host)),
            Err(()) => return Err(Error::Internal("response taken twice".into())),
        };
        if let Some(error) = write_failed {
            return Err(error);
        }

        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::Internal("response body taken twice".into()))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| Error::Internal("response body stream taken twice".into()))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e, host, "reading the response body from")),
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }

    /// Writes and finishes the body, or drops it unfinished on failure so
    /// the host abandons the request instead of waiting for more bytes.
    fn write_body(body: OutgoingBody, bytes: &[u8], host: &str) -> Result<()> {
        if !bytes.is_empty() {
            let stream = body
                .write()
                .map_err(|()| Error::Internal("request body stream taken twice".into()))?;
            for chunk in bytes.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| stream_error(e, host, "writing the request body to"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|code| transport_error(&code, host))
    }

    fn stream_error(error: StreamError, host: &str, doing: &str) -> Error {
        match error {
            StreamError::Closed => Error::Unavailable(format!("{doing} {host}: the stream closed")),
            StreamError::LastOperationFailed(e) => match http_error_code(&e) {
                Some(code) => transport_error(&code, host),
                None => Error::Unavailable(format!("{doing} {host}: {}", e.to_debug_string())),
            },
        }
    }

    /// Maps a `wasi:http` error code to the case that tells the host what to
    /// do next.
    pub(super) fn transport_error(code: &ErrorCode, host: &str) -> Error {
        use ErrorCode as C;
        match code {
            C::HttpRequestDenied => Error::Internal(format!(
                "outbound request to {host} denied by the host: the host is not on this plugin's \
                 allowlist or not granted to the connection"
            )),
            C::DestinationIpProhibited => Error::Internal(format!(
                "outbound request to {host} denied by the host: its address is not allowed"
            )),
            C::HttpResponseBodySize(_) => Error::Internal(format!(
                "response from {host} is larger than the host allows"
            )),
            C::HttpRequestLengthRequired
            | C::HttpRequestBodySize(_)
            | C::HttpRequestMethodInvalid
            | C::HttpRequestUriInvalid
            | C::HttpRequestUriTooLong
            | C::HttpRequestHeaderSectionSize(_)
            | C::HttpRequestHeaderSize(_)
            | C::HttpRequestTrailerSectionSize(_)
            | C::HttpRequestTrailerSize(_) => {
                Error::InvalidInput(format!("request to {host} is malformed: {code:?}"))
            }
            C::LoopDetected | C::ConfigurationError | C::InternalError(_) => {
                Error::Internal(format!("request to {host} failed: {code:?}"))
            }
            _ => Error::Unavailable(format!("request to {host} failed: {code:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
