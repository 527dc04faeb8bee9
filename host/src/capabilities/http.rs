//! Outbound `wasi:http`: every request a plugin sends passes through
//! [`Outbound`], which refuses hosts the connection does not allow and adds
//! the connection's credentials, so they never enter guest memory.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// Per-request timeouts used when the plugin sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The outbound policy of one call.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// `host` (any port) or `host:port` entries, lower case. Empty: nothing allowed.
    pub allowed_hosts: Vec<String>,
    /// Headers the host adds to every allowed request (credentials), marked sensitive.
    pub inject: Vec<(HeaderName, HeaderValue)>,
    /// For refusal logs.
    pub plugin: String,
    /// For refusal logs.
    pub connection: String,
}

impl Outbound {
    /// Whether `host` (and `port`, the scheme's default when absent) is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        self.allowed_hosts
            .iter()
            .any(|entry| *entry == host || *entry == with_port)
    }
}

/// Normalises an allowlist entry: lower case, no scheme, no path.
pub fn normalize_host_entry(entry: &str) -> Result<String, String> {
    let trimmed = entry.trim().to_ascii_lowercase();
    let uri: http::Uri = format!("http://{trimmed}/")
        .parse()
        .map_err(|_| format!("`{entry}` is not a host or host:port"))?;
    let authority = uri
        .authority()
        .filter(|a| a.as_str() == trimmed && !trimmed.contains('@'))
        .ok_or_else(|| format!("`{entry}` is not a host or host:port"))?;
    Ok(authority.as_str().to_string())
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let port = uri.port_u16().unwrap_or(default_port);
        if !self.allows(&host, port) {
            tracing::warn!(
                plugin = %self.plugin,
                connection = %self.connection,
                target = %format!("{host}:{port}"),
                "outbound request refused: host not on the connection's allowlist"
            );
            return Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) });
        }
        for (name, value) in &self.inject {
            let mut value = value.clone();
            value.set_sensitive(true);
            request.headers_mut().insert(name.clone(), value);
        }
        let options = options.unwrap_or(RequestOptions {
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
        });
        let options = RequestOptions {
            connect_timeout: options.connect_timeout.or(Some(CONNECT_TIMEOUT)),
            first_byte_timeout: options.first_byte_timeout.or(Some(FIRST_BYTE_TIMEOUT)),
            between_bytes_timeout: options
                .between_bytes_timeout
                .or(Some(BETWEEN_BYTES_TIMEOUT)),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_host_or_host_and_port() {
        let outbound = Outbound {
            allowed_hosts: vec!["api.example.com".into(), "127.0.0.1:8080".into()],
            ..Outbound::default()
        };
        assert!(outbound.allows("API.example.com", 443));
        assert!(outbound.allows("api.example.com.", 80));
        assert!(outbound.allows("127.0.0.1", 8080));
        assert!(!outbound.allows("127.0.0.1", 8081));
        assert!(!outbound.allows("evil.example.com", 443));
        assert!(!outbound.allows("example.com", 443));
    }

    #[test]
    fn entries_are_normalised_or_refused() {
        assert_eq!(
            normalize_host_entry(" Example.COM ").unwrap(),
            "example.com"
        );
        assert_eq!(normalize_host_entry("127.0.0.1:9").unwrap(), "127.0.0.1:9");
        assert!(normalize_host_entry("https://example.com/x").is_err());
        assert!(normalize_host_entry("user@example.com").is_err());
        assert!(normalize_host_entry("").is_err());
    }
}
