//! The delivery lines of `cpo status`: outcomes, reasons, paused, unconfirmed.

use cpo_shared::progress::{self, CampaignProgress};
use cpo_shared::store::{CampaignCounts, CampaignRecord, SendRecord, SendState};

use super::*;

fn progress(fields: &[(&str, i64)]) -> CampaignProgress {
    CampaignProgress {
        campaign_id: "spring".into(),
        counters: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn unconfirmed(id: &str, state: SendState, error: &str) -> SendRecord {
    SendRecord {
        message_id: id.into(),
        sink: "smtp".into(),
        provider_message_id: None,
        state,
        attempts: 2,
        lease_until_ms: 0,
        first_claimed_at_ms: 1,
        updated_at_ms: 7,
        sent_at_ms: None,
        last_error: Some(error.into()),
    }
}

fn view() -> RecordView {
    RecordView {
        campaign: Some(CampaignRecord {
            campaign_id: "spring".into(),
            request: "{}".into(),
            state: "paused until 2026-12-07T00:00:00Z".into(),
            updated_at_ms: 0,
        }),
        counts: CampaignCounts {
            assigned: 100,
            sent: 60,
            failed: 5,
            in_flight: 10,
            ..CampaignCounts::default()
        },
        failure_reasons: vec![
            ("550 5.1.1 no such user".into(), 3),
            ("552 mailbox\r\n full\u{1b}[31m".into(), 2),
        ],
        unconfirmed: vec![
            unconfirmed(
                "msg-7",
                SendState::Sent,
                "unconfirmed: worker stopped; resent",
            ),
            unconfirmed(
                "msg-9",
                SendState::Failed,
                "unconfirmed: worker stopped; skipped",
            ),
        ],
    }
}

#[test]
fn the_report_shows_outcomes_reasons_waiting_paused_and_the_unconfirmed() {
    let p = progress(&[
        (progress::MESSAGES_SUPPRESSED, 4),
        (progress::MESSAGES_UNCONFIRMED, 3),
    ]);
    let v = view();
    // 100 assigned - 60 sent - 5 failed - 10 in flight - 4 suppressed
    assert_eq!(waiting_to_send(Some(&p), &v), 21);
    let text = delivery_lines(Some(&p), &v);
    assert!(
        text.contains(
            "sends          60 sent, 5 failed, 4 suppressed at send, 10 in flight, 21 waiting"
        ),
        "{text}"
    );
    // top reasons, most frequent first; a hostile reply stays on one line
    assert!(
        text.contains("failed         3 × 550 5.1.1 no such user; 2 × 552 mailbox / full[31m\n"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("paused         until 2026-12-07T00:00:00Z"),
        "{text}"
    );
    assert!(text.contains("unconfirmed    3 claims"), "{text}");
    assert!(
        text.contains("    msg-7 sent attempt 2: unconfirmed: worker stopped; resent\n"),
        "{text}"
    );
    assert!(text.contains("    msg-9 failed attempt 2:"), "{text}");
    assert!(text.contains("(the 2 most recent listed)"), "{text}");

    let json = delivery_json(Some(&p), &v);
    assert_eq!(json["sent"], 60);
    assert_eq!(json["failed"], 5);
    assert_eq!(
        json["failure_reasons"][0]["reason"],
        "550 5.1.1 no such user"
    );
    assert_eq!(json["failure_reasons"][0]["count"], 3);
    assert_eq!(json["suppressed_at_send"], 4);
    assert_eq!(json["waiting"], 21);
    assert_eq!(json["paused_until"], "2026-12-07T00:00:00Z");
    assert_eq!(json["unconfirmed_count"], 3);
    assert_eq!(json["unconfirmed"][1]["message_id"], "msg-9");
    assert_eq!(json["unconfirmed"][1]["state"], "failed");
}

#[test]
fn a_quiet_campaign_has_one_sends_line_and_no_pause() {
    let mut v = view();
    v.campaign.as_mut().unwrap().state = "running".into();
    v.failure_reasons.clear();
    v.unconfirmed.clear();
    v.counts.sent = 100;
    v.counts.failed = 0;
    v.counts.in_flight = 0;
    let text = delivery_lines(None, &v);
    assert_eq!(
        text,
        "  sends          100 sent, 0 failed, 0 suppressed at send, 0 in flight, 0 waiting (queued or on the rate limit)\n"
    );
    let json = delivery_json(None, &v);
    assert!(json["paused_until"].is_null());
    assert_eq!(json["unconfirmed_count"], 0);
    assert_eq!(json["failure_reasons"], serde_json::json!([]));
}
