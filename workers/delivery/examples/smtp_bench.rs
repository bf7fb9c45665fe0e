//! Messages per second from one `SmtpSink` (lettre, pooled) into an SMTP
//! server, e.g. Postfix's `smtp-sink`. `deploy/bench-smtp.sh` runs it side by
//! side with Postfix's `smtp-source`; `make bench-smtp` runs the script.
//!
//! ```sh
//! cargo run --release -p cpo-delivery --example smtp_bench -- \
//!     --url smtp://127.0.0.1:2526 --messages 20000 --pool 4
//! cargo run --release -p cpo-delivery --example smtp_bench -- --size
//! ```
//!
//! The emails are composed by `Composer` with the bundled settings
//! (data/cpo.yaml: from, reply-to, postal address, UTM, unsubscribe links),
//! one recipient each, sent in batches of the sink's `max_batch` like the
//! send loop does. `--size` prints the MIME size of one email (for
//! `smtp-source -l`) and exits. Exits non-zero unless every email is `Sent`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use cpo_delivery::compose::{ComposeInput, Composer};
use cpo_delivery::mail_config::{MailConfig, SmtpConfig, UtmConfig};
use cpo_delivery::smtp::SmtpSink;
use cpo_delivery::{MailSink, OutgoingEmail, SendOutcome};
use cpo_shared::envelope::message_id;
use cpo_shared::unsubscribe::UnsubscribeTokens;

struct Args {
    url: String,
    messages: usize,
    pool: u32,
    size_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "smtp://127.0.0.1:2526".into(),
        messages: 20_000,
        pool: 4,
        size_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--messages" => {
                let v = value()?;
                args.messages = v.parse().map_err(|e| format!("--messages {v}: {e}"))?;
            }
            "--pool" => {
                let v = value()?;
                args.pool = v.parse().map_err(|e| format!("--pool {v}: {e}"))?;
            }
            "--size" => args.size_only = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn composer() -> Result<Composer, String> {
    let mail = MailConfig {
        from_address: "news@northwind-outfitters.example.com".into(),
        from_name: Some("Northwind Outfitters".into()),
        reply_to: Some("care@northwind-outfitters.example.com".into()),
        postal_address: "100 Harbor Way, Portland, OR 97209, USA".into(),
        cta_label: Some("Shop the collection".into()),
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
        Some("https://mail.northwind-outfitters.example.com"),
        UnsubscribeTokens::new(b"bench-unsubscribe-key-0123456789"),
        urls,
    )
}

fn email(composer: &Composer, n: usize) -> Result<OutgoingEmail, String> {
    let customer = format!("cust-{n:07}");
    let first_name = "Avery";
    let citations = vec![
        "prod-autumn-collection-2026".to_string(),
        "promo-autumn-collection-launch".to_string(),
    ];
    let body = format!(
        "Hi {first_name},\n\nOur autumn collection has landed: waterproof shell jackets, \
         merino base layers and trail boots built for wet weekends. \
         [prod-autumn-collection-2026]\n\nAs a thank-you for being with us, take 15 percent \
         off your next order with the code AUTUMN15 until the end of the month. \
         [promo-autumn-collection-launch]\n\nLearn more at https://www.example.com/autumn\n\n\
         Regards,\nThe Northwind Outfitters team"
    );
    let id = message_id("autumn-2026", &customer);
    composer
        .compose(&ComposeInput {
            message_id: &id,
            campaign_id: "autumn-2026",
            customer_id: &customer,
            to: &format!("{customer}@example.net"),
            first_name,
            subject: &format!("{first_name}, the autumn collection is here"),
            body: &body,
            citations: &citations,
            call_to_action_url: Some("https://www.example.com/autumn"),
        })
        .map_err(|e| format!("compose: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let composer = composer()?;
    if args.size_only {
        let mime = email(&composer, 0)?.to_mime(std::time::SystemTime::now())?;
        println!("{}", mime.len());
        return Ok(());
    }
    let emails = (0..args.messages)
        .map(|n| email(&composer, n))
        .collect::<Result<Vec<_>, _>>()?;
    let config = SmtpConfig {
        url: Some(args.url.clone()),
        pool_size: args.pool,
        timeout_ms: 30_000,
        ..SmtpConfig::default()
    };
    let sink = SmtpSink::from_config(&config, "northwind-outfitters.example.com", None)?;
    let started = Instant::now();
    let (mut sent, mut other) = (0usize, Vec::new());
    for batch in emails.chunks(sink.max_batch()) {
        for outcome in sink.send(batch).await {
            match outcome {
                SendOutcome::Sent { .. } => sent += 1,
                o => other.push(o),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sink=smtp pool={} messages={sent} seconds={seconds:.3} per_second={:.0}",
        args.pool,
        sent as f64 / seconds
    );
    if let Some(first) = other.first() {
        return Err(format!(
            "{} of {} emails were not sent; first: {first:?}",
            other.len(),
            args.messages
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("smtp_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smtp_bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smtp_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
