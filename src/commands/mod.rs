pub mod audit;
pub mod dlq;
pub mod fleet;
pub mod forget;
pub mod gateway;
pub mod migrate;
pub mod preview;
pub mod run;
pub mod status;
pub mod suppress;
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

/// Standard output for command results. A reader that goes away early
/// (`cpo run | head`) is not a failure of the command: the first broken pipe
/// silences the rest of the output and the command ends as it would have.
/// (`println!` panics there instead, exit 101.)
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    pub fn new() -> Self {
        Self { closed: false }
    }

    /// Whether the reader has gone away.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Write one line; any error but a broken pipe is returned.
    pub fn line(&mut self, text: impl std::fmt::Display) -> std::io::Result<()> {
        use std::io::Write;
        if self.closed {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}
