//! The send loop of one batch: take the shared rate limit right before each
//! provider call, call the sink, sort its answers. `Retry` answers wait
//! (Retry-After, or an exponential backoff) and are tried again, never
//! skipped and never failed; what cannot be sent within `delivery.retry.hold_ms`
//! (or once the daily quota is spent) is handed back unsent, and the stage
//! releases its claims so a later attempt sends it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpo_shared::envelope::now_ms;
use cpo_shared::rate_limit::{LimitError, Permit, RateLimiter};
use cpo_shared::store::{SendMark, Store};

use crate::config::RetryConfig;
use crate::metrics::delivery_metrics;
use crate::sink::{MailSink, MessageMeta, OutgoingEmail, SendOutcome};

/// One claimed email waiting to be sent. `index` points back into the batch.
pub struct Pending<'a> {
    pub index: usize,
    /// The claim's attempt number, which fences its outcome.
    pub attempt: i32,
    pub email: OutgoingEmail,
    pub meta: MessageMeta<'a>,
    pub tries: u32,
    pub not_before: Instant,
}

/// How one email ended in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Sent { provider_message_id: String },
    Failed { reason: String },
}

/// Why the loop stopped with emails still unsent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandBack {
    /// Waited `hold_ms` (throttled or retrying).
    Held { reason: String },
    /// The daily quota is spent until then (Unix ms).
    QuotaSpent { until_ms: u64 },
    /// The shared limiter could not be asked.
    LimiterDown { reason: String },
    /// The store did not take the outcomes: sent but unrecorded, those
    /// claims run out and `on_unconfirmed` decides, as after a crash.
    RecordFailed { reason: String },
}

#[derive(Default)]
pub struct Report {
    /// Recorded in the store as they came, one write per provider call, so a
    /// crash leaves unconfirmed only the emails of the call in flight.
    pub settled: Vec<(usize, Settled)>,
    /// Claims that were lost before their outcome was recorded.
    pub lost: usize,
    /// Indices not sent; `hand_back` says why.
    pub unsent: Vec<usize>,
    pub hand_back: Option<HandBack>,
}

pub struct SendLoop<'s> {
    pub sink: &'s Arc<dyn MailSink>,
    pub store: &'s Arc<dyn Store>,
    pub limiter: &'s Arc<dyn RateLimiter>,
    pub retry: &'s RetryConfig,
    /// The limiter's key (the sink, or the sink and the sending domain).
    pub limit_key: String,
}

fn backoff(retry: &RetryConfig, tries: u32) -> Duration {
    let factor = 1u64 << tries.saturating_sub(1).min(16);
    Duration::from_millis(retry.initial_ms.saturating_mul(factor).min(retry.max_ms))
}

impl SendLoop<'_> {
    pub async fn run(&self, pending: Vec<Pending<'_>>) -> Report {
        let sink_name = self.sink.name();
        let m = delivery_metrics();
        let deadline = Instant::now() + Duration::from_millis(self.retry.hold_ms);
        let chunk_size = self
            .sink
            .max_batch()
            .min(self.limiter.max_take() as usize)
            .max(1);
        let mut queue: VecDeque<Pending<'_>> = pending.into();
        let mut report = Report::default();
        'outer: while !queue.is_empty() {
            let now = Instant::now();
            let mut chunk = Vec::with_capacity(chunk_size.min(queue.len()));
            let mut rest = VecDeque::with_capacity(queue.len());
            for p in queue.drain(..) {
                if chunk.len() < chunk_size && p.not_before <= now {
                    chunk.push(p);
                } else {
                    rest.push_back(p);
                }
            }
            queue = rest;
            if chunk.is_empty() {
                // Everything left waits for a retry time.
                let Some(next) = queue.iter().map(|p| p.not_before).min() else {
                    break;
                };
                if next > deadline {
                    report.hand_back = Some(HandBack::Held {
                        reason: "provider asked to retry later than delivery.retry.hold_ms".into(),
                    });
                    break;
                }
                tokio::time::sleep_until(next.into()).await;
                continue;
            }
            // The limit is taken here, right before the call, never at enqueue.
            loop {
                match self
                    .limiter
                    .acquire(&self.limit_key, chunk.len() as u32)
                    .await
                {
                    Ok(Permit::Granted) => break,
                    Ok(Permit::Wait(wait)) => {
                        m.limiter_waits
                            .with_label_values(&[sink_name, "throttled"])
                            .inc();
                        if Instant::now() + wait > deadline {
                            queue.extend(chunk);
                            report.hand_back = Some(HandBack::Held {
                                reason:
                                    "throttled by delivery.rate longer than delivery.retry.hold_ms"
                                        .into(),
                            });
                            break 'outer;
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Ok(Permit::QuotaSpent { until_ms }) => {
                        m.limiter_waits
                            .with_label_values(&[sink_name, "quota"])
                            .inc();
                        queue.extend(chunk);
                        report.hand_back = Some(HandBack::QuotaSpent { until_ms });
                        break 'outer;
                    }
                    Err(LimitError::Unavailable(reason) | LimitError::Invalid(reason)) => {
                        queue.extend(chunk);
                        report.hand_back = Some(HandBack::LimiterDown { reason });
                        break 'outer;
                    }
                }
            }
            let emails: Vec<OutgoingEmail> = chunk.iter().map(|p| p.email.clone()).collect();
            let metas: Vec<MessageMeta<'_>> = chunk.iter().map(|p| p.meta).collect();
            let started = Instant::now();
            let mut outcomes = self.sink.send_with_meta(&emails, &metas).await;
            m.send_seconds
                .with_label_values(&[sink_name])
                .observe(started.elapsed().as_secs_f64());
            // A sink that answers too few outcomes: the missing ones are tried again.
            let answered = outcomes.len();
            outcomes.resize(
                chunk.len(),
                SendOutcome::Retry {
                    after: None,
                    reason: format!("the sink answered {answered} of {} emails", chunk.len()),
                },
            );
            let mut marks = Vec::with_capacity(chunk.len());
            let mut settled = Vec::with_capacity(chunk.len());
            for (mut p, outcome) in chunk.into_iter().zip(outcomes) {
                match outcome {
                    SendOutcome::Sent {
                        provider_message_id,
                    } => {
                        m.sends.with_label_values(&[sink_name, "sent"]).inc();
                        marks.push((
                            p.email.message_id.clone(),
                            p.attempt,
                            SendMark::Sent {
                                provider_message_id: provider_message_id.clone(),
                            },
                        ));
                        settled.push((
                            p.index,
                            Settled::Sent {
                                provider_message_id,
                            },
                        ));
                    }
                    SendOutcome::Failed { reason } => {
                        m.sends.with_label_values(&[sink_name, "failed"]).inc();
                        marks.push((
                            p.email.message_id.clone(),
                            p.attempt,
                            SendMark::Failed {
                                error: reason.clone(),
                            },
                        ));
                        settled.push((p.index, Settled::Failed { reason }));
                    }
                    SendOutcome::Retry { after, reason } => {
                        m.sends.with_label_values(&[sink_name, "retry"]).inc();
                        p.tries += 1;
                        // Retry-After is honoured as given; past the hold the
                        // message is handed back and waits in the queue instead.
                        let wait = after.unwrap_or_else(|| backoff(self.retry, p.tries));
                        tracing::debug!(sink = sink_name, tries = p.tries, wait_ms = wait.as_millis() as u64, reason = %cpo_shared::log_field::bounded(&reason), "send will be retried");
                        p.not_before = Instant::now() + wait;
                        queue.push_back(p);
                    }
                }
            }
            if !marks.is_empty() {
                let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
                match self.store.mark_sends(&marks, now).await {
                    Ok(done) => report.lost += done.iter().filter(|ok| !**ok).count(),
                    Err(e) => {
                        report.hand_back = Some(HandBack::RecordFailed {
                            reason: format!("record sends: {e}"),
                        });
                        break;
                    }
                }
            }
            report.settled.extend(settled);
        }
        report.unsent = queue.iter().map(|p| p.index).collect();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryConfig {
            initial_ms: 100,
            max_ms: 350,
            hold_ms: 1_000,
        };
        assert_eq!(backoff(&retry, 1), Duration::from_millis(100));
        assert_eq!(backoff(&retry, 2), Duration::from_millis(200));
        assert_eq!(backoff(&retry, 3), Duration::from_millis(350));
        assert_eq!(backoff(&retry, 40), Duration::from_millis(350));
    }
}
