//! Time as kubectl shows it: `HumanDuration` bands for AGE (CLI-6) and RFC 1123Z in describe.
//! Parsing and calendar arithmetic are `emu_api::time`'s.

use emu_api::time::{civil_from_days, parse_rfc3339_nanos};

/// apimachinery's `duration.HumanDuration` for a whole number of seconds (CLI-6). Every component
/// is truncated, never rounded.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let years = hours / 24 / 365;
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else the human duration from
/// the timestamp to `now` (unix seconds). Sub-second parts count like Go's `time.Since` does.
pub(crate) fn since(timestamp: Option<&str>, now: i64) -> String {
    match timestamp.and_then(parse_rfc3339_nanos) {
        Some((secs, nanos)) => human_duration(elapsed(secs, nanos, now)),
        None => "<unknown>".into(),
    }
}

/// Whole seconds from `secs.nanos` to `now`, truncated toward zero like `int(d.Seconds())`.
fn elapsed(secs: i64, nanos: u32, now: i64) -> i64 {
    let d = (now as i128 - secs as i128) * 1_000_000_000 - nanos as i128;
    (d / 1_000_000_000) as i64
}

/// Go's `time.RFC1123Z` layout in UTC (`Mon, 02 Jan 2006 15:04:05 +0000`); a missing timestamp
/// prints Go's zero time, as kubectl does.
pub(crate) fn rfc1123z(timestamp: Option<&str>) -> String {
    let secs = timestamp.and_then(emu_api::time::parse_rfc3339).unwrap_or(ZERO_TIME);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days + 4).rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const ZERO_TIME: i64 = -62_135_596_800;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_cli6() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (21, "21s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (300, "5m"),
            (599, "9m59s"),
            (600, "10m"),
            (114 * 60, "114m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (23 * 3600, "23h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (53 * 3600, "2d5h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (2 * 365 * 86400, "2y"),
            (3 * 365 * 86400 + 12 * 86400, "3y12d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn since_and_timestamps() {
        assert_eq!(since(Some("2024-05-01T10:00:00Z"), 1_714_557_621), "21s");
        assert_eq!(since(Some("2024-05-01T10:00:00.5Z"), 1_714_557_621), "20s");
        assert_eq!(since(None, 0), "<unknown>");
        assert_eq!(rfc1123z(Some("2024-05-01T10:00:00Z")), "Wed, 01 May 2024 10:00:00 +0000");
        assert_eq!(rfc1123z(None), "Mon, 01 Jan 0001 00:00:00 +0000");
    }
}
