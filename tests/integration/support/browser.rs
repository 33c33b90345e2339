//! A browser without JavaScript for the page tests (apps, MCP): it keeps
//! cookies (and checks each is HttpOnly and SameSite=Lax), never follows a
//! redirect, and reads a page's form as a browser would post it.

use std::collections::HashMap;
use std::time::Duration;

/// A browser: remembers cookies, never follows redirects.
pub struct Browser {
    http: reqwest::Client,
    /// The cookies it holds, by name.
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            assert!(
                attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"),
                "{text}"
            );
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> (u16, HashMap<String, String>, String) {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    pub async fn post(
        &mut self,
        url: &str,
        form: &[(String, String)],
    ) -> (u16, HashMap<String, String>, String) {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    async fn read(
        &mut self,
        response: reqwest::Response,
    ) -> (u16, HashMap<String, String>, String) {
        self.keep_cookies(&response);
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (status, headers, response.text().await.unwrap())
    }
}

/// The hidden and named inputs of the page's first form, as a browser
/// would post them (buttons excluded).
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    let form = &html[html.find("<form").expect("a form")..];
    let form = &form[..form.find("</form>").unwrap()];
    form.split("<input")
        .skip(1)
        .filter_map(|input| {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\""))? + name.len() + 2;
                let end = input[start..].find('"')? + start;
                Some(unescape(&input[start..end]))
            };
            (attr("type").as_deref() == Some("hidden"))
                .then(|| (attr("name").unwrap(), attr("value").unwrap()))
        })
        .collect()
}

/// HTML's five escapes undone.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `fields` and `extra`, as one form.
pub fn with(mut fields: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    fields
}
