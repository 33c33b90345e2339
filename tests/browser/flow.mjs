// Drives dev mode's "connect an app, then disconnect it" flow in headless
// Debian chromium (playwright-core, no browser download). Run by
// tests/integration/browser.rs and scripts/screenshots.
//
// Env: REVOKD_ISSUER, REVOKD_PASSWORD (user demo), REVOKD_AUTHORIZE_URL,
// REVOKD_VERIFIER (its PKCE verifier), REVOKD_DEMO_SECRET (client demo, for
// introspection), SCREENSHOT_DIR; CHROMIUM (default /usr/bin/chromium).
// Prints "ok: ..." per check; exits 1 with "FAIL: ..." on the first failure.

import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const CALLBACK = 'http://127.0.0.1:9/callback';
let checks = 0;
function check(condition, what) {
  if (!condition) throw new Error(what);
  checks += 1;
  console.log(`ok: ${what}`);
}

async function introspect(issuer, secret, token) {
  const response = await fetch(`${issuer}/oauth2/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`demo:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ token }),
  });
  if (response.status !== 200) throw new Error(`introspect: HTTP ${response.status}`);
  return response.json();
}

// The ids (or tag and text) of what Tab focuses, `count` times in a row.
async function tabOrder(page, count) {
  const order = [];
  for (let i = 0; i < count; i += 1) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const el = document.activeElement;
      return el.id || `${el.tagName.toLowerCase()}:${el.textContent.trim()}`;
    }));
  }
  return order;
}

async function flow(page, context) {
  const issuer = env('REVOKD_ISSUER');
  const secret = env('REVOKD_DEMO_SECRET');
  const shots = env('SCREENSHOT_DIR');
  page.setDefaultTimeout(15_000);

  // The app's redirect URI: nothing listens there; answer the browser's visit.
  await page.route('http://127.0.0.1:9/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback' }));

  // 1. Login page: labelled inputs, focus order, no framing.
  const login = await page.goto(env('REVOKD_AUTHORIZE_URL'));
  check(login.status() === 200, 'the authorize URL opens a page (200)');
  check(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'it is the sign-in page');
  const username = page.getByLabel('Username');
  const password = page.getByLabel('Password');
  check(await username.getAttribute('name') === 'username', 'label Username names the username input');
  check(await password.getAttribute('type') === 'password', 'label Password names the password input');
  check(await page.evaluate(() => document.activeElement.id) === 'username', 'username is focused on load');
  // Start from the top of the page (clicking the heading moves the starting point there).
  await page.getByRole('heading', { name: 'Sign in' }).click();
  const order = await tabOrder(page, 3);
  check(order.join(',') === 'username,password,button:Sign in', `Tab order is username, password, Sign in (got ${order})`);
  const csp = (await login.allHeaders())['content-security-policy'] ?? '';
  check(csp.includes("frame-ancestors 'none'"), "the login page sends CSP frame-ancestors 'none'");

  await username.fill('demo');
  await password.fill(env('REVOKD_PASSWORD'));
  await page.screenshot({ path: join(shots, 'login.png'), fullPage: true });
  await page.getByRole('button', { name: 'Sign in' }).click();

  // 2. Consent page: names the app and the scope; Allow.
  const heading = page.getByRole('heading', { name: 'Allow Demo App?' });
  await heading.waitFor();
  check(true, 'signing in shows the consent page for Demo App');
  const scopes = await page.locator('main li').allTextContents();
  check(scopes.join(' ') === 'read', `the consent page lists the read scope (got ${scopes})`);
  const session = (await context.cookies(issuer)).find((c) => c.name === 'revokd_session');
  check(session !== undefined, 'signing in set the revokd_session cookie');
  check(session.httpOnly, 'the session cookie is HttpOnly');
  check(session.sameSite === 'Lax', `the session cookie is SameSite=Lax (got ${session.sameSite})`);
  await page.screenshot({ path: join(shots, 'consent.png'), fullPage: true });
  await page.getByRole('button', { name: 'Allow' }).click();
  // Wait for the callback page to load, not just to be requested: a goto
  // issued while that navigation is still pending would be interrupted by it.
  await page.waitForURL((url) => url.href.startsWith(CALLBACK));

  const redirected = new URL(page.url());
  const params = redirected.searchParams;
  check(`${redirected.origin}${redirected.pathname}` === CALLBACK, `Allow redirects to ${CALLBACK}`);
  check(params.get('state') === 'xyz', 'the redirect carries state=xyz');
  check(params.get('iss') === issuer, 'the redirect carries iss = the issuer');
  const code = params.get('code');
  check(Boolean(code), 'the redirect carries a code');

  // 3. The app exchanges the code; the token is active.
  const tokenResponse = await fetch(`${issuer}/oauth2/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: 'demo-app',
      redirect_uri: CALLBACK,
      code_verifier: env('REVOKD_VERIFIER'),
      code,
    }),
  });
  const tokens = await tokenResponse.json();
  check(tokenResponse.status === 200 && Boolean(tokens.access_token), `the code exchanges for tokens (HTTP ${tokenResponse.status})`);
  const before = await introspect(issuer, secret, tokens.access_token);
  check(before.active === true && before.client_id === 'demo-app' && before.sub === 'demo',
    'the access token introspects active, for demo-app and demo');

  // 4. Account page: the app is listed; Disconnect; it is gone, its token dead.
  const account = await page.goto(`${issuer}/account`);
  check(await page.getByRole('heading', { name: 'Your account' }).isVisible(), 'the signed-in user sees /account');
  const row = page.getByRole('row').filter({ hasText: 'Demo App' });
  check(await row.count() === 1, 'Demo App is listed on /account');
  check((await row.getByRole('cell').nth(1).textContent()) === 'read', 'with its read scope');
  const accountCsp = (await account.allHeaders())['content-security-policy'] ?? '';
  check(accountCsp.includes("frame-ancestors 'none'"), "the account page sends CSP frame-ancestors 'none'");
  await page.screenshot({ path: join(shots, 'account.png'), fullPage: true });
  await page.getByRole('button', { name: 'Disconnect Demo App' }).click();
  await page.getByText('No application is connected to your account.').waitFor();
  check(await page.getByRole('row').filter({ hasText: 'Demo App' }).count() === 0, 'after Disconnect no app is listed');
  const after = await introspect(issuer, secret, tokens.access_token);
  check(after.active === false, 'after Disconnect the access token introspects inactive');

  // 5. The browser refuses to frame a page: a page of another origin (a
  // loopback server here, so no private-network rule gets in the way) frames
  // /account and, as a control, a page of its own.
  const framer = createServer((request, response) => {
    response.setHeader('content-type', 'text/html');
    response.end(request.url === '/own' ? '<p>own page</p>'
      : `<iframe id="app" src="${issuer}/account"></iframe><iframe id="own" src="/own"></iframe>`);
  });
  await new Promise((resolve) => framer.listen(0, '127.0.0.1', resolve));
  try {
    await page.goto(`http://127.0.0.1:${framer.address().port}/`);
    const text = async (id) => (await page.locator(`#${id}`).contentFrame())
      .locator('body').innerText({ timeout: 5_000 }).catch(() => '');
    check(await text('own') === 'own page', 'a frame of another page shows it (the control)');
    check(!/Your account|Sign in/.test(await text('app')), 'the browser does not show /account inside a frame');
  } finally {
    framer.close();
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 720, height: 540 } });
  await flow(await context.newPage(), context);
  console.log(`browser flow: all ${checks} checks passed`);
} catch (error) {
  failed = true;
  console.log(`FAIL: ${error.message}`);
  console.error(error.stack);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
