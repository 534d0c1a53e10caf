//! The `serde` feature: `HubConfig` and `WebOptions` load from a config file (TOML here), any
//! subset of fields, durations as humantime strings, typos and bad values refused by name.
#![cfg(feature = "serde")]

use std::time::Duration;

use resulthub::{Clock, HubConfig, TerminalPolicy};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The error's text, which must name the problem.
fn load_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    match toml::from_str::<T>(text) {
        Ok(value) => panic!("{text:?} loaded as {value:?}, expected an error"),
        Err(error) => error.to_string(),
    }
}

fn assert_names(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "the error {message:?} does not name {needle:?}"
        );
    }
}

#[test]
fn a_hub_config_loads_from_toml() {
    let config: HubConfig = toml::from_str(
        r#"
        max_results = 100000
        result_ttl = "30s"
        pending_ttl = "5m"
        max_waiters = 5000
        max_task_id_len = 256
        max_record_bytes = 65536
        terminal_policy = "keep_first"
        pipeline_stores = false
        event_buffer = 4096
        "#,
    )
    .unwrap();
    assert_eq!(config.max_results, Some(100_000));
    assert_eq!(config.result_ttl, Some(secs(30)));
    assert_eq!(config.pending_ttl, Some(secs(5 * 60)));
    assert_eq!(config.max_waiters, Some(5000));
    assert_eq!(config.max_task_id_len, 256);
    assert_eq!(config.max_record_bytes, Some(65_536));
    assert_eq!(config.terminal_policy, TerminalPolicy::KeepFirst);
    assert!(!config.pipeline_stores);
    assert_eq!(config.event_buffer, 4096);
    // The clock is not data: it keeps its default.
    assert_eq!(config.clock, Clock::system());
    assert_eq!(
        config,
        HubConfig::default()
            .with_max_results(Some(100_000))
            .with_result_ttl(Some(secs(30)))
            .with_pending_ttl(Some(secs(300)))
            .with_max_waiters(Some(5000))
            .with_max_task_id_len(256)
            .with_max_record_bytes(Some(65_536))
            .with_terminal_policy(TerminalPolicy::KeepFirst)
            .with_pipeline_stores(false)
            .with_event_buffer(4096)
    );
}

#[test]
fn a_partial_hub_config_keeps_the_other_defaults() {
    let config: HubConfig = toml::from_str(
        r#"
        result_ttl = "1h 30m"
        terminal_policy = "overwrite"
        "#,
    )
    .unwrap();
    assert_eq!(
        config,
        HubConfig::default().with_result_ttl(Some(secs(90 * 60)))
    );
}

#[test]
fn an_empty_document_is_the_default() {
    assert_eq!(
        toml::from_str::<HubConfig>("").unwrap(),
        HubConfig::default()
    );
}

#[test]
fn null_sets_an_optional_field_to_none_where_the_format_has_one() {
    // TOML has no null; JSON does, and `null` clears a field whose default is `Some`.
    let config: HubConfig =
        serde_json::from_str(r#"{"max_waiters": null, "result_ttl": null, "pending_ttl": "10s"}"#)
            .unwrap();
    assert_eq!(
        config,
        HubConfig::default()
            .with_max_waiters(None)
            .with_pending_ttl(Some(secs(10)))
    );
}

#[test]
fn an_unknown_hub_config_field_is_an_error_naming_it() {
    let message = load_error::<HubConfig>("max_resluts = 10\n");
    assert_names(&message, &["unknown field", "max_resluts"]);
    // A skipped field is not read, so it is unknown too rather than silently ignored.
    let message = load_error::<HubConfig>("clock = \"system\"\n");
    assert_names(&message, &["unknown field", "clock"]);
}

#[test]
fn a_malformed_duration_is_an_error_naming_it() {
    let message = load_error::<HubConfig>("result_ttl = \"5 parsecs\"\n");
    assert_names(&message, &["result_ttl", "parsecs", "expected a duration"]);
    // A bare number has no unit: refused, not guessed.
    let message = load_error::<HubConfig>("pending_ttl = 30\n");
    assert_names(&message, &["pending_ttl", "invalid type"]);
}

#[test]
fn an_unknown_terminal_policy_is_an_error_naming_the_choices() {
    let message = load_error::<HubConfig>("terminal_policy = \"KeepFirst\"\n");
    assert_names(&message, &["KeepFirst", "keep_first", "overwrite"]);
}

#[cfg(feature = "web")]
mod web {
    use resulthub::web::WebOptions;

    use super::{assert_names, load_error, secs};

    #[test]
    fn web_options_load_from_toml() {
        let options: WebOptions = toml::from_str(
            r#"
            max_limit = 1000
            default_limit = 20
            max_wait = "5m"
            allow_writes = true
            token = "s3cret"
            heartbeat = "30s"
            max_event_clients = 16
            "#,
        )
        .unwrap();
        assert_eq!(options.max_limit, 1000);
        assert_eq!(options.default_limit, 20);
        assert_eq!(options.max_wait, secs(5 * 60));
        assert!(options.allow_writes);
        assert_eq!(options.token.as_deref(), Some("s3cret"));
        assert_eq!(options.heartbeat, secs(30));
        assert_eq!(options.max_event_clients, 16);
        assert_eq!(
            options,
            WebOptions::default()
                .with_max_limit(1000)
                .with_default_limit(20)
                .with_max_wait(secs(300))
                .with_allow_writes(true)
                .with_token(Some("s3cret".to_owned()))
                .with_heartbeat(secs(30))
                .with_max_event_clients(16)
        );
    }

    #[test]
    fn an_empty_document_is_the_default() {
        assert_eq!(
            toml::from_str::<WebOptions>("").unwrap(),
            WebOptions::default()
        );
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_it() {
        let message = load_error::<WebOptions>("allow_write = true\n");
        assert_names(&message, &["unknown field", "allow_write"]);
    }

    #[test]
    fn a_malformed_duration_is_an_error_naming_it() {
        let message = load_error::<WebOptions>("max_wait = \"soon\"\n");
        assert_names(&message, &["max_wait", "soon", "expected a duration"]);
        let message = load_error::<WebOptions>("heartbeat = \"15 sec ago\"\n");
        assert_names(&message, &["heartbeat", "expected a duration"]);
    }
}
