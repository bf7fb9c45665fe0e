//! The SMTP sink against a real SMTP server (aiosmtpd, `tests/mail/`), the
//! received mail parsed by Python's `email` package.

use std::collections::HashMap;

use cpo_delivery::compose::{ComposeInput, Composer};
use cpo_delivery::mail_config::{MailConfig, SmtpConfig, UtmConfig};
use cpo_delivery::smtp::SmtpSink;
use cpo_delivery::test_smtp::{Behaviour, SmtpServer, check_mail};
use cpo_delivery::{MailSink, OutgoingEmail, SendOutcome};
use cpo_shared::envelope::message_id;
use cpo_shared::unsubscribe::UnsubscribeTokens;

fn composer() -> Composer {
    let mail = MailConfig {
        from_address: "news@northwind.example".into(),
        from_name: Some("Northwind Outfitters".into()),
        reply_to: Some("care@northwind.example".into()),
        postal_address: "1 Harbour St, Portland, OR 97201, USA".into(),
        ..MailConfig::default()
    };
    let utm = UtmConfig {
        source: "newsletter".into(),
        medium: "email".into(),
        campaign: None,
    };
    let urls = HashMap::from([(
        "prod-autumn-collection-2026".to_string(),
        "https://www.example.com/autumn-collection".to_string(),
    )]);
    Composer::from_config(
        &mail,
        Some(&utm),
        Some("https://go.northwind.example"),
        UnsubscribeTokens::new(b"smtp-test-unsubscribe-key"),
        urls,
    )
    .unwrap()
}

fn email(composer: &Composer, customer: &str, first_name: &str, to: &str) -> OutgoingEmail {
    let citations = vec![
        "prod-autumn-collection-2026".to_string(),
        "promo-autumn-collection-launch".to_string(),
    ];
    let body = format!(
        "Hi {first_name},\n\nNew waterproof jackets. [prod-autumn-collection-2026] \
         Take 15 percent off with AUTUMN15. [promo-autumn-collection-launch]\n\n\
         Learn more at https://www.example.com/autumn\n\nRegards,\nThe Northwind Outfitters team"
    );
    let message_id = message_id("autumn-2026", customer);
    composer
        .compose(&ComposeInput {
            message_id: &message_id,
            campaign_id: "autumn-2026",
            customer_id: customer,
            to,
            first_name,
            subject: &format!("{first_name}, the autumn collection is here"),
            body: &body,
            citations: &citations,
            call_to_action_url: Some("https://www.example.com/autumn"),
        })
        .unwrap()
}

fn sink(server: &SmtpServer, pool_size: u32) -> SmtpSink {
    let config = SmtpConfig {
        url: Some(server.url()),
        pool_size,
        timeout_ms: 5_000,
        ..SmtpConfig::default()
    };
    SmtpSink::from_config(&config, "northwind.example", None).unwrap()
}

#[tokio::test]
async fn every_message_arrives_complete_and_parses_as_multipart_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(dir.path(), &Behaviour::default());
    let composer = composer();
    let emails = vec![
        email(&composer, "C1", "<script>x</script>", "ada@example.com"),
        email(&composer, "C2", "Zoë", "zoe@example.org"),
        email(&composer, "C3", "Bob & Co", "bob@example.net"),
    ];
    let outcomes = sink(&server, 4).send(&emails).await;
    for (email, outcome) in emails.iter().zip(&outcomes) {
        assert_eq!(
            outcome,
            &SendOutcome::Sent {
                provider_message_id: email.rfc_message_id.clone()
            }
        );
    }
    let summary = check_mail(dir.path(), &["--escaped-script", "--count", "3"])
        .unwrap_or_else(|e| panic!("check_mail.py: {e}"));
    let mut ids: Vec<String> = summary["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = emails
        .iter()
        .map(|e| format!("<{}>", e.rfc_message_id))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    // The non-ASCII subject arrives decoded (RFC 2047 on the wire).
    let subjects = summary["subjects"].to_string();
    assert!(
        subjects.contains("Zoë, the autumn collection is here"),
        "{subjects}"
    );
    let raw = server.messages().concat();
    assert!(raw.contains("Subject: =?utf-8?"), "encoded on the wire");
    // The checker is not a rubber stamp: a leaked marker fails it.
    let tampered = tempfile::tempdir().unwrap();
    let leaked =
        server.messages()[0].replacen("Regards,", "[prod-autumn-collection-2026] Regards,", 1);
    std::fs::write(tampered.path().join("1.eml"), leaked).unwrap();
    let err = check_mail(tampered.path(), &[]).unwrap_err();
    assert!(err.contains("citation marker"), "{err}");
}

#[tokio::test]
async fn a_454_waits_and_arrives_later_and_a_550_fails_only_its_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let behaviour = Behaviour {
        tempfail: 2,
        reject: vec!["gone@example.com".into()],
        ..Behaviour::default()
    };
    let server = SmtpServer::start(dir.path(), &behaviour);
    let composer = composer();
    let emails = vec![
        email(&composer, "C1", "Ada", "ada@example.com"),
        email(&composer, "C2", "Gone", "gone@example.com"),
        email(&composer, "C3", "Cy", "cy@example.com"),
    ];
    // One connection: the sends go in order, so the first two meet the 454s.
    let sink = sink(&server, 1);
    let first = sink.send(&emails).await;
    assert!(
        matches!(&first[0], SendOutcome::Retry { reason, .. } if reason.contains("454")),
        "{first:?}"
    );
    assert!(matches!(&first[1], SendOutcome::Retry { .. }), "{first:?}");
    assert!(matches!(&first[2], SendOutcome::Sent { .. }), "{first:?}");
    // Tried again: the 454 one arrives; the 550 fails with the server's reply.
    let again = sink.send(&emails[..2]).await;
    assert!(matches!(&again[0], SendOutcome::Sent { .. }), "{again:?}");
    match &again[1] {
        SendOutcome::Failed { reason } => {
            assert!(reason.contains("550"), "{reason}");
            assert!(reason.contains("Recipient address rejected"), "{reason}");
            assert!(
                !reason.contains("gone@example.com"),
                "no address in reasons: {reason}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let received = server.messages();
    assert_eq!(received.len(), 2);
    assert!(received[0].contains(&emails[2].rfc_message_id));
    assert!(received[1].contains(&emails[0].rfc_message_id));
    check_mail(dir.path(), &["--count", "2"]).unwrap_or_else(|e| panic!("check_mail.py: {e}"));
}

#[tokio::test]
async fn a_refused_connection_is_a_retry_for_every_email() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = SmtpConfig {
        url: Some(format!("smtp://127.0.0.1:{port}")),
        timeout_ms: 2_000,
        ..SmtpConfig::default()
    };
    let sink = SmtpSink::from_config(&config, "northwind.example", None).unwrap();
    let composer = composer();
    let emails = vec![
        email(&composer, "C1", "Ada", "ada@example.com"),
        email(&composer, "C2", "Bo", "bo@example.com"),
    ];
    let outcomes = sink.send(&emails).await;
    assert_eq!(outcomes.len(), 2);
    for outcome in outcomes {
        assert!(matches!(outcome, SendOutcome::Retry { .. }), "{outcome:?}");
    }
}

mod tls {
    use cpo_delivery::test_smtp::{TestCert, non_loopback_ip};

    use super::*;

    fn tls_sink(url: String, ca: Option<&TestCert>, allow_plaintext: bool) -> SmtpSink {
        let config = SmtpConfig {
            url: Some(url),
            allow_plaintext,
            tls_ca_file: ca.map(|c| c.ca.clone()),
            timeout_ms: 5_000,
            ..SmtpConfig::default()
        };
        SmtpSink::from_config(&config, "northwind.example", None).unwrap()
    }

    fn one_email() -> Vec<OutgoingEmail> {
        vec![email(&composer(), "C1", "Ada", "ada@example.com")]
    }

    #[tokio::test]
    async fn smtp_to_a_remote_host_without_starttls_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let behaviour = Behaviour {
            host: Some(non_loopback_ip()),
            ..Behaviour::default()
        };
        let server = SmtpServer::start(dir.path(), &behaviour);
        let outcomes = tls_sink(server.url(), None, false).send(&one_email()).await;
        assert!(
            matches!(&outcomes[0], SendOutcome::Retry { .. }),
            "{outcomes:?}"
        );
        assert!(
            server.messages().is_empty(),
            "nothing goes out in plain text"
        );
        // The explicit opt-in sends in plain text.
        let outcomes = tls_sink(server.url(), None, true).send(&one_email()).await;
        assert!(
            matches!(&outcomes[0], SendOutcome::Sent { .. }),
            "{outcomes:?}"
        );
        assert_eq!(server.messages().len(), 1);
    }

    #[tokio::test]
    async fn starttls_and_implicit_tls_deliver_to_a_trusted_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let ip = non_loopback_ip();
        let cert = TestCert::for_ip(dir.path(), &ip);
        for implicit_tls in [false, true] {
            let mail = tempfile::tempdir().unwrap();
            let behaviour = Behaviour {
                host: Some(ip.clone()),
                tls: Some(cert.clone()),
                implicit_tls,
                ..Behaviour::default()
            };
            let server = SmtpServer::start(mail.path(), &behaviour);
            let url = if implicit_tls {
                format!("smtps://{ip}:{}", server.port)
            } else {
                server.url()
            };
            // Not trusted (only Mozilla's roots): refused, nothing sent.
            let outcomes = tls_sink(url.clone(), None, false).send(&one_email()).await;
            assert!(
                matches!(&outcomes[0], SendOutcome::Retry { .. }),
                "implicit {implicit_tls}: {outcomes:?}"
            );
            assert!(server.messages().is_empty());
            let outcomes = tls_sink(url, Some(&cert), false).send(&one_email()).await;
            assert!(
                matches!(&outcomes[0], SendOutcome::Sent { .. }),
                "implicit {implicit_tls}: {outcomes:?}"
            );
            assert_eq!(server.messages().len(), 1);
            check_mail(mail.path(), &["--count", "1"]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
