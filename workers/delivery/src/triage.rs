//! What to do with each message given its send record (pure: no IO). The
//! store's `sends` row is the dedupe record: it replaced the Redis
//! sent-markers, which expired and lived apart from the record `cpo status`
//! reads (see design.md).

use cpo_shared::store::{SendRecord, SendState, UNCONFIRMED_PREFIX};

use crate::config::OnUnconfirmed;

/// `last_error` of a claim the stage gave back unsent (throttled past its
/// hold, daily quota spent, limiter down): the message is sent later, not failed.
pub const RELEASED_PREFIX: &str = "not sent:";
/// Ending of `last_error` of an unconfirmed claim the `resend` policy sent again.
pub const RESENT_SUFFIX: &str = "resent (delivery.on_unconfirmed: resend)";
/// `last_error` of an unconfirmed claim the `skip` policy recorded as failed.
pub const SKIPPED_UNCONFIRMED: &str = "unconfirmed: the worker stopped between claim and confirmation; skipped (delivery.on_unconfirmed: skip)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// No record, or one given back unsent: claim and send.
    Send,
    /// Claimed by a worker that stopped (lease over, no answer recorded);
    /// the policy says send again: mark it, then claim and send.
    Resend {
        attempts: i32,
    },
    /// The same, and the policy says skip: record it as failed.
    SkipUnconfirmed {
        attempts: i32,
    },
    AlreadySent,
    /// Refused for good earlier (or skipped as unconfirmed): settled, not retried.
    AlreadyFailed,
    /// Another worker holds a live claim.
    Held {
        until_ms: i64,
    },
}

pub fn unconfirmed_resent_error() -> String {
    format!(
        "{UNCONFIRMED_PREFIX}: the worker stopped between claim and confirmation; {RESENT_SUFFIX}"
    )
}

pub fn triage(record: Option<&SendRecord>, now_ms: i64, policy: OnUnconfirmed) -> Triage {
    let Some(record) = record else {
        return Triage::Send;
    };
    match record.state {
        SendState::Sent => Triage::AlreadySent,
        SendState::Failed => {
            let error = record.last_error.as_deref().unwrap_or("");
            let given_back = error.starts_with(RELEASED_PREFIX)
                || (error.starts_with(UNCONFIRMED_PREFIX) && error.ends_with(RESENT_SUFFIX));
            if given_back {
                Triage::Send
            } else {
                Triage::AlreadyFailed
            }
        }
        SendState::Claimed if record.lease_until_ms > now_ms => Triage::Held {
            until_ms: record.lease_until_ms,
        },
        SendState::Claimed => match policy {
            OnUnconfirmed::Resend => Triage::Resend {
                attempts: record.attempts,
            },
            OnUnconfirmed::Skip => Triage::SkipUnconfirmed {
                attempts: record.attempts,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: SendState, lease_until_ms: i64, last_error: Option<&str>) -> SendRecord {
        SendRecord {
            message_id: "msg-1".into(),
            sink: "smtp".into(),
            provider_message_id: None,
            state,
            attempts: 2,
            lease_until_ms,
            first_claimed_at_ms: 0,
            updated_at_ms: 0,
            sent_at_ms: None,
            last_error: last_error.map(str::to_string),
        }
    }

    #[test]
    fn each_record_state_has_one_answer() {
        let resend = OnUnconfirmed::Resend;
        assert_eq!(triage(None, 10, resend), Triage::Send);
        let sent = record(SendState::Sent, 0, None);
        assert_eq!(triage(Some(&sent), 10, resend), Triage::AlreadySent);
        let failed = record(SendState::Failed, 0, Some("550 no such user"));
        assert_eq!(triage(Some(&failed), 10, resend), Triage::AlreadyFailed);
        let released = record(SendState::Failed, 0, Some("not sent: quota"));
        assert_eq!(triage(Some(&released), 10, resend), Triage::Send);
        let resent = record(SendState::Failed, 0, Some(&unconfirmed_resent_error()));
        assert_eq!(triage(Some(&resent), 10, resend), Triage::Send);
        let skipped = record(SendState::Failed, 0, Some(SKIPPED_UNCONFIRMED));
        assert_eq!(triage(Some(&skipped), 10, resend), Triage::AlreadyFailed);
        let live = record(SendState::Claimed, 11, None);
        assert_eq!(
            triage(Some(&live), 10, resend),
            Triage::Held { until_ms: 11 }
        );
        let dead = record(SendState::Claimed, 10, None);
        assert_eq!(
            triage(Some(&dead), 10, resend),
            Triage::Resend { attempts: 2 }
        );
        assert_eq!(
            triage(Some(&dead), 10, OnUnconfirmed::Skip),
            Triage::SkipUnconfirmed { attempts: 2 }
        );
    }
}
