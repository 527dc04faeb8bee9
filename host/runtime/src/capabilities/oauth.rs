//! OAuth 2.0 access tokens for a connection, fetched by the host (RFC 6749
//! client-credentials and refresh-token grants through the `oauth2` crate),
//! cached until they expire and fetched again when the system answers 401.
//! The plugin never sees a token: the host adds it to each request.

use std::time::{Duration, Instant};

use http::HeaderValue;
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, RefreshToken, Scope, TokenResponse, TokenUrl};

use junction_store::Auth;

/// Tokens are refreshed this long before the expiry the server gave.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Largest token response the host reads.
pub(crate) const TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// A token request's time limit.
pub(crate) const TOKEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Why no token could be had. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The connection's OAuth settings are unusable.
    #[error("OAuth settings: {0}")]
    Settings(String),
    /// The token endpoint refused or failed.
    #[error("OAuth token request to {endpoint} failed: {reason}")]
    Token {
        /// The token URL.
        endpoint: String,
        /// What went wrong (the server's `error` code when it sent one).
        reason: String,
    },
}

enum Grant {
    ClientCredentials,
    Refresh(String),
}

struct Cached {
    header: HeaderValue,
    expires: Option<Instant>,
}

/// One connection's token source.
pub struct TokenSource {
    token_url: TokenUrl,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    grant: Grant,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    /// A source for `auth`, or `None` when it is not an OAuth grant.
    pub fn from_auth(auth: &Auth) -> Result<Option<TokenSource>, OAuthError> {
        let (token_url, client_id, client_secret, scope, grant) = match auth {
            Auth::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => (
                token_url,
                client_id,
                client_secret,
                scope,
                Grant::ClientCredentials,
            ),
            Auth::OAuth2RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scope,
            } => (
                token_url,
                client_id,
                client_secret,
                scope,
                Grant::Refresh(refresh_token.clone()),
            ),
            _ => return Ok(None),
        };
        let parsed = url::Url::parse(token_url)
            .map_err(|e| OAuthError::Settings(format!("token_url `{token_url}`: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(OAuthError::Settings(format!(
                "token_url `{token_url}` must be an http(s) URL with a host"
            )));
        }
        Ok(Some(TokenSource {
            token_url: TokenUrl::new(token_url.clone())
                .map_err(|e| OAuthError::Settings(format!("token_url: {e}")))?,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            scopes: scope
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            grant,
            cached: tokio::sync::Mutex::new(None),
        }))
    }

    /// The `Authorization` header to send. `stale` is a header the system
    /// just refused with 401: a new token is fetched unless another call
    /// already replaced it.
    /// Token requests go through `http`, the connection's own client.
    pub async fn bearer<C>(
        &self,
        http: &C,
        stale: Option<&HeaderValue>,
    ) -> Result<HeaderValue, OAuthError>
    where
        C: for<'c> oauth2::AsyncHttpClient<'c>,
    {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c.expires.is_none_or(|e| Instant::now() < e);
            let refused = stale.is_some_and(|s| *s == c.header);
            if fresh && !refused {
                return Ok(c.header.clone());
            }
        }
        let (header, expires_in) = self.fetch(http).await?;
        let expires = expires_in.map(|d| Instant::now() + d.saturating_sub(EXPIRY_MARGIN));
        *cached = Some(Cached {
            header: header.clone(),
            expires,
        });
        Ok(header)
    }

    async fn fetch<C>(&self, http: &C) -> Result<(HeaderValue, Option<Duration>), OAuthError>
    where
        C: for<'c> oauth2::AsyncHttpClient<'c>,
    {
        let endpoint = self.token_url.as_str().to_string();
        let failed = |reason: String| OAuthError::Token {
            endpoint: endpoint.clone(),
            reason,
        };
        // The auth URL is unused by these grants; the crate's typestate wants one.
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_uri(AuthUrl::new(endpoint.clone()).map_err(|e| failed(e.to_string()))?)
            .set_token_uri(self.token_url.clone());
        let scopes = self.scopes.iter().cloned().map(Scope::new);
        let response = match &self.grant {
            Grant::ClientCredentials => {
                client
                    .exchange_client_credentials()
                    .add_scopes(scopes)
                    .request_async(http)
                    .await
            }
            Grant::Refresh(token) => {
                let token = RefreshToken::new(token.clone());
                client
                    .exchange_refresh_token(&token)
                    .add_scopes(scopes)
                    .request_async(http)
                    .await
            }
        }
        .map_err(|e| failed(describe(&e)))?;
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", response.access_token().secret()))
                .map_err(|_| failed("the access token is not a valid header value".into()))?;
        header.set_sensitive(true);
        Ok((header, response.expires_in()))
    }
}

fn describe<RE: std::error::Error + 'static>(
    e: &oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> String {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!("server said `{}`", r.error()),
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable token response: {e}"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}
