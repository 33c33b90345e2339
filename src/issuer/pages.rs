//! The server-rendered pages (login, consent, account, errors): plain HTML
//! that works without JavaScript, every value escaped, every answer with
//! `frame-ancestors 'none'`, `no-store` and no referrer.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Marks a response as a page for a person: its HTML is kept whatever its
/// status (the API's bare errors are turned into RFC 6749 JSON).
#[derive(Debug, Clone, Copy)]
pub struct Page;

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A hidden input.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;line-height:1.5}\
label{display:block;margin-top:1rem}input[type=text],input[type=password]{width:100%;padding:.5rem;font-size:1rem}\
button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}.error{color:#a00}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}";

/// A whole page: `title` and `body` (already HTML).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        title = escape(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    super::no_store::mark(headers);
    response.extensions_mut().insert(Page);
    response
}

/// An error page: what went wrong, for a person (no redirect is trusted).
pub fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Cannot continue",
        &format!(
            "<h1>Cannot continue</h1><p class=\"error\" role=\"alert\">{}</p>",
            escape(message)
        ),
    )
}

/// The login form: posts `username`, `password`, the CSRF token and the
/// `hidden` fields to `action`.
pub fn login(
    status: StatusCode,
    action: &str,
    hidden_fields: &str,
    csrf: &str,
    problem: Option<&str>,
) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default();
    page(
        status,
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{problem}<form method=\"post\" action=\"{action}\">{hidden_fields}{csrf}\
             <label for=\"username\">Username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" name=\"action\" value=\"login\">Sign in</button></form>",
            action = escape(action),
            csrf = hidden("csrf", csrf),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            hidden("state", "\"><script>"),
            "<input type=\"hidden\" name=\"state\" value=\"&quot;&gt;&lt;script&gt;\">"
        );
    }
}
