//! Structured logs, set up once, on standard output. `RUST_LOG` filters (default
//! `info`); `SWITCHBOARD_LOG_FORMAT` picks `text` (the default: one line per event,
//! coloured only when standard output is a terminal and `NO_COLOR` is unset) or
//! `json` (one JSON object per line, for log shippers).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// The value of `SWITCHBOARD_LOG_FORMAT` (unset or empty: text).
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(str::trim).unwrap_or("") {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "SWITCHBOARD_LOG_FORMAT must be \"text\" or \"json\", not {other:?}"
            )),
        }
    }
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = LogFormat::parse(std::env::var("SWITCHBOARD_LOG_FORMAT").ok().as_deref())
        .unwrap_or_else(|err| {
            // Logging is not up yet: say it plainly, then log as text.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("switchboard: {err}; logging as text");
            }
            LogFormat::Text
        });
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert!(LogFormat::parse(Some("xml")).is_err());
    }
}
