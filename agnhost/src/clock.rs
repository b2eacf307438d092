//! Times as Go prints them, in UTC (the images have no time zone data): `log`'s line prefix and
//! `time.Time.String()`, which netexec's `/` answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute, second, nanosecond) of `t` in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60, since.subsec_nanos())
}

/// Go's `log` prefix: `2006/01/02 15:04:05 `.
pub fn log_prefix(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02} ")
}

/// `time.Now().String()`: `2006-01-02 15:04:05.999999999 +0000 UTC m=+0.000000001`, the
/// fraction without trailing zeros, `m=` the monotonic reading (`since_start`).
pub fn go_time_string(t: SystemTime, since_start: Duration) -> String {
    let (y, mo, d, h, mi, s, nanos) = civil(t);
    let fraction = format!(".{nanos:09}");
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    format!(
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{fraction} +0000 UTC m=+{}.{:09}",
        since_start.as_secs(),
        since_start.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        let t = UNIX_EPOCH + Duration::new(1_796_674_096, 120_000_000); // 2026-12-07 20:08:16.12
        assert_eq!(log_prefix(t), "2026/12/07 20:08:16 ");
        assert_eq!(go_time_string(t, Duration::new(3, 5)), "2026-12-07 20:08:16.12 +0000 UTC m=+3.000000005");
        assert_eq!(go_time_string(UNIX_EPOCH, Duration::ZERO), "1970-01-01 00:00:00 +0000 UTC m=+0.000000000");
        assert_eq!(log_prefix(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000/02/29 00:00:00 ", "a leap day");
    }
}
