//! The process-local cache of the embedded mode and unit tests.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Cache, CacheError, HashUpdate};

/// A key as the memory cache stores it: a 128-bit keyed hash of the key.
///
/// Two domain-separated SipHash values under a random key (std's
/// `RandomState`) make it, so no input can be chosen to collide, and 1M keys
/// collide with probability about 2^-88. It takes 16 bytes where a key like `cpo:v1:sent:msg-<32 hex>`
/// takes ~90 (string, allocation, length); the embedded run keeps one per
/// message sent.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform keyed hash: no need to hash it again.
        state.write_u64(self.0);
    }
}

/// Passes a fingerprint's first word through as the table hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Values up to this many bytes (sent markers, flags) live inside the slot.
const INLINE: usize = 14;

// The collections are boxed on purpose: a thin pointer keeps the value part of
// every table slot at 16 bytes, and large values and hashes are rare.
#[allow(clippy::box_collection)]
enum Stored {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<Vec<u8>>),
    Hash(Box<HashMap<String, Vec<u8>>>),
}

impl Stored {
    fn value(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0u8; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Stored::Inline { len, bytes: inline }
            }
            _ => Stored::Heap(Box::new(bytes.to_vec())),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Stored::Inline { len, bytes } => Some(&bytes[..usize::from(*len)]),
            Stored::Heap(value) => Some(value),
            Stored::Hash(_) => None,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Stored>() == 16);

struct Slot {
    /// Nanoseconds after the cache's epoch when the value expires; `NEVER` if it does not.
    expires: u64,
    stored: Stored,
}

const NEVER: u64 = u64::MAX;

struct Entries {
    slots: HashMap<Fingerprint, Slot, BuildHasherDefault<PassThrough>>,
    epoch: Instant,
}

impl Entries {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(NEVER - 1)
    }

    fn expiry(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            None => NEVER,
            Some(ttl) => self
                .now()
                .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(NEVER))
                .min(NEVER - 1),
        }
    }

    fn live(&self, key: Fingerprint, now: u64) -> Option<&Slot> {
        self.slots.get(&key).filter(|slot| now < slot.expires)
    }

    /// Change the fields of hash `key`, which starts empty when it is absent,
    /// expired or a plain value; a TTL moves its expiry to `ttl` from now.
    fn with_hash<R>(
        &mut self,
        key: Fingerprint,
        ttl: Option<Duration>,
        f: impl FnOnce(&mut HashMap<String, Vec<u8>>) -> R,
    ) -> R {
        let now = self.now();
        let expiry = self.expiry(ttl);
        let slot = self.slots.entry(key).or_insert(Slot {
            expires: NEVER,
            stored: Stored::Inline {
                len: 0,
                bytes: [0; INLINE],
            },
        });
        let live = now < slot.expires;
        let taken = std::mem::replace(&mut slot.stored, Stored::Hash(Box::default()));
        let mut fields = match taken {
            Stored::Hash(fields) if live => fields,
            _ => {
                slot.expires = NEVER;
                Box::default()
            }
        };
        if ttl.is_some() {
            slot.expires = expiry;
        }
        let result = f(&mut fields);
        slot.stored = Stored::Hash(fields);
        result
    }
}

/// Process-local cache for the embedded mode and unit tests. Keys are held
/// as fingerprints (see `Fingerprint`) and small values inline, so a million
/// sent markers take ~85 MB rather than ~240 MB.
pub struct MemoryCache {
    entries: Mutex<Entries>,
    keyed: RandomState,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Entries {
                slots: HashMap::default(),
                epoch: Instant::now(),
            }),
            keyed: RandomState::new(),
        }
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn fingerprint(&self, key: &str) -> Fingerprint {
        Fingerprint(
            self.keyed.hash_one((0u8, key)),
            self.keyed.hash_one((1u8, key)),
        )
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut entries)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let key = self.fingerprint(key);
        Ok(self.with(|m| {
            m.live(key, m.now())
                .and_then(|slot| slot.stored.bytes())
                .map(<[u8]>::to_vec)
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.fingerprint(key);
        let stored = Stored::value(value);
        self.with(|m| {
            let expires = m.expiry(ttl);
            m.slots.insert(key, Slot { expires, stored })
        });
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let key = self.fingerprint(key);
        Ok(self.with(|m| {
            if m.live(key, m.now()).is_some() {
                return false;
            }
            let expires = m.expiry(ttl);
            m.slots.insert(
                key,
                Slot {
                    expires,
                    stored: Stored::value(value),
                },
            );
            true
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.fingerprint(key);
        self.with(|m| m.slots.remove(&key));
        Ok(())
    }

    async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let key = self.fingerprint(key);
        self.with(|m| {
            m.with_hash(key, ttl, |fields| {
                fields.insert(field.to_string(), value.to_vec())
            })
        });
        Ok(())
    }

    async fn hash_add_once(
        &self,
        key: &str,
        marker: &str,
        update: &HashUpdate,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let (key, marker) = (self.fingerprint(key), self.fingerprint(marker));
        Ok(self.with(|m| {
            if m.live(marker, m.now()).is_some() {
                return false;
            }
            let expires = m.expiry(Some(ttl));
            m.slots.insert(
                marker,
                Slot {
                    expires,
                    stored: Stored::value(b"1"),
                },
            );
            m.with_hash(key, Some(ttl), |fields| update.apply(fields));
            true
        }))
    }

    async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
        let key = self.fingerprint(key);
        Ok(
            self.with(|m| match m.live(key, m.now()).map(|slot| &slot.stored) {
                Some(Stored::Hash(h)) => {
                    let mut all: Vec<_> = h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    all.sort_by(|a, b| a.0.cmp(&b.0));
                    all
                }
                _ => Vec::new(),
            }),
        )
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        // Hashed before the lock is taken, so concurrent batches wait less.
        let keys: Vec<Fingerprint> = keys.iter().map(|k| self.fingerprint(k)).collect();
        Ok(self.with(|m| {
            let now = m.now();
            keys.iter()
                .map(|key| {
                    m.live(*key, now)
                        .and_then(|slot| slot.stored.bytes())
                        .map(<[u8]>::to_vec)
                })
                .collect()
        }))
    }

    async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let slots: Vec<(Fingerprint, Stored)> = entries
            .iter()
            .map(|(key, value)| (self.fingerprint(key), Stored::value(value)))
            .collect();
        self.with(|m| {
            let expires = m.expiry(ttl);
            m.slots.reserve(slots.len());
            for (key, stored) in slots {
                m.slots.insert(key, Slot { expires, stored });
            }
        });
        Ok(())
    }
}

/// A memory cache that answers `Unavailable` while `down` is set (an outage
/// of Redis, for the tests of the stages that depend on it) and counts hash
/// reads. Only with the `test-util` feature.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn set_if_absent_claims_once_and_ttl_expires() {
        let c = MemoryCache::new();
        assert!(c.set_if_absent("k", b"1", None).await.unwrap());
        assert!(!c.set_if_absent("k", b"2", None).await.unwrap());
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        c.set("t", b"x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(c.get("t").await.unwrap(), None);
        assert!(c.set_if_absent("t", b"y", None).await.unwrap());
        c.hash_set("h", "b", b"2", None).await.unwrap();
        c.hash_set("h", "a", b"1", None).await.unwrap();
        let all = c.hash_get_all("h").await.unwrap();
        assert_eq!(
            all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // a hash is not a value, and a value is replaced by a hash
        assert_eq!(c.get("h").await.unwrap(), None);
        c.hash_set("k", "f", b"v", None).await.unwrap();
        assert_eq!(c.get("k").await.unwrap(), None);
        c.delete("k").await.unwrap();
        assert!(c.hash_get_all("k").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn small_and_large_values_round_trip() {
        let c = MemoryCache::new();
        let large = vec![7u8; 1000];
        for value in [&b""[..], b"1", &[9u8; INLINE], &[3u8; INLINE + 1], &large] {
            c.set("v", value, None).await.unwrap();
            assert_eq!(c.get("v").await.unwrap().as_deref(), Some(value));
        }
        // keys that differ in one byte or only in length are different keys
        c.set("ab", b"1", None).await.unwrap();
        assert_eq!(c.get("ab\0").await.unwrap(), None);
        assert_eq!(c.get("aB").await.unwrap(), None);
    }

    #[tokio::test]
    async fn many_reads_and_writes_in_order_with_ttl() {
        let c = MemoryCache::new();
        let keys: Vec<String> = (0..5).map(|i| format!("sent:{i}")).collect();
        c.set("sent:3", b"old", None).await.unwrap();
        let before = c.get_many(&keys).await.unwrap();
        assert_eq!(before, [None, None, None, Some(b"old".to_vec()), None]);
        let entries: Vec<(String, Vec<u8>)> = keys[..3]
            .iter()
            .map(|k| (k.clone(), k.as_bytes().to_vec()))
            .collect();
        c.set_many(&entries, Some(Duration::from_millis(1)))
            .await
            .unwrap();
        let after = c.get_many(&keys).await.unwrap();
        assert_eq!(after[1].as_deref(), Some(&b"sent:1"[..]));
        assert_eq!(after[4], None);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let expired = c.get_many(&keys).await.unwrap();
        assert_eq!(expired, [None, None, None, Some(b"old".to_vec()), None]);
    }

    /// A cache with only the required methods: the defaults must agree.
    struct Minimal(MemoryCache);

    #[async_trait]
    impl Cache for Minimal {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
            self.0.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: &[u8],
            ttl: Option<Duration>,
        ) -> Result<(), CacheError> {
            self.0.set(key, value, ttl).await
        }
        async fn set_if_absent(
            &self,
            key: &str,
            value: &[u8],
            ttl: Option<Duration>,
        ) -> Result<bool, CacheError> {
            self.0.set_if_absent(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.0.delete(key).await
        }
        async fn hash_set(
            &self,
            key: &str,
            field: &str,
            value: &[u8],
            ttl: Option<Duration>,
        ) -> Result<(), CacheError> {
            self.0.hash_set(key, field, value, ttl).await
        }
        async fn hash_add_once(
            &self,
            key: &str,
            marker: &str,
            update: &HashUpdate,
            ttl: Duration,
        ) -> Result<bool, CacheError> {
            self.0.hash_add_once(key, marker, update, ttl).await
        }
        async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, CacheError> {
            self.0.hash_get_all(key).await
        }
    }

    #[tokio::test]
    async fn default_batch_methods_loop_over_single_ones() {
        let c = Minimal(MemoryCache::new());
        c.set_many(
            &[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())],
            None,
        )
        .await
        .unwrap();
        let keys = ["b".to_string(), "c".to_string(), "a".to_string()];
        assert_eq!(
            c.get_many(&keys).await.unwrap(),
            [Some(b"2".to_vec()), None, Some(b"1".to_vec())]
        );
    }
}
