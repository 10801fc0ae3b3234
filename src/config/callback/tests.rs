//! `[callback]` configuration: values read, defaults, and each error's line and key.

use std::path::Path;
use std::time::Duration;

use jiff::civil::{Time, Weekday};

use super::{hh_mm, weekday};
use crate::callback::{HoursWindow, Privilege, Privileges};
use crate::config::{embedded_default, load_with, Config, ConfigErrors};

/// A registrar profile `a` with users 1001 and 1002, and a non-registrar `b`.
const PROFILES: &str = "[profiles.a]\nregistrar = true\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n[[profiles.a.users]]\nusername = \"1001\"\npassword = \"x\"\n[[profiles.a.users]]\nusername = \"1002\"\npassword = \"x\"\n[profiles.b]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n";
/// Lines of PROFILES; callback text starts on the line after.
const BASE_LINES: usize = 11;

fn load(callback: &str) -> Result<Config, ConfigErrors> {
    let text = format!("{PROFILES}{callback}");
    load_with(Path::new("main.toml"), move |_| Ok(text.clone()), false)
}

/// (line within `callback`, key) of every error.
fn errors(callback: &str) -> Vec<(usize, String)> {
    let e = load(callback).expect_err("expected errors");
    e.0.iter()
        .map(|e| (e.line.saturating_sub(BASE_LINES), e.key.clone()))
        .collect()
}

fn has(errs: &[(usize, String)], line: usize, key: &str) -> bool {
    errs.iter().any(|(l, k)| *l == line && k == key)
}

#[test]
fn the_profiles_alone_are_valid() {
    assert_eq!(PROFILES.lines().count(), BASE_LINES);
    let c = load("").unwrap();
    assert_eq!(c.general.http_api_keys, Vec::<String>::new());
}

#[test]
fn an_absent_table_gives_the_defaults() {
    let c = load("").unwrap().callback;
    assert_eq!(c.database, Path::new("data/switchback.db"));
    assert_eq!(c.offer_timeout, Duration::from_secs(30));
    assert_eq!(c.agent_profile, "a", "the first registrar profile");
    assert!(c.ready_after_done);
    assert_eq!(c.idempotency_window, Duration::from_secs(24 * 3600));
    assert_eq!(c.options.complete_queue, "webcallback-complete");
    assert_eq!(
        c.options.callback_information_content,
        [
            "callbackUserName",
            "callbackNumber",
            "callbackScheduledTime",
            "queueId"
        ]
    );
    assert!(c.login.is_auto_ready && c.login.can_unactivate_channel);
    assert!(c.queues.is_empty() && c.agents.is_empty());
}

#[test]
fn a_full_table_is_read() {
    let c = load(
        r#"[callback]
database = "x/cb.db"
offer_timeout_secs = 20
agent_profile = "a"
ready_after_done = false
idempotency_window_hours = 2
[callback.options]
auto_answer = true
auto_answer_timer_secs = 5
auto_answer_enable_reject = false
auto_dial = true
callback_information_content = ["queueId"]
complete_queue = "c"
park_queue = "p"
reschedule_queue = "r"
not_ready_on_offer_timeout = "Away"
[callback.login]
is_auto_ready = false
auto_not_ready_reason = "Login"
can_unactivate_channel = false
[[callback.queues]]
id = "support"
skills = ["english"]
time_zone = "Europe/Paris"
business_hours = [{ days = ["mon", "Friday"], from = "09:00", to = "24:00" }]
max_attempts = 5
expiry_hours = 48
retry = { busy = { delay_secs = 10, multiplier = 1.5, max_delay_secs = 100 } }
[[callback.agents]]
user = "1002"
name = "Bob"
team = "tier1"
skills = ["english"]
deny = ["webcallback.can-decline", "webcallback.can-reschedule"]
"#,
    )
    .unwrap()
    .callback;
    assert_eq!(c.offer_timeout, Duration::from_secs(20));
    assert!(!c.ready_after_done);
    assert_eq!(c.idempotency_window, Duration::from_secs(7200));
    let o = &c.options;
    assert!(o.auto_answer && o.auto_dial && !o.auto_answer_enable_reject);
    assert_eq!(o.auto_answer_timer, Duration::from_secs(5));
    assert_eq!(
        (
            o.complete_queue.as_str(),
            o.park_queue.as_str(),
            o.reschedule_queue.as_str()
        ),
        ("c", "p", "r")
    );
    assert_eq!(o.not_ready_on_offer_timeout.as_deref(), Some("Away"));
    assert_eq!(c.login.auto_not_ready_reason.as_deref(), Some("Login"));
    assert!(!c.login.is_auto_ready && !c.login.can_unactivate_channel);
    let q = &c.queues["support"];
    assert_eq!(q.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(
        q.business_hours,
        [HoursWindow {
            days: vec![Weekday::Monday, Weekday::Friday],
            start: Time::constant(9, 0, 0, 0),
            end: Time::MAX,
        }]
    );
    assert_eq!(
        (q.max_attempts, q.expiry),
        (5, Some(Duration::from_secs(48 * 3600)))
    );
    assert_eq!(q.retry.busy.delay, Duration::from_secs(10));
    assert_eq!(q.retry.busy.multiplier, 1.5);
    assert_eq!(q.retry.no_answer.delay, Duration::from_secs(300), "default");
    let a = &c.agents["1002"];
    assert_eq!(
        (a.name.as_deref(), a.team.as_deref()),
        (Some("Bob"), Some("tier1"))
    );
    assert!(a.privileges.allows(Privilege::UseChannel));
    assert!(!a.privileges.allows(Privilege::Decline));
    assert!(
        !a.privileges.allows(Privilege::RescheduleBeforeCall),
        "depends on reschedule"
    );
    assert!(a.privileges.allows(Privilege::MarkDone));
}

#[test]
fn queue_errors_name_line_and_key() {
    let errs = errors(
        r#"[[callback.queues]]
id = "q"
time_zone = "Mars/Olympus"
max_attempts = 0
business_hours = [
  { days = [], from = "09:00", to = "10:00" },
  { days = ["mon", "funday"], from = "9:00", to = "25:00" },
  { days = ["tue"], from = "18:00", to = "09:00" },
]
retry = { busy = { multiplier = 0.0 }, failed = { multiplier = -2.0 }, no_answer = { delay_secs = 600, max_delay_secs = 60 } }
[[callback.queues]]
id = "q"
expiry_hours = 0
closed_dates = ["2026-12-25"]
[[callback.queues]]
id = "webcallback-park"
skills = [""]
[[callback.queues]]
id = "holidays"
business_hours = [{ days = ["mon"], from = "09:00", to = "17:00" }]
closed_dates = ["2026-12-25", "25/12/2026"]
"#,
    );
    let want = [
        (3, "callback.queues[0].time_zone"),
        (4, "callback.queues[0].max_attempts"),
        (6, "callback.queues[0].business_hours[0].days"),
        (7, "callback.queues[0].business_hours[1].days[1]"),
        (7, "callback.queues[0].business_hours[1].from"),
        (7, "callback.queues[0].business_hours[1].to"),
        (8, "callback.queues[0].business_hours[2].to"),
        (10, "callback.queues[0].retry.busy.multiplier"),
        (10, "callback.queues[0].retry.failed.multiplier"),
        (10, "callback.queues[0].retry.no_answer.max_delay_secs"),
        (12, "callback.queues[1].id"),
        (13, "callback.queues[1].expiry_hours"),
        (14, "callback.queues[1].closed_dates"),
        (16, "callback.queues[2].id"),
        (17, "callback.queues[2].skills[0]"),
        (21, "callback.queues[3].closed_dates[1]"),
    ];
    for (line, key) in want {
        assert!(has(&errs, line, key), "{line}: {key} not in {errs:?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:?}");
}

#[test]
fn agent_errors_name_line_and_key() {
    let errs = errors(
        r#"[[callback.agents]]
user = "1001"
deny = ["webcallback.can-decline", "webcallback.can-fly"]
[[callback.agents]]
user = "1001"
[[callback.agents]]
user = "2001"
"#,
    );
    let want = [
        (3, "callback.agents[0].deny[1]"),
        (5, "callback.agents[1].user"),
        (7, "callback.agents[2].user"),
    ];
    for (line, key) in want {
        assert!(has(&errs, line, key), "{line}: {key} not in {errs:?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:?}");
}

#[test]
fn the_agent_profile_must_be_a_registrar() {
    let errs = errors("[callback]\nagent_profile = \"b\"\n");
    assert_eq!(errs, [(2, "callback.agent_profile".to_string())]);
    let errs = errors("[callback]\nagent_profile = \"zz\"\n");
    assert_eq!(errs, [(2, "callback.agent_profile".to_string())]);
}

#[test]
fn general_and_option_errors_name_line_and_key() {
    let errs = errors(
        r#"[callback]
offer_timeout_secs = 0
idempotency_window_hours = 0
[callback.options]
auto_answer_timer_secs = 40
complete_queue = ""
park_queue = "same"
reschedule_queue = "same"
callback_information_content = ["queueId", " "]
not_ready_on_offer_timeout = ""
[callback.login]
auto_not_ready_reason = " "
"#,
    );
    let want = [
        (2, "callback.offer_timeout_secs"),
        (3, "callback.idempotency_window_hours"),
        (5, "callback.options.auto_answer_timer_secs"),
        (6, "callback.options.complete_queue"),
        (8, "callback.options.reschedule_queue"),
        (9, "callback.options.callback_information_content[1]"),
        (10, "callback.options.not_ready_on_offer_timeout"),
        (12, "callback.login.auto_not_ready_reason"),
    ];
    for (line, key) in want {
        assert!(has(&errs, line, key), "{line}: {key} not in {errs:?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:?}");
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let errs = errors("[[callback.queues]]\nid = \"q\"\nmax_atempts = 3\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, 3, "{errs:?}");
    let e = load("[callback.options]\nauto_answer = \"yes\"\n").unwrap_err();
    assert_eq!(e.0[0].key, "callback.options.auto_answer", "{e}");
}

#[test]
fn api_keys_must_be_long_enough() {
    let text =
        "[general]\nhttp_api_keys = [\"0123456789abcdef\", \"short\", \"with a space in it!\"]\n";
    let e = load_with(
        Path::new("main.toml"),
        move |_| Ok(format!("{text}{PROFILES}")),
        false,
    )
    .unwrap_err();
    let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "general.http_api_keys[1]"),
            (2, "general.http_api_keys[2]")
        ],
        "{e}"
    );
}

#[test]
fn only_the_main_file_may_hold_the_callback_table() {
    let read = |p: &Path| -> std::io::Result<String> {
        Ok(match p.to_str() {
            Some("main.toml") => format!("include = [\"more.toml\"]\n{PROFILES}"),
            _ => "[callback]\noffer_timeout_secs = 5\n".to_string(),
        })
    };
    let e = load_with(Path::new("main.toml"), read, false).unwrap_err();
    assert_eq!(
        (e.0[0].file.as_str(), e.0[0].line, e.0[0].key.as_str()),
        ("more.toml", 1, "callback"),
        "{e}"
    );
}

#[test]
fn the_shipped_demo_has_a_support_queue_and_four_agents() {
    let c = embedded_default();
    assert_eq!(c.general.http_api_keys, ["switchback-demo-key-0001"]);
    let cb = &c.callback;
    assert_eq!(cb.agent_profile, "internal");
    let q = &cb.queues["support"];
    assert!(q.business_hours.is_empty(), "the demo fires any time");
    assert_eq!(q.max_attempts, 3);
    assert!(
        q.retry.busy.delay <= Duration::from_secs(60),
        "short demo retries"
    );
    let agents: Vec<_> = cb.agents.keys().map(String::as_str).collect();
    assert_eq!(agents, ["1001", "1002", "1003", "1004"]);
    assert!(cb
        .agents
        .values()
        .all(|a| a.team.as_deref() == Some("tier1") && a.privileges == Privileges::default()));
}

#[test]
fn clock_times_are_strict_hh_mm() {
    assert_eq!(hh_mm("09:30", false), Some(Time::constant(9, 30, 0, 0)));
    assert_eq!(hh_mm("23:59", false), Some(Time::constant(23, 59, 0, 0)));
    assert_eq!(hh_mm("24:00", true), Some(Time::MAX));
    for bad in ["24:00", "9:30", "09:60", "0930", "09:3x", "", "09:30:00"] {
        assert_eq!(hh_mm(bad, false), None, "{bad}");
    }
    assert_eq!(hh_mm("24:01", true), None);
    assert_eq!(weekday("MON"), Some(Weekday::Monday));
    assert_eq!(weekday("sunday"), Some(Weekday::Sunday));
    assert_eq!(weekday("mo"), None);
}
