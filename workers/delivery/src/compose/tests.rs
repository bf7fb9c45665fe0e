use std::collections::HashMap;
use std::time::SystemTime;

use cpo_shared::unsubscribe::UnsubscribeTokens;

use super::*;

pub(crate) fn mail_config() -> MailConfig {
    MailConfig {
        from_address: "news@brand.example".into(),
        from_name: Some("Northwind Outfitters".into()),
        reply_to: Some("help@brand.example".into()),
        postal_address: "1 Harbour St, Portland, OR 97201".into(),
        ..MailConfig::default()
    }
}

pub(crate) fn composer() -> Composer {
    let urls = HashMap::from([(
        "prod-a".to_string(),
        "https://www.brand.example/a".to_string(),
    )]);
    let utm = UtmConfig {
        source: "newsletter".into(),
        medium: "email".into(),
        campaign: None,
    };
    Composer::from_config(
        &mail_config(),
        Some(&utm),
        Some("https://go.brand.example/"),
        UnsubscribeTokens::new(b"unsub-key"),
        urls,
    )
    .unwrap()
}

const BODY: &str = "Hi <script>x</script>,\n\nWarm jackets & boots. [prod-a] 15% off. [promo-b]\n\nLearn more at https://www.brand.example/autumn\n\nRegards,\nThe team";

pub(crate) fn input<'a>(citations: &'a [String]) -> ComposeInput<'a> {
    ComposeInput {
        message_id: "msg-0123",
        campaign_id: "autumn-2026",
        customer_id: "C1",
        to: "ada@example.com",
        first_name: "<script>x</script>",
        subject: "Ada, autumn is here",
        body: BODY,
        citations,
        call_to_action_url: Some("https://www.brand.example/autumn"),
    }
}

#[test]
fn the_email_has_both_parts_footer_and_no_markers() {
    let citations = vec!["prod-a".to_string(), "promo-b".to_string()];
    let email = composer().compose(&input(&citations)).unwrap();
    for part in [&email.text, &email.html] {
        assert!(
            !part.contains("[prod-") && !part.contains("[promo-"),
            "{part}"
        );
        assert!(part.contains("1 Harbour St, Portland, OR 97201"), "{part}");
    }
    // The whole body is text: the merge value is escaped, never markup.
    assert!(!email.html.contains("<script>"), "{}", email.html);
    assert!(email.html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(email.html.contains("Warm jackets &amp; boots."));
    assert!(
        email
            .text
            .starts_with("Hi <script>x</script>,\n\nWarm jackets & boots.[1] 15% off.")
    );
    // The footnote and the CTA carry the UTM parameters; the unsubscribe link does not.
    assert!(
        email
            .text
            .contains("[1] https://www.brand.example/a?utm_source=newsletter&utm_medium=email&utm_campaign=autumn-2026"),
        "{}",
        email.text
    );
    assert!(email.html.contains(
        "href=\"https://www.brand.example/autumn?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=autumn-2026\""
    ));
    assert!(email.html.contains(">Learn more</a>"));
    assert!(email.html.contains("Northwind Outfitters</td>"));
    let token = UnsubscribeTokens::new(b"unsub-key").token("autumn-2026", "C1");
    let url = format!("https://go.brand.example/u/{token}");
    assert!(email.text.contains(&format!("Unsubscribe: {url}")));
    assert_eq!(email.headers[0].0, "List-Unsubscribe");
    assert_eq!(
        email.headers[0].1,
        format!("<{url}>, <mailto:unsubscribe@brand.example?subject=unsubscribe%20{token}>")
    );
    assert_eq!(
        email.headers[1],
        (
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string()
        )
    );
    assert_eq!(email.rfc_message_id, "msg-0123@brand.example");
    assert_eq!(email.reply_to.unwrap().address, "help@brand.example");
    assert_eq!(email.from.name.as_deref(), Some("Northwind Outfitters"));
}

#[test]
fn the_email_serializes_to_mime_with_the_headers() {
    let citations = vec!["prod-a".to_string()];
    let email = composer().compose(&input(&citations)).unwrap();
    let mime = String::from_utf8(email.to_mime(SystemTime::now()).unwrap()).unwrap();
    assert!(
        mime.contains("Message-ID: <msg-0123@brand.example>"),
        "{mime}"
    );
    assert!(mime.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(mime.contains("Reply-To: help@brand.example"));
    assert!(mime.contains("multipart/alternative"));
}

#[test]
fn bad_configuration_names_the_key() {
    let tokens = || UnsubscribeTokens::new(b"k");
    let build = |mail: &MailConfig, url: Option<&str>| {
        Composer::from_config(mail, None, url, tokens(), HashMap::new()).unwrap_err()
    };
    let url = Some("https://go.brand.example");
    let mut mail = mail_config();
    mail.from_address = "not an address".into();
    assert!(build(&mail, url).contains("delivery.mail.from_address"));
    let mut mail = mail_config();
    mail.postal_address = " ".into();
    assert!(build(&mail, url).contains("delivery.mail.postal_address"));
    let mut mail = mail_config();
    mail.reply_to = Some("@@".into());
    assert!(build(&mail, url).contains("delivery.mail.reply_to"));
    for bad in [
        None,
        Some("http://go.brand.example"),
        Some("ftp://x"),
        Some("https://u:p@x"),
    ] {
        assert!(
            build(&mail_config(), bad).contains("gateway.public_url"),
            "{bad:?}"
        );
    }
    assert!(
        Composer::from_config(
            &mail_config(),
            None,
            Some("http://127.0.0.1:8080"),
            tokens(),
            HashMap::new()
        )
        .is_ok()
    );
}

#[test]
fn without_urls_citations_leave_and_no_note_list_is_shown() {
    let citations = vec!["prod-a".to_string(), "promo-b".to_string()];
    let plain = Composer::new(Mailbox {
        name: None,
        address: "news@brand.example".into(),
    })
    .unwrap();
    let email = plain.compose(&input(&citations)).unwrap();
    assert!(
        email.text.contains("Warm jackets & boots. 15% off.\n"),
        "{}",
        email.text
    );
    assert!(!email.text.contains("Sources:"));
    assert!(email.headers.is_empty());
    assert!(!email.html.contains("<ol"));
}

#[test]
fn quotes_and_ampersands_are_escaped_in_the_html() {
    let mut message = input(&[]);
    message.body = "Say \"hi\" & 'bye' </p><a href=x>";
    message.subject = "<b>bold</b> & \"quoted\"";
    let email = composer().compose(&message).unwrap();
    assert!(
        email
            .html
            .contains("Say &quot;hi&quot; &amp; &#39;bye&#39; &lt;/p&gt;&lt;a href=x&gt;"),
        "{}",
        email.html
    );
    assert!(
        email
            .html
            .contains("<title>&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;</title>")
    );
    assert!(email.text.starts_with("Say \"hi\" & 'bye' </p><a href=x>"));
}
