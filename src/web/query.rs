//! Query strings and path ids, read strictly: every bad value is a 400 that names the
//! parameter and what is wrong with it, before anything reaches the hub.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;

use super::WebBackend;
use super::error::ApiError;
use super::{MAX_ID_BYTES, WebOptions};
use crate::TaskStatus;

/// A request's query parameters, each given at most once.
#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    /// Parses `text` (percent-decoded); a parameter given twice is refused, as it would be
    /// ambiguous.
    pub(crate) fn parse(text: &str) -> Result<Query, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(text)
            .map_err(|error| ApiError::bad_request(format!("malformed query string: {error}")))?
            .into_inner();
        let mut map = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            if map.contains_key(&key) {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{key}` is given more than once"
                )));
            }
            map.insert(key, value);
        }
        Ok(Query(map))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `status`, required: one of the five lowercase names.
    pub(crate) fn status(&self) -> Result<TaskStatus, ApiError> {
        let text = self.get("status").ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `status` is required: one of {}",
                status_names()
            ))
        })?;
        parse_status(text)
    }

    /// `status`, if given.
    pub(crate) fn optional_status(&self) -> Result<Option<TaskStatus>, ApiError> {
        self.get("status").map(parse_status).transpose()
    }

    /// `limit`: 0 to `max_limit`; `default_limit` (capped at `max_limit`) when missing.
    pub(crate) fn limit(&self, options: &WebOptions) -> Result<usize, ApiError> {
        let Some(text) = self.get("limit") else {
            return Ok(options.default_limit.min(options.max_limit));
        };
        let limit = count("limit", text)?;
        if limit > options.max_limit as u128 {
            return Err(ApiError::bad_request(format!(
                "`limit` is {text}, above the largest page of {}",
                options.max_limit
            )));
        }
        usize::try_from(limit)
            .map_err(|_| ApiError::bad_request(format!("`limit` {text} is too large")))
    }

    /// `offset`: a count, 0 when missing.
    pub(crate) fn offset(&self) -> Result<usize, ApiError> {
        let Some(text) = self.get("offset") else {
            return Ok(0);
        };
        usize::try_from(count("offset", text)?)
            .map_err(|_| ApiError::bad_request(format!("`offset` {text} is too large")))
    }

    /// `cursor`: where a page starts, as an earlier page's `next` gave it; `None` when missing.
    pub(crate) fn cursor(&self) -> Result<Option<crate::Cursor>, ApiError> {
        let Some(text) = self.get("cursor") else {
            return Ok(None);
        };
        if self.get("offset").is_some() {
            return Err(ApiError::bad_request("give `cursor` or `offset`, not both"));
        }
        text.parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request("`cursor` is empty"))
    }

    /// `timeout`: seconds, fractions allowed; missing or above `max_wait` waits `max_wait`.
    pub(crate) fn timeout(&self, options: &WebOptions) -> Result<Duration, ApiError> {
        let Some(text) = self.get("timeout") else {
            return Ok(options.max_wait);
        };
        let seconds: f64 = text
            .parse()
            .ok()
            .filter(|seconds: &f64| seconds.is_finite())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`timeout` must be a number of seconds, like 0.5 or 30, not {text:?}"
                ))
            })?;
        if seconds < 0.0 {
            return Err(ApiError::bad_request(format!(
                "`timeout` must not be negative, got {text}"
            )));
        }
        if seconds >= options.max_wait.as_secs_f64() {
            return Ok(options.max_wait);
        }
        Ok(Duration::try_from_secs_f64(seconds).unwrap_or(options.max_wait))
    }
}

/// A non-negative integer parameter. Wider than any count, so that "too large" and "not a
/// number" are told apart.
fn count(name: &str, text: &str) -> Result<u128, ApiError> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<u128>()
            .map_err(|_| ApiError::bad_request(format!("`{name}` {text} is too large")));
    }
    let negative = text
        .strip_prefix('-')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    if negative && text[1..].bytes().any(|b| b != b'0') {
        return Err(ApiError::bad_request(format!(
            "`{name}` must not be negative, got {text}"
        )));
    }
    if negative {
        return Ok(0);
    }
    Err(ApiError::bad_request(format!(
        "`{name}` must be a whole number, not {text:?}"
    )))
}

fn parse_status(text: &str) -> Result<TaskStatus, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "unknown status {text:?}: one of {}",
            status_names()
        ))
    })
}

fn status_names() -> String {
    TaskStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses an id over [`MAX_ID_BYTES`], or over the backend's own `max_task_id_len` if lower.
pub(crate) async fn check_id(backend: &dyn WebBackend, task_id: &str) -> Result<(), ApiError> {
    let limit = backend
        .task_id_limit()
        .await
        .map_or(MAX_ID_BYTES, |own_limit| own_limit.min(MAX_ID_BYTES));
    if task_id.len() > limit {
        return Err(ApiError::bad_request(format!(
            "task id is {} bytes, over the limit of {limit}",
            task_id.len()
        )));
    }
    if task_id.is_empty() {
        return Err(ApiError::bad_request("task id is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        match Query::parse(text) {
            Ok(query) => query,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        assert_eq!(count("limit", "0").ok(), Some(0));
        assert_eq!(count("limit", "+7").ok(), Some(7));
        assert_eq!(count("limit", "-0").ok(), Some(0));
        for bad in ["-1", "1.5", "", "abc", "1e3", " 1", "0x10", "-", "+"] {
            assert!(count("limit", bad).is_err(), "{bad:?}");
        }
        let huge = "9".repeat(60);
        assert!(
            count("offset", &huge)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert!(
            count("offset", "-5")
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
    }

    #[test]
    fn timeouts_are_capped_at_max_wait() {
        let options = WebOptions::default();
        assert_eq!(query("").timeout(&options).ok(), Some(options.max_wait));
        assert_eq!(
            query("timeout=0.5").timeout(&options).ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            query("timeout=1e9").timeout(&options).ok(),
            Some(options.max_wait)
        );
        for bad in [
            "timeout=-1",
            "timeout=inf",
            "timeout=NaN",
            "timeout=",
            "timeout=soon",
        ] {
            assert!(query(bad).timeout(&options).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Query::parse("limit=1&limit=2").is_err());
    }
}
