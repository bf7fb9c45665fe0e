//! SendGridSink against a local server that checks each request against
//! SendGrid's documented v3 mail/send format (bearer key, JSON shape,
//! personalization limits, reserved headers, substitution limits), renders
//! what each recipient would receive, and answers 202 / 429 / 5xx / 400.

mod esp_sendgrid_fake;
mod esp_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use cpo_delivery::SendOutcome;
use cpo_delivery::esp::{SendGridConfig, SendGridSink};
use esp_sendgrid_fake::*;
use esp_support::*;
use serde_json::json;

#[tokio::test]
async fn batches_personalizations_and_records_provider_ids() {
    let (fake, sink, _dir) = start().await;
    let mut emails = emails(2_100);
    // Over the substitution limit: it must go in a call of its own.
    emails[5].html = format!("<p>{}</p>", "x".repeat(12_000));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails).await;
    assert_eq!(fake.sizes(), vec![999, 1, 1000, 100]);
    {
        let calls = fake.calls.lock().unwrap();
        for (call_no, call) in calls.iter().enumerate() {
            assert!(
                call.body["personalizations"][0]["substitutions"].is_object()
                    || call.rendered.len() == 1
            );
            for r in &call.rendered {
                let i: usize =
                    r.to.trim_start_matches('c')
                        .trim_end_matches("@example.com")
                        .parse()
                        .unwrap();
                let e = &emails[i];
                assert_eq!(
                    (r.subject.as_str(), r.text.as_str(), r.html.as_str()),
                    (e.subject.as_str(), e.text.as_str(), e.html.as_str())
                );
                assert_eq!(r.name.as_deref(), Some(format!("Ada {i}").as_str()));
                assert_eq!(r.message_id, e.message_id);
                assert_eq!(r.headers["List-Unsubscribe"], e.headers[0].1.as_str());
                assert_eq!(
                    r.headers["List-Unsubscribe-Post"],
                    "List-Unsubscribe=One-Click"
                );
                assert_eq!(
                    r.headers["Message-ID"],
                    format!("<{}>", e.rfc_message_id).as_str()
                );
                assert_eq!(r.reply_to.as_deref(), Some("help@brand.example"));
                assert_eq!(
                    sent_id(&outcomes[i]),
                    format!("sgid{}/{}", call_no + 1, e.message_id)
                );
            }
        }
        assert_eq!(
            calls[0].body["from"],
            json!({"email": "news@brand.example", "name": "Brand Café"})
        );
        // The large one went with its parts as they are.
        assert_eq!(calls[1].rendered[0].to, "c5@example.com");
        assert!(
            calls[1].body["personalizations"][0]
                .get("substitutions")
                .is_none()
        );
    }

    // Parts every email shares are sent as they are, without substitutions.
    let mut same = esp_support::emails(2);
    same[1].text = same[0].text.clone();
    same[1].html = same[0].html.clone();
    let outcomes = cpo_delivery::MailSink::send(&sink, &same).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );
    let calls = fake.calls.lock().unwrap();
    let last = calls.last().unwrap();
    assert_eq!(last.body["content"][0]["value"], same[0].text.as_str());
    assert!(
        last.body["personalizations"][1]
            .get("substitutions")
            .is_none()
    );
}

#[tokio::test]
async fn a_smaller_max_batch_is_kept() {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/mail/send", post(mail_send))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (_dir, key_file) = secret_file(KEY);
    let sink = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}/"),
        api_key_file: Some(key_file),
        max_batch: 10,
        ..SendGridConfig::default()
    })
    .unwrap();
    assert_eq!(cpo_delivery::MailSink::max_batch(&sink), 10);
    cpo_delivery::MailSink::send(&sink, &emails(25)).await;
    assert_eq!(fake.sizes(), vec![10, 10, 5]);
    // Nothing to send: no call.
    assert!(cpo_delivery::MailSink::send(&sink, &[]).await.is_empty());
    assert_eq!(fake.sizes().len(), 3);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(
        429,
        vec![("retry-after", "1".into())],
        r#"{"errors":[{"message":"too many requests"}]}"#.into(),
    ));
    let first = cpo_delivery::MailSink::send(&sink, &emails(3)).await;
    assert!(
        first.iter().all(|o| matches!(o, SendOutcome::Retry { after: Some(d), .. } if *d == Duration::from_secs(1))),
        "{first:?}"
    );
    // Without Retry-After, SendGrid's X-RateLimit-Reset tells when.
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    fake.script(Answer::Status(
        429,
        vec![("x-ratelimit-reset", reset.to_string())],
        String::new(),
    ));
    let second = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    assert!(
        matches!(&second[0], SendOutcome::Retry { after: Some(d), .. } if *d >= Duration::from_secs(1) && *d <= Duration::from_secs(2)),
        "{second:?}"
    );

    // Waiting as the stage does: the next call comes no sooner than asked.
    fake.script(Answer::Status(
        429,
        vec![("retry-after", "1".into())],
        String::new(),
    ));
    let (outcomes, _) = send_until_settled(&sink, &emails(3), 5).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    let calls = fake.calls.lock().unwrap();
    let gap = calls[3].at - calls[2].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_fail_with_the_reason() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(503, vec![], "upstream unavailable".into()));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(2)).await;
    for o in &outcomes {
        assert!(
            matches!(o, SendOutcome::Retry { reason, .. } if reason.contains("503")),
            "{o:?}"
        );
    }
    let (outcomes, _) = {
        fake.script(Answer::Status(500, vec![], String::new()));
        send_until_settled(&sink, &emails(2), 3).await
    };
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );

    let refusal = json!({"errors": [{"field": "from", "message": "The from address does not match a verified Sender Identity."}]});
    fake.script(Answer::Status(403, vec![], refusal.to_string()));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(2)).await;
    for o in &outcomes {
        assert!(
            matches!(o, SendOutcome::Failed { reason } if reason.contains("403") && reason.contains("verified Sender Identity")),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_recipient_fails_alone_and_the_rest_is_sent() {
    let (fake, sink, _dir) = start().await;
    fake.bad_addresses
        .lock()
        .unwrap()
        .insert("c1@example.com".into());
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(3)).await;
    assert!(
        matches!(&outcomes[1], SendOutcome::Failed { reason } if reason.contains("personalizations.1.to.0.email") && reason.contains("valid address")),
        "{outcomes:?}"
    );
    assert_eq!(sent_id(&outcomes[0]), "sgid2/msg-000000");
    assert_eq!(sent_id(&outcomes[2]), "sgid2/msg-000002");
    assert_eq!(fake.sizes(), vec![3, 2]);
}

#[tokio::test]
async fn timeouts_and_dead_servers_are_retried() {
    let (fake, _, dir, addr) = start_at().await;
    // A sink with a short timeout against a server that answers late.
    fake.script(Answer::Slow(Duration::from_secs(3)));
    let sink = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}"),
        api_key_file: Some(dir.path().join("secret")),
        timeout_ms: 300,
        ..SendGridConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&outcomes[0], SendOutcome::Retry { reason, .. } if reason.contains("timed out")),
        "{outcomes:?}"
    );

    let dead = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        api_key_file: Some(dir.path().join("secret")),
        ..SendGridConfig::default()
    })
    .unwrap();
    let outcomes = cpo_delivery::MailSink::send(&dead, &emails(2)).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Retry { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn the_key_is_checked_at_start_and_never_echoed() {
    let (fake, sink, _dir) = start().await;
    fake.script(Answer::Status(
        400,
        vec![],
        format!(r#"{{"errors":[{{"message":"key {KEY} is odd"}}]}}"#),
    ));
    let outcomes = cpo_delivery::MailSink::send(&sink, &emails(1)).await;
    let SendOutcome::Failed { reason } = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(
        !reason.contains(KEY) && reason.contains("<redacted>"),
        "{reason}"
    );

    let (_wrong_dir, wrong) = secret_file("SG.wrong");
    let addr = serve(
        axum::Router::new()
            .route("/v3/mail/send", post(mail_send))
            .with_state(fake.clone()),
    )
    .await;
    let unauthorized = SendGridSink::from_config(&SendGridConfig {
        endpoint: format!("http://{addr}"),
        api_key_file: Some(wrong),
        ..SendGridConfig::default()
    })
    .unwrap();
    let outcomes = cpo_delivery::MailSink::send(&unauthorized, &emails(1)).await;
    assert!(
        matches!(&outcomes[0], SendOutcome::Failed { reason } if reason.contains("401")),
        "{outcomes:?}"
    );

    let config = |edit: &dyn Fn(&mut SendGridConfig)| {
        let mut c = SendGridConfig {
            api_key_env: "CPO_TEST_NO_SUCH_SENDGRID_KEY".into(),
            ..SendGridConfig::default()
        };
        edit(&mut c);
        SendGridSink::from_config(&c).err().expect("refused")
    };
    let missing = config(&|_| {});
    assert_eq!(missing.key, "delivery.esp.sendgrid.api_key_file");
    assert!(
        missing.message.contains("CPO_TEST_NO_SUCH_SENDGRID_KEY"),
        "{missing}"
    );
    let unreadable = config(&|c| c.api_key_file = Some("/nonexistent/sendgrid.key".into()));
    assert!(
        unreadable
            .to_string()
            .contains("delivery.esp.sendgrid.api_key_file"),
        "{unreadable}"
    );
    let plain = config(&|c| c.endpoint = "http://api.sendgrid.com".into());
    assert_eq!(plain.key, "delivery.esp.sendgrid.endpoint");
    // The key from the environment variable named (PATH is always set).
    assert!(
        SendGridSink::from_config(&SendGridConfig {
            api_key_env: "PATH".into(),
            ..SendGridConfig::default()
        })
        .is_ok()
    );
    let batch = config(&|c| c.max_batch = 1001);
    assert_eq!(batch.key, "delivery.esp.sendgrid.max_batch");
}
