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

/// How a finished Job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Condition Complete, at its completionTime.
    Complete(Option<i64>),
    Failed,
}

/// One of the CronJob's Jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub name: String,
    /// Its startTime, or its creation.
    pub started: i64,
    pub outcome: Option<Outcome>,
    /// Being deleted.
    pub terminating: bool,
}

/// What the step reads of the CronJob, defaulted and parsed.
#[derive(Debug, Clone)]
pub struct CronJobView<'a> {
    pub name: &'a str,
    /// The parsed schedule and its zone's offset (None: unparsable, nothing is started).
    pub schedule: Option<(&'a Schedule, i64)>,
    pub suspend: bool,
    /// `Allow`, `Forbid` or `Replace`.
    pub concurrency_policy: &'a str,
    pub starting_deadline_seconds: Option<i64>,
    pub successful_jobs_history_limit: i32,
    pub failed_jobs_history_limit: i32,
    pub created: i64,
    pub last_schedule_time: Option<i64>,
    pub last_successful_time: Option<i64>,
    /// `status.active`'s Job names.
    pub active: Vec<String>,
}

/// What one sync of a CronJob decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// Jobs to delete: beyond the history limits (oldest first), or replaced.
    pub delete: Vec<String>,
    /// A Job to start: its name and scheduled time.
    pub create: Option<(String, i64)>,
    /// Finished Jobs that were active (`SawCompletedJob`): name and condition.
    pub saw_completed: Vec<(String, &'static str)>,
    /// More than 100 start times were missed (`TooManyMissedTimes`).
    pub too_many_missed: bool,
    /// `status.lastScheduleTime` and `lastSuccessfulTime` to write.
    pub last_schedule_time: Option<i64>,
    pub last_successful_time: Option<i64>,
    /// `status.active`: the Jobs still running (a Job created now joins on the next sync).
    pub active: Vec<String>,
}

/// One sync of a CronJob (`syncCronJob`, `cleanupFinishedJobs`).
pub fn step(cj: &CronJobView, jobs: &[JobView], now: i64) -> Step {
    let mut out = Step { last_schedule_time: cj.last_schedule_time, last_successful_time: cj.last_successful_time, ..Default::default() };
    for j in jobs {
        let Some(outcome) = j.outcome else { continue };
        let condition = match outcome {
            Outcome::Complete(_) => "Complete",
            Outcome::Failed => "Failed",
        };
        if cj.active.contains(&j.name) {
            out.saw_completed.push((j.name.clone(), condition));
        }
        if let Outcome::Complete(Some(t)) = outcome {
            if out.last_successful_time.is_none_or(|l| t > l) {
                out.last_successful_time = Some(t);
            }
        }
    }
    // The history limits: the oldest finished Jobs beyond them go.
    for (complete, limit) in [(true, cj.successful_jobs_history_limit), (false, cj.failed_jobs_history_limit)] {
        let mut done: Vec<&JobView> =
            jobs.iter().filter(|j| j.outcome.is_some_and(|o| matches!(o, Outcome::Complete(_)) == complete)).collect();
        done.sort_by_key(|j| (j.started, j.name.clone()));
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        out.delete.extend(done[..excess].iter().map(|j| j.name.clone()));
    }
    let mut running: Vec<&JobView> = jobs.iter().filter(|j| j.outcome.is_none() && !j.terminating).collect();
    if let (false, Some((schedule, offset))) = (cj.suspend, cj.schedule) {
        let mut earliest = cj.last_schedule_time.unwrap_or(cj.created);
        if let Some(deadline) = cj.starting_deadline_seconds {
            earliest = earliest.max(now - deadline);
        }
        if let Some(recent) = most_recent(schedule, earliest, now, offset) {
            out.too_many_missed = recent.missed > 100;
            let name = job_name(cj.name, recent.time);
            if jobs.iter().any(|j| j.name == name) {
                // Started already (the status write was lost).
                out.last_schedule_time = Some(recent.time);
            } else if cj.concurrency_policy == "Forbid" && !running.is_empty() {
                // Tried again at each sync while the scheduled time is still the most recent.
            } else {
                if cj.concurrency_policy == "Replace" {
                    out.delete.extend(running.drain(..).map(|j| j.name.clone()));
                }
                out.create = Some((name, recent.time));
                out.last_schedule_time = Some(recent.time);
            }
        }
    }
    out.active = running.iter().map(|j| j.name.clone()).collect();
    out
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

    fn cronjob<'a>(schedule: &'a Schedule, policy: &'a str) -> CronJobView<'a> {
        CronJobView {
            name: "tick",
            schedule: Some((schedule, 0)),
            suspend: false,
            concurrency_policy: policy,
            starting_deadline_seconds: None,
            successful_jobs_history_limit: 3,
            failed_jobs_history_limit: 1,
            created: at("2026-12-07T10:00:30Z"),
            last_schedule_time: None,
            last_successful_time: None,
            active: vec![],
        }
    }

    fn job(name: &str, started: i64, outcome: Option<Outcome>) -> JobView {
        JobView { name: name.into(), started, outcome, terminating: false }
    }

    #[test]
    fn starts_one_job_per_scheduled_minute() {
        let s = emu_api::cron::parse("*/1 * * * *").unwrap();
        let cj = cronjob(&s, "Allow");
        // Before the first minute after its creation: nothing.
        assert_eq!(step(&cj, &[], at("2026-12-07T10:00:59Z")).create, None);
        let st = step(&cj, &[], at("2026-12-07T10:01:02Z"));
        let minute = at("2026-12-07T10:01:00Z");
        assert_eq!(st.create, Some((format!("tick-{}", minute / 60), minute)));
        assert_eq!(st.last_schedule_time, Some(minute));
        // Its Job exists (a lost status write): not again, the time recorded.
        let running = [job(&format!("tick-{}", minute / 60), minute, None)];
        let st = step(&cj, &running, at("2026-12-07T10:01:30Z"));
        assert_eq!((st.create, st.last_schedule_time, st.active.len()), (None, Some(minute), 1));
        // Suspended: nothing starts.
        let suspended = CronJobView { suspend: true, ..cj.clone() };
        assert_eq!(step(&suspended, &[], at("2026-12-07T10:05:00Z")).create, None);
    }

    #[test]
    fn concurrency_policies() {
        let s = emu_api::cron::parse("*/1 * * * *").unwrap();
        let last = at("2026-12-07T10:01:00Z");
        let running = [job("tick-1", last, None)];
        let now = at("2026-12-07T10:02:01Z");
        let allow = CronJobView { last_schedule_time: Some(last), ..cronjob(&s, "Allow") };
        let st = step(&allow, &running, now);
        assert!(st.create.is_some() && st.delete.is_empty());
        let forbid = CronJobView { concurrency_policy: "Forbid", ..allow.clone() };
        let st = step(&forbid, &running, now);
        assert_eq!((st.create, st.last_schedule_time, st.active), (None, Some(last), vec!["tick-1".to_string()]));
        let replace = CronJobView { concurrency_policy: "Replace", ..allow.clone() };
        let st = step(&replace, &running, now);
        assert_eq!((st.delete, st.create.is_some(), st.active.len()), (vec!["tick-1".to_string()], true, 0));
    }

    #[test]
    fn history_limits_and_completions() {
        let s = emu_api::cron::parse("@hourly").unwrap();
        let cj = CronJobView { active: vec!["d".into()], ..cronjob(&s, "Allow") };
        let jobs: Vec<JobView> = [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
            .iter()
            .map(|(n, t)| job(n, *t, Some(Outcome::Complete(Some(t + 10)))))
            .chain([job("f1", 1, Some(Outcome::Failed)), job("f2", 2, Some(Outcome::Failed))])
            .collect();
        let st = step(&cj, &jobs, at("2026-12-07T10:30:00Z"));
        // Three successful and one failed kept: the oldest of each go.
        assert_eq!(st.delete, ["a", "f1"]);
        assert_eq!(st.saw_completed, [("d".to_string(), "Complete")]);
        assert_eq!(st.last_successful_time, Some(14));
        assert!(st.create.is_none());
    }

    #[test]
    fn starting_deadline_skips_old_times() {
        let s = emu_api::cron::parse("0 * * * *").unwrap();
        let cj = CronJobView { starting_deadline_seconds: Some(60), ..cronjob(&s, "Allow") };
        // 11:00 was 5 minutes ago, beyond the 60 s deadline: not started.
        assert_eq!(step(&cj, &[], at("2026-12-07T11:05:00Z")).create, None);
        assert_eq!(step(&cj, &[], at("2026-12-07T11:00:30Z")).create.map(|c| c.1), Some(at("2026-12-07T11:00:00Z")));
        // A year of minutes missed without a deadline: warned, the latest started.
        let every = emu_api::cron::parse("* * * * *").unwrap();
        let st = step(&cronjob(&every, "Allow"), &[], at("2026-12-07T13:00:00Z"));
        assert!(st.too_many_missed && st.create.map(|c| c.1) == Some(at("2026-12-07T13:00:00Z")));
    }
}
