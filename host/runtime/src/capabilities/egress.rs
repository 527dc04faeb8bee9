//! The egress address policy for a plugin's outbound HTTP.
//!
//! Two rules, both of which must pass:
//! 1. the host (and port) is on the allowlist ([`HostPattern`]s: the hosts the
//!    plugin declares and the operator grants);
//! 2. every address the host resolves to is public, unless the operator
//!    granted the host access to non-public addresses (`granted_private`).
//!    Loopback, private, link-local (including the cloud metadata endpoint
//!    169.254.169.254), unique-local, CGNAT, multicast and reserved ranges are
//!    all non-public, whether written as IPv4, IPv6 or IPv4 inside IPv6.
//!
//! [`EgressPolicy::resolve_checked`] returns the addresses it checked, and the
//! caller connects to exactly those: resolving again at connect time would
//! let a hostile DNS server answer "public" to the check and "127.0.0.1" to
//! the connect (DNS rebinding).
//!
//! ```
//! use junction_runtime::capabilities::egress::{AddressClass, EgressPolicy, classify};
//!
//! assert_eq!(classify("::ffff:127.0.0.1".parse().unwrap()), AddressClass::Loopback);
//! let policy = EgressPolicy::new(["*.atlassian.net", "api.hubapi.com:443"], [] as [&str; 0]).unwrap();
//! assert!(policy.check_host("acme.atlassian.net", 443).is_ok());
//! assert!(policy.check_host("atlassian.net", 443).is_err());
//! assert!(policy.check_host("api.hubapi.com", 8443).is_err());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What kind of address an IP is, for the egress policy. Only
/// [`Public`](Self::Public) is reachable without an explicit grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 site-local (fec0::/10)
    /// and local-use NAT64 (64:ff9b:1::/48).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT shared address space (RFC 6598).
    SharedAddressSpace,
    /// 169.254.0.0/16 (including the 169.254.169.254 metadata service),
    /// fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 0.0.0.0, :: (which connect to the local host on most systems).
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Everything else that is not global unicast: 0.0.0.0/8, 192.0.0.0/24,
    /// 198.18/15 (benchmarking), 192.88.99/24, 240/4, ::/96, 100::/64,
    /// 2001::/23 (incl. Teredo) and IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    /// Whether this class may be reached without a grant.
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "carrier-grade NAT",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// Classifies `ip`. IPv6 addresses that carry an IPv4 address a packet would
/// end up at (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are classified by that IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let table: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, Reserved),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let bits = u128::from(ip);
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return classify_v4(low_v4);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let [_, a, b, ..] = ip.segments();
        return classify_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)));
    }
    let table: &[([u16; 8], u32, AddressClass)] = &[
        // IPv4-compatible (deprecated) and IPv4-translated addresses.
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, Reserved),
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96, Reserved),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Private),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    ];
    if let Some((_, _, class)) = table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return *class;
    }
    // Only 2000::/3 is allocated for global unicast.
    if in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        Public
    } else {
        Reserved
    }
}

/// An allowlist pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// One host name or IP literal (normalized).
    Exact(String),
    /// `*.suffix`: any name with one or more labels before `.suffix`.
    Subdomains(String),
}

/// One allowlist entry: `api.example.com`, `api.example.com:8443`,
/// `*.atlassian.net`, `10.0.0.5`, `[fd00::1]:8080`.
///
/// Names compare case-insensitively and a trailing dot is ignored. Without a
/// port the pattern matches any port. `*.suffix` matches names with one or
/// more labels before the suffix (`a.suffix`, `a.b.suffix`) but never
/// `suffix` itself; the suffix needs at least two labels, so `*.com` is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses one pattern.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        let (host, port) = split_host_port(pattern.trim()).ok_or_else(|| err("bad port"))?;
        if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = normalize_name(suffix).ok_or_else(|| err("bad host name after `*.`"))?;
            if !suffix.contains('.') {
                return Err(err("a wildcard needs a suffix of at least two labels"));
            }
            return Ok(Self {
                host: HostMatch::Subdomains(suffix),
                port,
            });
        }
        let host = normalize_host(host).ok_or_else(|| err("bad host name"))?;
        Ok(Self {
            host: HostMatch::Exact(host),
            port,
        })
    }

    /// Whether `host:port` matches. `host` may be a name or an IP literal
    /// (IPv6 with or without brackets).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        match normalize_host(host) {
            Some(host) => self.matches_normalized(&host, port),
            None => false,
        }
    }

    /// Whether this is a `*.` pattern rather than one host.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host, HostMatch::Subdomains(_))
    }

    fn matches_normalized(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostMatch::Exact(exact) => exact == host,
            HostMatch::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|labels| !labels.is_empty() && host.parse::<IpAddr>().is_err()),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostMatch::Exact(h) => f.write_str(h)?,
            HostMatch::Subdomains(s) => write!(f, "*.{s}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Splits `host[:port]` / `[v6][:port]`; a bare IPv6 literal has no port.
/// `None` if the port is present but not a number.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match text.rsplit_once(':') {
        // More than one colon: an unbracketed IPv6 literal.
        Some((host, _)) if host.contains(':') => Some((text, None)),
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((text, None)),
    }
}

/// Lower-cases a DNS name and drops one trailing dot; `None` unless it is a
/// plausible name (non-empty labels of letters, digits, `-` and `_`).
fn normalize_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(name)
}

/// Normalizes a host as written in a URL or pattern: IP literals (IPv6 with
/// or without brackets) become their canonical text, names are lower-cased
/// without a trailing dot.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    normalize_name(host)
}

/// Why an outbound request was refused. Says which rule refused and the
/// target; safe to show to the plugin and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// The host is not a valid host name or IP literal.
    #[error("egress to {target} denied: not a valid host")]
    InvalidHost {
        /// The target as requested.
        target: String,
    },
    /// No allowlist entry matches the host and port.
    #[error("egress to {target} denied: host is not on the allowlist")]
    NotAllowed {
        /// `host:port`.
        target: String,
    },
    /// The connection allows the host but the plugin's manifest does not ask for it.
    #[error("egress to {target} denied: the plugin's manifest does not ask for this host")]
    NotDeclared {
        /// `host:port`.
        target: String,
    },
    /// The host resolved to a non-public address and has no grant for that.
    #[error(
        "egress to {target} denied: it resolves to {address}, a {class} address, and the host \
         is not granted access to non-public addresses"
    )]
    NonPublicAddress {
        /// `host:port`.
        target: String,
        /// The offending address.
        address: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// The host could not be resolved (or resolved to nothing).
    #[error("egress to {target} denied: cannot resolve host: {reason}")]
    Unresolvable {
        /// `host:port`.
        target: String,
        /// The resolver's error.
        reason: String,
    },
}

impl EgressDenied {
    /// What would allow the request, when a setting would: the policy's
    /// refusals name it; a host that does not resolve is no refusal of policy.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            EgressDenied::InvalidHost { .. } => {
                Some("the plugin asked for a malformed host; check the URL it was given")
            }
            EgressDenied::NotAllowed { .. } => Some(
                "add the host to the connection's `allowed_hosts` if this connection may reach it",
            ),
            EgressDenied::NotDeclared { .. } => Some(
                "the plugin's manifest must list the host in `capabilities.outbound_hosts`: \
                 that takes a new plugin version from its vendor",
            ),
            EgressDenied::NonPublicAddress { .. } => Some(
                "add the host to the connection's `private_hosts` to let it reach a non-public address",
            ),
            EgressDenied::Unresolvable { .. } => None,
        }
    }
}

/// The egress rules for one plugin on one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Hosts the plugin may call (the intersection of what it declares and
    /// what the operator grants is the caller's business).
    pub allowed_hosts: Vec<HostPattern>,
    /// Entries (`host` or `host:port`, same syntax as [`HostPattern`]) that
    /// may resolve to non-public addresses, e.g. `localhost:8080` for a
    /// stand-in or `erp.internal`. Entries that do not parse never match.
    /// A grant is an explicit operator decision about one endpoint, so an
    /// allowed host with a grant is reachable even when the manifest does not
    /// declare it (a connector pointed at an on-premises install or a
    /// stand-in); a grant alone allows nothing.
    pub granted_private: Vec<String>,
    /// What the plugin's manifest asks for; `None` for a component the
    /// operator loaded without a manifest (then the connection alone decides).
    pub declared: Option<Vec<HostPattern>>,
}

impl EgressPolicy {
    /// A policy from pattern strings; fails on the first allowlist or grant
    /// entry that does not parse.
    pub fn new<A, G>(allowed: A, granted_private: G) -> Result<Self, PatternError>
    where
        A: IntoIterator,
        A::Item: AsRef<str>,
        G: IntoIterator,
        G::Item: AsRef<str>,
    {
        let allowed_hosts = allowed
            .into_iter()
            .map(|p| HostPattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        let granted_private = granted_private
            .into_iter()
            .map(|g| {
                let g = g.as_ref();
                HostPattern::parse(g).map(|_| g.to_owned())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_hosts,
            granted_private,
            declared: None,
        })
    }

    /// Restricts the policy to what a manifest declares.
    pub fn declared<D>(mut self, declared: D) -> Result<Self, PatternError>
    where
        D: IntoIterator,
        D::Item: AsRef<str>,
    {
        self.declared = Some(
            declared
                .into_iter()
                .map(|p| HostPattern::parse(p.as_ref()))
                .collect::<Result<_, _>>()?,
        );
        Ok(self)
    }

    /// Checks the allowlist only (no DNS).
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), EgressDenied> {
        let normalized = normalize_host(host).ok_or_else(|| EgressDenied::InvalidHost {
            target: target(host, port),
        })?;
        if !self
            .allowed_hosts
            .iter()
            .any(|p| p.matches_normalized(&normalized, port))
        {
            return Err(EgressDenied::NotAllowed {
                target: target(&normalized, port),
            });
        }
        match &self.declared {
            Some(declared)
                if !declared
                    .iter()
                    .any(|p| p.matches_normalized(&normalized, port))
                    && !self.is_granted_private(&normalized, port) =>
            {
                Err(EgressDenied::NotDeclared {
                    target: target(&normalized, port),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the one host of `entry` (not a `*.` pattern) is on the
    /// allowlist, at its port or, without one, at a port the allowlist allows.
    pub fn allows_exact(&self, entry: &HostPattern) -> bool {
        let HostMatch::Exact(host) = &entry.host else {
            return false;
        };
        self.allowed_hosts
            .iter()
            .any(|p| p.matches_normalized(host, entry.port.or(p.port).unwrap_or(443)))
    }

    /// Whether `host:port` may reach non-public addresses.
    pub fn is_granted_private(&self, host: &str, port: u16) -> bool {
        let Some(host) = normalize_host(host) else {
            return false;
        };
        self.granted_private
            .iter()
            .filter_map(|g| HostPattern::parse(g).ok())
            .any(|p| p.matches_normalized(&host, port))
    }

    /// Checks the allowlist, resolves `host` (IP literals without DNS) and
    /// checks every address. Connect to the returned addresses and nothing
    /// else, so what was checked is what is reached.
    ///
    /// Refuses if ANY address is non-public and the host has no grant: a
    /// name that answers with one public and one internal address could
    /// otherwise be steered to the internal one.
    pub async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressDenied> {
        self.check_host(host, port)?;
        self.resolve(host, port).await
    }

    /// Resolves `host` and checks its addresses, without the allowlist: for
    /// endpoints the operator set (an OAuth token URL). Same address rule.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressDenied> {
        let normalized = normalize_host(host).ok_or_else(|| EgressDenied::InvalidHost {
            target: target(host, port),
        })?;
        let target = target(&normalized, port);
        let addrs: Vec<SocketAddr> = match normalized.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((normalized.as_str(), port))
                .await
                .map_err(|e| EgressDenied::Unresolvable {
                    target: target.clone(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(EgressDenied::Unresolvable {
                target,
                reason: "no addresses".into(),
            });
        }
        if self.is_granted_private(&normalized, port) {
            return Ok(addrs);
        }
        if let Some((address, class)) = addrs
            .iter()
            .map(|a| (a.ip(), classify(a.ip())))
            .find(|(_, class)| !class.is_public())
        {
            return Err(EgressDenied::NonPublicAddress {
                target,
                address,
                class,
            });
        }
        Ok(addrs)
    }
}

fn target(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests;
