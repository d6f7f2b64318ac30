//! Workspace schedules: Coder's weekly cron (`[CRON_TZ=<zone> ]min hour * * dow`) and the
//! deadline arithmetic of builds. Pure functions of their inputs (time is passed in).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// A parsed weekly schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weekly {
    tz: Tz,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// 0 = Sunday … 6 = Saturday.
    days: Vec<u32>,
    raw: String,
}

impl fmt::Display for Weekly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn field(spec: &str, min: u32, max: u32, what: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("invalid step {s:?} in {what}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step of 0 in {what}"));
        }
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a
                .parse::<u32>()
                .map_err(|_| format!("invalid {what} {a:?}"))?;
            let b = b
                .parse::<u32>()
                .map_err(|_| format!("invalid {what} {b:?}"))?;
            (a, b)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("invalid {what} {range:?}"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{what} {range:?} out of range {min}-{max}"));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A day-of-week field with cron's names (`mon-fri`, `SUN`, any case) written as numbers,
/// as Coder's cron parser reads them; the CLI sends `Mon-Fri`.
fn day_numbers(spec: &str) -> String {
    let mut out = spec.to_lowercase();
    for (i, name) in ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        .iter()
        .enumerate()
    {
        out = out.replace(name, &i.to_string());
    }
    out
}

impl Weekly {
    /// Parses `[CRON_TZ=<IANA zone> ]<min> <hour> * * <dow>` (UTC when no zone is given).
    pub fn parse(raw: &str) -> Result<Weekly, String> {
        let raw = raw.trim();
        let (tz, spec) = match raw.strip_prefix("CRON_TZ=") {
            Some(rest) => {
                let (zone, spec) = rest
                    .split_once(' ')
                    .ok_or("missing schedule after CRON_TZ")?;
                let tz: Tz = zone
                    .parse()
                    .map_err(|_| format!("unknown time zone {zone:?}"))?;
                (tz, spec.trim())
            }
            None => (Tz::UTC, raw),
        };
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected 5 fields (min hour dom month dow), got {}",
                fields.len()
            ));
        }
        if fields[2] != "*" || fields[3] != "*" {
            return Err("expected day-of-month and month to be *".into());
        }
        let mut days = field(&day_numbers(fields[4]), 0, 7, "day of week")?;
        // 7 is another Sunday.
        for d in &mut days {
            *d %= 7;
        }
        days.sort_unstable();
        days.dedup();
        Ok(Weekly {
            tz,
            minutes: field(fields[0], 0, 59, "minute")?,
            hours: field(fields[1], 0, 23, "hour")?,
            days,
            raw: if raw.starts_with("CRON_TZ=") {
                raw.to_string()
            } else {
                format!("CRON_TZ=UTC {raw}")
            },
        })
    }

    /// The first time strictly after `after` the schedule fires. Local times skipped by a DST
    /// change do not fire; repeated ones fire once (the first).
    pub fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        let start: NaiveDate = local.date_naive();
        for offset in 0..=8 {
            let date = start + Duration::days(offset);
            if !self.days.contains(&date.weekday().num_days_from_sunday()) {
                continue;
            }
            for &h in &self.hours {
                for &m in &self.minutes {
                    let naive = date.and_hms_opt(h, m, 0)?;
                    let Some(t) = self.tz.from_local_datetime(&naive).earliest() else {
                        continue;
                    };
                    let t = t.with_timezone(&Utc);
                    if t > after {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }
}

/// A user's quiet hours: a daily schedule with one start time (`[CRON_TZ=<zone> ]M H * * *`).
pub fn parse_quiet_hours(raw: &str) -> Result<Weekly, String> {
    let w = Weekly::parse(raw)?;
    if w.minutes.len() != 1 || w.hours.len() != 1 || w.days.len() != 7 {
        return Err("quiet hours must be a daily schedule with a single time, e.g. \"CRON_TZ=Europe/Berlin 0 2 * * *\"".into());
    }
    Ok(w)
}

/// The deployment's default quiet hours: midnight UTC.
pub const DEFAULT_QUIET_HOURS: &str = "CRON_TZ=UTC 0 0 * * *";

impl Weekly {
    /// `HH:MM` of a single-time schedule (quiet hours).
    pub fn time_of_day(&self) -> String {
        format!(
            "{:02}:{:02}",
            self.hours.first().copied().unwrap_or(0),
            self.minutes.first().copied().unwrap_or(0)
        )
    }
}

/// The days of the week as Coder's API spells them, in its order (Monday first).
pub const DAYS_OF_WEEK: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// How Coder's API spells `day` (as in `autostart_requirement.days_of_week`).
pub fn day_name(day: Weekday) -> &'static str {
    DAYS_OF_WEEK[day.num_days_from_monday() as usize]
}

/// The max deadline an autostop requirement imposes on a build started at `now`: the first
/// start of the owner's quiet hours, at least an hour away, on one of `days` (as the quiet
/// hours' zone sees them), in a week whose number since 1970-01-05 (a Monday) is a multiple
/// of `weeks`. Zero when the template requires no days.
pub fn autostop_requirement_deadline(
    now: DateTime<Utc>,
    days: &[String],
    weeks: i64,
    quiet_hours: &Weekly,
) -> DateTime<Utc> {
    if days.is_empty() {
        return zero_time();
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default();
    let mut t = now + Duration::hours(1) - Duration::seconds(1);
    for _ in 0..(7 * 17) {
        let Some(next) = quiet_hours.next(t) else {
            break;
        };
        let local = next.with_timezone(&quiet_hours.tz).date_naive();
        let day = day_name(local.weekday());
        let week = (local - epoch).num_days().div_euclid(7);
        if days.iter().any(|d| d == day) && week.rem_euclid(weeks.max(1)) == 0 {
            return next;
        }
        t = next;
    }
    zero_time()
}

/// Rounds down to the minute (the executor's tick).
pub fn truncate_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// Coder's zero time, stored for "no deadline".
pub fn zero_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub fn is_zero(t: DateTime<Utc>) -> bool {
    t <= zero_time()
}

/// The deadline of a start build completing at `now` with time-to-live `ttl`: `now + ttl`,
/// pushed to `next autostart + ttl` when the workspace would still be running at its next
/// autostart, and capped by `max_deadline` (zero = no cap). Zero TTL means no deadline.
pub fn start_deadline(
    now: DateTime<Utc>,
    ttl: Duration,
    autostart: Option<&Weekly>,
    max_deadline: DateTime<Utc>,
) -> DateTime<Utc> {
    if ttl <= Duration::zero() {
        return if is_zero(max_deadline) {
            zero_time()
        } else {
            max_deadline
        };
    }
    let mut deadline = now + ttl;
    if let Some(next) = autostart.and_then(|s| s.next(now)) {
        if deadline > next {
            deadline = next + ttl;
        }
    }
    if !is_zero(max_deadline) && max_deadline < deadline {
        deadline = max_deadline;
    }
    deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parses_and_rejects() {
        assert!(Weekly::parse("30 9 * * 1-5").is_ok());
        assert!(Weekly::parse("CRON_TZ=US/Central 30 9 * * 1-5").is_ok());
        assert!(Weekly::parse("*/15 8-17 * * *").is_ok());
        assert_eq!(
            Weekly::parse("CRON_TZ=Europe/Dublin 30 9 * * Mon-Fri")
                .unwrap()
                .days,
            [1, 2, 3, 4, 5]
        );
        assert_eq!(Weekly::parse("0 9 * * sun,SAT").unwrap().days, [0, 6]);
        assert!(Weekly::parse("0 9 * * funday").is_err());
        assert_eq!(
            Weekly::parse("30 9 1 * *").unwrap_err(),
            "expected day-of-month and month to be *"
        );
        assert!(Weekly::parse("30 9 * *").is_err());
        assert!(Weekly::parse("CRON_TZ=Mars/Base 30 9 * * *").is_err());
        assert!(Weekly::parse("61 9 * * *").is_err());
        assert_eq!(
            Weekly::parse("0 9 * * *").unwrap().to_string(),
            "CRON_TZ=UTC 0 9 * * *"
        );
    }

    #[test]
    fn next_weekday_in_zone() {
        let s = Weekly::parse("CRON_TZ=Europe/Berlin 30 9 * * 1-5").unwrap();
        // Friday 2024-05-10 10:00 Berlin (08:00Z) → Monday 2024-05-13 09:30 Berlin (07:30Z).
        assert_eq!(
            s.next(t("2024-05-10T08:00:00Z")),
            Some(t("2024-05-13T07:30:00Z"))
        );
        assert_eq!(
            s.next(t("2024-05-13T07:29:00Z")),
            Some(t("2024-05-13T07:30:00Z"))
        );
        assert_eq!(
            s.next(t("2024-05-13T07:30:00Z")),
            Some(t("2024-05-14T07:30:00Z"))
        );
    }

    #[test]
    fn dst_gaps_are_skipped_and_offsets_follow() {
        // Berlin springs forward on 2024-03-31 at 02:00 → 03:00: 02:30 does not exist that day.
        let s = Weekly::parse("CRON_TZ=Europe/Berlin 30 2 * * *").unwrap();
        assert_eq!(
            s.next(t("2024-03-30T12:00:00Z")),
            Some(t("2024-04-01T00:30:00Z"))
        );
        let nine = Weekly::parse("CRON_TZ=Europe/Berlin 0 9 * * *").unwrap();
        assert_eq!(
            nine.next(t("2024-03-30T12:00:00Z")),
            Some(t("2024-03-31T07:00:00Z"))
        );
        assert_eq!(
            nine.next(t("2024-03-29T12:00:00Z")),
            Some(t("2024-03-30T08:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_and_autostop_requirements() {
        assert!(parse_quiet_hours("CRON_TZ=Europe/Berlin 0 2 * * *").is_ok());
        assert!(parse_quiet_hours("0 2 * * 1-5").is_err());
        assert!(parse_quiet_hours("0,30 2 * * *").is_err());
        let q = parse_quiet_hours(DEFAULT_QUIET_HOURS).unwrap();
        assert_eq!(q.time_of_day(), "00:00");
        // Monday 2024-05-13 10:00Z; the requirement is Saturdays: Sat 2024-05-18 00:00Z.
        let days = vec!["saturday".to_string()];
        assert_eq!(
            autostop_requirement_deadline(t("2024-05-13T10:00:00Z"), &days, 1, &q),
            t("2024-05-18T00:00:00Z")
        );
        // Less than an hour before quiet hours: the next occurrence.
        assert_eq!(
            autostop_requirement_deadline(t("2024-05-17T23:30:00Z"), &days, 1, &q),
            t("2024-05-25T00:00:00Z")
        );
        assert!(is_zero(autostop_requirement_deadline(
            t("2024-05-13T10:00:00Z"),
            &[],
            1,
            &q
        )));
        // Every second week: only even weeks since 1970-01-05 count.
        let every_other = autostop_requirement_deadline(t("2024-05-13T10:00:00Z"), &days, 2, &q);
        let weeks = (every_other.date_naive() - NaiveDate::from_ymd_opt(1970, 1, 5).unwrap())
            .num_days()
            / 7;
        assert_eq!(weeks % 2, 0);
        assert!(every_other >= t("2024-05-18T00:00:00Z"));
    }

    #[test]
    fn deadlines() {
        let now = t("2024-05-13T10:00:00Z");
        let h = Duration::hours;
        assert_eq!(
            start_deadline(now, h(8), None, zero_time()),
            t("2024-05-13T18:00:00Z")
        );
        assert!(is_zero(start_deadline(
            now,
            Duration::zero(),
            None,
            zero_time()
        )));
        assert_eq!(
            start_deadline(now, h(8), None, t("2024-05-13T12:00:00Z")),
            t("2024-05-13T12:00:00Z")
        );
        // Still running at the next autostart (tomorrow 09:00Z with a 30h TTL): push past it.
        let s = Weekly::parse("0 9 * * *").unwrap();
        assert_eq!(
            start_deadline(now, h(30), Some(&s), zero_time()),
            t("2024-05-15T15:00:00Z")
        );
    }
}
