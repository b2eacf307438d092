//! A CronJob's schedule: the five-field cron syntax as kube-apiserver and the CronJob controller
//! parse it (robfig/cron v3's `ParseStandard`: minute, hour, day of month, month, day of week;
//! lists, ranges, steps, `*`/`?`, month and weekday names, `@hourly` and the other descriptors),
//! its parse errors worded as robfig's (shown as `spec.schedule: Invalid value`), and the next
//! scheduled time. Here rather than in emu-logic because validation parses schedules too.
//!
//! Time zones: `UTC`, `Etc/UTC`, `Etc/GMT`, `Etc/GMT±N` (fixed offsets, POSIX's inverted sign)
//! and an empty zone (the controller's, UTC here). Zones with daylight saving would need the
//! tz database; [`time_zone_offset`] refuses them.

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day of month or of week given as `*` or `?` (robfig's `starBit`): then both must match,
    /// else either.
    dom_star: bool,
    dow_star: bool,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds { min: 0, max: 59, names: &[] };
const HOURS: Bounds = Bounds { min: 0, max: 23, names: &[] };
const DOM: Bounds = Bounds { min: 1, max: 31, names: &[] };
const MONTHS: Bounds =
    Bounds { min: 1, max: 12, names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"] };
const DOW: Bounds = Bounds { min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

/// robfig's `parseIntOrName`: a name of the field (months and weekdays, any case) or a
/// non-negative integer.
fn int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    if let Some(i) = b.names.iter().position(|n| n.eq_ignore_ascii_case(expr)) {
        return Ok(i as u32 + if b.min == 1 { 1 } else { 0 });
    }
    must_parse_int(expr)
}

fn must_parse_int(expr: &str) -> Result<u32, String> {
    let n: i64 = expr.parse().map_err(|_| format!("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(n as u32)
}

/// robfig's `getRange`: `*`, `?`, `N`, `N-M`, each with an optional `/STEP`. Answers the bits
/// and whether it was a star.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let (range_part, step_part) = match expr.split('/').collect::<Vec<_>>().as_slice() {
        [r] => (*r, None),
        [r, s] => (*r, Some(*s)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let low_high: Vec<&str> = range_part.split('-').collect();
    let single = low_high.len() == 1;
    let (mut star, start, mut end) = if range_part == "*" || range_part == "?" {
        (true, b.min, b.max)
    } else {
        let start = int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (false, start, end)
    };
    let step = match step_part {
        None => 1,
        Some(s) => {
            let step = must_parse_int(s)?;
            // `N/STEP` means N through the end of the field.
            if single && !star {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
    };
    if start < b.min {
        return Err(format!("beginning of range ({start}) below minimum ({}): {expr}", b.min));
    }
    if end > b.max {
        return Err(format!("end of range ({end}) above maximum ({}): {expr}", b.max));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let bits = (start..=end).step_by(step as usize).fold(0u64, |acc, v| acc | 1 << v);
    Ok((bits, star))
}

/// A comma-separated list of ranges.
fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for part in expr.split(',') {
        let (b, s) = range(part, b)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// Parses a schedule as `cron.ParseStandard` does; the error is robfig's text.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let expanded = match spec {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
        s => s,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    let (minute, _) = field(fields[0], &MINUTES)?;
    let (hour, _) = field(fields[1], &HOURS)?;
    let (dom, dom_star) = field(fields[2], &DOM)?;
    let (month, _) = field(fields[3], &MONTHS)?;
    // Sunday may be written 7 as well as 0 only in some crons; robfig's range is 0-6.
    let (dow, dow_star) = field(fields[4], &DOW)?;
    Ok(Schedule { minute, hour, dom, month, dow, dom_star, dow_star })
}

/// The offset from UTC in seconds of a CronJob's `timeZone` (None: unset, the controller's
/// zone, UTC). Err: a zone this emulation does not know, in Go's words.
pub fn time_zone_offset(zone: Option<&str>) -> Result<i64, String> {
    let Some(zone) = zone else { return Ok(0) };
    match zone {
        "UTC" | "Etc/UTC" | "Etc/GMT" | "Etc/UCT" | "Etc/Zulu" | "GMT" => Ok(0),
        z => z
            .strip_prefix("Etc/GMT")
            .and_then(|n| {
                // POSIX style: Etc/GMT+5 is five hours *behind* UTC.
                let hours: i64 = n.parse().ok()?;
                (n.starts_with('+') || n.starts_with('-')).then_some(())?;
                (-14..=12).contains(&hours).then_some(-hours * 3600)
            })
            .ok_or_else(|| format!("unknown time zone {z}")),
    }
}

const DAY: i64 = 86_400;

impl Schedule {
    fn day_matches(&self, days: i64) -> bool {
        let (_, _, d) = crate::time::civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
        let dom = self.dom & (1 << d) != 0;
        let dow = self.dow & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `after` (unix seconds), in a zone `offset`
    /// seconds east of UTC; None if none within five years (robfig's give-up).
    pub fn next(&self, after: i64, offset: i64) -> Option<i64> {
        // Local time, at the next whole minute.
        let mut t = (after + offset).div_euclid(60) * 60 + 60;
        let limit = t + 5 * 366 * DAY;
        while t < limit {
            let days = t.div_euclid(DAY);
            let (y, m, _) = crate::time::civil_from_days(days);
            if self.month & (1 << m) == 0 {
                // The first day of the next month.
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                t = crate::time::days_from_civil(ny, nm, 1) * DAY;
                continue;
            }
            if !self.day_matches(days) {
                t = (days + 1) * DAY;
                continue;
            }
            let secs = t.rem_euclid(DAY);
            let (hour, minute) = (secs / 3600, secs % 3600 / 60);
            if self.hour & (1 << hour) == 0 {
                t = days * DAY + (hour + 1) * 3600;
                continue;
            }
            if self.minute & (1 << minute) == 0 {
                t += 60;
                continue;
            }
            return Some(t - offset);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn errors_are_robfigs() {
        assert_eq!(parse("x").unwrap_err(), "expected exactly 5 fields, found 1: [x]");
        assert_eq!(parse("* * * *").unwrap_err(), "expected exactly 5 fields, found 4: [* * * *]");
        assert_eq!(parse("61 * * * *").unwrap_err(), "end of range (61) above maximum (59): 61");
        assert_eq!(parse("* * 0 * *").unwrap_err(), "beginning of range (0) below minimum (1): 0");
        assert_eq!(parse("5-2 * * * *").unwrap_err(), "beginning of range (5) beyond end of range (2): 5-2");
        assert_eq!(parse("*/0 * * * *").unwrap_err(), "step of range should be a positive number: */0");
        assert_eq!(parse("1-2-3 * * * *").unwrap_err(), "too many hyphens: 1-2-3");
        assert_eq!(parse("*/1/2 * * * *").unwrap_err(), "too many slashes: */1/2");
        assert_eq!(parse("@often").unwrap_err(), "unrecognized descriptor: @often");
        assert_eq!(parse("a * * * *").unwrap_err(), "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax");
        assert_eq!(parse("").unwrap_err(), "empty spec string");
    }

    #[test]
    fn next_times() {
        let every_minute = parse("*/1 * * * *").unwrap();
        assert_eq!(every_minute.next(at("2026-12-07T19:23:03Z"), 0), Some(at("2026-12-07T19:24:00Z")));
        assert_eq!(every_minute.next(at("2026-12-07T19:24:00Z"), 0), Some(at("2026-12-07T19:25:00Z")));
        let hourly = parse("@hourly").unwrap();
        assert_eq!(hourly.next(at("2026-12-31T23:30:00Z"), 0), Some(at("2027-01-01T00:00:00Z")));
        // 2026-12-07 is a Monday; weekdays by name, months by name.
        let fridays = parse("30 9 * * fri").unwrap();
        assert_eq!(fridays.next(at("2026-12-07T00:00:00Z"), 0), Some(at("2026-12-11T09:30:00Z")));
        let feb29 = parse("0 0 29 feb *").unwrap();
        assert_eq!(feb29.next(at("2026-01-01T00:00:00Z"), 0), Some(at("2028-02-29T00:00:00Z")));
        // Both day fields restricted: either matches (the 1st, or a Monday).
        let either = parse("0 0 1 * mon").unwrap();
        assert_eq!(either.next(at("2026-12-08T00:00:00Z"), 0), Some(at("2026-12-14T00:00:00Z")));
        // `5/15` is 5, 20, 35, 50.
        let from5 = parse("5/15 * * * *").unwrap();
        assert_eq!(from5.next(at("2026-12-07T10:21:00Z"), 0), Some(at("2026-12-07T10:35:00Z")));
        assert!(parse("0 0 31 2 *").unwrap().next(0, 0).is_none());
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        assert_eq!(time_zone_offset(Some("Etc/GMT+5")), Ok(-5 * 3600));
        assert_eq!(time_zone_offset(Some("Etc/GMT-3")), Ok(3 * 3600));
        assert_eq!(time_zone_offset(None), Ok(0));
        assert_eq!(time_zone_offset(Some("Mars/Olympus")).unwrap_err(), "unknown time zone Mars/Olympus");
        // 09:00 in UTC-5 is 14:00 UTC.
        let nine = parse("0 9 * * *").unwrap();
        assert_eq!(nine.next(at("2026-12-07T10:00:00Z"), -5 * 3600), Some(at("2026-12-07T14:00:00Z")));
    }
}
