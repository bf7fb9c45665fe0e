//! Applying the topology (`topology.rs`) to a broker: declare it at start,
//! delete it on teardown. The description stays pure; the lapin calls live here.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use super::topology::{Arg, ExchangeType, Topology};

fn name(value: &str) -> Result<ShortString, String> {
    ShortString::try_new(value).map_err(|e| format!("name `{value}`: {e}"))
}

fn field_table(arguments: &[(&'static str, Arg)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, arg) in arguments {
        let value = match arg {
            Arg::Text(s) => AMQPValue::LongString(s.as_str().into()),
            Arg::Int(i) => AMQPValue::LongLongInt(*i),
        };
        table.insert((*key).into(), value);
    }
    table
}

/// Declare everything; idempotent while the arguments match what the broker has.
pub(crate) async fn declare(topology: &Topology, channel: &Channel) -> Result<(), String> {
    // Durable: exchanges and queues survive a broker restart. Not auto-delete: they
    // must outlive any one worker. Not exclusive: every replica of a stage consumes.
    let exchange_options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in topology.exchanges() {
        let kind = match exchange.kind {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
        };
        channel
            .exchange_declare(
                name(&exchange.name)?,
                kind,
                exchange_options,
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("declare exchange {}: {e}", exchange.name))?;
    }
    let queue_options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for queue in topology.queues() {
        channel
            .queue_declare(
                name(&queue.name)?,
                queue_options,
                field_table(&queue.arguments),
            )
            .await
            .map_err(|e| {
                format!(
                    "declare queue {}: {e} (a queue declared earlier with other arguments \
                     must be deleted first)",
                    queue.name
                )
            })?;
    }
    for binding in topology.bindings() {
        // Bindings of durable queues to durable exchanges are durable themselves.
        channel
            .queue_bind(
                name(&binding.queue)?,
                name(&binding.exchange)?,
                name(&binding.routing_key)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("bind {} to {}: {e}", binding.queue, binding.exchange))?;
    }
    Ok(())
}

/// Delete every queue and exchange of the topology, messages included (tests).
pub(crate) async fn delete(topology: &Topology, channel: &Channel) -> Result<(), String> {
    // Default options (not if-unused, not if-empty): teardown removes a queue even with
    // messages or consumers left.
    for queue in topology.queues() {
        channel
            .queue_delete(name(&queue.name)?, QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("delete queue {}: {e}", queue.name))?;
    }
    for exchange in topology.exchanges() {
        channel
            .exchange_delete(name(&exchange.name)?, ExchangeDeleteOptions::default())
            .await
            .map_err(|e| format!("delete exchange {}: {e}", exchange.name))?;
    }
    Ok(())
}
