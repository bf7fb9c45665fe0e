//! MailgunSink against a local server that checks each request against
//! Mailgun's documented messages API (basic auth `api:KEY`, the domain in
//! the path, multipart/form-data fields, at most 1000 recipients, batch
//! sending only with recipient-variables), renders `%recipient.x%` for each
//! recipient, and answers 200 / 429 / 5xx / 4xx.

mod esp_mailgun_fake;
mod esp_support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use cpo_delivery::esp::{MailgunConfig, MailgunSink};
use cpo_delivery::{MailSink, SendOutcome};
use esp_mailgun_fake::*;
use esp_support::*;

#[tokio::test]
async fn batches_with_recipient_variables_and_our_message_id() {
    let (fake, sink, _dir) = start().await;
    let emails = emails(1_500);
    let outcomes = sink.send(&emails).await;
    assert_eq!(fake.sizes(), vec![1000, 500]);
    {
        let calls = fake.calls.lock().unwrap();
        for (call_no, call) in calls.iter().enumerate() {
            for r in &call.rendered {
                let i: usize =
                    r.to.trim_start_matches('c')
                        .trim_end_matches("@example.com")
                        .parse()
                        .unwrap();
                let e = &emails[i];
                let f = |name: &str| {
                    r.fields
                        .get(name)
                        .map(String::as_str)
                        .unwrap_or("(missing)")
                };
                assert_eq!(f("subject"), e.subject);
                assert_eq!(f("text"), e.text);
                assert_eq!(f("html"), e.html);
                assert_eq!(f("v:message_id"), e.message_id);
                assert_eq!(f("v:campaign_id"), "camp-autumn");
                assert_eq!(f("h:List-Unsubscribe"), e.headers[0].1);
                assert_eq!(f("h:List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
                assert_eq!(f("h:Message-Id"), format!("<{}>", e.rfc_message_id));
                assert_eq!(f("h:Reply-To"), "help@brand.example");
                assert_eq!(f("from"), "\"Brand Café\" <news@brand.example>");
                assert_eq!(
                    sent_id(&outcomes[i]),
                    format!("20261206.{}.cpo@{DOMAIN}/{}", call_no + 1, e.message_id)
                );
            }
        }
    }

    // An address twice: recipient-variables are keyed by address, so the
    // second goes in a call of its own.
    let mut twice = esp_support::emails(3);
    twice[2].to.address = twice[0].to.address.clone();
    let outcomes = sink.send(&twice).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. }))
    );
    assert_eq!(&fake.sizes()[2..], &[2, 1]);
    let calls = fake.calls.lock().unwrap();
    assert_eq!(
        calls[3].rendered[0].fields["v:message_id"],
        twice[2].message_id
    );
    assert_eq!(calls[3].rendered[0].fields["subject"], twice[2].subject);
}

#[tokio::test]
async fn too_many_requests_and_server_errors_wait_and_retry() {
    let (fake, sink, _dir) = start().await;
    fake.script.lock().unwrap().push_back((
        429,
        vec![("retry-after", "1".into())],
        "{\"message\":\"slow down\"}".into(),
    ));
    let first = sink.send(&emails(2)).await;
    assert!(
        first.iter().all(|o| matches!(o, SendOutcome::Retry { after: Some(d), reason } if *d == Duration::from_secs(1) && reason.contains("slow down"))),
        "{first:?}"
    );
    fake.script
        .lock()
        .unwrap()
        .push_back((429, vec![("retry-after", "1".into())], String::new()));
    fake.script
        .lock()
        .unwrap()
        .push_back((502, vec![], "bad gateway".into()));
    let (outcomes, _) = send_until_settled(&sink, &emails(2), 5).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SendOutcome::Sent { .. })),
        "{outcomes:?}"
    );
    let calls = fake.calls.lock().unwrap();
    assert_eq!(calls.len(), 4);
    let gap = calls[2].at - calls[1].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn one_bad_address_fails_alone() {
    let (fake, sink, _dir) = start().await;
    fake.bad_addresses
        .lock()
        .unwrap()
        .insert("c5@example.com".into());
    let outcomes = sink.send(&emails(8)).await;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(o, SendOutcome::Failed { reason } if reason.contains("400") && reason.contains("not a valid address")),
                "{o:?}"
            );
        } else {
            assert!(matches!(o, SendOutcome::Sent { .. }), "{i}: {o:?}");
        }
    }
    // Halves until the refused one is alone.
    assert_eq!(fake.sizes(), vec![8, 4, 4, 2, 1, 1, 2]);
}

#[tokio::test]
async fn a_refusal_of_every_call_stops_splitting() {
    let (fake, sink, _dir) = start().await;
    let mut emails = emails(1000);
    for e in &mut emails {
        e.from.address = "news@brand.invalid".into();
    }
    let outcomes = sink.send(&emails).await;
    assert!(
        outcomes.iter().all(
            |o| matches!(o, SendOutcome::Failed { reason } if reason.contains("'from' parameter"))
        ),
        "{:?}",
        &outcomes[..2]
    );
    // One call, 32 splits (two calls each), then the rest fails as refused.
    let calls = fake.calls.lock().unwrap().len();
    assert!(calls <= 1 + 2 * 32, "{calls} calls");
}

#[tokio::test]
async fn other_client_errors_fail_and_config_is_checked_at_start() {
    let fake = Arc::new(Fake::default());
    let router = axum::Router::new()
        .route("/v3/{domain}/messages", post(messages))
        .with_state(fake.clone());
    let addr = serve(router).await;
    let (_dir, key_file) = secret_file(KEY);
    let wrong_domain = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://{addr}"),
        domain: "other.example".into(),
        api_key_file: Some(key_file.clone()),
        ..MailgunConfig::default()
    })
    .unwrap();
    let outcomes = wrong_domain.send(&emails(2)).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, SendOutcome::Failed { reason } if reason.contains("404") && reason.contains("Domain not found"))),
        "{outcomes:?}"
    );
    let (_wrong_dir, wrong_key) = secret_file("key-wrong");
    let unauthorized = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://{addr}"),
        domain: DOMAIN.into(),
        api_key_file: Some(wrong_key),
        ..MailgunConfig::default()
    })
    .unwrap();
    assert!(
        matches!(&unauthorized.send(&emails(1)).await[0], SendOutcome::Failed { reason } if reason.contains("401"))
    );
    let dead = MailgunSink::from_config(&MailgunConfig {
        endpoint: format!("http://127.0.0.1:{}", closed_port()),
        domain: DOMAIN.into(),
        api_key_file: Some(key_file.clone()),
        ..MailgunConfig::default()
    })
    .unwrap();
    assert!(matches!(
        &dead.send(&emails(1)).await[0],
        SendOutcome::Retry { .. }
    ));

    let refused = |edit: &dyn Fn(&mut MailgunConfig)| {
        let mut c = MailgunConfig {
            domain: DOMAIN.into(),
            api_key_env: "CPO_TEST_NO_SUCH_MAILGUN_KEY".into(),
            ..MailgunConfig::default()
        };
        edit(&mut c);
        MailgunSink::from_config(&c).err().expect("refused")
    };
    let missing = refused(&|_| {});
    assert_eq!(missing.key, "delivery.esp.mailgun.api_key_file");
    assert!(
        missing.message.contains("CPO_TEST_NO_SUCH_MAILGUN_KEY"),
        "{missing}"
    );
    assert_eq!(
        refused(&|c| c.domain = String::new()).key,
        "delivery.esp.mailgun.domain"
    );
    assert_eq!(
        refused(&|c| c.domain = "mg.example.com/../x".into()).key,
        "delivery.esp.mailgun.domain"
    );
    assert_eq!(
        refused(&|c| c.endpoint = "ftp://api.mailgun.net".into()).key,
        "delivery.esp.mailgun.endpoint"
    );
    assert_eq!(
        refused(&|c| c.max_batch = 0).key,
        "delivery.esp.mailgun.max_batch"
    );
}
