//! Fleet tools: `cpo enqueue` publishes a campaign as a CRM would; `cpo collect`
//! follows a campaign through the fleet until it is complete and writes its
//! outbox and summary (what `make fleet-demo` uses).

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use cpo_shared::config::Settings;
use cpo_shared::envelope::{Envelope, derive_id};
use cpo_shared::model::{AudienceSource, LedgerEntry};
use cpo_shared::queues;
use cpo_shared::transport::amqp::{AmqpConfig, AmqpTransport};
use cpo_shared::transport::{Publish, Transport};

use crate::embedded::{self, Summary};

#[derive(Args)]
pub struct EnqueueArgs {
    /// Campaign request (YAML or JSON).
    pub campaign: PathBuf,
    /// Customer CSV (made absolute so workers in other directories can read it).
    #[arg(long)]
    pub customers: Option<PathBuf>,
}

#[derive(Args)]
pub struct CollectArgs {
    /// Campaign id to follow.
    pub campaign_id: String,
    /// Where to write outbox.jsonl and summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The fleet's outbox (delivery's `worker.outbox`).
    #[arg(long, default_value = "out/fleet/outbox.jsonl")]
    pub outbox: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn enqueue(args: EnqueueArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let mut campaign = super::run::load_campaign(&args.campaign, args.customers.as_deref())?;
    crate::wiring::check_campaign_links(&settings, &campaign)?;
    if let AudienceSource::Csv { path } = &mut campaign.audience {
        let absolute =
            std::fs::canonicalize(&*path).with_context(|| format!("customer file {path}"))?;
        *path = absolute.display().to_string();
    }
    let amqp: AmqpConfig = settings.section("amqp")?;
    runtime()?.block_on(async {
        let transport = AmqpTransport::connect(amqp)
            .await
            .context("cannot reach RabbitMQ")?;
        let campaign_id = campaign.campaign_id.clone();
        let envelope = Envelope::new(
            derive_id(&[&campaign_id, "campaign"]),
            campaign_id.clone(),
            campaign,
        );
        let body = serde_json::to_vec(&envelope)?;
        transport
            .publish(
                queues::CAMPAIGNS,
                Publish {
                    id: envelope.id.clone(),
                    body,
                    delay: None,
                },
            )
            .await
            .context("publish the campaign")?;
        transport.close().await;
        println!("enqueued campaign {campaign_id} (message {})", envelope.id);
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// What the ledger says so far about one campaign.
#[derive(Default)]
struct Progress {
    /// Ledger messages already counted: crashes and broker restarts redeliver them.
    seen: std::collections::HashSet<String>,
    entries: Vec<LedgerEntry>,
    total: Option<u64>,
    segment_exclusions: u64,
    settled: u64,
    assigned: u64,
}

impl Progress {
    fn add(&mut self, entry: LedgerEntry) {
        match &entry {
            LedgerEntry::Audience {
                customers_total,
                exclusions,
                ..
            } => {
                self.total = Some(*customers_total);
                self.segment_exclusions = exclusions.len() as u64;
            }
            LedgerEntry::Assigned {
                assignments,
                exclusions,
                ..
            } => {
                self.settled += assignments + exclusions.len() as u64;
                self.assigned += assignments;
            }
            _ => {}
        }
        self.entries.push(entry);
    }

    /// Every customer assigned or excluded.
    fn all_assigned(&self) -> bool {
        self.total
            .is_some_and(|t| self.segment_exclusions + self.settled >= t)
    }
}

pub fn collect(args: CollectArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let amqp: AmqpConfig = settings.section("amqp")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let progress = runtime()?.block_on(follow(&args, amqp, deadline))?;

    std::fs::create_dir_all(&args.out)?;
    let out_outbox = args.out.join("outbox.jsonl");
    let messages = copy_campaign_outbox(&args.outbox, &out_outbox, &args.campaign_id)?;
    cpo_delivery::canonicalize_outbox(&out_outbox)?;
    let mut summary = Summary {
        campaign_id: args.campaign_id.clone(),
        ..Summary::default()
    };
    embedded::summarize(&progress.entries, &mut summary, &args.out)?;
    summary.messages = messages;
    summary.dead_lettered = progress.dead_lettered;
    let file = std::fs::File::create(args.out.join("summary.json"))?;
    serde_json::to_writer_pretty(BufWriter::new(file), &summary)?;
    println!(
        "campaign {}: {} customers, {} assigned, {} excluded, {} messages, {} dead letters",
        summary.campaign_id,
        summary.customers_total,
        summary.customers_assigned,
        summary.customers_excluded,
        summary.messages,
        summary.dead_lettered
    );
    Ok(0)
}

struct Followed {
    entries: Vec<LedgerEntry>,
    dead_lettered: u64,
}

async fn follow(
    args: &CollectArgs,
    amqp: AmqpConfig,
    deadline: Instant,
) -> anyhow::Result<Followed> {
    let transport = AmqpTransport::connect(amqp)
        .await
        .context("cannot reach RabbitMQ")?;
    let mut ledger = transport.subscribe(queues::LEDGER, 64).await?;
    let mut progress = Progress::default();
    let mut sent = OutboxTail::default();
    loop {
        if Instant::now() > deadline {
            bail!(
                "campaign {} not complete before the timeout",
                args.campaign_id
            );
        }
        // Drain what the ledger has, then check whether the campaign is done.
        while let Ok(Some(next)) =
            tokio::time::timeout(Duration::from_millis(200), ledger.next()).await
        {
            // A broker restart breaks the subscription or an ack: subscribe again. An entry
            // whose ack was lost is redelivered, and `seen` keeps it from counting twice.
            let delivery = match next {
                Ok(delivery) => delivery,
                Err(e) => {
                    eprintln!("warning: ledger subscription lost ({e}), subscribing again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    ledger = transport.subscribe(queues::LEDGER, 64).await?;
                    continue;
                }
            };
            if let Ok(envelope) = serde_json::from_slice::<Envelope<LedgerEntry>>(&delivery.body)
                && envelope.campaign_id == args.campaign_id
                && progress.seen.insert(envelope.id.clone())
            {
                progress.add(envelope.payload);
            }
            if let Err(e) = delivery.acker.ack().await {
                eprintln!("warning: ledger ack lost ({e}); the entry will come again");
            }
        }
        if progress.all_assigned() {
            let sent = sent.count(&args.outbox, &args.campaign_id)?;
            // Unanswered while the broker restarts: look again on the next round.
            let Ok(depths) = transport.queue_depths().await else {
                continue;
            };
            let busy = depths
                .iter()
                .any(|d| queues::PIPELINE_QUEUES.contains(&d.queue.as_str()) && d.ready > 0);
            if sent >= progress.assigned && !busy {
                let dead_lettered = depths
                    .iter()
                    .find(|d| d.queue == queues::DEAD_LETTER)
                    .map(|d| u64::from(d.ready))
                    .unwrap_or(0);
                transport.close().await;
                return Ok(Followed {
                    entries: progress.entries,
                    dead_lettered,
                });
            }
        }
    }
}

fn campaign_lines(
    path: &Path,
    campaign_id: &str,
    mut each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    // Every line counts, duplicates included: a duplicate send must show, not be hidden.
    let needle = format!("\"campaign_id\":\"{campaign_id}\"");
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        let line = line?;
        if line.contains(&needle) {
            each(&line)?;
        }
    }
    Ok(())
}

/// Counts a campaign's lines in the fleet's outbox incrementally: each poll
/// reads only what delivery appended since the last one, not the whole file.
#[derive(Default)]
struct OutboxTail {
    /// Bytes consumed so far; always the end of a complete line.
    offset: u64,
    lines: u64,
}

impl OutboxTail {
    fn count(&mut self, path: &Path, campaign_id: &str) -> anyhow::Result<u64> {
        use std::io::{Seek, SeekFrom};
        if !path.exists() {
            return Ok(self.lines);
        }
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let needle = format!("\"campaign_id\":\"{campaign_id}\"");
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line)?;
            // A line without its newline is still being written: count it next time.
            if read == 0 || !line.ends_with('\n') {
                return Ok(self.lines);
            }
            self.offset += read as u64;
            if line.contains(&needle) {
                self.lines += 1;
            }
        }
    }
}

fn copy_campaign_outbox(from: &Path, to: &Path, campaign_id: &str) -> anyhow::Result<u64> {
    let mut writer = BufWriter::new(std::fs::File::create(to)?);
    let mut n = 0;
    campaign_lines(from, campaign_id, |line| {
        writer.write_all(line.as_bytes())?;
        writer.write_all(b"\n")?;
        n += 1;
        Ok(())
    })?;
    writer.flush()?;
    Ok(n)
}

/// `cpo teardown`: delete this prefix's queues and Redis keys (tests, demos).
pub fn teardown(config: Option<&Path>) -> anyhow::Result<u8> {
    super::init_logging(true, false);
    let settings = Settings::load(config)?;
    let amqp: AmqpConfig = settings.section("amqp")?;
    let redis: cpo_shared::redis_cache::RedisConfig = settings.section("redis")?;
    runtime()?.block_on(async {
        let transport = AmqpTransport::connect(amqp)
            .await
            .context("cannot reach RabbitMQ")?;
        transport.delete_topology().await?;
        transport.close().await;
        let cache = cpo_shared::redis_cache::RedisCache::new(&redis)?;
        let removed = cache.delete_prefixed().await?;
        println!("deleted the topology and {removed} keys");
        anyhow::Ok(())
    })?;
    Ok(0)
}
