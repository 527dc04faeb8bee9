//! A connection's outbound rate limit: a GCRA token bucket (`governor`)
//! from the connection's settings, paused at run time when the system says
//! so (`Retry-After` on 429/503, `X-RateLimit-Remaining: 0` with
//! `X-RateLimit-Reset`, Salesforce's `Sforce-Limit-Info` at its ceiling).
//! A request that would exceed it waits while the call's deadline allows,
//! else the call fails with `rate-limited` and how long to wait.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, StatusCode};

use junction_store::RateLimit;

/// The longest pause the host takes from a system's headers.
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// The pause after a 429 that gave no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The pause when Salesforce reports its API allocation used up (it is a
/// rolling 24-hour allocation; the host backs off and asks again).
const SALESFORCE_PAUSE: Duration = Duration::from_secs(60);

/// One connection's rate gate.
pub struct RateGate {
    limiter: Option<governor::DefaultDirectRateLimiter>,
    clock: DefaultClock,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RateGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateGate").finish_non_exhaustive()
    }
}

impl RateGate {
    /// A gate for `limit`; `None` only follows what the system's headers say.
    pub fn new(limit: Option<RateLimit>) -> RateGate {
        let limiter = limit.and_then(|l| {
            let requests = NonZeroU32::new(l.requests)?;
            let period = Duration::from_secs(u64::from(l.per_seconds.max(1)));
            let burst = NonZeroU32::new(l.burst.unwrap_or(l.requests)).unwrap_or(requests);
            let quota = Quota::with_period(period / requests.get())?.allow_burst(burst);
            Some(RateLimiter::direct(quota))
        });
        RateGate {
            limiter,
            clock: DefaultClock::default(),
            paused_until: Mutex::new(None),
        }
    }

    /// What is left of the pause learned from the system's headers.
    pub fn pause_remaining(&self) -> Duration {
        self.paused_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Waits for a slot for at most `budget`: `Ok(waited)`, or `Err(wait)`
    /// if it would take longer.
    pub async fn acquire(&self, budget: Duration) -> Result<Duration, Duration> {
        let started = Instant::now();
        loop {
            let paused = self
                .paused_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .and_then(|until| until.checked_duration_since(Instant::now()))
                .filter(|d| !d.is_zero());
            let wait = match (paused, &self.limiter) {
                (Some(pause), _) => pause,
                (None, None) => return Ok(started.elapsed()),
                (None, Some(limiter)) => match limiter.check() {
                    Ok(()) => return Ok(started.elapsed()),
                    Err(not_until) => not_until.wait_time_from(self.clock.now()),
                },
            };
            if started.elapsed() + wait > budget {
                return Err(wait.max(Duration::from_millis(1)));
            }
            let span = tracing::info_span!(
                "rate_limit.wait",
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                paused = paused.is_some(),
            );
            tokio::time::sleep(wait).instrument(span).await;
        }
    }

    /// Learns from a response's status and rate-limit headers.
    pub fn observe(&self, status: StatusCode, headers: &HeaderMap) {
        if let Some(pause) = pause_from(status, headers, SystemTime::now()) {
            let until = Instant::now() + pause.min(MAX_PAUSE);
            let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
    }
}

/// How long the system asks the host to hold off, if it does.
fn pause_from(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        if let Some(after) = header("retry-after").and_then(|v| retry_after(v, now)) {
            return Some(after);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Some(
                rate_limit_reset(header("x-ratelimit-reset"), now).unwrap_or(DEFAULT_PAUSE),
            );
        }
    }
    if header("x-ratelimit-remaining").and_then(|v| v.parse::<f64>().ok()) == Some(0.0) {
        return rate_limit_reset(header("x-ratelimit-reset"), now).or(Some(DEFAULT_PAUSE));
    }
    if let Some(info) = header("sforce-limit-info")
        && let Some((used, max)) = salesforce_usage(info)
        && used >= max
    {
        return Some(SALESFORCE_PAUSE);
    }
    None
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or_default())
}

/// `X-RateLimit-Reset`: Unix seconds (GitHub, many others) or seconds to
/// wait (others); values past 2001-09-09 are taken as timestamps.
fn rate_limit_reset(value: Option<&str>, now: SystemTime) -> Option<Duration> {
    let value = value?.parse::<f64>().ok()?;
    if !(value.is_finite() && value >= 0.0) {
        return None;
    }
    if value >= 1e9 {
        let at = UNIX_EPOCH + Duration::from_secs_f64(value);
        Some(at.duration_since(now).unwrap_or_default())
    } else {
        Some(Duration::from_secs_f64(value))
    }
}

/// `Sforce-Limit-Info: api-usage=25/5000`.
fn salesforce_usage(value: &str) -> Option<(u64, u64)> {
    let usage = value
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// Status, response headers, expected pause in seconds.
    type Case<'a> = (u16, &'a [(&'static str, &'a str)], Option<u64>);

    #[test]
    fn pauses_follow_the_systems_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases: &[Case] = &[
            (429, &[("retry-after", "2")], Some(2)),
            (503, &[("retry-after", "7")], Some(7)),
            (
                429,
                &[("retry-after", "Fri, 15 Jan 2027 08:00:10 GMT")],
                Some(10),
            ),
            (429, &[], Some(1)),
            (
                200,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1800000030"),
                ],
                Some(30),
            ),
            (
                200,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "12")],
                Some(12),
            ),
            (
                200,
                &[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "12")],
                None,
            ),
            (
                200,
                &[("sforce-limit-info", "api-usage=5000/5000")],
                Some(60),
            ),
            (200, &[("sforce-limit-info", "api-usage=25/5000")], None),
            (500, &[("retry-after", "9")], None),
            (200, &[], None),
        ];
        for (status, pairs, want) in cases {
            let got = pause_from(StatusCode::from_u16(*status).unwrap(), &headers(pairs), now);
            assert_eq!(got.map(|d| d.as_secs()), *want, "{status} {pairs:?}");
        }
    }

    #[test]
    fn http_date_in_the_future_is_honoured() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // 1_800_000_000 is 2027-01-15T08:00:00Z.
        let d = retry_after("Fri, 15 Jan 2027 08:00:10 GMT", now).unwrap();
        assert_eq!(d, Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_slot_beyond_the_budget_is_refused_with_the_wait() {
        let gate = RateGate::new(Some(RateLimit {
            requests: 1,
            per_seconds: 10,
            burst: None,
        }));
        assert!(gate.acquire(Duration::ZERO).await.is_ok());
        let wait = gate.acquire(Duration::from_millis(10)).await.unwrap_err();
        assert!(wait > Duration::from_secs(9), "{wait:?}");
    }

    #[tokio::test]
    async fn a_pause_from_the_system_blocks_until_it_ends() {
        let gate = RateGate::new(None);
        assert!(gate.acquire(Duration::ZERO).await.is_ok());
        gate.observe(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "30")]),
        );
        let wait = gate.acquire(Duration::from_secs(1)).await.unwrap_err();
        assert!(wait > Duration::from_secs(29), "{wait:?}");
    }
}
