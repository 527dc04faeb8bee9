//! Timestamps as connectors meet them: many systems send Unix time, events
//! carry RFC 3339.

/// `millis` after the Unix epoch as an RFC 3339 UTC timestamp with
/// milliseconds, e.g. `2024-05-01T09:30:00.123Z`: the `time` of an
/// [`Event`](crate::Event) from a system that sends Unix milliseconds.
///
/// ```
/// use junction_sdk::time::rfc3339_from_unix_millis;
/// assert_eq!(rfc3339_from_unix_millis(1_714_555_800_123), "2024-05-01T09:30:00.123Z");
/// ```
pub fn rfc3339_from_unix_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        millis % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01,
/// counting in 400-year eras of 146 097 days that start on 1 March, so the
/// leap day falls at the end of a year.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_millis_as_rfc3339() {
        assert_eq!(rfc3339_from_unix_millis(0), "1970-01-01T00:00:00.000Z");
        // A leap day of a century year divisible by 400.
        assert_eq!(
            rfc3339_from_unix_millis(951_827_696_789),
            "2000-02-29T12:34:56.789Z"
        );
        assert_eq!(
            rfc3339_from_unix_millis(1_704_067_199_000),
            "2023-12-31T23:59:59.000Z"
        );
        assert_eq!(
            rfc3339_from_unix_millis(1_704_067_200_000),
            "2024-01-01T00:00:00.000Z"
        );
        // 2100 is not a leap year: 28 February is followed by 1 March.
        assert_eq!(
            rfc3339_from_unix_millis(4_107_456_000_000),
            "2100-02-28T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_from_unix_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
    }
}
