// The agent softphone page (/agent): presence, ringing cards, the connected call,
// transfers, DTMF, the parking lot and the team roster, over the softphone socket
// (docs/protocol.md §1). Audio goes through the shared audio module; the socket's
// reconnection with backoff is the shared js/socket.js.

import { requireSession, signOut } from './session.js';
import { EngineSocket } from './socket.js';
import { formatNumber } from './phone.js';

const debug = new URLSearchParams(location.search).get('debug') === '1';
const $ = (id) => document.getElementById(id);

/** Short words for why a ring stopped (ring_cancel.reason). */
const RING_REASONS = {
  answered_elsewhere: 'answered by another agent',
  caller_hangup: 'caller hung up',
  timeout: 'no answer in time',
  declined: 'declined',
  busy: 'you took another call',
};
const END_REASONS = {
  agent_hangup: 'you hung up',
  caller_hangup: 'the caller hung up',
  supervisor_hangup: 'a supervisor hung up',
  stream_closed: 'the line dropped',
};
/** How long a card that stopped ringing stays to show why. */
const GONE_MS = 5000;

const state = {
  me: null,
  presence: 'away',
  wrapUntil: null,
  /** call_id -> { msg, el, pending, gone } */
  rings: new Map(),
  /** { call_id, from, to, since, muted, transfer } */
  call: null,
  /** What call-state shows with no call and no ring: idle | parked | ended. */
  rest: 'idle',
  /** Why the last call ended, in words, shown while `rest` is `ended`. */
  endedText: null,
  /** call_id -> parked call (parking / parked / state messages) */
  lot: new Map(),
  roster: [],
  transferOpen: false,
};

let socket = null;
let audio = null;

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'onclick') node.addEventListener('click', value);
    else if (key.startsWith('data') || key.startsWith('aria') || key === 'type' || key === 'role' || key === 'class' || key === 'title') {
      node.setAttribute(key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()), value === true ? '' : String(value));
    } else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function pretty(number) {
  if (!number) return 'unknown';
  return formatNumber(number) || number;
}

function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function agentName(agentId) {
  if (!agentId) return null;
  if (state.me && agentId === state.me.agent_id) return 'you';
  const seat = state.roster.find((a) => a.agent_id === agentId);
  return seat ? seat.name : null;
}

let noticeTimer = null;
function notice(text, kind = 'info', sticky = false) {
  const box = $('notice');
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

function send(message) {
  if (!socket) return;
  socket.send(message);
}

function isString(v) {
  return typeof v === 'string' && v.length > 0;
}

// ---------------------------------------------------------------- ring tone

/** A ring generated with oscillators (440 + 480 Hz, 2 s on, 4 s off), no file. */
const ringer = {
  ctx: null,
  timer: null,
  playing: false,
  context() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      this.ctx = new Ctx();
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return this.ctx;
  },
  burst() {
    const ctx = this.context();
    if (!ctx) return;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const t = ctx.currentTime;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.12, t + 0.05);
    gain.gain.setValueAtTime(0.12, t + 1.95);
    gain.gain.linearRampToValueAtTime(0, t + 2);
    for (const f of [440, 480]) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(t);
      osc.stop(t + 2);
    }
  },
  start() {
    if (this.playing) return;
    this.playing = true;
    this.burst();
    this.timer = setInterval(() => this.burst(), 6000);
  },
  stop() {
    this.playing = false;
    clearInterval(this.timer);
    this.timer = null;
  },
};

// ------------------------------------------------------------- notifications

const NOTIFY_ASKED = 'switchboard.notifyAsked';
/** Asks for notification permission once (on the first user gesture). */
function askNotificationOnce() {
  if (!('Notification' in window) || Notification.permission !== 'default') return;
  try {
    if (localStorage.getItem(NOTIFY_ASKED)) return;
    localStorage.setItem(NOTIFY_ASKED, '1');
  } catch {
    // storage refused: ask anyway, once per page
  }
  Notification.requestPermission().catch(() => {});
}

function notifyRing(msg) {
  if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification('Incoming call', {
      body: `${pretty(msg.from)} → ${pretty(msg.to)}`,
      tag: `ring-${msg.call_id}`,
    });
    n.onclick = () => { window.focus(); focusFirstAnswer(); n.close(); };
  } catch {
    // some platforms refuse page notifications; the ring and the card remain
  }
}

// --------------------------------------------------------------- rendering

function renderCallState() {
  const node = $('call-state');
  let s = state.rest;
  let text = { idle: 'No call', parked: 'Your call is parked', ended: state.endedText || 'Call ended' }[s];
  if (state.call) {
    s = 'connected';
    text = `On a call with ${pretty(state.call.from)}`;
  } else if ([...state.rings.values()].some((r) => !r.gone)) {
    s = 'ringing';
    text = 'Ringing';
  }
  node.dataset.state = s;
  node.textContent = text;
}

function renderPresence() {
  const select = $('presence');
  const status = $('presence-status');
  const p = state.call ? 'busy' : state.presence;
  status.dataset.status = p;
  if (p === 'wrap_up' && state.wrapUntil) {
    status.textContent = `wrap-up ${duration(state.wrapUntil - Date.now())}`;
  } else {
    status.textContent = p.replace('_', '-');
  }
  if (state.presence === 'available' || state.presence === 'away') select.value = state.presence;
}

function ringCard(msg) {
  const lines = [];
  if (msg.consult) lines.push('Warm transfer: talk to your colleague first');
  if (isString(msg.transferred_by)) {
    lines.push(`Transferred by ${agentName(msg.transferred_by) || 'another agent'}`);
  }
  if (isString(msg.summary)) lines.push(`AI summary: ${msg.summary}`);
  const answer = el('button', {
    type: 'button', class: 'primary', dataTestid: 'answer', ariaKeyshortcuts: 'a',
    text: 'Answer', onclick: () => answerCall(msg.call_id),
  });
  const decline = el('button', {
    type: 'button', dataTestid: 'decline', ariaKeyshortcuts: 'd',
    text: 'Decline', onclick: () => declineCall(msg.call_id),
  });
  const card = el('article', {
    class: 'card ring', dataTestid: 'ring-card', dataCallId: msg.call_id,
    ariaLabel: `Incoming call from ${pretty(msg.from)}`,
  },
  el('div', { class: 'caller', text: pretty(msg.from) }),
  el('div', { class: 'muted', text: `to ${pretty(msg.to)}` }),
  ...lines.map((line) => el('div', { class: 'extra', text: line })),
  el('div', { class: 'reason', dataTestid: 'ring-reason', hidden: true }),
  el('div', { class: 'actions' }, answer, decline));
  return card;
}

function renderRingsEmpty() {
  $('no-rings').hidden = state.rings.size > 0;
  if (![...state.rings.values()].some((r) => !r.gone)) ringer.stop();
}

function removeRing(callId) {
  const ring = state.rings.get(callId);
  if (!ring) return;
  ring.el.remove();
  clearTimeout(ring.goneTimer);
  state.rings.delete(callId);
  renderRingsEmpty();
}

/** A card that stopped ringing shows why, then goes away. */
function ringGone(callId, reason) {
  const ring = state.rings.get(callId);
  if (!ring) return;
  ring.gone = true;
  ring.el.classList.add('gone');
  const why = ring.el.querySelector('[data-testid="ring-reason"]');
  why.textContent = reason;
  why.hidden = false;
  for (const b of ring.el.querySelectorAll('button')) b.disabled = true;
  clearTimeout(ring.goneTimer);
  ring.goneTimer = setTimeout(() => removeRing(callId), GONE_MS);
  renderRingsEmpty();
  renderCallState();
}

function renderCall() {
  const call = state.call;
  $('call').hidden = !call;
  if (!call) {
    state.transferOpen = false;
    renderTransfer();
    return;
  }
  $('call-from').textContent = pretty(call.from);
  $('call-to').textContent = call.to ? `called ${pretty(call.to)}` : '';
  $('call-timer').textContent = duration(Date.now() - call.since);
  $('mute').setAttribute('aria-pressed', String(call.muted));
  $('mute').textContent = call.muted ? 'Unmute' : 'Mute';
  const consulting = call.transfer && call.transfer.mode === 'warm';
  $('consult').hidden = !consulting;
  if (consulting) {
    const who = agentName(call.transfer.agent_id) || 'the other agent';
    $('consult-text').textContent = call.transfer.status === 'consulting'
      ? `Talking with ${who}` : `Ringing ${who}…`;
    $('transfer-complete').disabled = call.transfer.status !== 'consulting';
  }
  renderTransfer();
}

function renderTransfer() {
  const panel = $('transfer-panel');
  panel.hidden = !state.transferOpen;
  $('transfer').setAttribute('aria-expanded', String(state.transferOpen));
  const list = $('transfer-targets');
  list.replaceChildren();
  const others = state.roster.filter((a) => !state.me || a.agent_id !== state.me.agent_id);
  for (const agent of others) {
    const free = agent.presence === 'available' && !agent.on_call;
    list.append(el('li', {},
      el('button', {
        type: 'button', class: 'target', dataTestid: 'transfer-target', dataAgentId: agent.agent_id,
        disabled: !free, title: free ? '' : `${agent.name} is ${agent.on_call ? 'on a call' : agent.presence}`,
        text: `${agent.name} (${agent.on_call ? 'on a call' : agent.presence.replace('_', '-')})`,
        onclick: () => transferTo(agent.agent_id),
      })));
  }
  $('transfer-empty').hidden = others.length > 0;
}

function renderLot() {
  const lot = $('lot');
  const items = [...state.lot.values()].sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
  // Keep existing cards (and their focus) when possible.
  const keep = new Map([...lot.querySelectorAll('[data-testid="parked-card"]')].map((n) => [n.dataset.callId, n]));
  for (const [id, node] of keep) if (!state.lot.has(id)) node.remove();
  items.forEach((p, index) => {
    let card = keep.get(p.call_id);
    if (!card) {
      const retrieveButton = el('button', {
        type: 'button', class: 'primary', dataTestid: 'retrieve', text: 'Retrieve',
        onclick: () => retrieve(p.call_id),
      });
      card = el('article', { class: 'card parked', dataTestid: 'parked-card', dataCallId: p.call_id },
        el('div', { class: 'slot' }),
        el('div', { class: 'caller' }),
        el('div', { class: 'muted by' }),
        el('div', { class: 'muted since' }),
        el('div', { class: 'actions' }, retrieveButton));
    }
    // Move a card only when its place changes: re-inserting a node under the
    // pointer would swallow a click on it.
    if (lot.children[index] !== card) lot.insertBefore(card, lot.children[index] || null);
    card.classList.toggle('mine', !!p.mine);
    card.querySelector('.slot').textContent = p.slot != null ? `Slot ${p.slot}` : 'Parked';
    card.querySelector('.caller').textContent = pretty(p.from);
    card.setAttribute('aria-label', `Parked call from ${pretty(p.from)}`);
    const by = p.mine ? 'you (your line dropped)' : (p.parked_by_name || agentName(p.parked_by) || (p.reason === 'supervisor' ? 'a supervisor' : 'someone'));
    card.querySelector('.by').textContent = `parked by ${by}`;
    card.querySelector('.since').textContent = p.since ? `for ${duration(Date.now() - p.since)}` : '';
    card.querySelector('[data-testid="retrieve"]').disabled = !!state.call;
  });
  $('lot-empty').hidden = items.length > 0;
}

function renderRoster() {
  const list = $('roster');
  list.replaceChildren();
  for (const agent of state.roster) {
    const me = state.me && agent.agent_id === state.me.agent_id;
    const p = agent.on_call ? 'busy' : agent.presence;
    list.append(el('li', { dataAgentId: agent.agent_id },
      el('span', { text: me ? `${agent.name} (you)` : agent.name }),
      el('span', { class: 'status', dataStatus: p, text: p.replace('_', '-') })));
  }
}

function renderAll() {
  renderCallState();
  renderPresence();
  renderCall();
  renderLot();
  renderRoster();
  renderRingsEmpty();
}

// --------------------------------------------------------------- actions

function answerCall(callId) {
  const ring = state.rings.get(callId);
  if (!ring || ring.gone || ring.pending) return;
  ring.pending = true;
  for (const b of ring.el.querySelectorAll('button')) b.disabled = true;
  ringer.stop();
  startMic();
  send({ type: 'answer', call_id: callId });
}

function declineCall(callId) {
  const ring = state.rings.get(callId);
  if (!ring || ring.gone) return;
  send({ type: 'decline', call_id: callId });
}

function hangup() {
  if (state.call) send({ type: 'hangup', call_id: state.call.call_id });
}

function toggleMute() {
  if (!state.call) return;
  state.call.muted = !state.call.muted;
  if (audio && audio.setMuted) audio.setMuted(state.call.muted);
  renderCall();
}

function park() {
  if (state.call) send({ type: 'park', call_id: state.call.call_id });
}

function retrieve(callId) {
  if (state.call) {
    notice('Hang up or park your call before retrieving another.', 'warn');
    return;
  }
  startMic();
  send({ type: 'unpark', call_id: callId });
}

function transferTo(agentId) {
  if (!state.call) return;
  const mode = $('transfer-mode').value === 'warm' ? 'warm' : 'blind';
  send({ type: 'transfer', call_id: state.call.call_id, agent_id: agentId, mode });
  state.call.transfer = { agent_id: agentId, mode, status: 'requested' };
  state.transferOpen = false;
  renderCall();
}

function dtmf(digit) {
  if (!state.call) return;
  send({ type: 'dtmf', call_id: state.call.call_id, digits: digit });
}

function focusFirstAnswer() {
  const button = document.querySelector('[data-testid="ring-card"]:not(.gone) [data-testid="answer"]:not([disabled])');
  if (button) button.focus();
  return button;
}

function firstRinging() {
  for (const [id, ring] of state.rings) if (!ring.gone && !ring.pending) return id;
  return null;
}

// --------------------------------------------------------------- engine messages

const handlers = {
  welcome(msg) {
    state.me = { agent_id: msg.agent_id, name: msg.name, workspace: msg.workspace };
    if (isString(msg.presence)) state.presence = msg.presence;
    $('me-name').textContent = msg.name || 'Softphone';
    $('me-workspace').textContent = msg.workspace || '';
    renderAll();
  },
  roster(msg) {
    if (!Array.isArray(msg.agents)) throw new Error('roster without agents');
    state.roster = msg.agents.filter((a) => a && isString(a.agent_id)).map((a) => ({
      agent_id: a.agent_id,
      name: isString(a.name) ? a.name : a.agent_id,
      presence: isString(a.presence) ? a.presence : 'away',
      on_call: !!a.on_call,
    }));
    renderRoster();
    renderTransfer();
    renderLot();
  },
  parking(msg) {
    if (!Array.isArray(msg.calls)) throw new Error('parking without calls');
    const mine = new Map([...state.lot].filter(([, p]) => p.mine));
    state.lot.clear();
    for (const c of msg.calls) addParked(c, mine.has(c.call_id));
    renderLot();
  },
  parked(msg) {
    requireCallId(msg);
    addParked(msg, false);
    if (state.call && state.call.call_id === msg.call_id) endCall('parked');
    renderAll();
  },
  unparked(msg) {
    requireCallId(msg);
    state.lot.delete(msg.call_id);
    renderLot();
  },
  state(msg) {
    if (!Array.isArray(msg.calls)) throw new Error('state without calls');
    for (const c of msg.calls) {
      if (c && c.status === 'parked') addParked(c, true);
    }
    if (msg.calls.length) {
      state.rest = 'parked';
      const c = msg.calls[0];
      notice(`Your call with ${pretty(c.from)} is parked: Retrieve to pick it up.`, 'warn', true);
      const button = document.querySelector(`[data-testid="parked-card"][data-call-id="${CSS.escape(c.call_id)}"] [data-testid="retrieve"]`);
      if (button) button.focus();
    }
    renderAll();
  },
  presence(msg) {
    if (!isString(msg.status)) throw new Error('presence without status');
    state.presence = msg.status;
    state.wrapUntil = msg.status === 'wrap_up' && msg.until ? Date.parse(msg.until) || null : null;
    renderPresence();
  },
  ring(msg) {
    requireCallId(msg);
    if (state.rings.has(msg.call_id)) removeRing(msg.call_id);
    const card = ringCard(msg);
    state.rings.set(msg.call_id, { msg, el: card, pending: false, gone: false });
    $('rings').append(card);
    if (state.rest === 'ended') state.rest = 'idle';
    ringer.start();
    notifyRing(msg);
    renderRingsEmpty();
    renderCallState();
  },
  ring_cancel(msg) {
    requireCallId(msg);
    const ring = state.rings.get(msg.call_id);
    if (!ring || ring.gone) return;
    // Our own answer won: `connected` removes the card, no reason to show.
    if (state.call && state.call.call_id === msg.call_id) return removeRing(msg.call_id);
    ringGone(msg.call_id, RING_REASONS[msg.reason] || String(msg.reason || 'stopped ringing').replace(/_/g, ' '));
  },
  claim_lost(msg) {
    requireCallId(msg);
    notice('another agent answered', 'warn');
    if (state.rings.has(msg.call_id)) ringGone(msg.call_id, 'another agent answered');
    renderCallState();
  },
  connected(msg) {
    requireCallId(msg);
    const ring = state.rings.get(msg.call_id);
    const parked = state.lot.get(msg.call_id);
    const from = msg.from || (ring && ring.msg.from) || (parked && parked.from);
    const to = msg.to || (ring && ring.msg.to) || (parked && parked.to);
    removeRing(msg.call_id);
    state.lot.delete(msg.call_id);
    state.call = { call_id: msg.call_id, from, to, since: Date.now(), muted: false, transfer: null };
    state.rest = 'idle';
    if (micState === 'refused') notice(MIC_REFUSED, 'warn', true);
    else $('notice').hidden = true;
    if (msg.reason === 'supervisor') notice('A supervisor gave you this call.');
    if (msg.reason === 'transfer_failed') notice('The transfer was not taken: the caller is back with you.', 'warn');
    startMic();
    if (audio && audio.setMuted) audio.setMuted(false);
    renderAll();
    $('hangup').focus();
  },
  released(msg) {
    requireCallId(msg);
    if (!state.call || state.call.call_id !== msg.call_id) return;
    const words = {
      parked: 'Call parked.',
      transferred: 'Call transferred.',
      transfer_cancelled: 'The transfer was called off.',
    };
    endCall(msg.reason === 'parked' ? 'parked' : 'idle');
    notice(words[msg.reason] || 'You left the call.');
    renderAll();
  },
  transfer_status(msg) {
    requireCallId(msg);
    if (!state.call || state.call.call_id !== msg.call_id) return;
    const t = state.call.transfer || { agent_id: msg.agent_id, mode: 'blind' };
    t.agent_id = msg.agent_id || t.agent_id;
    t.status = msg.status;
    if (msg.status === 'consulting') t.mode = 'warm';
    const who = agentName(t.agent_id) || 'the other agent';
    if (msg.status === 'cancelled' || msg.status === 'failed') {
      state.call.transfer = null;
      notice(msg.status === 'failed' ? `${who} did not answer: the caller is back with you.` : 'Transfer cancelled.', 'warn');
    } else if (msg.status === 'completed') {
      state.call.transfer = null;
    } else {
      state.call.transfer = t;
    }
    renderCall();
  },
  call_ended(msg) {
    requireCallId(msg);
    if (state.rings.has(msg.call_id)) ringGone(msg.call_id, 'caller hung up');
    if (state.call && state.call.call_id === msg.call_id) {
      endCall('ended');
      // Said twice: in the notice (which fades) and in the call's state (which
      // stays until the next call), so an agent who looks away still sees why.
      state.endedText = `Call ended: ${END_REASONS[msg.reason] || String(msg.reason || '').replace(/_/g, ' ')}.`;
      notice(state.endedText);
    }
    renderAll();
  },
  error(msg) {
    notice(`The engine refused: ${msg.message || msg.code || 'error'}`, 'error');
    // A refused answer/unpark leaves nothing pending.
    for (const ring of state.rings.values()) {
      if (ring.pending && !ring.gone) {
        ring.pending = false;
        for (const b of ring.el.querySelectorAll('button')) b.disabled = false;
      }
    }
    if (state.call && state.call.transfer && state.call.transfer.status === 'requested') {
      state.call.transfer = null;
      renderCall();
    }
  },
};

function requireCallId(msg) {
  if (!isString(msg.call_id)) throw new Error(`${msg.type} without call_id`);
}

function addParked(c, mine) {
  if (!c || !isString(c.call_id)) return;
  const old = state.lot.get(c.call_id) || {};
  const at = c.parked_at ? Date.parse(c.parked_at) : NaN;
  state.lot.set(c.call_id, {
    call_id: c.call_id,
    slot: typeof c.slot === 'number' ? c.slot : old.slot,
    from: c.from || old.from,
    to: c.to || old.to,
    parked_by: c.parked_by || old.parked_by,
    parked_by_name: c.parked_by_name || old.parked_by_name,
    reason: c.reason || old.reason,
    since: Number.isFinite(at) ? at : (old.since || Date.now()),
    mine: mine || old.mine || false,
  });
}

function endCall(rest) {
  state.call = null;
  state.rest = rest;
  stopMic();
}

function onMessage(msg) {
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
    console.warn('softphone: ignored a message without a type', msg);
    return;
  }
  const handler = Object.prototype.hasOwnProperty.call(handlers, msg.type) ? handlers[msg.type] : null;
  if (!handler) {
    console.warn('softphone: ignored an unknown message', msg.type);
    return;
  }
  try {
    handler(msg);
  } catch (err) {
    console.warn('softphone: ignored a malformed message', msg, err);
  }
}

// --------------------------------------------------------------- audio

/**
 * The call audio (shared module js/audio/, a CallAudio): while a call is
 * connected, the microphone's 160-byte μ-law frames go out as binary frames on
 * the socket and the frames the engine sends are played through the jitter
 * buffer. Mute keeps the frames flowing as μ-law silence. The page works without
 * the module or the microphone (no talking).
 */
let audioModule = null;
let micState = 'unknown';
let micWanted = false;
let micOpening = null;

/** Loads the shared audio module and makes the page's CallAudio. */
async function loadAudio() {
  try {
    audioModule = await import('./audio/index.js');
  } catch (err) {
    console.warn('softphone: audio module unavailable', err);
    return;
  }
  audio = new audioModule.CallAudio({
    // Frames go out only while connected (and the socket is up: false otherwise).
    send: (bytes) => (state.call && socket ? socket.sendBinary(bytes) : false),
  });
  const meter = $('mic-level');
  audio.onLevel = (rms) => {
    meter.value = Math.min(1, Math.sqrt(rms) * 3);
    meter.dataset.level = rms.toFixed(3);
  };
  $('audio-device').addEventListener('change', (e) => {
    audio.setInputDevice(e.target.value || undefined)
      .catch((err) => console.warn('softphone: microphone switch failed', err && err.message));
  });
}

const MIC_REFUSED = 'Microphone blocked: you can still take, park and transfer calls, but the caller '
  + 'will not hear you. Allow the microphone for this site and reload to talk.';

/** Asks for the microphone once, at start: a refusal is said, and the page goes on. */
async function openMic() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    micState = 'refused';
    notice('This browser gives the page no microphone: you can take calls but not talk.', 'warn', true);
    $('audio-device').disabled = true;
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of stream.getTracks()) track.stop();
    micState = 'granted';
    await listDevices();
  } catch (err) {
    micRefused(err && err.name);
  }
}

function micRefused(reason) {
  micState = 'refused';
  console.warn('softphone: microphone refused', reason);
  notice(MIC_REFUSED, 'warn', true);
  $('audio-device').disabled = true;
}

async function listDevices() {
  const select = $('audio-device');
  const current = select.value;
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput');
  } catch {
    return;
  }
  select.replaceChildren(el('option', { value: '', text: 'Default microphone' }),
    ...devices.filter((d) => d.deviceId && d.deviceId !== 'default')
      .map((d, i) => el('option', { value: d.deviceId, text: d.label || `Microphone ${i + 1}` })));
  select.value = current;
}

/** Starts playback and the microphone for a call (answer, retrieve, connected). */
function startMic() {
  micWanted = true;
  if (!audio || micOpening) return;
  micOpening = (async () => {
    try {
      await audio.startPlayback();
      if (micState !== 'refused' && micWanted && !audio.capture) {
        await audio.startMic($('audio-device').value || undefined);
        micState = 'granted';
      }
    } catch (err) {
      if (err && err.reason === 'denied') micRefused(err.name);
      else if (err && err.reason) notice(err.message, 'warn', true);
      else console.warn('softphone: call audio failed', err);
    } finally {
      micOpening = null;
    }
    // The call ended while the microphone opened.
    if (!micWanted) audio.stopMic();
  })();
}

/** Stops the microphone (the call ended or left the page). */
function stopMic() {
  micWanted = false;
  if (audio && !micOpening) audio.stopMic();
}

// --------------------------------------------------------------- wiring

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const t = event.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  const key = event.key.toLowerCase();
  if (key === 'a') {
    const id = firstRinging();
    if (id) { event.preventDefault(); answerCall(id); }
  } else if (key === 'd') {
    const id = firstRinging();
    if (id) { event.preventDefault(); declineCall(id); }
  } else if (key === 'h') {
    if (state.call) { event.preventDefault(); hangup(); }
  } else if (key === 'm') {
    if (state.call) { event.preventDefault(); toggleMute(); }
  }
}

function buildKeypad() {
  const pad = $('keypad');
  for (const digit of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#']) {
    pad.append(el('button', {
      type: 'button', class: 'key', dataTestid: 'dtmf-key', dataDigit: digit,
      ariaLabel: `Send ${digit}`, text: digit, onclick: () => dtmf(digit),
    }));
  }
}

function wire() {
  buildKeypad();
  $('presence').addEventListener('change', (e) => {
    const status = e.target.value === 'available' ? 'available' : 'away';
    send({ type: 'presence', status });
  });
  $('mute').addEventListener('click', toggleMute);
  $('park').addEventListener('click', park);
  $('hangup').addEventListener('click', hangup);
  $('transfer').addEventListener('click', () => {
    state.transferOpen = !state.transferOpen;
    renderTransfer();
    if (state.transferOpen) {
      const first = document.querySelector('[data-testid="transfer-target"]:not([disabled])');
      if (first) first.focus();
    }
  });
  $('transfer-complete').addEventListener('click', () => {
    if (state.call) send({ type: 'transfer_complete', call_id: state.call.call_id });
  });
  $('transfer-cancel').addEventListener('click', () => {
    if (state.call) send({ type: 'transfer_cancel', call_id: state.call.call_id });
  });
  $('sign-out').addEventListener('click', () => {
    if (socket && socket.close) socket.close();
    signOut();
  });
  document.addEventListener('keydown', onKey);
  // Browsers start audio and permission prompts only after a gesture.
  const gesture = () => {
    askNotificationOnce();
    ringer.context();
  };
  document.addEventListener('pointerdown', gesture, { once: true });
  document.addEventListener('keydown', gesture, { once: true });
  setInterval(() => {
    if (state.call) $('call-timer').textContent = duration(Date.now() - state.call.since);
    if (state.presence === 'wrap_up') renderPresence();
    if (state.lot.size) renderLot();
  }, 1000);
}

function onStatus(status) {
  if (status === 'open') {
    $('reconnecting').hidden = true;
    $('presence').disabled = false;
    // A new connection starts away (docs/protocol.md §1).
    state.presence = 'away';
    renderAll();
    return;
  }
  if (status !== 'reconnecting' && status !== 'closed') return;
  $('reconnecting').hidden = status === 'closed';
  $('presence').disabled = true;
  if (state.call) {
    endCall('idle');
    notice('Connection lost during the call: the caller is parked and will show here when the page is back.', 'warn', true);
  }
  for (const id of [...state.rings.keys()]) removeRing(id);
  renderAll();
}

async function main() {
  wire();
  const { token, session } = await requireSession('agent');
  state.me = { agent_id: session.agent_id, name: session.name, workspace: session.workspace };
  $('me-name').textContent = session.name || 'Softphone';
  $('me-workspace').textContent = session.workspace || '';
  await loadAudio();
  openMic();
  socket = new EngineSocket('/ws/agent', token, {
    onStatus,
    onBinary: (data) => { if (audio && state.call) audio.receive(data); },
  });
  socket.on('*', onMessage);
  renderAll();
}

if (debug) {
  window.switchboardDebug = {
    // RMS (0-1) of what the page played over the last 100 ms (docs/protocol.md §6).
    playbackLevel: () => (audio ? audio.playbackLevel() : 0),
    // The audio module's counters and onset timing (the benchmark).
    audioStats: () => (audio ? { ...audio.stats(), playbackOnsetWallMs: audio.playbackOnsetWallMs() } : null),
    state: () => JSON.parse(JSON.stringify({ ...state, rings: [...state.rings.keys()], lot: [...state.lot.values()] })),
    // Feeds a text frame to the page as if the engine had sent it (bad-input tests).
    receive: (text) => { if (socket) socket.receive(text); },
  };
}

main().catch((err) => {
  console.error('softphone: failed to start', err);
  notice('The softphone could not start: reload the page.', 'error', true);
});
