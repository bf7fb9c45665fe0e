pub mod audit;
pub mod dlq;
pub mod fleet;
pub mod run;
pub mod status;
pub mod worker;

/// Logs go to stderr: text for people, JSON for the fleet's log collectors.
pub fn init_logging(quiet: bool, json: bool) {
    let default = if quiet {
        "error"
    } else if json {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
