//! The bearer token: checked first on every route, so a caller without it learns nothing else.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header;
use subtle::ConstantTimeEq;

use super::WebOptions;
use super::error::ApiError;
use super::query::Query;

/// Where a route accepts the token besides the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenIn {
    /// Only `Authorization: Bearer <token>`.
    Header,
    /// The header or `?token=`: the page and `/events`, which a browser opens without headers.
    HeaderOrQuery,
}

/// Refuses the request with 421 unless its `Host` is allowed, then with 401 unless it carries
/// the configured token (if any).
pub(crate) fn authorize(
    request: &HttpRequest,
    query: Option<&Query>,
    options: &WebOptions,
    accepted: TokenIn,
) -> Result<(), ApiError> {
    allowed_host(request, options)?;
    authorize_token(request, query, options, accepted)
}

/// Refuses the request with 401 unless it carries the configured token (if any); no `Host`
/// check, for the routes that machines reach by address (`/metrics`).
pub(crate) fn authorize_token(
    request: &HttpRequest,
    query: Option<&Query>,
    options: &WebOptions,
    accepted: TokenIn,
) -> Result<(), ApiError> {
    let Some(expected) = options.token.as_deref() else {
        return Ok(());
    };
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    let from_query = match accepted {
        TokenIn::HeaderOrQuery => query.and_then(|query| query.get("token")),
        TokenIn::Header => None,
    };
    let presented = from_header.or(from_query);
    match presented {
        Some(token) if same(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            match accepted {
                TokenIn::Header => "missing token: send Authorization: Bearer <token>",
                TokenIn::HeaderOrQuery => {
                    "missing token: send Authorization: Bearer <token>, or ?token=<token>"
                }
            },
        )),
    }
}

/// Refuses (421) a request whose `Host` is not in
/// [`allowed_hosts`](super::WebOptions::allowed_hosts): a page on another site that rebinds its
/// own name to this server's address reaches it with its own name as `Host`. A request with
/// no `Host` at all (HTTP/1.0, or a client that sets none) comes from no browser, and passes.
fn allowed_host(request: &HttpRequest, options: &WebOptions) -> Result<(), ApiError> {
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str().to_owned()),
    };
    let Some(host) = host else {
        if request.headers().contains_key(header::HOST) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header is not text",
            ));
        }
        return Ok(());
    };
    if options.host_allowed(&host) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "host {host:?} is not served here; the server's allowed_hosts must name it \
             (this guards against DNS rebinding)"
        ),
    ))
}

/// The credentials of a `Bearer` authorization; the scheme's case does not matter (RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// Compares `given` with the `expected` token in constant time (`subtle`): the time taken
/// does not tell an attacker how much of a guess was right. A guess of another length is
/// compared as the token against itself, so the work is set by the token's length alone.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let same_length = given.len().ct_eq(&expected.len());
    let compared = if given.len() == expected.len() {
        given
    } else {
        expected
    };
    (compared.ct_eq(expected) & same_length).into()
}

/// The token first, then the query: a caller without the token hears 401 whatever else is
/// wrong with the request.
pub(super) fn authorized_query(
    request: &HttpRequest,
    options: &WebOptions,
    accepted: TokenIn,
) -> Result<Query, ApiError> {
    let query = Query::parse(request.query_string());
    authorize(request, query.as_ref().ok(), options, accepted)?;
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_scheme_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(same(b"", b""));
        assert!(!same(b"abcd", b"abc"));
        assert!(!same(b"", b"a"));
        assert!(!same(b"a", b""));
        // A prefix of the token is not the token, whatever its bytes.
        assert!(!same(b"ab", b"ab\xff"));
    }
}
