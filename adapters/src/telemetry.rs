//! Logging for `elt` (the Lambdas use the runtime's subscriber, which follows Lambda's logging
//! controls).

/// Logs go to stderr, as text for people; stdout is kept for the commands' JSON lines.
/// `RUST_LOG` sets the level, `default_level` otherwise.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    // A second call (tests) keeps the first subscriber.
    drop(result);
}
