"""An MCP client on the official Python SDK (`pip install mcp`), signing a
user in on revokd the way an MCP host does: RFC 9728 discovery from the
server's 401, RFC 7591 registration, the authorization code flow with PKCE
and `resource` (RFC 8707), then calls over streamable HTTP.

Where a host would open a browser, the redirect handler answers revokd's
login and consent pages itself (plain HTTP, cookies by hand) and keeps the
code from the 303 `Location`.

    python3 tests/mcp/client.py MCP_URL USERNAME PASSWORD

Stdout, one JSON object a line:
  {"connected": true, "client_id": ..., "access_token": ..., "whoami": ...}
    after the first call; then it waits for a line on stdin (the test
    disconnects the app meanwhile) and calls again:
  {"refused": true, "status": 401, "error": ...}
    when the call failed on authorization, or {"refused": false, ...}.
Exit status 0 when the second call was refused with a 401.
"""

import asyncio
import http.client
import json
import sys
import urllib.parse
from html.parser import HTMLParser

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

REDIRECT = "http://127.0.0.1:9/callback"


def emit(**fields):
    print(json.dumps(fields), flush=True)


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client_info = client_info


class Hidden(HTMLParser):
    """The hidden inputs of the page's first form."""

    def __init__(self):
        super().__init__()
        self.fields = {}
        self.forms = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms += 1
        if tag == "input" and self.forms == 1 and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value") or ""


def hidden_fields(html):
    parser = Hidden()
    parser.feed(html)
    return parser.fields


class Browser:
    """Just enough of a browser for revokd's pages: cookies, no redirects."""

    def __init__(self):
        self.cookies = {}

    def request(self, method, url, form=None):
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        path = parts.path + ("?" + parts.query if parts.query else "")
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        connection.close()
        return response.status, response.headers, text


class User:
    """Answers the authorization URL as a user in a browser would, once."""

    def __init__(self, username, password):
        self.username = username
        self.password = password
        self.result = None
        self.authorizations = 0

    async def redirect_handler(self, authorization_url):
        self.authorizations += 1
        if self.authorizations > 1:
            # After the disconnect: a user who disconnected the app does not
            # sign in again.
            raise PermissionError("the user declines to sign in again")
        self.result = await asyncio.to_thread(self.sign_in, authorization_url)

    def sign_in(self, authorization_url):
        browser = Browser()
        status, _, page = browser.request("GET", authorization_url)
        assert status == 200, (status, page)
        endpoint = authorization_url.split("?", 1)[0]
        if 'name="password"' in page:
            form = hidden_fields(page)
            form.update(action="login", username=self.username, password=self.password)
            status, _, page = browser.request("POST", endpoint, form)
            assert status == 200, (status, page)
        assert 'value="approve"' in page, page
        form = hidden_fields(page)
        form["decision"] = "approve"
        status, headers, page = browser.request("POST", endpoint, form)
        assert status == 303, (status, page)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    async def callback_handler(self):
        return self.result


# The exit status main decided, kept for when leaving the session raises
# after the verdict (the transport closing on a refused session).
OUTCOME = {"code": 2}


async def main(url, username, password):
    storage = MemoryStorage()
    user = User(username, password)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="revokd MCP test client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )
    # Every HTTP answer the SDK got, to tell an authorization failure from
    # any other (the SDK reports a failed re-authorization as a cancelled
    # transport, not as the 401 behind it).
    seen = []

    async def record(response):
        seen.append((response.request.method, str(response.request.url), response.status_code))

    async with httpx2.AsyncClient(
        auth=provider, timeout=30, event_hooks={"response": [record]}
    ) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = sorted(tool.name for tool in (await session.list_tools()).tools)
                whoami = await session.call_tool("whoami", {})
                added = await session.call_tool("add", {"a": 2, "b": 40})
                emit(
                    connected=True,
                    tools=tools,
                    whoami=whoami.content[0].text,
                    add=added.content[0].text,
                    client_id=storage.client_info.client_id,
                    access_token=storage.tokens.access_token,
                )
                await asyncio.to_thread(sys.stdin.readline)
                before = len(seen)
                try:
                    again = await asyncio.wait_for(session.call_tool("whoami", {}), 30)
                except BaseException as error:  # noqa: BLE001 (groups, cancellations)
                    after = seen[before:]
                    mcp = [status for _, u, status in after if u == url]
                    refused = bool(mcp) and all(status == 401 for status in mcp)
                    emit(
                        refused=refused,
                        status=401 if refused else None,
                        # The SDK's recovery: a refresh (refused: the grant is
                        # gone) then a new authorization, which the user declines.
                        requests=[f"{m} {u} {status}" for m, u, status in after],
                        authorizations=user.authorizations,
                        error=repr(error)[:300],
                    )
                    OUTCOME["code"] = 0 if refused else 1
                    return OUTCOME["code"]
                emit(refused=False, result=repr(again)[:500])
                OUTCOME["code"] = 1
                return 1


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:4]))
    except BaseException as error:  # noqa: BLE001
        print(f"client: {error!r}", file=sys.stderr)
    sys.exit(OUTCOME["code"])
