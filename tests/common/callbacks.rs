//! The web-callback tests' set-up: a call lab (phones on `internal`, a
//! trunk gateway on `external`) with a `[callback]` table whose database
//! lives outside the switch's working directory, so a `kill -9` and a
//! restart find it again; helpers for the API and the desktop's events.

use std::time::Duration;

use super::calls::{CallConfig, Lab};
use super::http::{self, Response};
use super::{Event, Switch, EVENT};

/// One `[[callback.agents]]`.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub user: String,
    pub team: String,
    pub skills: Vec<String>,
    /// Privileges withheld (by name, `webcallback.can-decline`).
    pub deny: Vec<String>,
}

impl AgentConfig {
    pub fn new(user: &str) -> AgentConfig {
        AgentConfig {
            user: user.into(),
            team: "tier1".into(),
            skills: vec![],
            deny: vec![],
        }
    }
}

#[derive(Clone, Debug)]
pub struct CallbackConfig {
    pub calls: CallConfig,
    pub offer_timeout_secs: u64,
    /// `[callback.options]` lines, e.g. `("auto_dial", "true")`.
    pub options: Vec<(String, String)>,
    pub max_attempts: u32,
    /// Every retry back-off (busy, no answer, failed), in seconds.
    pub retry_secs: u64,
    pub agents: Vec<AgentConfig>,
    /// More lines of the `support` queue's table (e.g. `enrichment = {...}`).
    pub queue_lines: Vec<String>,
    /// TOML appended after the `[callback]` tables (e.g. `[notify]`,
    /// `[callback.enrichment]`).
    pub extra_toml: String,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            calls: CallConfig {
                // SIPp's phones send no RTP: no call may be lost to silence.
                rtp_timeout_secs: 0,
                ..CallConfig::default()
            },
            offer_timeout_secs: 10,
            options: vec![],
            max_attempts: 3,
            retry_secs: 2,
            agents: ["1001", "1002", "1003"].map(AgentConfig::new).to_vec(),
            queue_lines: vec![],
            extra_toml: String::new(),
        }
    }
}

impl CallbackConfig {
    fn callback_toml(&self, database: &std::path::Path) -> String {
        let q = |s: &str| format!("{s:?}");
        let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        let mut s = format!(
            "[callback]\ndatabase = {}\noffer_timeout_secs = {}\nagent_profile = \"internal\"\n",
            q(&database.display().to_string()),
            self.offer_timeout_secs
        );
        s.push_str("\n[callback.options]\n");
        s.push_str("complete_queue = \"wcb-complete\"\npark_queue = \"wcb-park\"\nreschedule_queue = \"wcb-reschedule\"\n");
        for (k, v) in &self.options {
            s.push_str(&format!("{k} = {v}\n"));
        }
        let r = self.retry_secs;
        s.push_str(&format!(
            "\n[[callback.queues]]\nid = \"support\"\nmax_attempts = {}\n{}\
             [callback.queues.retry]\n\
             busy = {{ delay_secs = {r}, multiplier = 1.0, max_delay_secs = {r} }}\n\
             no_answer = {{ delay_secs = {r}, multiplier = 1.0, max_delay_secs = {r} }}\n\
             failed = {{ delay_secs = {r}, multiplier = 1.0, max_delay_secs = {r} }}\n",
            self.max_attempts,
            self.queue_lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        ));
        for a in &self.agents {
            s.push_str(&format!(
                "\n[[callback.agents]]\nuser = {}\nteam = {}\nskills = [{}]\ndeny = [{}]\n",
                q(&a.user),
                q(&a.team),
                list(&a.skills),
                list(&a.deny)
            ));
        }
        s.push('\n');
        s.push_str(&self.extra_toml);
        s
    }
}

/// A running switch with its web-callback layer, restartable on the same
/// database.
pub struct CallbackLab {
    pub lab: Lab,
    pub cfg: CallbackConfig,
    /// Holds the database across restarts.
    pub data: tempfile::TempDir,
}

impl CallbackLab {
    pub fn start(cfg: CallbackConfig) -> CallbackLab {
        let data = tempfile::tempdir().expect("tempdir");
        let extra = cfg.callback_toml(&data.path().join("switchback.db"));
        let lab = Lab::start_with(cfg.calls.clone(), &extra);
        CallbackLab { lab, cfg, data }
    }

    /// `kill -9`, then a new switch on the same configuration and database.
    /// Phones must register again (bindings live in memory).
    pub fn kill9_and_restart(&mut self) {
        self.lab.sw.kill9();
        let extra = self
            .cfg
            .callback_toml(&self.data.path().join("switchback.db"));
        let text = format!("{}\n{extra}", self.lab.cfg.to_toml());
        self.lab.sw = Switch::start_with_text(&text);
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        http::request(self.lab.http(), method, path, body)
    }

    /// POST /v1/callbacks; insists on 201 and returns the id.
    pub fn create(&self, body: &str) -> String {
        let r = self.api("POST", "/v1/callbacks", Some(body));
        assert_eq!(r.status, 201, "create: {}", r.body);
        r.json()["id"].as_str().expect("id").to_string()
    }

    pub fn login(&mut self, agent: &str) {
        let r = self.api("POST", &format!("/v1/agents/{agent}/login"), None);
        assert_eq!(r.status, 200, "login {agent}: {}", r.body);
    }

    /// An interaction action by `agent` (`accept`, `call`, `done`...).
    pub fn act(&self, agent: &str, id: &str, action: &str, body: Option<&str>) -> Response {
        self.api(
            "POST",
            &format!("/v1/agents/{agent}/callbacks/{id}/{action}"),
            Some(body.unwrap_or("{}")),
        )
    }

    /// `act`, insisting on 200.
    pub fn act_ok(
        &self,
        agent: &str,
        id: &str,
        action: &str,
        body: Option<&str>,
    ) -> serde_json::Value {
        let r = self.act(agent, id, action, body);
        assert_eq!(r.status, 200, "{action} on {id} by {agent}: {}", r.body);
        r.json()
    }

    /// Creates a callback, insists that it is offered to `agent` (the only
    /// one Ready), and has `agent` accept it; returns its id.
    pub fn create_accepted(&mut self, agent: &str, body: &str) -> String {
        let id = self.create(body);
        assert_eq!(self.wait_offer(&id), agent, "offered to");
        self.accept(agent, &id);
        id
    }

    /// Waits for the interaction to enter `state` (`event interaction ...`).
    pub fn wait_state(&mut self, id: &str, state: &str) -> Event {
        self.lab
            .wait("interaction", &[("id", id), ("state", state)])
    }

    pub fn wait_state_for(&mut self, id: &str, state: &str, t: Duration) -> Event {
        self.lab
            .wait_for("interaction", &[("id", id), ("state", state)], t)
    }

    /// Waits for the interaction's offer and returns the agent it went to.
    pub fn wait_offer(&mut self, id: &str) -> String {
        self.lab
            .wait("offer", &[("id", id)])
            .get("agent")
            .to_string()
    }

    /// Waits for the first desktop event `name` matching `fields` whose
    /// `seq` is above `after`. States and agent states repeat, so
    /// [`CallbackLab::wait_state`] (which finds the first ever) is not
    /// always enough.
    pub fn wait_after(&mut self, name: &str, fields: &[(&str, &str)], after: u64) -> Event {
        let fits = |e: &Event| {
            e.name == name && seq(e) > after && fields.iter().all(|(k, v)| e.get(k) == *v)
        };
        if let Some(e) = self.lab.sw.events(name).into_iter().find(|e| fits(e)) {
            return e;
        }
        let what = format!("event {name} {fields:?} after seq {after}");
        let line = self
            .lab
            .sw
            .wait_for(&what, WAIT, |l| Event::parse(l).is_some_and(|e| fits(&e)));
        Event::parse(&line).expect("a matched event")
    }

    pub fn wait_agent(&mut self, agent: &str, state: &str) -> Event {
        self.lab
            .wait("agent-state", &[("agent", agent), ("state", state)])
    }

    /// GET /v1/callbacks/{id} (record and history).
    pub fn get(&self, id: &str) -> serde_json::Value {
        let r = self.api("GET", &format!("/v1/callbacks/{id}"), None);
        assert_eq!(r.status, 200, "GET {id}: {}", r.body);
        r.json()
    }

    /// The states the history records, in order.
    pub fn history_states(&self, id: &str) -> Vec<String> {
        self.history(id, "state-changed")
            .iter()
            .map(|h| h["to"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The stored history entries of one `type` (`attempt`, `leg`...).
    pub fn history(&self, id: &str, kind: &str) -> Vec<serde_json::Value> {
        history_of(&self.get(id), kind)
    }

    /// `agent` accepts its offer; returns once the interaction is Ready to Call.
    pub fn accept(&mut self, agent: &str, id: &str) {
        self.act_ok(agent, id, "accept", None);
        self.wait_state(id, "ready-to-call");
    }
}

/// A stored record's history entries of one `type`.
pub fn history_of(got: &serde_json::Value, kind: &str) -> Vec<serde_json::Value> {
    got["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["type"] == kind)
        .cloned()
        .collect()
}

/// The default bound on a wait for a web-callback event.
pub const WAIT: Duration = EVENT;

/// A desktop event's sequence number (`seq=N`).
pub fn seq(e: &Event) -> u64 {
    e.get("seq").parse().unwrap_or(0)
}
