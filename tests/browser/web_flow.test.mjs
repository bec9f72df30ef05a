// The web callback page in a real browser (Debian's chromium through playwright-core),
// against the real callbackd and the fake Asterisk, both started here and stopped at the end.
//
//   CALLBACK_BIN_DIR=build/bin node --test web_flow.test.mjs      (or ./run.sh)
//
// Environment: CALLBACK_BIN_DIR (callbackd, callback-fake-asterisk; default <repo>/build/bin),
// CALLBACK_ARTIFACTS_DIR (screenshots and server logs; default the system temp folder),
// CALLBACK_CHROMIUM (default /usr/bin/chromium). No sleeps: every wait is for a line a
// server prints or for a state the page shows, each with a timeout that fails the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN_DIR = process.env.CALLBACK_BIN_DIR || path.resolve(HERE, '../../build/bin');
const ARTIFACTS_DIR = process.env.CALLBACK_ARTIFACTS_DIR || os.tmpdir();
const CHROMIUM = process.env.CALLBACK_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const STARTUP_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 15_000;   // one state change of a call
const CALL_TIMEOUT_MS = 45_000;   // a whole call (the answered one talks 300 s x 0.02 = 6 s)
const TIME_SCALE = '0.02';
const LIMIT_SECONDS = 300;

// ---- servers ------------------------------------------------------------------------

// A child process whose stdout and stderr are kept (and written out at the end), with a
// wait for the first stdout line that matches a pattern.
class Server {
  constructor(name, executable, args, env) {
    this.name = name;
    this.log = [];
    this.process = spawn(executable, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.log.push(`[${name} exited: code ${code}, signal ${signal}]`);
        resolve({ code, signal });
      });
    });
    this.spawnError = new Promise((resolve) => this.process.once('error', resolve));
    this.lines = readline.createInterface({ input: this.process.stdout });
    this.lines.on('line', (line) => this.log.push(line));
    readline.createInterface({ input: this.process.stderr }).on('line', (line) => this.log.push(`stderr: ${line}`));
  }

  // Resolves with the match of the first stdout line matching `pattern`; rejects if the
  // process ends or fails to start first, or after timeoutMs.
  waitForLine(pattern, timeoutMs) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const done = (settle, value) => {
        clearTimeout(timer);
        this.lines.off('line', onLine);
        settle(value);
      };
      const failure = (why) => new Error(`${this.name}: ${why}, waiting for a line matching ${pattern}\n${this.logText()}`);
      const onLine = (line) => {
        const match = pattern.exec(line);
        if (match) done(resolve, match);
      };
      this.lines.on('line', onLine);
      timer = setTimeout(() => done(reject, failure(`no ready line within ${timeoutMs} ms`)), timeoutMs);
      this.exited.then(({ code, signal }) => done(reject, failure(`exited (code ${code}, signal ${signal})`)));
      this.spawnError.then((error) => done(reject, failure(`could not start (${error.message})`)));
    });
  }

  running() {
    return this.process.exitCode === null && this.process.signalCode === null && this.process.pid !== undefined;
  }

  // SIGTERM, then SIGKILL if it has not ended within 10 s.
  async stop() {
    if (!this.running()) return;
    this.process.kill('SIGTERM');
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.log.push(`[${this.name} did not end 10 s after SIGTERM: SIGKILL]`);
        this.process.kill('SIGKILL');
        resolve();
      }, 10_000);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    await this.exited;
  }

  logText() {
    return this.log.map((line) => `  ${this.name}| ${line}`).join('\n');
  }
}

const servers = [];
let tempDir = null;
let baseUrl = null;
let browser = null;

// If the runner dies without reaching after(), take the servers down with it.
process.on('exit', () => {
  for (const server of servers) if (server.running()) server.process.kill('SIGKILL');
});

before(async () => {
  tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'callback-browser-'));
  await fs.mkdir(ARTIFACTS_DIR, { recursive: true });

  // The fake takes --port 0 and prints the port it got: no window for another process to take it.
  const fake = new Server('fake-asterisk', path.join(BIN_DIR, 'callback-fake-asterisk'),
    ['--port', '0', '--time-scale', TIME_SCALE], process.env);
  servers.push(fake);
  const [, amiPort] = await fake.waitForLine(/listening on 127\.0\.0\.1:(\d+)/, STARTUP_TIMEOUT_MS);

  const config = {
    numbering: { country_code: '', trunk_prefix: '', international_prefixes: [] },
    billing: { plugin: 'callback.billing.sqlite', enabled: false },
    engines: [{
      plugin: 'callback.engine.ami',
      config: { servers: [`127.0.0.1:${amiPort}`], username: 'callback', secret: 'callbacksecret' },
    }],
    triggers: [{
      plugin: 'callback.trigger.web',
      config: { mode: 'campaign', campaign: 'free', limit_seconds: LIMIT_SECONDS },
    }],
    // Port 0: callbackd takes a free one and says which in its ready line.
    server: { listen: '127.0.0.1:0' },
    service: { campaigns: { free: { limit_seconds: LIMIT_SECONDS } } },
  };
  const configPath = path.join(tempDir, 'callback.json');
  await fs.writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const callbackd = new Server('callbackd', path.join(BIN_DIR, 'callbackd'), ['--config', configPath],
    { ...process.env, CALLBACK_DATA_DIR: tempDir });
  servers.push(callbackd);
  const [, url] = await callbackd.waitForLine(/listening on (http:\/\/\S+)/, STARTUP_TIMEOUT_MS);
  baseUrl = url.replace(/\/+$/, '');

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const server of [...servers].reverse()) await server.stop();
  const logs = servers.map((server) => server.logText()).join('\n');
  if (servers.length > 0) await fs.writeFile(path.join(ARTIFACTS_DIR, 'browser-test-servers.log'), `${logs}\n`);
  if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
});

// ---- page helpers -------------------------------------------------------------------

// A phone-sized page; uncaught errors in the page fail the test. On failure a screenshot
// named <name>-failure.png is kept.
async function withPage(name, body) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  try {
    await body(page);
    assert.deepEqual(pageErrors.map(String), [], 'uncaught errors in the page');
  } catch (failure) {
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, `${name}-failure.png`), fullPage: true }).catch(() => {});
    const serverLogs = servers.map((server) => server.logText()).join('\n');
    failure.message += `\npage errors: ${pageErrors.map(String).join('; ') || 'none'}\nserver output:\n${serverLogs}`;
    throw failure;
  } finally {
    await context.close();
  }
}

async function openPage(page, query) {
  await page.goto(`${baseUrl}/${query}`);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: STEP_TIMEOUT_MS });
}

// Reads the call's event stream from here too, to compare what the page shows with what
// the server said. Resolves with every callback object once the server ends the stream.
async function readEvents(eventsUrl) {
  const response = await fetch(new URL(eventsUrl, baseUrl),
    { headers: { Accept: 'text/event-stream' }, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  assert.equal(response.status, 200, `GET ${eventsUrl}`);
  assert.match(response.headers.get('content-type') || '', /^text\/event-stream/);
  const text = await response.text();  // the server closes the stream after the final state
  const callbacks = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/);
    const event = lines.find((line) => line.startsWith('event:'));
    const data = lines.filter((line) => line.startsWith('data:')).map((line) => line.slice(5).replace(/^ /, ''));
    if (event && event.slice(6).trim() === 'callback' && data.length > 0) callbacks.push(JSON.parse(data.join('\n')));
  }
  return callbacks;
}

// Types the caller, opens the dialog, types the friend, presses Call; resolves with the
// POST's response once the page has it.
async function placeCall(page, caller, callee) {
  await page.fill('#caller', caller);
  await page.click('#call-me');
  await page.locator('#friend-dialog[open]').waitFor({ timeout: STEP_TIMEOUT_MS });
  await page.fill('#callee', callee);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/public/callbacks') && r.request().method() === 'POST',
      { timeout: STEP_TIMEOUT_MS }),
    page.click('#call'),
  ]);
  return response;
}

async function finalStatus(page) {
  const status = page.locator('#status:not([data-outcome=""])');
  await status.waitFor({ timeout: CALL_TIMEOUT_MS });
  return {
    state: await status.getAttribute('data-state'),
    outcome: await status.getAttribute('data-outcome'),
    text: (await status.textContent()).trim(),
  };
}

// ---- tests --------------------------------------------------------------------------

test('an answered call shows the countdown while connected, then ends with time up', { timeout: 90_000 }, async () => {
  await withPage('answered', async (page) => {
    await openPage(page, '?lang=en');
    const response = await placeCall(page, '1001', '1002');
    assert.equal(response.status(), 202, await response.text());
    // The page's language goes with the request: the caller hears Asterisk's sounds/en/.
    assert.equal(JSON.parse(response.request().postData()).language, 'en');
    const accepted = await response.json();
    assert.equal(accepted.callback.caller, '1001');
    assert.equal(accepted.callback.callee, '1002');
    const events = readEvents(accepted.events_url);
    events.catch(() => {});  // awaited below; do not let an early failure go unhandled
    await page.locator('#friend-dialog:not([open])').waitFor({ state: 'attached', timeout: STEP_TIMEOUT_MS });

    // Connected: the time left counts down from the limit.
    await page.locator('#status[data-state="bridged"]').waitFor({ timeout: CALL_TIMEOUT_MS });
    const connected = (await page.locator('#status').textContent()).trim();
    assert.match(connected, /^Connected — time left (\d+):(\d\d)$/);
    const [, minutes, seconds] = /(\d+):(\d\d)$/.exec(connected);
    const firstLeft = Number(minutes) * 60 + Number(seconds);
    assert.ok(firstLeft <= LIMIT_SECONDS && firstLeft >= LIMIT_SECONDS - 2, `time left ${connected}`);
    await page.waitForFunction((first) => {
      const shown = document.querySelector('#time-left');
      return shown !== null && shown.textContent !== first;
    }, /(\d+:\d\d)$/.exec(connected)[1], { timeout: 3_000 });
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'answered-connected.png') });

    // The fake's 1XXX friend stays on the line until Asterisk's L() limit ends the call.
    const final = await finalStatus(page);
    const seen = await events;
    const last = seen.at(-1);
    assert.ok(seen.some((callback) => callback.state === 'bridged'), JSON.stringify(seen.map((c) => c.state)));
    assert.equal(last.outcome, 'time_up');
    assert.equal(final.outcome, last.outcome);
    assert.equal(final.state, last.state);
    assert.equal(final.text, 'Ended: time is up');
    assert.equal(await page.locator('#call-me').isEnabled(), true, 'a new call can be asked for');
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'answered.png') });
  });
});

test('a busy friend ends the call with "Your friend\'s line is busy"', { timeout: 60_000 }, async () => {
  await withPage('busy-partner', async (page) => {
    await openPage(page, '?lang=en');
    const response = await placeCall(page, '1003', '3001');
    assert.equal(response.status(), 202, await response.text());
    const final = await finalStatus(page);
    assert.equal(final.outcome, 'partner_busy');
    assert.equal(final.text, "Your friend's line is busy");
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'busy-partner.png') });
  });
});

test('the Chinese page checks numbers and shows the server\'s error next to the field', { timeout: 60_000 }, async () => {
  await withPage('zh-error', async (page) => {
    const posts = [];
    page.on('request', (request) => {
      if (request.method() === 'POST') posts.push(request.url());
    });
    await openPage(page, '?lang=zh');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal((await page.textContent('label[for="caller"]')).trim(), '您的电话号码');
    assert.equal((await page.textContent('#call-me')).trim(), '立即拨打');
    assert.equal(await page.getAttribute('#lang-zh', 'aria-pressed'), 'true');

    // Letters never leave the page: the light check here answers in Chinese.
    await page.fill('#caller', '12ab');
    await page.click('#call-me');
    await page.locator('#caller-error:not(:empty)').waitFor({ timeout: STEP_TIMEOUT_MS });
    assert.equal((await page.textContent('#caller-error')).trim(), '请输入 3 到 20 个字符：数字、空格、+、- 或括号。');
    assert.equal(await page.locator('#friend-dialog[open]').count(), 0, 'the dialog stays closed');
    assert.deepEqual(posts, []);

    // Passes the light check, but a '+' inside a number is the server's to refuse (400, field caller).
    const response = await placeCall(page, '1+23', '1002');
    assert.equal(response.status(), 400);
    assert.equal(JSON.parse(response.request().postData()).language, 'zh');
    const { error } = await response.json();
    assert.equal(error.field, 'caller');
    assert.ok(error.message, 'the server explains');
    await page.locator('#status[data-state="error"]').waitFor({ timeout: STEP_TIMEOUT_MS });
    assert.equal((await page.textContent('#caller-error')).trim(), error.message);
    assert.equal(await page.getAttribute('#caller', 'aria-invalid'), 'true');
    assert.equal(await page.getAttribute('#status', 'data-error-code'), error.code);
    assert.equal(await page.locator('#friend-dialog[open]').count(), 0, 'the dialog closes to show the field');
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'zh-error.png') });

    // Switching language changes the page's words, not the server's message.
    await page.click('#lang-en');
    assert.equal((await page.textContent('label[for="caller"]')).trim(), 'Your phone number');
    assert.equal((await page.textContent('#caller-error')).trim(), error.message);
    assert.match(page.url(), /[?&]lang=en\b/);
  });
});
