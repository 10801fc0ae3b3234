//! A create's enrichment note lands in the history of the interaction it
//! created or was merged into.

use super::testlab::*;
use crate::callback::action::*;
use crate::callback::model::*;

fn note(detail: &str) -> EnrichmentNote {
    EnrichmentNote {
        outcome: EnrichmentOutcome::Enriched,
        detail: detail.into(),
        changed: vec!["data.tier".into()],
    }
}

fn create(lab: &mut Lab, secs: i64, enrichment: Option<EnrichmentNote>) -> InteractionId {
    let r = lab.req(
        at(secs),
        Request::Create {
            callback: NewCallback {
                request: support("+33612345678"),
                enrichment,
            },
            idempotency_key: None,
        },
    );
    match r {
        Ok(Reply::Created { callback, .. }) => callback.id,
        other => panic!("create: {other:?}"),
    }
}

/// The kinds of the history entries written for `id`, in order.
fn kinds(lab: &Lab, id: &InteractionId) -> Vec<HistoryKind> {
    lab.writes
        .iter()
        .filter_map(|w| match w {
            Write::History(i, e) if i == id => Some(e.kind.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_note_follows_the_created_entry_and_a_merge_records_its_own() {
    let mut lab = Lab::new();
    let id = create(&mut lab, 0, Some(note("changed data.tier")));
    let history = kinds(&lab, &id);
    assert!(
        matches!(history[0], HistoryKind::Created { .. }),
        "{history:?}"
    );
    assert_eq!(
        history[1],
        HistoryKind::Enrichment {
            outcome: EnrichmentOutcome::Enriched,
            detail: "changed data.tier".into(),
            changed: vec!["data.tier".into()],
        }
    );
    // A second request for the same number joins the first, with its note.
    let again = create(&mut lab, 5, Some(note("second")));
    assert_eq!(again, id);
    let history = kinds(&lab, &id);
    let notes: Vec<_> = history
        .iter()
        .filter_map(|k| match k {
            HistoryKind::Enrichment { detail, .. } => Some(detail.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(notes, ["changed data.tier", "second"]);
}

#[test]
fn no_note_no_entry() {
    let mut lab = Lab::new();
    let id = create(&mut lab, 0, None);
    assert!(!kinds(&lab, &id)
        .iter()
        .any(|k| matches!(k, HistoryKind::Enrichment { .. })));
}
