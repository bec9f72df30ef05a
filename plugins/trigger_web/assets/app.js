// The web callback page: the caller's number, then (in a dialog) the friend's number,
// then POST /v1/public/callbacks and live status from the call's Server-Sent Events.
// REST contract: rest/API-CONTRACT.md. No framework, nothing loaded from elsewhere.
// Everything that comes from the server or the user is put in with textContent only.
'use strict';

(() => {
  // Every string the page shows, in both languages. {name} is filled in by t().
  const STRINGS = {
    en: {
      page_title: 'Call me back',
      title: 'Call me back',
      intro: 'Enter your phone number. We call you first, then your friend, and connect you.',
      limit_note: 'Each call may last up to {time}.',
      account_label: 'Account',
      pin_label: 'PIN',
      caller_label: 'Your phone number',
      call_me: 'Call me now',
      status_heading: 'Call status',
      dialog_title: 'Who should we connect you to?',
      callee_label: "Your friend's number (landline with area code)",
      cancel: 'Cancel',
      call: 'Call',
      // Page states (before or around a callback)
      loading: 'Loading…',
      idle: '',
      unavailable: 'The service is not available right now. Please try again later.',
      sending: 'Sending your request…',
      network_error: 'Could not reach the service. Check your connection and try again.',
      rate_limited: 'Too many requests, try again in {seconds} s',
      http_error: 'Something went wrong (HTTP {status}). Please try again.',
      lost: 'Lost contact with the server; your call may still be going on.',
      check_field: 'Please check the marked field.',
      // Callback states (the `state` of the callback object)
      created: 'Request received…',
      authorizing: 'Calling you…',
      dialing_a: 'Calling you…',
      a_answered: 'Connecting your friend…',
      dialing_b: 'Connecting your friend…',
      bridged: 'Connected',
      bridged_time_left: 'Connected — time left {time}',
      // Final outcomes (the `outcome` of the callback object)
      outcome_completed: 'Call ended',
      outcome_time_up: 'Ended: time is up',
      outcome_partner_hangup: 'Ended: your friend hung up',
      outcome_partner_busy: "Your friend's line is busy",
      outcome_partner_away: 'Your friend did not answer',
      outcome_system_busy: 'System busy, please try again later',
      outcome_call_failed: 'The call could not be connected',
      outcome_caller_unreachable: 'We could not reach your phone',
      outcome_canceled: 'Canceled',
      outcome_refused: 'The call was not allowed',
      // Checks made here before asking the server (the server has the last word)
      number_required: 'Please enter a phone number.',
      number_invalid: 'Use 3 to 20 characters: digits, spaces, +, - and parentheses.',
      account_required: 'Please enter your account.',
      pin_required: 'Please enter your PIN.',
      duration: (seconds) => {
        const minutes = Math.floor(seconds / 60);
        if (seconds % 60 !== 0) return `${minutes}:${String(seconds % 60).padStart(2, '0')} min`;
        return minutes === 1 ? '1 minute' : `${minutes} minutes`;
      },
    },
    zh: {
      page_title: '回拨电话',
      title: '回拨电话',
      intro: '请输入您的电话号码。系统先呼叫您，再呼叫您的朋友，然后为你们接通。',
      limit_note: '每次通话最长 {time}。',
      account_label: '账号',
      pin_label: '密码',
      caller_label: '您的电话号码',
      call_me: '立即拨打',
      status_heading: '呼叫状态',
      dialog_title: '您要呼叫谁？',
      callee_label: '朋友的电话号码（固定电话请加区号）',
      cancel: '取消',
      call: '呼叫',
      loading: '正在加载…',
      idle: '',
      unavailable: '服务暂时不可用，请稍后再试。',
      sending: '正在提交请求…',
      network_error: '无法连接服务，请检查网络后重试。',
      rate_limited: '请求过于频繁，请 {seconds} 秒后再试',
      http_error: '出错了（HTTP {status}），请重试。',
      lost: '与服务器的连接已中断，通话可能仍在进行。',
      check_field: '请检查标出的输入项。',
      created: '请求已受理…',
      authorizing: '正在呼叫您…',
      dialing_a: '正在呼叫您…',
      a_answered: '正在接通对方…',
      dialing_b: '正在接通对方…',
      bridged: '已接通',
      bridged_time_left: '已接通，剩余时间 {time}',
      outcome_completed: '通话结束',
      outcome_time_up: '通话结束：时间到',
      outcome_partner_hangup: '通话结束：对方已挂机',
      outcome_partner_busy: '对方忙',
      outcome_partner_away: '对方无人接听',
      outcome_system_busy: '系统忙，请稍后再试',
      outcome_call_failed: '呼叫失败',
      outcome_caller_unreachable: '无法接通您的电话',
      outcome_canceled: '已取消',
      outcome_refused: '呼叫未获准许',
      number_required: '请输入电话号码。',
      number_invalid: '请输入 3 到 20 个字符：数字、空格、+、- 或括号。',
      account_required: '请输入账号。',
      pin_required: '请输入密码。',
      duration: (seconds) => {
        const minutes = Math.floor(seconds / 60);
        return seconds % 60 === 0 ? `${minutes} 分钟` : `${minutes} 分 ${seconds % 60} 秒`;
      },
    },
  };

  const LANGUAGES = ['en', 'zh'];
  const FINAL_STATES = new Set(['completed', 'failed', 'canceled']);
  const OUTCOMES = new Set(['completed', 'time_up', 'partner_hangup', 'partner_busy', 'partner_away', 'system_busy',
    'call_failed', 'caller_unreachable', 'canceled', 'refused']);
  const FIELDS = ['caller', 'callee', 'account', 'pin'];
  // Light check only (the server parses numbers with the numbering plan and has the last word).
  const NUMBER_PATTERN = /^[0-9+\-() ]{3,20}$/;

  const page = {
    lang: 'en',
    config: null,
    // What #status shows, kept as a model so a language switch can render it again.
    status: { state: 'loading', outcome: '', key: 'loading', params: {}, text: null, code: '' },
    fieldErrors: {},  // field -> {key, params} or {text} (the server's own message)
    run: null,        // the callback being followed: {id, source, bridgedAt, limitSeconds, timer}
  };

  const $ = (id) => document.getElementById(id);

  function t(key, params = {}) {
    const table = STRINGS[page.lang] || STRINGS.en;
    const template = key in table ? table[key] : STRINGS.en[key];
    if (typeof template !== 'string') return key;
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }

  function clock(totalSeconds) {
    const seconds = Math.max(0, Math.floor(totalSeconds));
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  }

  // ---- language -----------------------------------------------------------------------

  function languageFromUrl() {
    const lang = new URLSearchParams(window.location.search).get('lang');
    return LANGUAGES.includes(lang) ? lang : null;
  }

  function applyLanguage(lang) {
    page.lang = LANGUAGES.includes(lang) ? lang : 'en';
    document.documentElement.lang = page.lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('page_title');
    for (const element of document.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n);
    for (const button of document.querySelectorAll('.languages button')) {
      button.setAttribute('aria-pressed', String(button.dataset.lang === page.lang));
    }
    renderLimitNote();
    for (const field of FIELDS) renderFieldError(field);
    renderStatus();
  }

  function chooseLanguage(lang) {
    applyLanguage(lang);
    // Keep the choice on reload and in a shared link.
    const url = new URL(window.location.href);
    url.searchParams.set('lang', page.lang);
    window.history.replaceState(null, '', url);
  }

  function renderLimitNote() {
    const note = $('limit-note');
    const limit = page.config && Number.isInteger(page.config.limit_seconds) ? page.config.limit_seconds : null;
    note.hidden = limit === null || limit <= 0;
    note.textContent = note.hidden ? '' : t('limit_note', { time: STRINGS[page.lang].duration(limit) });
  }

  // ---- status -------------------------------------------------------------------------

  // state: a page state (loading, idle, unavailable, sending, error, lost) or a callback state.
  // text: a message from the server, shown as it is instead of a translated key.
  // code: the server's error code of a refused request (data-error-code), for tests and support.
  function setStatus(state, key, { params = {}, outcome = '', text = null, code = '' } = {}) {
    page.status = { state, outcome, key, params, text, code };
    renderStatus();
  }

  function renderStatus() {
    const status = $('status');
    const { state, outcome, key, params, text, code } = page.status;
    status.dataset.state = state;
    status.dataset.outcome = outcome;
    status.dataset.errorCode = code;
    status.classList.toggle('final', outcome !== '');
    status.classList.toggle('problem', state === 'error' || state === 'unavailable' || state === 'lost' ||
      (outcome !== '' && outcome !== 'completed' && outcome !== 'time_up' && outcome !== 'partner_hangup'));
    if (text !== null) {
      status.textContent = text;
      return;
    }
    if (key !== 'bridged_time_left') {
      status.textContent = t(key, params);
      return;
    }
    // The remaining time ticks every second: keep it out of what screen readers announce.
    const [before, after = ''] = t(key).split('{time}');
    const time = document.createElement('span');
    time.id = 'time-left';
    time.setAttribute('aria-live', 'off');
    time.textContent = clock(remainingSeconds());
    status.replaceChildren(document.createTextNode(before), time, document.createTextNode(after));
  }

  function remainingSeconds() {
    const run = page.run;
    if (!run || run.bridgedAt === null) return 0;
    return run.limitSeconds - Math.floor((performance.now() - run.bridgedAt) / 1000);
  }

  function startCountdown() {
    const run = page.run;
    let shown = null;
    run.timer = window.setInterval(() => {
      const left = Math.max(0, remainingSeconds());
      if (left === shown) return;
      shown = left;
      const time = $('time-left');
      if (time) time.textContent = clock(left);
      if (left === 0) window.clearInterval(run.timer);
    }, 200);
  }

  // ---- field errors -------------------------------------------------------------------

  function setFieldError(field, error) {
    if (error) page.fieldErrors[field] = error;
    else delete page.fieldErrors[field];
    renderFieldError(field);
  }

  function renderFieldError(field) {
    const element = $(`${field}-error`);
    if (!element) return;
    const error = page.fieldErrors[field];
    element.textContent = !error ? '' : error.text != null ? error.text : t(error.key, error.params);
    const input = $(field);
    if (!input) return;
    if (error) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function clearErrors() {
    for (const field of FIELDS) setFieldError(field, null);
  }

  function checkNumber(field) {
    const value = $(field).value.trim();
    if (value === '') return { key: 'number_required' };
    if (!NUMBER_PATTERN.test(value) || !/[0-9]/.test(value)) return { key: 'number_invalid' };
    return null;
  }

  function accountMode() {
    return page.config && page.config.mode === 'account';
  }

  // ---- the two steps ------------------------------------------------------------------

  function onCallMe(event) {
    event.preventDefault();
    clearErrors();
    const problems = [];
    if (accountMode()) {
      if ($('account').value.trim() === '') problems.push(['account', { key: 'account_required' }]);
      if ($('pin').value === '') problems.push(['pin', { key: 'pin_required' }]);
    }
    const callerProblem = checkNumber('caller');
    if (callerProblem) problems.push(['caller', callerProblem]);
    if (problems.length > 0) {
      for (const [field, error] of problems) setFieldError(field, error);
      $(problems[0][0]).focus();
      return;
    }
    $('call').disabled = false;
    $('friend-dialog').showModal();
    $('callee').focus();
  }

  async function onCall(event) {
    event.preventDefault();
    setFieldError('callee', null);
    const calleeProblem = checkNumber('callee');
    if (calleeProblem) {
      setFieldError('callee', calleeProblem);
      $('callee').focus();
      return;
    }
    // The page's language is also what the caller hears on the phone (Asterisk's sounds/<lang>/).
    const body = { caller: $('caller').value.trim(), callee: $('callee').value.trim(), language: page.lang };
    if (accountMode()) {
      body.account = $('account').value.trim();
      body.pin = $('pin').value;
    }
    $('call').disabled = true;
    setStatus('sending', 'sending');
    let response;
    let payload = null;
    try {
      response = await fetch('/v1/public/callbacks', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      });
      payload = await response.json().catch(() => null);
    } catch (networkFailure) {
      $('call').disabled = false;
      closeDialog();
      setStatus('error', 'network_error');
      return;
    }
    $('call').disabled = false;
    if (response.status === 202 && payload && payload.callback && typeof payload.events_url === 'string') {
      closeDialog();
      follow(payload.callback, payload.events_url);
      return;
    }
    showRequestError(response, payload && payload.error);
  }

  function closeDialog() {
    const dialog = $('friend-dialog');
    if (dialog.open) dialog.close();
  }

  function retryAfterSeconds(response) {
    const header = (response.headers.get('Retry-After') || '').trim();
    let seconds = NaN;
    if (/^\d+$/.test(header)) seconds = Number(header);
    else if (header !== '') seconds = Math.ceil((Date.parse(header) - Date.now()) / 1000);
    return Number.isFinite(seconds) ? Math.max(1, seconds) : null;
  }

  // A refused POST: 4xx/5xx with {"error": {code, message, field, rule}}.
  function showRequestError(response, error) {
    const code = error && typeof error.code === 'string' ? error.code : 'http_error';
    let message = error && typeof error.message === 'string' && error.message !== '' ? error.message : null;
    // A policy's refusal names the rule that matched ("deny_prefix +882"): shown with the message.
    if (message !== null && typeof error.rule === 'string' && error.rule !== '') message += ` (${error.rule})`;
    if (response.status === 429) {
      const seconds = retryAfterSeconds(response);
      if (seconds !== null || message === null) {
        closeDialog();
        setStatus('error', 'rate_limited', { params: { seconds: seconds === null ? '?' : seconds }, code });
        return;
      }
    }
    const field = error && FIELDS.includes(error.field) ? error.field : null;
    const shown = message !== null ? { text: message } : { key: 'http_error', params: { status: response.status } };
    if (field) {
      // The message goes next to the field; the dialog stays open when the friend's number is wrong.
      if (field !== 'callee') closeDialog();
      setStatus('error', 'check_field', { code });
      setFieldError(field, shown);
      $(field).focus();
      return;
    }
    closeDialog();
    setStatus('error', shown.key || 'http_error', { params: shown.params || {}, text: shown.text ?? null, code });
  }

  // ---- following a callback -----------------------------------------------------------

  function follow(callback, eventsUrl) {
    stopFollowing();
    page.run = { id: callback.id, source: null, bridgedAt: null, limitSeconds: 0, timer: null };
    $('call-me').disabled = true;
    onCallback(callback);
    if (!page.run || page.run.id !== callback.id) return;  // already final
    const source = new EventSource(new URL(eventsUrl, window.location.href));
    page.run.source = source;
    source.addEventListener('callback', (event) => {
      let update;
      try {
        update = JSON.parse(event.data);
      } catch (malformed) {
        return;
      }
      onCallback(update);
    });
    source.addEventListener('error', () => {
      if (!page.run || page.run.source !== source) return;
      // CONNECTING: EventSource tries again by itself, and the next event (the server's
      // snapshot) puts the status back. CLOSED: it gave up (403, 404, not an event stream).
      if (source.readyState === EventSource.CLOSED) stopFollowing();
      setStatus('lost', 'lost');
    });
  }

  function stopFollowing() {
    const run = page.run;
    page.run = null;
    $('call-me').disabled = page.config === null;
    if (!run) return;
    if (run.source) run.source.close();
    if (run.timer !== null) window.clearInterval(run.timer);
  }

  function onCallback(callback) {
    const run = page.run;
    if (!run || !callback || callback.id !== run.id) return;
    const outcome = typeof callback.outcome === 'string' ? callback.outcome : null;
    if (outcome !== null || FINAL_STATES.has(callback.state)) {
      stopFollowing();  // the server ends the stream now; do not let EventSource reconnect
      showOutcome(callback, outcome);
      return;
    }
    const state = typeof callback.state === 'string' ? callback.state : 'created';
    if (state === 'bridged') {
      if (run.bridgedAt === null) {
        run.bridgedAt = performance.now();
        run.limitSeconds = Number.isInteger(callback.limit_seconds) ? callback.limit_seconds : null;
        if (run.limitSeconds !== null) startCountdown();
      }
      setStatus('bridged', run.limitSeconds !== null ? 'bridged_time_left' : 'bridged');
      return;
    }
    setStatus(state, state in STRINGS.en ? state : 'created');
  }

  function showOutcome(callback, outcome) {
    // A final state without an outcome should not happen; name it after the state.
    const known = outcome !== null ? outcome
      : callback.state === 'canceled' ? 'canceled' : callback.state === 'failed' ? 'call_failed' : 'completed';
    const key = OUTCOMES.has(known) ? `outcome_${known}` : 'outcome_completed';
    const state = typeof callback.state === 'string' ? callback.state : 'completed';
    if (known === 'refused') {
      const message = callback.error && typeof callback.error.message === 'string' && callback.error.message !== ''
        ? callback.error.message : null;
      setStatus(state, key, { outcome: known, text: message });
      return;
    }
    setStatus(state, key, { outcome: known });
  }

  // ---- start --------------------------------------------------------------------------

  async function loadConfig() {
    try {
      const response = await fetch('/v1/public/config', { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const config = await response.json();
      if (!config || (config.mode !== 'campaign' && config.mode !== 'account')) throw new Error('bad config');
      return config;
    } catch (failure) {
      return null;
    }
  }

  async function start() {
    const browserLanguage = (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
    applyLanguage(languageFromUrl() || browserLanguage);
    for (const button of document.querySelectorAll('.languages button')) {
      button.addEventListener('click', () => chooseLanguage(button.dataset.lang));
    }
    $('caller-form').addEventListener('submit', onCallMe);
    $('friend-form').addEventListener('submit', onCall);
    $('cancel').addEventListener('click', closeDialog);
    $('friend-dialog').addEventListener('close', () => {
      // The friend's number is out of sight now: its error goes, and with it the status pointing at it.
      if (!page.fieldErrors.callee) return;
      setFieldError('callee', null);
      if (page.status.key === 'check_field') setStatus('idle', 'idle');
    });
    for (const field of FIELDS) $(field).addEventListener('input', () => setFieldError(field, null));

    const config = await loadConfig();
    page.config = config;
    if (!config) {
      setStatus('unavailable', 'unavailable');
      document.body.dataset.ready = 'false';
      return;
    }
    const account = config.mode === 'account';
    $('account-field').hidden = !account;
    $('pin-field').hidden = !account;
    applyLanguage(languageFromUrl() || (LANGUAGES.includes(config.default_language) ? config.default_language : page.lang));
    setStatus('idle', 'idle');
    $('call-me').disabled = false;
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
