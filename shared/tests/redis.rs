//! The Redis cache against a real Redis (127.0.0.1:6379, or `CPO_TEST_REDIS_URL`).
//! Each test works under its own key prefix and deletes its keys afterwards.
//! A Redis that is down fails the tests with the command that starts it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cpo_shared::cache::{Cache, CacheError, HashUpdate};
use cpo_shared::metrics::metrics;
use cpo_shared::redis_cache::{CACHE_LABEL, RedisCache, RedisConfig};
use cpo_shared::transport::amqp::redact_url;

fn redis_url() -> String {
    std::env::var("CPO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test:{test}:{}:{nanos:x}{n}:", std::process::id())
}

async fn cache(prefix: &str) -> RedisCache {
    let config = RedisConfig {
        url: redis_url(),
        key_prefix: prefix.to_string(),
        ..RedisConfig::default()
    };
    let cache = RedisCache::new(&config).expect("redis cache");
    if let Err(e) = cache.ping().await {
        panic!(
            "Redis is not reachable at {}: {e}\nStart it with `redis-server --daemonize yes \
             --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis \
             --logfile /var/log/redis/ci.log`, or set CPO_TEST_REDIS_URL to a running server.",
            redact_url(&config.url)
        );
    }
    cache
}

/// Run `body` with a cache under a fresh prefix, then delete its keys even on panic.
async fn with_cache<F, Fut>(test: &str, body: F)
where
    F: FnOnce(RedisCache) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cache = cache(&unique_prefix(test)).await;
    let outcome = tokio::spawn(body(cache.clone())).await;
    let cleanup = cache.delete_prefixed().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    cleanup.expect("delete the test keys");
}

#[tokio::test]
async fn values_round_trip_byte_for_byte_and_delete_removes_them() {
    with_cache("roundtrip", |c| async move {
        let binary = [0u8, 159, 146, 150, 255, b'\n'];
        assert_eq!(c.get("k").await.unwrap(), None);
        c.set("k", &binary, None).await.unwrap();
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&binary[..]));
        c.set("k", b"second", None).await.unwrap();
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"second"[..]));
        c.delete("k").await.unwrap();
        assert_eq!(c.get("k").await.unwrap(), None);
        // deleting what is absent is not an error
        c.delete("k").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn set_if_absent_claims_exactly_once_among_concurrent_claimers() {
    with_cache("claim", |c| async move {
        assert!(c.set_if_absent("claim", b"first", None).await.unwrap());
        assert!(!c.set_if_absent("claim", b"second", None).await.unwrap());
        assert_eq!(
            c.get("claim").await.unwrap().as_deref(),
            Some(&b"first"[..])
        );

        let c = Arc::new(c);
        let mut claimers = tokio::task::JoinSet::new();
        for i in 0..16 {
            let c = c.clone();
            claimers.spawn(async move {
                c.set_if_absent("race", format!("w{i}").as_bytes(), None)
                    .await
                    .unwrap()
            });
        }
        let mut winners = 0;
        while let Some(won) = claimers.join_next().await {
            winners += u32::from(won.unwrap());
        }
        assert_eq!(winners, 1);
    })
    .await;
}

#[tokio::test]
async fn ttls_expire_values_and_claims() {
    with_cache("ttl", |c| async move {
        c.set("short", b"v", Some(Duration::from_millis(100)))
            .await
            .unwrap();
        c.set("long", b"v", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(
            c.set_if_absent("lease", b"1", Some(Duration::from_millis(100)))
                .await
                .unwrap()
        );
        assert_eq!(c.get("short").await.unwrap().as_deref(), Some(&b"v"[..]));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.get("short").await.unwrap(), None);
        assert_eq!(c.get("long").await.unwrap().as_deref(), Some(&b"v"[..]));
        // An expired claim can be taken again.
        assert!(c.set_if_absent("lease", b"2", None).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn the_url_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, format!("{}\n", redis_url())).unwrap();
    let config = RedisConfig {
        url: "redis://127.0.0.1:1/".into(),
        url_file: Some(url_file),
        key_prefix: unique_prefix("url-file"),
        ..RedisConfig::default()
    };
    let cache = RedisCache::new(&config).unwrap();
    cache
        .ping()
        .await
        .expect("the URL in the file, not `url`, is used");
    let missing = RedisConfig {
        url_file: Some(dir.path().join("absent")),
        ..RedisConfig::default()
    };
    let err = RedisCache::new(&missing).err().unwrap().to_string();
    assert!(err.contains("redis.url_file"), "{err}");
}

#[tokio::test]
async fn a_hash_with_a_ttl_expires_as_a_whole() {
    with_cache("hash-ttl", |c| async move {
        let ttl = Some(Duration::from_millis(300));
        c.hash_set("join", "a", b"1", ttl).await.unwrap();
        c.hash_set("join", "b", b"2", ttl).await.unwrap();
        c.hash_set("kept", "a", b"1", None).await.unwrap();
        assert_eq!(c.hash_get_all("join").await.unwrap().len(), 2);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(c.hash_get_all("join").await.unwrap().is_empty());
        assert_eq!(c.hash_get_all("kept").await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn hash_add_once_applies_each_marker_once_even_when_racing() {
    with_cache("add-once", |c| async move {
        let ttl = Duration::from_secs(60);
        let update = |n: i64, at: i64| HashUpdate {
            add: vec![("delivered".into(), n), ("batches".into(), 1)],
            max: vec![("updated_ms".into(), at)],
            min: vec![("first_ms".into(), at)],
        };
        // 20 messages, each delivered three times concurrently (redeliveries racing).
        let c = Arc::new(c);
        let mut tasks = tokio::task::JoinSet::new();
        for message in 0..20i64 {
            for _ in 0..3 {
                let c = c.clone();
                tasks.spawn(async move {
                    c.hash_add_once(
                        "p",
                        &format!("seen:{message}"),
                        &update(10, 1000 + message),
                        ttl,
                    )
                    .await
                    .unwrap()
                });
            }
        }
        let mut applied = 0;
        while let Some(joined) = tasks.join_next().await {
            applied += u32::from(joined.unwrap());
        }
        assert_eq!(applied, 20, "one application per marker");
        let fields: std::collections::BTreeMap<String, String> = c
            .hash_get_all("p")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(fields["delivered"], "200");
        assert_eq!(fields["batches"], "20");
        assert_eq!(fields["updated_ms"], "1019", "max keeps the largest");
        assert_eq!(fields["first_ms"], "1000", "min keeps the smallest");
        // an older timestamp does not lower it; a new marker still adds
        assert!(
            c.hash_add_once("p", "seen:late", &update(1, 5), ttl)
                .await
                .unwrap()
        );
        let fields = c.hash_get_all("p").await.unwrap();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(get("updated_ms").as_deref(), Some("1019"));
        assert_eq!(get("first_ms").as_deref(), Some("5"));
        assert_eq!(get("delivered").as_deref(), Some("201"));
        // both the hash and the markers expire
        assert!(
            c.hash_add_once("q", "m", &update(1, 1), Duration::from_millis(200))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(c.hash_get_all("q").await.unwrap().is_empty());
        assert!(
            c.hash_add_once("q", "m", &update(1, 1), ttl).await.unwrap(),
            "an expired marker can be claimed again"
        );
    })
    .await;
}

#[tokio::test]
async fn hashes_keep_one_value_per_field_sorted_by_field() {
    with_cache("hash", |c| async move {
        assert!(c.hash_get_all("join").await.unwrap().is_empty());
        c.hash_set("join", "variant-b", b"blocked", None)
            .await
            .unwrap();
        c.hash_set("join", "variant-a", b"approved", None)
            .await
            .unwrap();
        c.hash_set("join", "variant-b", b"approved", None)
            .await
            .unwrap();
        let all = c.hash_get_all("join").await.unwrap();
        assert_eq!(
            all,
            [
                ("variant-a".to_string(), b"approved".to_vec()),
                ("variant-b".to_string(), b"approved".to_vec()),
            ]
        );
        c.delete("join").await.unwrap();
        assert!(c.hash_get_all("join").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn batch_operations_answer_in_key_order_across_chunks() {
    with_cache("batch", |c| async move {
        // More than one MGET/pipeline chunk, with gaps.
        let entries: Vec<(String, Vec<u8>)> = (0..2500)
            .filter(|i| i % 3 != 0)
            .map(|i| (format!("sent:{i}"), format!("v{i}").into_bytes()))
            .collect();
        c.set_many(&entries, Some(Duration::from_secs(60)))
            .await
            .unwrap();
        let keys: Vec<String> = (0..2500).map(|i| format!("sent:{i}")).collect();
        let values = c.get_many(&keys).await.unwrap();
        assert_eq!(values.len(), keys.len());
        for (i, value) in values.iter().enumerate() {
            let expected = (i % 3 != 0).then(|| format!("v{i}").into_bytes());
            assert_eq!(value, &expected, "key {i}");
        }
        assert!(c.get_many(&[]).await.unwrap().is_empty());
        c.set_many(&[], None).await.unwrap();
        // The TTL was applied: the claim of a set key fails, of a gap succeeds.
        assert!(!c.set_if_absent("sent:1", b"x", None).await.unwrap());
        assert!(c.set_if_absent("sent:3", b"x", None).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn key_prefixes_isolate_caches() {
    let one = cache(&unique_prefix("iso-a")).await;
    let two = cache(&unique_prefix("iso-b")).await;
    one.set("shared-name", b"one", None).await.unwrap();
    assert_eq!(two.get("shared-name").await.unwrap(), None);
    assert_eq!(one.delete_prefixed().await.unwrap(), 1);
    assert_eq!(one.get("shared-name").await.unwrap(), None);
    two.delete_prefixed().await.unwrap();
}

#[tokio::test]
async fn a_closed_port_gives_unavailable_errors_quickly_and_counts_them() {
    let config = RedisConfig {
        url: "redis://:hunter2@127.0.0.1:1/".into(),
        url_file: None,
        password_file: None,
        key_prefix: unique_prefix("down"),
        connect_timeout_ms: 200,
        response_timeout_ms: 200,
        reconnect_retries: 1,
    };
    // Creating the cache does not need the server: a worker starts and degrades.
    let c = RedisCache::new(&config).expect("lazy connection");
    let errors = || {
        metrics()
            .cache_requests
            .with_label_values(&[CACHE_LABEL, "error"])
            .get()
    };
    let before = errors();
    let started = Instant::now();
    let results = [
        c.get("k").await.map(|_| ()),
        c.set("k", b"v", None).await,
        c.set_if_absent("k", b"v", None).await.map(|_| ()),
        c.delete("k").await,
        c.hash_set("h", "f", b"v", None).await,
        c.hash_add_once("h", "m", &HashUpdate::default(), Duration::from_secs(1))
            .await
            .map(|_| ()),
        c.hash_get_all("h").await.map(|_| ()),
        c.get_many(&["k".to_string()]).await.map(|_| ()),
        c.set_many(&[("k".to_string(), b"v".to_vec())], None).await,
    ];
    for result in results {
        match result {
            Err(CacheError::Unavailable(reason)) => {
                assert!(!reason.contains("hunter2"), "{reason}");
            }
            Ok(()) => panic!("a closed port answered"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(errors() - before >= 8, "every failure is counted");
    assert!(c.ping().await.is_err());
}
