//! Finding the credential in a request: the `Authorization` header (RFC 6750 §2.1) and,
//! when enabled, the `access_token` query parameter (§2.3) or a named cookie.
//!
//! This module only extracts and checks the syntax; what the token means is the
//! [`Registry`](crate::registry::Registry)'s business.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Uri};

use crate::token::{MAX_TOKEN_LEN, all_token_body_bytes, is_token_body_byte};

/// Why the credentials in a request could not even be read (answered with
/// `error="invalid_request"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCredentials {
    /// More than one `Authorization` header, more than one `access_token` parameter or
    /// cookie, or credentials in more than one place.
    #[error("more than one credential in the request")]
    Multiple,
    /// An `Authorization` header that is empty, or `Bearer` without a token.
    #[error("no token after the Bearer scheme")]
    Empty,
    /// A character outside RFC 6750's `b64token` (plus `|`), including non-ASCII bytes
    /// and whitespace inside the token.
    #[error("invalid character in the credential")]
    Character,
    /// A token longer than any format accepts.
    #[error("credential too long")]
    TooLong,
}

/// Where the layer looks for a token. The `Authorization: Bearer` header is always read.
///
/// ```
/// use tower_bearer::header::TokenSources;
///
/// // Browsers and WebSocket clients cannot always set headers:
/// let sources = TokenSources::new().query_param().cookie("api_token");
/// # let _ = sources;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenSources {
    query: bool,
    cookie: Option<Box<str>>,
    /// Schemes accepted in `Authorization` besides `Bearer` (lowercase).
    aliases: Vec<Box<str>>,
}

impl TokenSources {
    /// The `Authorization` header (always read); add other sources with
    /// [`query_param`](Self::query_param) and [`cookie`](Self::cookie).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accept the `access_token` query parameter (RFC 6750 §2.3). URLs end up in
    /// logs and browser history: prefer short-lived tokens here.
    #[must_use]
    pub fn query_param(mut self) -> Self {
        self.query = true;
        self
    }

    /// Also accept a cookie with this name.
    #[must_use]
    pub fn cookie(mut self, name: &str) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Also accept `Authorization: <scheme> <token>` (case-insensitive), e.g. `Token` for
    /// clients of Django REST framework's `TokenAuthentication` during a migration.
    /// Challenges keep naming `Bearer`.
    ///
    /// ```
    /// use http::{HeaderMap, Uri};
    /// use tower_bearer::header::TokenSources;
    ///
    /// let sources = TokenSources::new().scheme_alias("Token");
    /// let mut headers = HeaderMap::new();
    /// headers.insert("authorization", "Token abc123".parse().unwrap());
    /// let uri = Uri::from_static("/");
    /// let token = sources.extract(&headers, &uri).unwrap();
    /// assert_eq!(token.as_deref(), Some("abc123"));
    /// ```
    #[must_use]
    pub fn scheme_alias(mut self, scheme: &str) -> Self {
        let scheme = scheme.trim().to_ascii_lowercase();
        if !scheme.is_empty() && !self.aliases.iter().any(|a| **a == *scheme) {
            self.aliases.push(scheme.into());
        }
        self
    }

    /// The credential in a request with these headers and URI, if any. A request may
    /// carry it in one place only.
    pub fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
    ) -> Result<Option<Cow<'a, str>>, InvalidCredentials> {
        let mut found = if self.aliases.is_empty() {
            bearer_header(headers)?
        } else {
            authorization_token(headers, &self.aliases)?
        }
        .map(Cow::Borrowed);
        if self.query {
            if let Some(token) = query_token(uri.query())? {
                found = one_of(found, token)?;
            }
        }
        if let Some(name) = &self.cookie {
            if let Some(token) = cookie_token(headers, name)? {
                found = one_of(found, Cow::Borrowed(token))?;
            }
        }
        Ok(found)
    }
}

impl TokenSources {
    /// Whether a request whose credentials were accepted had them in the query string:
    /// the query source is on and the URI carries `access_token` (a request may carry its
    /// credential in one place only, so it came from there).
    pub(crate) fn came_from_query(&self, uri: &Uri) -> bool {
        self.query
            && uri
                .query()
                .is_some_and(|query| query_pairs_raw(query).any(|(name, _)| is_access_token(name)))
    }
}

/// The raw `name=value` pairs of a query string, undecoded.
fn query_pairs_raw(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn is_access_token(raw_name: &str) -> bool {
    form_urlencoded::parse(raw_name.as_bytes())
        .next()
        .is_some_and(|(name, _)| name == "access_token")
}

/// `uri` without its `access_token` query parameters (RFC 6750 §2.3: the token must not
/// reach access logs and traces); the other parameters keep their order and encoding.
pub(crate) fn without_access_token(uri: &Uri) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && !is_access_token(name)
        })
        .collect();
    let mut path_and_query = uri.path().to_owned();
    if !kept.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&kept.join("&"));
    }
    let mut parts = uri.clone().into_parts();
    match path_and_query.parse() {
        Ok(rebuilt) => parts.path_and_query = Some(rebuilt),
        // Every piece came from a valid URI; fall back to the bare path.
        Err(_) => parts.path_and_query = uri.path().parse().ok(),
    }
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

fn one_of<'a>(
    found: Option<Cow<'a, str>>,
    another: Cow<'a, str>,
) -> Result<Option<Cow<'a, str>>, InvalidCredentials> {
    match found {
        Some(_) => Err(InvalidCredentials::Multiple),
        None => Ok(Some(another)),
    }
}

/// The token of the request's `Authorization: Bearer` header. `Ok(None)` when there is
/// no such header or it uses another scheme (`Basic …`).
pub fn bearer_header(headers: &HeaderMap) -> Result<Option<&str>, InvalidCredentials> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidCredentials::Multiple);
    }
    parse_authorization(value.as_bytes())
}

/// The token of the request's `Authorization` header under `Bearer` or one of `aliases`
/// (lowercase scheme names).
fn authorization_token<'a>(
    headers: &'a HeaderMap,
    aliases: &[Box<str>],
) -> Result<Option<&'a str>, InvalidCredentials> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidCredentials::Multiple);
    }
    let value = value.as_bytes().trim_ascii();
    let scheme_end = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let scheme = &value[..scheme_end];
    if aliases
        .iter()
        .any(|alias| scheme.eq_ignore_ascii_case(alias.as_bytes()))
    {
        return check_token(value[scheme_end..].trim_ascii_start()).map(Some);
    }
    parse_authorization(value)
}

/// Parses an `Authorization` header value: `Bearer` (any case), one or more spaces or
/// tabs, a `b64token` (plus `|`), optional trailing whitespace.
pub fn parse_authorization(value: &[u8]) -> Result<Option<&str>, InvalidCredentials> {
    // The common case, `Bearer <token>`, skips the general scheme parsing below.
    if let Some(rest) = value.strip_prefix(b"Bearer ") {
        if rest.first().is_some_and(|&b| is_token_body_byte(b)) {
            return check_token(rest.trim_ascii_end()).map(Some);
        }
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(InvalidCredentials::Empty);
    }
    let scheme_end = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    check_token(value[scheme_end..].trim_ascii_start()).map(Some)
}

/// Checks RFC 6750's `b64token` syntax (token characters, then trailing `=`), with `|`
/// allowed for Sanctum-style tokens.
fn check_token(token: &[u8]) -> Result<&str, InvalidCredentials> {
    if token.is_empty() {
        return Err(InvalidCredentials::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(InvalidCredentials::TooLong);
    }
    let body_end = token
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |last| last + 1);
    if body_end == 0 || !all_token_body_bytes(&token[..body_end]) {
        return Err(InvalidCredentials::Character);
    }
    // Every byte is ASCII, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| InvalidCredentials::Character)
}

fn query_token(query: Option<&str>) -> Result<Option<Cow<'_, str>>, InvalidCredentials> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "access_token" {
            if found.is_some() {
                return Err(InvalidCredentials::Multiple);
            }
            check_token(value.as_bytes())?;
            found = Some(value);
        }
    }
    Ok(found)
}

fn cookie_token<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, InvalidCredentials> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        // Cookie values are ASCII; a header with other bytes holds no cookie of ours.
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            let Some((cookie, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if cookie.trim() != name {
                continue;
            }
            if found.is_some() {
                return Err(InvalidCredentials::Multiple);
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            found = Some(check_token(value.as_bytes())?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::request::Parts;

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    impl TokenSources {
        fn extract_parts<'a>(
            &self,
            parts: &'a Parts,
        ) -> Result<Option<Cow<'a, str>>, InvalidCredentials> {
            self.extract(&parts.headers, &parts.uri)
        }
    }

    #[test]
    fn access_token_is_removed_from_the_query_and_nothing_else() {
        let cases = [
            ("/me?access_token=abc", "/me"),
            ("/me?a=1&access_token=abc&b=%20x", "/me?a=1&b=%20x"),
            ("/me?access%5Ftoken=abc&b=2", "/me?b=2"),
            ("/me?b=2&access_token=abc&access_token=def", "/me?b=2"),
            (
                "http://h:1/me?x=access_token",
                "http://h:1/me?x=access_token",
            ),
            ("/me", "/me"),
        ];
        for (before, after) in cases {
            let uri: Uri = before.parse().unwrap();
            assert_eq!(without_access_token(&uri).to_string(), after, "{before}");
        }
        let sources = TokenSources::new().query_param();
        assert!(sources.came_from_query(&"/me?x=1&access_token=abc".parse().unwrap()));
        assert!(!sources.came_from_query(&"/me?x=access_token".parse().unwrap()));
        assert!(!TokenSources::new().came_from_query(&"/me?access_token=a".parse().unwrap()));
    }

    #[test]
    fn authorization_header_syntax() {
        let ok: &[(&[u8], &str)] = &[
            (b"Bearer abc", "abc"),
            (b"bearer abc", "abc"),
            (b"BEARER abc", "abc"),
            (b"Bearer \t  abc", "abc"),
            (b"Bearer abc  ", "abc"),
            (b"Bearer 1|abc", "1|abc"),
            (b"Bearer YWJj==", "YWJj=="),
            (b"Bearer a-b.c_d~e+f/g", "a-b.c_d~e+f/g"),
        ];
        for (value, token) in ok {
            assert_eq!(parse_authorization(value), Ok(Some(*token)), "{value:?}");
        }
        let other_scheme: &[&[u8]] = &[
            b"Basic dXNlcjpwYXNz",
            b"Token abc",
            b"Bearerabc",
            b"\xff\xfe",
        ];
        for value in other_scheme {
            assert_eq!(parse_authorization(value), Ok(None), "{value:?}");
        }
        let bad: &[(&[u8], InvalidCredentials)] = &[
            (b"", InvalidCredentials::Empty),
            (b"   ", InvalidCredentials::Empty),
            (b"Bearer", InvalidCredentials::Empty),
            (b"Bearer ", InvalidCredentials::Empty),
            (b"Bearer a b", InvalidCredentials::Character),
            (b"Bearer a=b", InvalidCredentials::Character),
            (b"Bearer ===", InvalidCredentials::Character),
            (b"Bearer caf\xc3\xa9", InvalidCredentials::Character),
            (b"Bearer \xff", InvalidCredentials::Character),
            (b"Bearer a,b", InvalidCredentials::Character),
        ];
        for (value, error) in bad {
            assert_eq!(parse_authorization(value), Err(*error), "{value:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            parse_authorization(long.as_bytes()),
            Err(InvalidCredentials::TooLong)
        );
    }

    #[test]
    fn duplicate_authorization_headers_are_invalid() {
        let request = parts(
            http::Request::builder()
                .header("authorization", "Bearer a")
                .header("authorization", "Bearer a"),
        );
        assert_eq!(
            TokenSources::default().extract_parts(&request),
            Err(InvalidCredentials::Multiple)
        );
    }

    #[test]
    fn query_and_cookie_sources_are_opt_in() {
        let request = parts(
            http::Request::builder()
                .uri("/ws?x=1&access_token=abc%7C1")
                .header("cookie", "theme=dark; api_token=\"xyz\""),
        );
        assert_eq!(TokenSources::default().extract_parts(&request), Ok(None));
        let query = TokenSources::default().query_param();
        assert_eq!(
            query.extract_parts(&request).unwrap().as_deref(),
            Some("abc|1")
        );
        let cookie = TokenSources::default().cookie("api_token");
        assert_eq!(
            cookie.extract_parts(&request).unwrap().as_deref(),
            Some("xyz")
        );
        let both = TokenSources::default().query_param().cookie("api_token");
        assert_eq!(
            both.extract_parts(&request),
            Err(InvalidCredentials::Multiple)
        );
    }

    #[test]
    fn repeated_query_parameters_and_cookies_are_invalid() {
        let query = parts(http::Request::builder().uri("/?access_token=a&access_token=b"));
        let sources = TokenSources::default().query_param().cookie("t");
        assert_eq!(
            sources.extract_parts(&query),
            Err(InvalidCredentials::Multiple)
        );
        let cookies = parts(
            http::Request::builder()
                .header("cookie", "t=a")
                .header("cookie", "t=b"),
        );
        assert_eq!(
            sources.extract_parts(&cookies),
            Err(InvalidCredentials::Multiple)
        );
        let empty = parts(http::Request::builder().uri("/?access_token="));
        assert_eq!(
            sources.extract_parts(&empty),
            Err(InvalidCredentials::Empty)
        );
    }
}
