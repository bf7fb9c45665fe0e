//! Joins events to recipients: per recipient, which outcomes happened and when
//! each first happened. Outcomes are flags, so duplicate events cannot inflate a
//! rate and the analysis needs no dedupe pass.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::outbox::{BLOCK, Outbox};
use crate::analysis::EventStats;
use crate::error::Result;
use crate::events::EventType;
use crate::events::time::parse_rfc3339;
use crate::parallel::{line_number, lines, map_chunks, read_blocks};

/// Malformed lines quoted in the report; the rest are only counted.
const MALFORMED_EXAMPLES: usize = 20;

/// Sentinel for "never happened" in the first-time vectors.
pub const NEVER: i64 = i64::MAX;

#[derive(Deserialize)]
struct EventLine<'a> {
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default)]
    simulated: bool,
}

/// Per-recipient outcomes.
#[derive(Debug, Clone)]
pub struct Tally {
    /// `EventType::bit()` flags per recipient.
    pub flags: Vec<u8>,
    /// First time (Unix seconds) of each event type per recipient, [`NEVER`] if none.
    pub first_time: BTreeMap<EventType, Vec<i64>>,
    pub stats: EventStats,
}

/// What one worker found in its share of a block.
#[derive(Default)]
struct Partial {
    hits: Vec<(u32, EventType, i64)>,
    newlines: usize,
    lines: usize,
    simulated: usize,
    unmatched: usize,
    malformed: usize,
    /// Counted by `EventType as usize`: no allocation per event.
    by_type: [usize; EventType::ALL.len()],
    /// Byte offsets (within the block) and reasons of malformed lines.
    malformed_examples: Vec<(usize, String)>,
}

fn scan(chunk_offset: usize, chunk: &[u8], outbox: &Outbox) -> Partial {
    let mut partial = Partial::default();
    let mut parsed_events: Vec<(Cow<'_, str>, EventType, i64)> =
        Vec::with_capacity(chunk.len() / 100);
    for (start, line) in lines(chunk) {
        let line_start = chunk_offset + start;
        partial.newlines += usize::from(start + line.len() < chunk.len());
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        partial.lines += 1;
        let parsed = serde_json::from_slice::<EventLine>(line)
            .map_err(|e| e.to_string())
            .and_then(|event| {
                let event_type = EventType::parse(&event.event_type)
                    .ok_or_else(|| format!("unknown event type `{}`", event.event_type))?;
                let time = parse_rfc3339(&event.timestamp)
                    .ok_or_else(|| format!("timestamp `{}` is not RFC 3339", event.timestamp))?;
                Ok((event, event_type, time))
            });
        match parsed {
            Ok((event, event_type, time)) => {
                partial.simulated += usize::from(event.simulated);
                parsed_events.push((event.message_id, event_type, time));
            }
            Err(reason) => {
                partial.malformed += 1;
                if partial.malformed_examples.len() < MALFORMED_EXAMPLES {
                    partial.malformed_examples.push((line_start, reason));
                }
            }
        }
    }
    // One batched join: the index is visited in slot order, not at random.
    let ids: Vec<&str> = parsed_events.iter().map(|(id, _, _)| id.as_ref()).collect();
    let recipients = outbox.find_many(&ids);
    partial.hits.reserve(parsed_events.len());
    for ((_, event_type, time), recipient) in parsed_events.iter().zip(recipients) {
        match recipient {
            Some(recipient) => {
                partial.by_type[*event_type as usize] += 1;
                partial.hits.push((recipient, *event_type, *time));
            }
            None => partial.unmatched += 1,
        }
    }
    partial
}

/// Accumulates outcomes block by block.
struct Accumulator<'a> {
    outbox: &'a Outbox,
    flags: Vec<u8>,
    times: Vec<Option<Vec<i64>>>,
    stats: EventStats,
    by_type: [usize; EventType::ALL.len()],
    lines_before: usize,
}

impl<'a> Accumulator<'a> {
    fn new(outbox: &'a Outbox) -> Self {
        Accumulator {
            outbox,
            flags: vec![0u8; outbox.len()],
            times: vec![None; EventType::ALL.len()],
            stats: EventStats::default(),
            by_type: [0; EventType::ALL.len()],
            lines_before: 0,
        }
    }

    fn add_block(&mut self, block: &[u8]) {
        let outbox = self.outbox;
        let mut block_newlines = 0;
        for partial in map_chunks(block, |offset, chunk| scan(offset, chunk, outbox)) {
            block_newlines += partial.newlines;
            for (recipient, event_type, time) in partial.hits {
                let index = recipient as usize;
                self.flags[index] |= event_type.bit();
                let first = self.times[event_type as usize]
                    .get_or_insert_with(|| vec![NEVER; outbox.len()]);
                first[index] = first[index].min(time);
            }
            self.stats.lines += partial.lines;
            self.stats.simulated += partial.simulated;
            self.stats.malformed += partial.malformed;
            self.stats.unmatched += partial.unmatched;
            for (total, count) in self.by_type.iter_mut().zip(partial.by_type) {
                *total += count;
            }
            // Line numbers are computed only for the few quoted lines.
            for (offset, reason) in partial.malformed_examples {
                if self.stats.malformed_examples.len() < MALFORMED_EXAMPLES {
                    let line = self.lines_before + line_number(block, offset);
                    self.stats
                        .malformed_examples
                        .push(format!("line {line}: {reason}"));
                }
            }
        }
        self.lines_before += block_newlines;
    }

    fn finish(mut self) -> Tally {
        self.stats.used = self.by_type.iter().sum();
        self.stats.by_type = EventType::ALL
            .into_iter()
            .zip(self.by_type)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str().to_string(), n))
            .collect();
        let first_time = EventType::ALL
            .into_iter()
            .zip(self.times)
            .filter_map(|(t, v)| v.map(|v| (t, v)))
            .collect();
        Tally {
            flags: self.flags,
            first_time,
            stats: self.stats,
        }
    }
}

/// Tallies events already in memory against the outbox. Malformed and unmatched
/// lines are counted, never fatal.
pub fn tally(bytes: &[u8], outbox: &Outbox) -> Tally {
    let mut accumulator = Accumulator::new(outbox);
    accumulator.add_block(bytes);
    accumulator.finish()
}

/// Tallies an events file, streaming it in blocks.
pub fn tally_file(path: &Path, outbox: &Outbox) -> Result<Tally> {
    let mut accumulator = Accumulator::new(outbox);
    read_blocks(path, BLOCK, |block, _| {
        accumulator.add_block(block);
        Ok(())
    })?;
    Ok(accumulator.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn outbox() -> Outbox {
        Outbox::parse(
            Path::new("outbox.jsonl"),
            br#"{"message_id": "m1", "customer_id": "C1", "arm": "control"}
{"message_id": "m2", "customer_id": "C2", "arm": "friendly"}
"#,
        )
        .unwrap()
    }

    #[test]
    fn flags_first_times_and_problems() {
        let events = br#"{"event_id": "1", "message_id": "m2", "type": "open", "timestamp": "2025-01-02T00:00:00Z"}
{"event_id": "2", "message_id": "m2", "type": "open", "timestamp": "2025-01-01T00:00:00Z", "simulated": true}
not json
{"event_id": "3", "message_id": "m9", "type": "click", "timestamp": "2025-01-01T00:00:00Z"}
{"event_id": "4", "message_id": "m1", "type": "opened", "timestamp": "2025-01-01T00:00:00Z"}
"#;
        let tally = tally(events, &outbox());
        assert_eq!(tally.flags, [0, EventType::Open.bit()]);
        assert_eq!(tally.first_time[&EventType::Open][1], 1_735_689_600);
        assert_eq!(tally.stats.used, 2);
        assert_eq!(tally.stats.simulated, 1);
        assert_eq!(tally.stats.unmatched, 1);
        assert_eq!(tally.stats.malformed, 2);
        assert!(tally.stats.malformed_examples[0].starts_with("line 3:"));
        assert!(tally.stats.malformed_examples[1].starts_with("line 5:"));
    }
}
