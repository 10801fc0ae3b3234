//! Runs every wire message in `fixtures/sip/` through `sip::parse` and checks
//! the outcome recorded for it in `fixtures/sip/expected.toml`.
//!
//! The fixtures are the regression set for what the old rsip parser got wrong
//! (dotted users, compact names, folding, GRUU params, hex `nc`) and RFC 4475
//! style torture cases. One test collects every mismatch so that a parser
//! change shows its whole effect at once. A mismatch means either the parser
//! is wrong (the expectations are meant to be right: fix `src/sip/`) or the
//! manifest is (fix `scripts/gen-sip-fixtures.py` and regenerate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use switchback::sip::{self, typed, Malformed, MessageHeaders, SipMessage};
use toml::{Table, Value};

const MAX_SIZE: usize = 65535;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip")
}

fn manifest() -> Table {
    let text =
        std::fs::read_to_string(fixture_dir().join("expected.toml")).expect("read expected.toml");
    text.parse::<Table>().expect("expected.toml is valid TOML")
}

fn fixture_names() -> BTreeSet<String> {
    std::fs::read_dir(fixture_dir())
        .expect("read fixtures/sip")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "sip").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect()
}

#[test]
fn every_fixture_has_a_manifest_entry_and_every_entry_a_fixture() {
    let names = fixture_names();
    let man = manifest();
    let entries: BTreeSet<String> = man.keys().cloned().collect();
    let no_entry: Vec<_> = names.difference(&entries).collect();
    let no_file: Vec<_> = entries.difference(&names).collect();
    assert!(
        names.len() >= 30,
        "expected the full fixture set, found {}",
        names.len()
    );
    assert!(
        no_entry.is_empty() && no_file.is_empty(),
        "fixtures without a manifest entry: {no_entry:?}; manifest entries without a fixture: {no_file:?}"
    );
    for (name, entry) in &man {
        let t = entry
            .as_table()
            .unwrap_or_else(|| panic!("[{name}] is not a table"));
        let kinds = t.contains_key("outcome") as u8 + t.contains_key("answer") as u8;
        assert_eq!(
            kinds, 1,
            "[{name}] needs exactly one of `outcome` or `answer`"
        );
    }
}

#[test]
fn fixtures_parse_as_expected() {
    let man = manifest();
    let mut failures = Vec::new();
    for (name, entry) in &man {
        let path = fixture_dir().join(format!("{name}.sip"));
        let Ok(bytes) = std::fs::read(&path) else {
            failures.push(format!("{name}: cannot read {}", path.display()));
            continue;
        };
        let entry = entry.as_table().expect("table");
        // A panic in the parser is a failure of this fixture, not of the run.
        let result = std::panic::catch_unwind(|| sip::parse(&bytes, MAX_SIZE));
        let problems = match result {
            Err(_) => vec!["parser PANICKED".to_string()],
            Ok(result) => check(entry, result),
        };
        for p in problems {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture mismatch(es) (expected outcome is in fixtures/sip/expected.toml):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn describe(result: &Result<SipMessage, Malformed>) -> String {
    match result {
        Ok(SipMessage::Request(r)) => format!("parsed request {}", r.method),
        Ok(SipMessage::Response(r)) => format!("parsed response {}", r.status_code.code()),
        Err(Malformed::Unanswerable { reason }) => format!("drop ({reason})"),
        Err(Malformed::Answerable { reason, response }) => {
            format!("answer {} ({reason})", response.status_code.code())
        }
    }
}

fn check(entry: &Table, result: Result<SipMessage, Malformed>) -> Vec<String> {
    let got = describe(&result);
    if let Some(code) = entry.get("answer").and_then(Value::as_integer) {
        return match &result {
            Err(Malformed::Answerable { reason, response }) => {
                let mut p = Vec::new();
                if i64::from(response.status_code.code()) != code {
                    p.push(format!("expected answer {code}, got {got}"));
                }
                if let Some(want) = entry.get("reason_contains").and_then(Value::as_str) {
                    if !reason.to_lowercase().contains(&want.to_lowercase()) {
                        p.push(format!("reason {reason:?} does not mention {want:?}"));
                    }
                }
                // The answer must be addressable: it copies Via, From, To, Call-ID, CSeq.
                for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    if response.header_value(h).is_none() {
                        p.push(format!("answer {code} lacks {h}"));
                    }
                }
                p
            }
            _ => vec![format!("expected answer {code}, got {got}")],
        };
    }
    match entry.get("outcome").and_then(Value::as_str) {
        Some("drop") => match result {
            Err(Malformed::Unanswerable { .. }) => vec![],
            _ => vec![format!("expected drop, got {got}")],
        },
        Some("parsed") => match result {
            Ok(message) => check_parsed(entry, &message),
            Err(_) => vec![format!("expected parsed, got {got}")],
        },
        other => vec![format!("manifest: unknown outcome {other:?}")],
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parameters rendered as `name=value` (or `name`), as they appear on the wire.
fn params_text(params: &[sip::Param]) -> Vec<String> {
    params
        .iter()
        .map(|p| p.to_string().trim_start_matches(';').to_string())
        .collect()
}

fn eq(p: &mut Vec<String>, what: &str, want: String, got: Option<String>) {
    if got.as_deref() != Some(want.as_str()) {
        p.push(format!("{what}: expected {want:?}, got {got:?}"));
    }
}

fn check_parsed(entry: &Table, m: &SipMessage) -> Vec<String> {
    let mut p = Vec::new();
    let s = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
    let req = match m {
        SipMessage::Request(r) => Some(r),
        _ => None,
    };
    let body: &[u8] = match m {
        SipMessage::Request(r) => &r.body,
        SipMessage::Response(r) => &r.body,
    };
    if let Some(w) = s("method") {
        eq(&mut p, "method", w, req.map(|r| r.method.to_string()));
    }
    if let Some(w) = entry.get("status").and_then(Value::as_integer) {
        let got = match m {
            SipMessage::Response(r) => Some(r.status_code.code().to_string()),
            _ => None,
        };
        eq(&mut p, "status", w.to_string(), got);
    }
    if let Some(w) = s("request_uri_user") {
        eq(
            &mut p,
            "request-uri user",
            w,
            req.and_then(|r| r.uri.user().map(str::to_string)),
        );
    }
    if let Some(w) = s("request_uri_user_unescaped") {
        eq(
            &mut p,
            "request-uri user (unescaped)",
            w,
            req.and_then(|r| r.uri.user().map(percent_decode)),
        );
    }
    if let Some(w) = s("request_uri_host") {
        eq(
            &mut p,
            "request-uri host",
            w,
            req.map(|r| r.uri.host().to_string()),
        );
    }
    if let Some(w) = s("call_id") {
        eq(&mut p, "call-id", w, m.call_id().map(str::to_string));
    }
    if let Some(w) = s("from_tag") {
        eq(&mut p, "from-tag", w, m.from_tag());
    }
    if let Some(w) = s("to_tag") {
        eq(&mut p, "to-tag", w, m.to_tag());
    }
    if let Some(w) = entry.get("cseq").and_then(Value::as_integer) {
        eq(
            &mut p,
            "cseq number",
            w.to_string(),
            m.cseq().map(|(n, _)| n.to_string()),
        );
    }
    if let Some(w) = s("top_via_branch") {
        eq(
            &mut p,
            "top via branch",
            w,
            m.top_via().and_then(|v| v.branch),
        );
    }
    if let Some(t) = entry.get("headers").and_then(Value::as_table) {
        for (name, want) in t {
            let want = want.as_str().unwrap_or_default().to_string();
            eq(
                &mut p,
                &format!("header {name}"),
                want,
                m.header_value(name).map(|v| v.trim().to_string()),
            );
        }
    }
    if let Some(t) = entry.get("headers_ws").and_then(Value::as_table) {
        for (name, want) in t {
            let want = collapse_ws(want.as_str().unwrap_or_default());
            eq(
                &mut p,
                &format!("header {name} (whitespace collapsed)"),
                want,
                m.header_value(name).map(collapse_ws),
            );
        }
    }
    if let Some(t) = entry.get("header_len").and_then(Value::as_table) {
        for (name, want) in t {
            let want = want.as_integer().unwrap_or_default().to_string();
            eq(
                &mut p,
                &format!("length of header {name}"),
                want,
                m.header_value(name).map(|v| v.trim().len().to_string()),
            );
        }
    }
    if let Some(w) = entry.get("body_len").and_then(Value::as_integer) {
        eq(
            &mut p,
            "body length",
            w.to_string(),
            Some(body.len().to_string()),
        );
    }
    if let Some(w) = s("body_starts_with") {
        if !body.starts_with(w.as_bytes()) {
            p.push(format!(
                "body does not start with {w:?}: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            ));
        }
    }
    let list = |k: &str| -> Option<Vec<String>> {
        entry.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    if let Some(w) = list("request_uri_params") {
        let got = req.map(|r| params_text(&r.uri.params)).unwrap_or_default();
        for want in w {
            if !got.contains(&want) {
                p.push(format!(
                    "request-uri param {want:?} missing; params are {got:?}"
                ));
            }
        }
    }
    let contact_keys = ["contact_uri_user", "contact_params", "contact_uri_params"];
    if contact_keys.iter().any(|k| entry.contains_key(*k)) {
        match m
            .header_value("Contact")
            .map(|v| typed::Contact::parse(v.trim()))
        {
            Some(Ok(c)) => {
                if let Some(w) = s("contact_uri_user") {
                    eq(
                        &mut p,
                        "contact uri user",
                        w,
                        c.uri.user().map(str::to_string),
                    );
                }
                // Header parameters through the quote-aware reader: rsip's typed
                // Contact splits `pub-gruu="sip:...;gr=..."` at the inner `;`.
                let got: Vec<String> = m
                    .header_value("Contact")
                    .and_then(sip::split_name_addr)
                    .map(|(_, ps)| {
                        ps.iter()
                            .map(|(k, v)| match v {
                                Some(v) => format!("{k}={v}"),
                                None => k.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for want in list("contact_params").unwrap_or_default() {
                    if !got.contains(&want) {
                        p.push(format!(
                            "contact param {want:?} missing; params are {got:?}"
                        ));
                    }
                }
                let got = params_text(&c.uri.params);
                for want in list("contact_uri_params").unwrap_or_default() {
                    if !got.contains(&want) {
                        p.push(format!(
                            "contact uri param {want:?} missing; uri params are {got:?}"
                        ));
                    }
                }
            }
            Some(Err(e)) => p.push(format!("Contact does not parse: {e}")),
            None => p.push("no Contact header".into()),
        }
    }
    p
}
