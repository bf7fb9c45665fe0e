//! The broker topology: names, queue arguments and bindings, declared by the
//! transport at start and rendered as a RabbitMQ definitions file for
//! `deploy/rabbitmq/definitions.json`. One description serves both, so they cannot drift.
//!
//! ```text
//! publish(q)           ─> <p>exchange (direct, key = q) ─> <p>q ──(delivery limit)──> <p>dlx (fanout) ─> <p>dead-letter
//! publish(q, delay d)  ─> <p>delay.<tier> (fanout) ─> <p>delay.<tier> ──(ttl = tier, key = q kept)──> <p>exchange
//! ```

use std::time::Duration;

use serde_json::{Value, json};

use crate::queues;

/// Retry and deferral delays, in milliseconds. A delayed publish waits in the
/// smallest tier at least as long as asked (the last tier caps longer delays).
pub const DELAY_TIERS_MS: [u64; 4] = [100, 1_000, 10_000, 60_000];

/// The tier a delay rounds up to.
pub fn delay_tier(delay: Duration) -> u64 {
    let wanted = delay.as_millis();
    DELAY_TIERS_MS
        .into_iter()
        .find(|tier| u128::from(*tier) >= wanted)
        .unwrap_or(DELAY_TIERS_MS[DELAY_TIERS_MS.len() - 1])
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExchangeType {
    Direct,
    Fanout,
}

impl ExchangeType {
    fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: String,
    pub arguments: Vec<(&'static str, Arg)>,
}

#[derive(Debug, Clone)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: ExchangeType,
}

#[derive(Debug, Clone)]
pub struct BindingSpec {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
}

/// The names and arguments of one deployment's exchanges and queues.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
}

impl Topology {
    /// `prefix` must already be validated (`AmqpConfig::validate`).
    pub fn new(prefix: &str, delivery_limit: u32) -> Self {
        Self {
            prefix: prefix.to_string(),
            delivery_limit,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn delivery_limit(&self) -> u32 {
        self.delivery_limit
    }

    /// The direct exchange every logical queue is bound to by its name.
    pub fn exchange(&self) -> String {
        format!("{}exchange", self.prefix)
    }

    /// Where the broker sends messages over their delivery limit.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}dlx", self.prefix)
    }

    pub fn queue(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    /// Exchange and queue of one delay tier share this name.
    pub fn delay(&self, tier_ms: u64) -> String {
        format!("{}delay.{tier_ms}", self.prefix)
    }

    /// The logical name of one of this topology's queues (`cpo.segments` -> `segments`).
    pub fn logical<'a>(&self, queue: &'a str) -> &'a str {
        queue.strip_prefix(self.prefix.as_str()).unwrap_or(queue)
    }

    /// Every logical queue that has a broker queue: the work queues and the two sinks.
    pub fn logical_queues() -> impl Iterator<Item = &'static str> {
        queues::WORK_QUEUES
            .iter()
            .chain(queues::SINK_QUEUES.iter())
            .copied()
    }

    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        // All durable (see `declare`); direct routes by queue name, fanout ignores the
        // routing key so a delayed or dead-lettered message keeps its destination in it.
        let mut exchanges = vec![
            ExchangeSpec {
                name: self.exchange(),
                kind: ExchangeType::Direct,
            },
            ExchangeSpec {
                name: self.dead_letter_exchange(),
                kind: ExchangeType::Fanout,
            },
        ];
        exchanges.extend(DELAY_TIERS_MS.iter().map(|tier| ExchangeSpec {
            name: self.delay(*tier),
            kind: ExchangeType::Fanout,
        }));
        exchanges
    }

    pub fn queues(&self) -> Vec<QueueSpec> {
        let mut specs = Vec::new();
        for logical in Self::logical_queues() {
            let arguments = if queues::SINK_QUEUES.contains(&logical) {
                vec![
                    // Quorum: replicated and fsynced; the dead-letter queue is the last
                    // record of what could not go on. No delivery limit: inspecting and
                    // requeueing dead letters must never drop one.
                    ("x-queue-type", Arg::Text("quorum".into())),
                ]
            } else {
                vec![
                    // Quorum: replicated and fsynced, and the only queue type with a
                    // delivery limit.
                    ("x-queue-type", Arg::Text("quorum".into())),
                    // A message that kills its worker, or is requeued again and again,
                    // leaves after this many deliveries instead of looping forever.
                    ("x-delivery-limit", Arg::Int(i64::from(self.delivery_limit))),
                    // ...to the dead-letter queue, not the bin.
                    (
                        "x-dead-letter-exchange",
                        Arg::Text(self.dead_letter_exchange()),
                    ),
                    // Quorum queues dead-letter at-most-once unless told otherwise: a
                    // poison message could vanish if the dead-letter queue were unavailable.
                    ("x-dead-letter-strategy", Arg::Text("at-least-once".into())),
                    // Required by at-least-once dead-lettering (drop-head would discard).
                    ("x-overflow", Arg::Text("reject-publish".into())),
                ]
            };
            specs.push(QueueSpec {
                name: self.queue(logical),
                arguments,
            });
        }
        for tier in DELAY_TIERS_MS {
            specs.push(QueueSpec {
                name: self.delay(tier),
                arguments: vec![
                    // Quorum: a retry waiting here survives a broker restart.
                    ("x-queue-type", Arg::Text("quorum".into())),
                    // One TTL for the whole queue, so messages expire in arrival order;
                    // per-message TTLs would wait behind longer ones at the head.
                    ("x-message-ttl", Arg::Int(tier as i64)),
                    // Expired messages go back to the main exchange. No
                    // x-dead-letter-routing-key: the message keeps its own routing key,
                    // the logical queue it was published for.
                    ("x-dead-letter-exchange", Arg::Text(self.exchange())),
                    // A retry must not be lost between the two queues.
                    ("x-dead-letter-strategy", Arg::Text("at-least-once".into())),
                    ("x-overflow", Arg::Text("reject-publish".into())),
                ],
            });
        }
        specs
    }

    pub fn bindings(&self) -> Vec<BindingSpec> {
        let mut bindings: Vec<BindingSpec> = Self::logical_queues()
            .map(|logical| BindingSpec {
                exchange: self.exchange(),
                queue: self.queue(logical),
                routing_key: logical.to_string(),
            })
            .collect();
        bindings.push(BindingSpec {
            exchange: self.dead_letter_exchange(),
            queue: self.queue(queues::DEAD_LETTER),
            routing_key: String::new(),
        });
        bindings.extend(DELAY_TIERS_MS.iter().map(|tier| BindingSpec {
            exchange: self.delay(*tier),
            queue: self.delay(*tier),
            routing_key: String::new(),
        }));
        bindings
    }

    /// The topology in RabbitMQ's definitions format (import with `rabbitmqctl
    /// import_definitions` or `load_definitions`). Users and permissions are left to the
    /// deployment: credentials never live in the repository.
    pub fn definitions(&self) -> Value {
        let vhost = "/";
        let exchanges: Vec<Value> = self
            .exchanges()
            .into_iter()
            .map(|e| {
                json!({
                    "name": e.name, "vhost": vhost, "type": e.kind.as_str(),
                    "durable": true, "auto_delete": false, "internal": false, "arguments": {},
                })
            })
            .collect();
        let queues: Vec<Value> = self
            .queues()
            .into_iter()
            .map(|q| {
                let arguments: serde_json::Map<String, Value> = q
                    .arguments
                    .iter()
                    .map(|(key, arg)| {
                        let value = match arg {
                            Arg::Text(s) => Value::from(s.as_str()),
                            Arg::Int(i) => Value::from(*i),
                        };
                        (key.to_string(), value)
                    })
                    .collect();
                json!({
                    "name": q.name, "vhost": vhost, "durable": true, "auto_delete": false,
                    "arguments": arguments,
                })
            })
            .collect();
        let bindings: Vec<Value> = self
            .bindings()
            .into_iter()
            .map(|b| {
                json!({
                    "source": b.exchange, "vhost": vhost, "destination": b.queue,
                    "destination_type": "queue", "routing_key": b.routing_key, "arguments": {},
                })
            })
            .collect();
        json!({
            "vhosts": [{ "name": vhost }],
            "exchanges": exchanges,
            "queues": queues,
            "bindings": bindings,
        })
    }

    /// `definitions()` as the committed file: pretty JSON with a final newline.
    pub fn render_definitions(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.definitions()).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_a_tier_and_cap_at_the_last() {
        assert_eq!(delay_tier(Duration::from_millis(1)), 100);
        assert_eq!(delay_tier(Duration::from_millis(100)), 100);
        assert_eq!(delay_tier(Duration::from_millis(101)), 1_000);
        assert_eq!(delay_tier(Duration::from_secs(10)), 10_000);
        assert_eq!(delay_tier(Duration::from_secs(11)), 60_000);
        assert_eq!(delay_tier(Duration::from_secs(3600)), 60_000);
    }

    #[test]
    fn every_logical_queue_is_bound_by_its_name_and_work_queues_have_a_limit() {
        let t = Topology::new("t.", 7);
        let bindings = t.bindings();
        for logical in Topology::logical_queues() {
            assert!(
                bindings.iter().any(|b| b.exchange == "t.exchange"
                    && b.queue == format!("t.{logical}")
                    && b.routing_key == logical),
                "{logical} not bound"
            );
        }
        let queues = t.queues();
        let segments = queues.iter().find(|q| q.name == "t.segments").unwrap();
        assert!(
            segments
                .arguments
                .contains(&("x-delivery-limit", Arg::Int(7)))
        );
        assert!(
            segments
                .arguments
                .contains(&("x-dead-letter-exchange", Arg::Text("t.dlx".into())))
        );
        let dead = queues.iter().find(|q| q.name == "t.dead-letter").unwrap();
        assert!(
            !dead
                .arguments
                .iter()
                .any(|(k, _)| k.starts_with("x-dead-letter")),
            "the dead-letter queue must not dead-letter into itself"
        );
        // the dead-letter exchange feeds the dead-letter queue
        assert!(
            bindings
                .iter()
                .any(|b| b.exchange == "t.dlx" && b.queue == "t.dead-letter")
        );
    }

    #[test]
    fn delay_queues_expire_back_to_the_main_exchange_keeping_the_routing_key() {
        let t = Topology::new("t.", 7);
        for tier in DELAY_TIERS_MS {
            let queue = t
                .queues()
                .into_iter()
                .find(|q| q.name == t.delay(tier))
                .unwrap();
            assert!(
                queue
                    .arguments
                    .contains(&("x-message-ttl", Arg::Int(tier as i64)))
            );
            assert!(
                queue
                    .arguments
                    .contains(&("x-dead-letter-exchange", Arg::Text("t.exchange".into())))
            );
            assert!(
                !queue
                    .arguments
                    .iter()
                    .any(|(k, _)| *k == "x-dead-letter-routing-key")
            );
            let exchange = t
                .exchanges()
                .into_iter()
                .find(|e| e.name == t.delay(tier))
                .unwrap();
            assert_eq!(exchange.kind, ExchangeType::Fanout);
        }
    }

    #[test]
    fn definitions_list_every_declared_object() {
        let t = Topology::new("cpo.", 10);
        let defs = t.definitions();
        assert_eq!(defs["queues"].as_array().unwrap().len(), t.queues().len());
        assert_eq!(
            defs["exchanges"].as_array().unwrap().len(),
            t.exchanges().len()
        );
        assert_eq!(
            defs["bindings"].as_array().unwrap().len(),
            t.bindings().len()
        );
        let send = defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "cpo.send")
            .unwrap();
        assert_eq!(send["arguments"]["x-delivery-limit"], 10);
        assert_eq!(send["durable"], true);
        assert!(t.render_definitions().ends_with("}\n"));
        assert_eq!(t.logical("cpo.send"), "send");
    }
}
