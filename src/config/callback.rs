//! `[callback]` checked and turned into [`CallbackSettings`], the web-callback
//! center's settings. Every problem is reported against its key (so with its
//! line) and checking goes on; a bad value is replaced by its default so that
//! the settings are always whole.

mod enrichment;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::civil::{Time, Weekday};

use super::schema::{AgentTable, BackoffTable, CallbackTable, OptionsTable, QueueTable};
use super::validate::Problem;
use super::{KeyPath, NamedProfile};
use crate::callback::{
    AgentSettings, Backoff, CallbackSettings, HoursWindow, LoginOptions, Privilege, Privileges,
    QueueSettings, RetryPolicy, WebcallbackOptions, MAX_AUTO_ANSWER_TIMER_SECS,
};

const HOUR: u64 = 3600;
/// Upper bounds that keep every derived time far inside jiff's range.
const MAX_OFFER_TIMEOUT_SECS: u64 = HOUR;
const MAX_WINDOW_HOURS: u64 = 24 * 366;
const MAX_DELAY_SECS: u64 = 7 * 24 * HOUR;

/// The settings `table` describes, and what is wrong with it. `profiles`
/// is the whole configuration's, for `agent_profile` and agents' users;
/// `check_files`: files named (CA files) must be readable.
pub(super) fn settings(
    table: &CallbackTable,
    profiles: &[NamedProfile],
    main: &Path,
    check_files: bool,
) -> (CallbackSettings, Vec<Problem>) {
    let mut p = Problems {
        file: main,
        out: Vec::new(),
    };
    let base = KeyPath::default().key("callback");
    let t = table;

    let offer_timeout_secs = p.bounded(
        base.clone().key("offer_timeout_secs"),
        t.offer_timeout_secs,
        1..=MAX_OFFER_TIMEOUT_SECS,
        30,
    );
    let window_hours = p.bounded(
        base.clone().key("idempotency_window_hours"),
        t.idempotency_window_hours,
        1..=MAX_WINDOW_HOURS,
        24,
    );
    let exclusion_secs = p.bounded(
        base.clone().key("exclusion_secs"),
        t.exclusion_secs,
        1..=MAX_DELAY_SECS,
        600,
    );
    let options = options(&t.options, offer_timeout_secs, &base, &mut p);
    let login = LoginOptions {
        is_auto_ready: t.login.is_auto_ready,
        auto_not_ready_reason: p.non_empty(
            base.clone().key("login").key("auto_not_ready_reason"),
            &t.login.auto_not_ready_reason,
        ),
        can_unactivate_channel: t.login.can_unactivate_channel,
    };

    let (agent_profile, users) = agent_profile(t, profiles, &base, &mut p);
    let mut queues = BTreeMap::new();
    for (i, q) in t.queues.iter().enumerate() {
        let key = base.clone().key("queues").index(i);
        let queue = queue(q, &key, &mut p);
        for (name, taken) in [
            ("complete_queue", &options.complete_queue),
            ("park_queue", &options.park_queue),
            ("reschedule_queue", &options.reschedule_queue),
        ] {
            if &q.id == taken {
                p.push(
                    key.clone().key("id"),
                    format!("{} is also callback.options.{name}", q.id),
                );
            }
        }
        if queues.insert(q.id.clone(), queue).is_some() {
            p.push(key.key("id"), format!("queue {} is defined twice", q.id));
        }
    }
    let mut agents = BTreeMap::new();
    for (i, a) in t.agents.iter().enumerate() {
        let key = base.clone().key("agents").index(i);
        if let Some(users) = &users {
            if !users.contains(&a.user.as_str()) {
                p.push(
                    key.clone().key("user"),
                    format!("{} is not a user of profile {agent_profile}", a.user),
                );
            }
        }
        let settings = agent(a, &key, &mut p);
        if agents.insert(a.user.clone(), settings).is_some() {
            p.push(
                key.key("user"),
                format!("agent {} is defined twice", a.user),
            );
        }
    }

    let enrichment = enrichment::settings(t, &base, check_files, &mut p);

    let settings = CallbackSettings {
        database: t.database.clone(),
        offer_timeout: Duration::from_secs(offer_timeout_secs),
        agent_profile,
        ready_after_done: t.ready_after_done,
        idempotency_window: Duration::from_secs(window_hours * HOUR),
        exclusion: Duration::from_secs(exclusion_secs),
        options,
        login,
        queues,
        agents,
        // `[notify]` is its own table, filled in by the caller.
        notify: Default::default(),
        enrichment,
    };
    (settings, p.out)
}

/// The agent profile's name and its user names (`None` when there is no
/// such registrar profile, already reported).
fn agent_profile<'a>(
    t: &CallbackTable,
    profiles: &'a [NamedProfile],
    base: &KeyPath,
    p: &mut Problems,
) -> (String, Option<Vec<&'a str>>) {
    let key = base.clone().key("agent_profile");
    let found = match &t.agent_profile {
        Some(name) => match profiles.iter().find(|np| &np.name == name) {
            Some(np) if np.profile.registrar => Some(np),
            Some(_) => {
                p.push(key, format!("profile {name} is not a registrar"));
                None
            }
            None => {
                p.push(key, format!("no profile is called {name}"));
                None
            }
        },
        None => {
            let first = profiles.iter().find(|np| np.profile.registrar);
            if first.is_none() && !t.agents.is_empty() {
                p.push(
                    key,
                    "no registrar profile for the agents to register on".into(),
                );
            }
            first
        }
    };
    let name = match (&t.agent_profile, found) {
        (Some(name), _) => name.clone(),
        (None, Some(np)) => np.name.clone(),
        (None, None) => String::new(),
    };
    let users = found.map(|np| {
        np.profile
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect()
    });
    (name, users)
}

fn options(
    o: &OptionsTable,
    offer_timeout_secs: u64,
    base: &KeyPath,
    p: &mut Problems,
) -> WebcallbackOptions {
    let key = base.clone().key("options");
    let mut timer = p.bounded(
        key.clone().key("auto_answer_timer_secs"),
        o.auto_answer_timer_secs,
        0..=MAX_AUTO_ANSWER_TIMER_SECS,
        0,
    );
    if timer >= offer_timeout_secs {
        p.push(
            key.clone().key("auto_answer_timer_secs"),
            format!("must be below offer_timeout_secs ({offer_timeout_secs})"),
        );
        timer = 0;
    }
    for (i, field) in o.callback_information_content.iter().enumerate() {
        if field.trim().is_empty() {
            p.push(
                key.clone().key("callback_information_content").index(i),
                "must not be empty".into(),
            );
        }
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        ("complete_queue", &o.complete_queue),
        ("park_queue", &o.park_queue),
        ("reschedule_queue", &o.reschedule_queue),
    ] {
        if value.trim().is_empty() {
            p.push(key.clone().key(name), "must not be empty".into());
        } else if let Some((other, _)) = seen.iter().find(|(_, v)| v == value) {
            p.push(
                key.clone().key(name),
                format!("{value} is also {other}; the three queues must differ"),
            );
        }
        seen.push((name, value));
    }
    WebcallbackOptions {
        auto_answer: o.auto_answer,
        auto_answer_timer: Duration::from_secs(timer),
        auto_answer_enable_reject: o.auto_answer_enable_reject,
        auto_dial: o.auto_dial,
        callback_information_content: o.callback_information_content.clone(),
        complete_queue: o.complete_queue.clone(),
        park_queue: o.park_queue.clone(),
        reschedule_queue: o.reschedule_queue.clone(),
        not_ready_on_offer_timeout: p.non_empty(
            key.key("not_ready_on_offer_timeout"),
            &o.not_ready_on_offer_timeout,
        ),
    }
}

fn queue(q: &QueueTable, key: &KeyPath, p: &mut Problems) -> QueueSettings {
    if q.id.is_empty()
        || !q
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        p.push(
            key.clone().key("id"),
            format!(
                "{:?} is not a queue id (letters, digits, '-', '_', '.')",
                q.id
            ),
        );
    }
    p.skills(key.clone().key("skills"), &q.skills);
    let mut time_zone = q.time_zone.clone();
    if let Some(tz) = &q.time_zone {
        if jiff::tz::TimeZone::get(tz).is_err() {
            p.push(
                key.clone().key("time_zone"),
                format!("unknown time zone {tz:?} (an IANA name such as \"Europe/Paris\")"),
            );
            time_zone = None;
        }
    }
    let mut business_hours = Vec::new();
    for (j, h) in q.business_hours.iter().enumerate() {
        let hk = key.clone().key("business_hours").index(j);
        let mut days = Vec::new();
        if h.days.is_empty() {
            p.push(hk.clone().key("days"), "at least one day is needed".into());
        }
        for (d, name) in h.days.iter().enumerate() {
            match weekday(name) {
                Some(w) if !days.contains(&w) => days.push(w),
                Some(_) => {}
                None => p.push(
                    hk.clone().key("days").index(d),
                    format!("{name:?} is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
                ),
            }
        }
        let start = p.time(hk.clone().key("from"), &h.from, false);
        let end = p.time(hk.clone().key("to"), &h.to, true);
        if let (Some(start), Some(end)) = (start, end) {
            if start >= end {
                p.push(
                    hk.key("to"),
                    format!("{} is not after from ({})", h.to, h.from),
                );
            } else if !days.is_empty() {
                business_hours.push(HoursWindow { days, start, end });
            }
        }
    }
    let mut closed_dates = Vec::new();
    for (j, d) in q.closed_dates.iter().enumerate() {
        match d.parse::<jiff::civil::Date>() {
            Ok(date) => closed_dates.push(date),
            Err(_) => p.push(
                key.clone().key("closed_dates").index(j),
                format!("{d:?} is not a date (YYYY-MM-DD)"),
            ),
        }
    }
    if !closed_dates.is_empty() && business_hours.is_empty() {
        p.push(
            key.clone().key("closed_dates"),
            "closed dates need business_hours (a queue without them is always open)".into(),
        );
    }
    closed_dates.sort();
    closed_dates.dedup();
    let mut max_attempts = q.max_attempts;
    if max_attempts == 0 {
        p.push(key.clone().key("max_attempts"), "must be above 0".into());
        max_attempts = 1;
    }
    let expiry = q.expiry_hours.map(|h| {
        let hours = p.bounded(key.clone().key("expiry_hours"), h, 1..=MAX_WINDOW_HOURS, 72);
        Duration::from_secs(hours * HOUR)
    });
    let rk = key.clone().key("retry");
    let retry = RetryPolicy {
        busy: backoff(&q.retry.busy, rk.clone().key("busy"), p),
        no_answer: backoff(&q.retry.no_answer, rk.clone().key("no_answer"), p),
        failed: backoff(&q.retry.failed, rk.key("failed"), p),
    };
    QueueSettings {
        id: q.id.clone(),
        skills: q.skills.clone(),
        time_zone,
        business_hours,
        closed_dates,
        max_attempts,
        retry,
        expiry,
    }
}

fn backoff(b: &BackoffTable, key: KeyPath, p: &mut Problems) -> Backoff {
    let default = BackoffTable::default();
    let delay = p.bounded(
        key.clone().key("delay_secs"),
        b.delay_secs,
        0..=MAX_DELAY_SECS,
        default.delay_secs,
    );
    let mut max_delay = p.bounded(
        key.clone().key("max_delay_secs"),
        b.max_delay_secs,
        0..=MAX_DELAY_SECS,
        default.max_delay_secs,
    );
    if max_delay < delay {
        p.push(
            key.clone().key("max_delay_secs"),
            format!("must not be below delay_secs ({delay})"),
        );
        max_delay = delay;
    }
    let mut multiplier = b.multiplier;
    if !(multiplier.is_finite() && multiplier > 0.0) {
        p.push(
            key.key("multiplier"),
            format!("{multiplier} is not a positive number"),
        );
        multiplier = default.multiplier;
    }
    Backoff {
        delay: Duration::from_secs(delay),
        multiplier,
        max_delay: Duration::from_secs(max_delay),
    }
}

fn agent(a: &AgentTable, key: &KeyPath, p: &mut Problems) -> AgentSettings {
    if a.user.is_empty() {
        p.push(key.clone().key("user"), "must not be empty".into());
    }
    p.skills(key.clone().key("skills"), &a.skills);
    let mut privileges = Privileges::default();
    for (i, name) in a.deny.iter().enumerate() {
        match Privilege::parse(name) {
            Some(priv_) => withhold(&mut privileges, priv_),
            None => {
                let known: Vec<_> = Privilege::ALL.iter().map(|p| p.as_str()).collect();
                p.push(
                    key.clone().key("deny").index(i),
                    format!("unknown privilege {name:?} (one of {})", known.join(", ")),
                );
            }
        }
    }
    AgentSettings {
        id: a.user.clone(),
        name: a.name.clone(),
        team: a.team.clone(),
        skills: a.skills.clone(),
        privileges,
    }
}

fn withhold(p: &mut Privileges, which: Privilege) {
    let flag = match which {
        Privilege::UseChannel => &mut p.use_channel,
        Privilege::Decline => &mut p.decline,
        Privilege::SetDisposition => &mut p.set_disposition,
        Privilege::Reschedule => &mut p.reschedule,
        Privilege::RescheduleBeforeCall => &mut p.reschedule_before_call,
        Privilege::RescheduleOnNewNumber => &mut p.reschedule_on_new_number,
        Privilege::MarkDone => &mut p.mark_done,
        Privilege::Supervise => &mut p.supervise,
    };
    *flag = false;
}

/// `mon` or `monday`, any case.
fn weekday(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    let full = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    full.into_iter()
        .find(|(name, _)| s == *name || s == name[..3])
        .map(|(_, w)| w)
}

/// `HH:MM`, 00:00 to 23:59; `24:00` too when `end_of_day` (the window then
/// runs to midnight: `Time::MAX` stands for it).
fn hh_mm(s: &str, end_of_day: bool) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let hour = (b[0] - b'0') * 10 + (b[1] - b'0');
    let minute = (b[3] - b'0') * 10 + (b[4] - b'0');
    if end_of_day && hour == 24 && minute == 0 {
        return Some(Time::MAX);
    }
    Time::new(hour as i8, minute as i8, 0, 0).ok()
}

/// Collects problems against one file (the main one: `[callback]` lives there).
struct Problems<'a> {
    file: &'a Path,
    out: Vec<Problem>,
}

impl Problems<'_> {
    fn push(&mut self, key: KeyPath, message: String) {
        self.out.push((self.file.to_path_buf(), key, message));
    }

    /// `value` when within `range`, else reported and `fallback`.
    fn bounded(
        &mut self,
        key: KeyPath,
        value: u64,
        range: std::ops::RangeInclusive<u64>,
        fallback: u64,
    ) -> u64 {
        if range.contains(&value) {
            return value;
        }
        self.push(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        );
        fallback
    }

    fn non_empty(&mut self, key: KeyPath, value: &Option<String>) -> Option<String> {
        match value {
            Some(v) if v.trim().is_empty() => {
                self.push(key, "must not be empty (omit the key instead)".into());
                None
            }
            other => other.clone(),
        }
    }

    fn skills(&mut self, key: KeyPath, skills: &[String]) {
        for (i, s) in skills.iter().enumerate() {
            if s.trim().is_empty() {
                self.push(key.clone().index(i), "a skill must not be empty".into());
            }
        }
    }

    fn time(&mut self, key: KeyPath, value: &str, end_of_day: bool) -> Option<Time> {
        let t = hh_mm(value, end_of_day);
        if t.is_none() {
            let range = if end_of_day {
                "00:00 to 24:00"
            } else {
                "00:00 to 23:59"
            };
            self.push(key, format!("{value:?} is not HH:MM ({range})"));
        }
        t
    }
}

#[cfg(test)]
mod tests;
