//! The CronJob controller's decisions (pkg/controller/cronjob `syncCronJob`,
//! `getMostRecentScheduleTime`, `getJobName`), as pure functions of the schedule, the CronJob's
//! Jobs and the time. Parsing and next times are [`emu_api::cron`]'s.

use emu_api::cron::Schedule;

/// What `getMostRecentScheduleTime` answers: the latest scheduled time in (earliest, now], and
/// how many were missed before it (more than 100 makes the controller warn `TooManyMissedTimes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MostRecent {
    pub time: i64,
    pub missed: u32,
}

/// The most recent scheduled time after `earliest` (the last schedule time, or the CronJob's
/// creation, or `now - startingDeadlineSeconds` if later) and at or before `now`.
pub fn most_recent(s: &Schedule, earliest: i64, now: i64, offset: i64) -> Option<MostRecent> {
    let mut t = s.next(earliest, offset)?;
    if t > now {
        return None;
    }
    let mut missed = 0;
    while let Some(n) = s.next(t, offset).filter(|&n| n <= now) {
        t = n;
        missed += 1;
        if missed > 10_000 {
            break;
        }
    }
    Some(MostRecent { time: t, missed })
}

/// The name of the Job a CronJob starts for a scheduled time (`getJobName`): the minutes since
/// the epoch, so that one scheduled time makes at most one Job.
pub fn job_name(cronjob: &str, scheduled: i64) -> String {
    format!("{cronjob}-{}", scheduled.div_euclid(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        emu_api::time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn most_recent_counts_missed_times() {
        let s = emu_api::cron::parse("*/1 * * * *").unwrap();
        let r = most_recent(&s, at("2026-12-07T10:00:00Z"), at("2026-12-07T10:05:30Z"), 0).unwrap();
        assert_eq!(r, MostRecent { time: at("2026-12-07T10:05:00Z"), missed: 4 });
        assert_eq!(most_recent(&s, at("2026-12-07T10:05:00Z"), at("2026-12-07T10:05:30Z"), 0), None);
        assert_eq!(job_name("hello", at("2026-12-07T10:05:00Z")), format!("hello-{}", at("2026-12-07T10:05:00Z") / 60));
    }
}
