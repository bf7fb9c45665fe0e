//! Message id -> recipient, for joining millions of events to the outbox.
//!
//! Joining events to a million messages is dominated by cache misses, so the
//! index is a flat open-addressing table of 16-byte slots holding a 64-bit tag
//! (a randomly seeded hash of the id) and the recipient, built and queried in
//! order of slot position: the table is then walked nearly sequentially instead
//! of missing the cache on every id. Outbox ids whose tags collide are detected
//! while building and kept exact in a side table; an id from a webhook that is
//! not in the outbox matches a stored tag only by a 2^-64 coincidence per probe.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::outbox::StringTable;

/// Marks a free slot.
const FREE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    tag: u64,
    index: u32,
}

const EMPTY_SLOT: Slot = Slot {
    tag: 0,
    index: FREE,
};

/// Message ids of the outbox and their recipient indices.
#[derive(Debug)]
pub struct MessageIndex {
    seed: foldhash::quality::RandomState,
    slots: Vec<Slot>,
    /// Ids whose tag collided with another id's (expected to stay empty).
    collided: HashMap<String, u32>,
    ids: StringTable,
}

impl Default for MessageIndex {
    fn default() -> Self {
        MessageIndex::build(StringTable::default()).0
    }
}

impl MessageIndex {
    fn tag(&self, id: &str) -> u64 {
        self.seed.hash_one(id)
    }

    fn home(&self, tag: u64) -> usize {
        tag as usize & (self.slots.len() - 1)
    }

    /// The slot holding `tag`, or the free slot where it would go (linear probing;
    /// the load stays at or below one half, so probes are short).
    fn probe(&self, home: usize, tag: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut position = home;
        loop {
            let slot = self.slots[position];
            if slot.index == FREE || slot.tag == tag {
                return position;
            }
            position = (position + 1) & mask;
        }
    }

    /// Indexes `ids` (recipient i has id i). Returns the index and the rows that
    /// repeat an earlier row's id; the caller drops those rows and builds again.
    pub fn build(ids: StringTable) -> (MessageIndex, Vec<usize>) {
        let capacity = ids.len().saturating_mul(2).next_power_of_two().max(16);
        let mut index = MessageIndex {
            seed: foldhash::quality::RandomState::default(),
            slots: vec![EMPTY_SLOT; capacity],
            collided: HashMap::new(),
            ids,
        };
        let mut order: Vec<(usize, u64, u32)> = index
            .ids
            .iter()
            .enumerate()
            .map(|(row, id)| {
                let tag = index.tag(id);
                (index.home(tag), tag, row as u32)
            })
            .collect();
        // By slot, then row: equal ids share a slot, so the first row wins.
        order.sort_unstable_by_key(|&(home, _, row)| (home, row));
        let mut duplicates = Vec::new();
        for (home, tag, row) in order {
            let position = index.probe(home, tag);
            let slot = index.slots[position];
            if slot.index == FREE {
                index.slots[position] = Slot { tag, index: row };
                continue;
            }
            let id = index.ids.get(row as usize);
            if index.ids.get(slot.index as usize) == id || index.collided.contains_key(id) {
                duplicates.push(row as usize);
            } else {
                index.collided.insert(id.to_string(), row);
            }
        }
        duplicates.sort_unstable();
        (index, duplicates)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        if !self.collided.is_empty()
            && let Some(&index) = self.collided.get(id)
        {
            return Some(index);
        }
        let tag = self.tag(id);
        let slot = self.slots[self.probe(self.home(tag), tag)];
        (slot.index != FREE).then_some(slot.index)
    }

    /// Looks up many ids at once, visiting the table in slot order; results are
    /// in the order of `ids`.
    pub fn get_many<S: AsRef<str>>(&self, ids: &[S]) -> Vec<Option<u32>> {
        if !self.collided.is_empty() {
            return ids.iter().map(|id| self.get(id.as_ref())).collect();
        }
        let mut order: Vec<(usize, u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(position, id)| {
                let tag = self.tag(id.as_ref());
                (self.home(tag), tag, position as u32)
            })
            .collect();
        order.sort_unstable_by_key(|&(home, _, _)| home);
        let mut found = vec![None; ids.len()];
        for (home, tag, position) in order {
            let slot = self.slots[self.probe(home, tag)];
            found[position as usize] = (slot.index != FREE).then_some(slot.index);
        }
        found
    }

    /// The id of recipient `index`.
    pub fn id(&self, index: usize) -> &str {
        self.ids.get(index)
    }

    /// Test hook: makes `id` look like a tag collision with recipient `index`.
    #[cfg(test)]
    fn force_collision(&mut self, id: &str, index: u32) {
        let tag = self.tag(id);
        let position = self.probe(self.home(tag), tag);
        self.slots[position] = Slot { tag, index };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(ids: &[&str]) -> StringTable {
        let mut table = StringTable::default();
        for id in ids {
            table.push(id);
        }
        table
    }

    #[test]
    fn finds_ids_and_reports_repeated_rows() {
        let (index, duplicates) = MessageIndex::build(table(&["m-1", "m-2", "m-1", "m-3", "m-2"]));
        assert_eq!(duplicates, [2, 4]);
        assert_eq!(index.get("m-1"), Some(0));
        assert_eq!(index.get("m-3"), Some(3));
        assert_eq!(index.get("m-4"), None);
        assert_eq!(
            index.get_many(&["m-3", "x", "m-1"]),
            [Some(3), None, Some(0)]
        );
        assert_eq!(index.id(1), "m-2");
    }

    #[test]
    fn a_tag_collision_stays_exact() {
        let (mut index, _) = MessageIndex::build(table(&["a", "b"]));
        // Pretend "c" hashes like "a": lookups of it must not return "a".
        index.force_collision("c", 0);
        index.collided.insert("c".into(), 2);
        assert_eq!(index.get("c"), Some(2));
        assert_eq!(index.get_many(&["c", "b"]), [Some(2), Some(1)]);
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(
            ids in proptest::collection::vec("[a-z0-9-]{0,12}", 0..300),
            probes in proptest::collection::vec("[a-z0-9-]{0,12}", 0..50),
        ) {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (index, duplicates) = MessageIndex::build(table(&refs));
            let mut first: HashMap<&str, u32> = HashMap::new();
            let mut expected_duplicates = Vec::new();
            for (row, id) in refs.iter().enumerate() {
                if first.contains_key(id) {
                    expected_duplicates.push(row);
                } else {
                    first.insert(id, row as u32);
                }
            }
            prop_assert_eq!(duplicates, expected_duplicates);
            let queries: Vec<&str> = refs.iter().copied().chain(probes.iter().map(String::as_str)).collect();
            let expected: Vec<Option<u32>> = queries.iter().map(|q| first.get(q).copied()).collect();
            prop_assert_eq!(index.get_many(&queries), expected.clone());
            let singles: Vec<Option<u32>> = queries.iter().map(|q| index.get(q)).collect();
            prop_assert_eq!(singles, expected);
        }
    }
}
