//! The shared rate limiter against the real Redis on 127.0.0.1:6379 (or
//! `CPO_TEST_REDIS_URL`), each test under a key prefix of its own: two
//! limiter clients, as two delivery replicas would hold, never exceed the
//! configured rate in any one-second window (+5 %) and average close to it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpo_shared::rate_limit::{LimitError, Permit, RateConfig, RateLimiter};
use cpo_shared::redis_cache::{RedisCache, RedisConfig, RedisRateLimiter};

const REDIS_HINT: &str = "Redis must run on 127.0.0.1:6379 (or set CPO_TEST_REDIS_URL)";

fn redis_config(tag: &str) -> RedisConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    RedisConfig {
        url: std::env::var("CPO_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into()),
        key_prefix: format!("cpo-test:limiter:{tag}:{}:{nanos}:", std::process::id()),
        ..RedisConfig::default()
    }
}

async fn cleanup(config: &RedisConfig) {
    let cache = RedisCache::new(config).unwrap();
    cache.delete_prefixed().await.unwrap();
}

/// Send as fast as the limiter allows for `run` from `clients` clients (two
/// tasks each), and return every grant's Redis time (µs): when the budget was
/// spent, free of the client's scheduling delays on a loaded machine.
async fn hammer(clients: Vec<Arc<RedisRateLimiter>>, run: Duration) -> Vec<u64> {
    let grants = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for limiter in clients {
        for _ in 0..2 {
            let (limiter, grants) = (limiter.clone(), grants.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    match limiter.acquire_timed("smtp", 1).await.expect(REDIS_HINT) {
                        (Permit::Granted, Some(at)) => grants.lock().unwrap().push(at),
                        (Permit::Wait(wait), _) => tokio::time::sleep(wait).await,
                        other => panic!("{other:?}"),
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort();
    grants
}

/// Most grants in any window of `window` starting at a grant.
fn busiest(grants: &[u64], window: Duration) -> usize {
    let window = window.as_micros() as u64;
    let mut end = 0;
    let mut most = 0;
    for start in 0..grants.len() {
        while end < grants.len() && grants[end] - grants[start] < window {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_one_rate() {
    let config = redis_config("share");
    let rate = RateConfig {
        per_second: Some(200),
        ..RateConfig::default()
    };
    let a = Arc::new(RedisRateLimiter::new(&config, &rate).unwrap());
    let b = Arc::new(RedisRateLimiter::new(&config, &rate).unwrap());
    let run = Duration::from_secs(4);
    let grants = hammer(vec![a, b], run).await;
    cleanup(&config).await;
    let most = busiest(&grants, Duration::from_secs(1));
    assert!(most <= 210, "{most} grants in one second (limit 200 + 5 %)");
    // Averaged over the run after the first window, at least 95 % of the rate.
    let span = (grants[grants.len() - 1] - grants[0]) as f64 / 1e6;
    let average = (grants.len() - 1) as f64 / span;
    eprintln!("busiest second {most}, average {average:.1}/s over {span:.2} s");
    assert!(
        (190.0..=210.0).contains(&average),
        "{average:.1}/s over {span:.2} s ({} grants)",
        grants.len()
    );
}

#[tokio::test]
async fn the_daily_quota_is_shared_and_says_when_it_renews() {
    let config = redis_config("quota");
    let rate = RateConfig {
        per_day: Some(5),
        ..RateConfig::default()
    };
    let a = RedisRateLimiter::new(&config, &rate).unwrap();
    let b = RedisRateLimiter::new(&config, &rate).unwrap();
    assert_eq!(
        a.acquire("ses", 3).await.expect(REDIS_HINT),
        Permit::Granted
    );
    assert_eq!(b.acquire("ses", 2).await.unwrap(), Permit::Granted);
    let spent = b.acquire("ses", 1).await.unwrap();
    // another key (another sink or domain) has a budget of its own
    assert_eq!(
        a.acquire("ses:other.example", 1).await.unwrap(),
        Permit::Granted
    );
    cleanup(&config).await;
    let Permit::QuotaSpent { until_ms } = spent else {
        panic!("{spent:?}")
    };
    let now_ms = cpo_shared::envelope::now_ms();
    assert_eq!(until_ms % 86_400_000, 0, "a UTC midnight");
    assert!(until_ms > now_ms && until_ms - now_ms <= 86_400_000);
}

#[tokio::test]
async fn a_limiter_whose_redis_is_down_says_so() {
    let mut config = redis_config("down");
    config.url = "redis://127.0.0.1:1/".into();
    config.reconnect_retries = 0;
    let rate = RateConfig {
        per_second: Some(10),
        ..RateConfig::default()
    };
    let limiter = RedisRateLimiter::new(&config, &rate).unwrap();
    let err = limiter.acquire("smtp", 1).await.unwrap_err();
    assert!(matches!(err, LimitError::Unavailable(_)), "{err}");
    // asking for more than one burst at once is refused before Redis is asked
    let err = limiter.acquire("smtp", 100).await.unwrap_err();
    assert!(matches!(err, LimitError::Invalid(_)), "{err}");
}
