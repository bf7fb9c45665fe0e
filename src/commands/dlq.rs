//! `cpo dlq`: inspect and replay dead letters.
//!
//! `list` reads an embedded run's `dead_letters.jsonl` (`--file`) or, by default,
//! the fleet's dead-letter queue of the configured prefix. `replay` publishes the
//! selected letters' original envelopes back to the queue they came from.
//!
//! Reading a queue must not consume it: every letter is taken with a prefetch
//! large enough to hold the whole queue unacked, collected until the queue has been
//! idle for a moment, then handed back with `reject(requeue)` (or acked, for a letter
//! replayed successfully). A crash of this command in between loses nothing either:
//! the broker requeues what a closed channel held unacked.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use cpo_shared::config::Settings;
use cpo_shared::dead_letter::DeadLetter;
use cpo_shared::log_field::bounded;
use cpo_shared::progress::ProgressStore;
use cpo_shared::queues;
use cpo_shared::redis_cache::{RedisCache, RedisConfig};
use cpo_shared::runtime::RuntimeConfig;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Delivery, Publish, Subscription, Transport};

use super::Stdout;

/// How long the dead-letter queue must stay quiet before everything it holds is
/// considered delivered to us.
const IDLE: Duration = Duration::from_millis(500);

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List dead letters (stage, kind, reason, attempts, first seen) without removing them.
    List {
        /// An embedded run's `dead_letters.jsonl`; without it, the fleet's dead-letter
        /// queue (configured `amqp.prefix`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Print full JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish dead letters of the fleet back to their queue (attempt reset to 0).
    #[command(group(ArgGroup::new("select").required(true).args(["id", "all"])))]
    Replay {
        /// Id of a letter to replay (repeatable).
        #[arg(long)]
        id: Vec<String>,
        /// Replay every letter that carries its original message.
        #[arg(long)]
        all: bool,
    },
}

pub fn run(command: DlqCommand, config: Option<&Path>) -> anyhow::Result<u8> {
    match command {
        DlqCommand::List {
            file: Some(file),
            json,
        } => list_file(&file, json),
        DlqCommand::List { file: None, json } => {
            super::init_logging(true, false);
            let amqp = amqp_config(config)?;
            runtime()?.block_on(list_fleet(amqp, json))
        }
        DlqCommand::Replay { id, all } => {
            super::init_logging(true, false);
            let amqp = amqp_config(config)?;
            let settings = Settings::load(config)?;
            let redis: RedisConfig = settings.section("redis")?;
            let runtime_config: RuntimeConfig = settings.section("runtime")?;
            let progress = (redis, runtime_config);
            let selection = if all {
                Selection::All
            } else {
                Selection::Ids(id)
            };
            runtime()?.block_on(replay(amqp, selection, progress))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn amqp_config(config: Option<&Path>) -> anyhow::Result<AmqpConfig> {
    let settings = Settings::load(config)?;
    let mut amqp: AmqpConfig = settings.section("amqp")?;
    // The whole queue must fit in our unacked window, or the broker would stop
    // delivering at the prefetch and the listing would be silently short.
    amqp.prefetch = u16::MAX;
    Ok(amqp)
}

fn list_file(file: &Path, json: bool) -> anyhow::Result<u8> {
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut count = 0;
    let mut out = Stdout::new();
    for (index, line) in std::io::BufReader::new(reader).lines().enumerate() {
        if out.is_closed() {
            return Ok(0);
        }
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let letter: DeadLetter = serde_json::from_str(&line).with_context(|| {
            format!("{}: line {}: not a dead letter", file.display(), index + 1)
        })?;
        count += 1;
        if json {
            out.line(&line)?;
        } else {
            out.line(row(&letter))?;
        }
    }
    if !json {
        out.line(format_args!("{count} dead letter(s)"))?;
    }
    Ok(0)
}

fn row(letter: &DeadLetter) -> String {
    format!(
        "{:<40} {:<16} {:<12} attempts={:<3} first_seen={} {}",
        bounded(&letter.id),
        letter.stage,
        letter.kind.as_str(),
        letter.attempts,
        human_time(letter.first_seen_ms),
        letter.reason
    )
}

/// A delivery of the dead-letter queue and what it decoded to.
struct Held {
    delivery: Delivery,
    letter: Result<DeadLetter, String>,
}

/// Take every letter of the queue without settling any: the caller acks or requeues.
async fn take_all(transport: &AmqpTransport) -> anyhow::Result<(Vec<Held>, Box<dyn Subscription>)> {
    let mut subscription = transport.subscribe(queues::DEAD_LETTER, 0).await?;
    let mut held = Vec::new();
    while let Ok(Some(next)) = tokio::time::timeout(IDLE, subscription.next()).await {
        let delivery = next?;
        let letter =
            serde_json::from_slice::<DeadLetter>(&delivery.body).map_err(|e| e.to_string());
        held.push(Held { delivery, letter });
    }
    if held.len() >= usize::from(u16::MAX) {
        eprintln!(
            "warning: only the first {} dead letters were read",
            u16::MAX
        );
    }
    Ok((held, subscription))
}

async fn list_fleet(amqp: AmqpConfig, json: bool) -> anyhow::Result<u8> {
    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    let (held, subscription) = take_all(&transport).await?;
    let count = held.len();
    let mut out = Stdout::new();
    for Held { delivery, letter } in held {
        // Every letter is handed back, whether or not the reader still listens.
        let printed = match &letter {
            Ok(letter) if !json => out.line(row(letter)),
            Ok(_) => out.line(String::from_utf8_lossy(&delivery.body)),
            Err(e) => {
                eprintln!("warning: a message of the dead-letter queue is not a dead letter: {e}");
                Ok(())
            }
        };
        hand_back(delivery).await;
        if let Err(e) = printed {
            close(transport, subscription).await;
            return Err(e.into());
        }
    }
    close(transport, subscription).await;
    if !json {
        out.line(format_args!("{count} dead letter(s)"))?;
    }
    Ok(0)
}

/// How long a requeue or the close may wait for the broker. Neither is needed for
/// safety: whatever a closed channel held unacked, the broker requeues itself.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// Requeue a letter we only looked at. Bounded: a broker that does not answer
/// must not hang the command, and the letter comes back at close anyway.
async fn hand_back(delivery: Delivery) {
    if tokio::time::timeout(SETTLE_WAIT, delivery.acker.reject(true))
        .await
        .is_err()
    {
        eprintln!(
            "warning: the broker did not confirm a requeue; the letter returns when the connection closes"
        );
    }
}

/// Settled deliveries first, then the consumer's channel, then the connection.
async fn close(transport: AmqpTransport, subscription: Box<dyn Subscription>) {
    drop(subscription);
    let _ = tokio::time::timeout(SETTLE_WAIT, transport.close()).await;
}

enum Selection {
    All,
    Ids(Vec<String>),
}

impl Selection {
    fn wants(&self, id: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Ids(ids) => ids.iter().any(|i| i == id),
        }
    }
}

/// The original envelope, ready to be handled again from its first attempt,
/// and first seen now: the join and outage timeouts count from the replay,
/// not from when the message first failed.
fn replay_body(letter: &DeadLetter) -> Option<Vec<u8>> {
    let mut message = letter.message.clone()?;
    let object = message.as_object_mut()?;
    object.insert("attempt".into(), 0.into());
    object.insert(
        "first_seen_ms".into(),
        cpo_shared::envelope::now_ms().into(),
    );
    serde_json::to_vec(&message).ok()
}

async fn replay(
    amqp: AmqpConfig,
    selection: Selection,
    (redis, runtime_config): (RedisConfig, RuntimeConfig),
) -> anyhow::Result<u8> {
    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    // `cpo status` counts replayed letters, so it stops reporting them as a
    // backlog. Best effort: a Redis that is down only leaves status behind.
    let progress = match RedisCache::new(&redis) {
        Ok(cache) => Some(ProgressStore::new(
            Arc::new(cache),
            Duration::from_secs(runtime_config.progress_ttl_s),
        )),
        Err(e) => {
            eprintln!("warning: replays will not show in `cpo status`: {e}");
            None
        }
    };
    let (held, subscription) = take_all(&transport).await?;
    let (mut replayed, mut kept, mut found) = (0u64, 0u64, Vec::new());
    let mut failure = None;
    for Held { delivery, letter } in held {
        let letter = match letter {
            Ok(letter) if failure.is_none() && selection.wants(&letter.id) => letter,
            _ => {
                hand_back(delivery).await;
                continue;
            }
        };
        found.push(letter.id.clone());
        let Some(body) = replay_body(&letter) else {
            println!(
                "cannot replay {}: it carries no decodable message (kept)",
                letter.id
            );
            kept += 1;
            hand_back(delivery).await;
            continue;
        };
        // Published (and confirmed) before the ack: a crash in between replays it twice
        // at worst, which the idempotent stages absorb; never zero times.
        let publish = Publish {
            id: letter.id.clone(),
            body,
            delay: None,
        };
        match transport.publish(&letter.queue, publish).await {
            Ok(()) => {
                delivery
                    .acker
                    .ack()
                    .await
                    .context("ack a replayed dead letter")?;
                println!("replayed {} to {}", letter.id, letter.queue);
                replayed += 1;
                if let Some(progress) = &progress {
                    progress.replayed(&letter).await;
                }
            }
            Err(e) => {
                hand_back(delivery).await;
                failure = Some(format!("replay {} to {}: {e}", letter.id, letter.queue));
            }
        }
    }
    close(transport, subscription).await;
    println!("{replayed} replayed, {kept} kept (not replayable)");
    if let Some(failure) = failure {
        anyhow::bail!("{failure}; the remaining letters were kept");
    }
    if let Selection::Ids(ids) = &selection {
        let missing: Vec<&str> = ids
            .iter()
            .filter(|id| !found.contains(id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            anyhow::bail!("no dead letter with id {}", missing.join(", "));
        }
    }
    // Asked for by id and not replayable: the caller should know; with --all it is expected.
    Ok(if kept > 0 && matches!(selection, Selection::Ids(_)) {
        1
    } else {
        0
    })
}

/// `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC) of Unix milliseconds.
fn human_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::dead_letter::DeadLetterKind;

    fn letter(message: Option<serde_json::Value>) -> DeadLetter {
        DeadLetter {
            version: 1,
            id: "m1".into(),
            campaign_id: Some("c".into()),
            stage: "safety".into(),
            queue: "variants".into(),
            kind: DeadLetterKind::Exhausted,
            reason: "gave up".into(),
            reasons: Vec::new(),
            attempts: 5,
            first_seen_ms: 0,
            dead_lettered_ms: 0,
            raw: message.is_none().then(|| "garbage".into()),
            message,
        }
    }

    #[test]
    fn human_time_is_utc_calendar_time() {
        assert_eq!(human_time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(human_time(951_782_400_000), "2000-02-29 00:00:00.000Z");
        assert_eq!(human_time(1_795_999_512_345), "2026-11-30 00:45:12.345Z");
    }

    #[test]
    fn replay_resets_the_attempt_and_first_seen_and_refuses_letters_without_a_message() {
        let body = replay_body(&letter(Some(
            serde_json::json!({"id": "m1", "attempt": 4, "payload": {"x": 1}}),
        )))
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["attempt"], 0);
        let first_seen = value["first_seen_ms"].as_u64().unwrap();
        assert!(
            first_seen + 60_000 > cpo_shared::envelope::now_ms(),
            "the join and outage timeouts count from the replay"
        );
        assert_eq!(value["payload"]["x"], 1);
        assert!(replay_body(&letter(None)).is_none());
        assert!(replay_body(&letter(Some(serde_json::json!("not an object")))).is_none());
    }

    #[test]
    fn a_selection_by_id_wants_only_those_ids() {
        let selection = Selection::Ids(vec!["a".into()]);
        assert!(selection.wants("a"));
        assert!(!selection.wants("b"));
        assert!(Selection::All.wants("b"));
    }
}
