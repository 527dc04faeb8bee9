//! Where a connection's credentials go, and what of them an upstream may
//! echo back: the host adds them only to requests for the connection's
//! credential hosts, and replaces every copy of them in a response (headers
//! and body) before the guest reads it.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::egress::HostPattern;
use super::oauth::TokenSource;

/// Secrets shorter than this are only masked as the whole header value: a
/// three-letter password would otherwise blank out ordinary text.
const MIN_PART_BYTES: usize = 8;

/// The byte that replaces each byte of a reflected secret (the length stays,
/// so `Content-Length` stays true).
const MASK: u8 = b'*';

/// A connection's credentials as its outbound requests use them.
#[derive(Default)]
pub struct Credentials {
    /// Headers the host adds (static credentials).
    pub(crate) inject: Vec<(HeaderName, HeaderValue)>,
    /// Where OAuth access tokens come from.
    pub(crate) oauth: Option<TokenSource>,
    /// The hosts that receive them.
    hosts: Vec<HostPattern>,
    /// What is masked in responses (longest first).
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials sent only to `hosts`; `secrets` are the raw values behind
    /// `inject` (a token, a password) that are masked besides the headers.
    pub fn new(
        inject: Vec<(HeaderName, HeaderValue)>,
        oauth: Option<TokenSource>,
        hosts: Vec<HostPattern>,
        secrets: Vec<String>,
    ) -> Credentials {
        let mut all: Vec<Vec<u8>> = inject.iter().map(|(_, v)| v.as_bytes().to_vec()).collect();
        all.extend(
            secrets
                .into_iter()
                .filter(|s| s.len() >= MIN_PART_BYTES)
                .map(String::into_bytes),
        );
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Credentials {
            inject,
            oauth,
            hosts,
            secrets: all,
        }
    }

    /// Whether a request to `host:port` carries the credentials.
    pub(crate) fn go_to(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|p| p.matches(host, port))
    }

    /// The secrets to mask in a response, with `token` (an OAuth access
    /// token sent on this request) among them.
    pub(crate) fn mask_for(&self, token: Option<&HeaderValue>) -> Mask {
        let mut secrets = self.secrets.clone();
        if let Some(token) = token {
            let value = token.as_bytes();
            secrets.push(value.to_vec());
            if let Some(bare) = value.strip_prefix(b"Bearer ")
                && bare.len() >= MIN_PART_BYTES
            {
                secrets.push(bare.to_vec());
            }
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        Mask { secrets }
    }
}

/// Replaces the secrets of one response.
#[derive(Debug, Default, Clone)]
pub(crate) struct Mask {
    secrets: Vec<Vec<u8>>,
}

impl Mask {
    /// Whether there is nothing to mask.
    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Bytes of a body to hold back between chunks, so a secret split across
    /// two chunks is still found.
    pub(crate) fn overlap(&self) -> usize {
        self.secrets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .saturating_sub(1)
    }

    /// Masks every secret in `bytes`, in place; returns how many it masked.
    pub(crate) fn apply(&self, bytes: &mut [u8]) -> usize {
        let mut found = 0;
        for secret in &self.secrets {
            let mut at = 0;
            while let Some(pos) = find(&bytes[at..], secret) {
                let start = at + pos;
                bytes[start..start + secret.len()].fill(MASK);
                at = start + secret.len();
                found += 1;
            }
        }
        found
    }

    /// Masks the secrets in every header value; returns how many it masked.
    pub(crate) fn apply_headers(&self, headers: &mut HeaderMap) -> usize {
        let mut found = 0;
        for value in headers.values_mut() {
            let mut bytes = value.as_bytes().to_vec();
            let n = self.apply(&mut bytes);
            if n > 0 {
                found += n;
                // Masked bytes are visible ASCII: the value stays valid.
                if let Ok(masked) = HeaderValue::from_bytes(&bytes) {
                    *value = masked;
                }
            }
        }
        found
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        let value = HeaderValue::from_static("Bearer s3cret-token-value");
        Credentials::new(
            vec![(http::header::AUTHORIZATION, value)],
            None,
            vec![HostPattern::parse("api.example.com").unwrap()],
            vec!["s3cret-token-value".into(), "short".into()],
        )
    }

    #[test]
    fn only_the_credential_hosts_get_them() {
        let c = credentials();
        assert!(c.go_to("api.example.com", 443));
        assert!(c.go_to("API.example.com", 8443));
        assert!(!c.go_to("cdn.example.com", 443));
        assert!(!c.go_to("example.com", 443));
    }

    #[test]
    fn reflected_secrets_are_masked_in_headers_and_bodies() {
        let mask = credentials().mask_for(None);
        let mut body = b"{\"auth\":\"Bearer s3cret-token-value\",\"raw\":\"s3cret-token-value\",\"short\":\"short\"}".to_vec();
        assert_eq!(mask.apply(&mut body), 2);
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("\"short\":\"short\""), "{text}");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-echo",
            HeaderValue::from_static("token=s3cret-token-value"),
        );
        assert_eq!(mask.apply_headers(&mut headers), 1);
        assert_eq!(headers["x-echo"], "token=******************");
        assert_eq!(mask.overlap(), "Bearer s3cret-token-value".len() - 1);
    }

    #[test]
    fn an_oauth_token_is_masked_too() {
        let c = Credentials::new(Vec::new(), None, Vec::new(), Vec::new());
        assert!(c.mask_for(None).is_empty());
        let token = HeaderValue::from_static("Bearer access-token-123");
        let mask = c.mask_for(Some(&token));
        let mut body = b"echo: access-token-123".to_vec();
        assert_eq!(mask.apply(&mut body), 1);
        assert_eq!(body, b"echo: ****************");
    }
}
