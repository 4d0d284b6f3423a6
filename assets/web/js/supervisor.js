// The supervisor console (/supervisor): every seat, every ringing, connected and
// parked call, live, from the engine's supervisor socket (docs/protocol.md §2 and
// "Web pages › Supervisor page"). A parked card dragged onto a seat card (pointer
// events, with a ghost), or selected and then a seat picked (keyboard or clicks),
// is unparked to that agent.

import { Floor, Malformed } from './supervisor-floor.js';
import { requireSession, signOut } from './session.js';
import { EngineSocket } from './socket.js';
import { formatNumber } from './phone.js';

const debug = new URLSearchParams(window.location.search).get('debug') === '1';

const floor = new Floor();
const ui = {
  seats: document.querySelector('ul.seats'),
  calls: document.querySelector('ul.calls'),
  lot: document.querySelector('ul.lot'),
  notice: document.querySelector('[data-testid="notice"]'),
  noticeText: document.querySelector('.notice-text'),
  live: document.getElementById('live'),
  connection: document.querySelector('[data-testid="connection"]'),
  reconnecting: document.querySelector('[data-testid="reconnecting"]'),
  partial: document.querySelector('[data-testid="floor-partial"]'),
  seatHint: document.getElementById('seat-hint'),
};

/** The parked call picked for the keyboard (or click) unpark, or null. */
let selected = null;
/** The call whose transfer picker is open, or null. */
let pickerFor = null;
/** The pointer drag under way, or null. */
let drag = null;
/** The call listened to, and the audio playback it goes to. */
let listening = null;
let playback = null;
let socket = null;

// ---- helpers -------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role' || key === 'tabindex' || key === 'type' || key === 'title') {
      node.setAttribute(key, value === true ? '' : String(value));
    } else node[key] = value;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function phone(number) {
  if (!number) return 'unknown number';
  try {
    return formatNumber(number) || number;
  } catch {
    return number;
  }
}

function duration(sinceMs) {
  const total = Math.max(0, Math.floor((Date.now() - sinceMs) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

function announce(text) {
  // Clearing first makes a repeated message be read again.
  ui.live.textContent = '';
  window.setTimeout(() => {
    ui.live.textContent = text;
  }, 30);
}

let noticeTimer = null;
function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
  window.clearTimeout(noticeTimer);
  noticeTimer = window.setTimeout(hideNotice, 15000);
}
function hideNotice() {
  ui.notice.hidden = true;
  ui.noticeText.textContent = '';
}

function send(message) {
  if (!socket || !socket.send(message)) {
    showNotice('Not connected to the engine: try again once the console has reconnected.');
    return false;
  }
  return true;
}

// Keeps `list`'s children as the elements for `items`, in order, reusing the
// element of each key (so focus, a drag and an open picker survive updates).
function syncList(list, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  const wanted = new Set();
  items.forEach((item, index) => {
    const key = keyOf(item);
    wanted.add(key);
    let node = existing.get(key);
    if (!node) {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const at = list.children[index];
    if (at !== node) list.insertBefore(node, at ?? null);
  });
  for (const [key, node] of existing) if (!wanted.has(key)) node.remove();
}

function setText(node, selector, text) {
  const target = node.querySelector(selector);
  if (target && target.textContent !== text) target.textContent = text;
}

function presenceLabel(presence) {
  return { available: 'available', away: 'away', busy: 'on a call', wrap_up: 'wrap-up' }[presence] ?? presence;
}

function statusLabel(call) {
  switch (call.status) {
    case 'ringing':
      return call.ringing.length > 0 ? `ringing ${call.ringing.length} seat${call.ringing.length === 1 ? '' : 's'}` : 'ringing';
    case 'connected':
      return `with ${floor.seatName(call.agent_id) ?? 'an agent'}`;
    case 'consulting':
      return `warm transfer (${floor.seatName(call.agent_id) ?? 'an agent'})`;
    case 'starting':
      return 'starting';
    default:
      return call.status;
  }
}

// ---- seats ---------------------------------------------------------------

function createSeat() {
  const card = el(
    'li',
    { class: 'card seat-card', 'data-testid': 'seat-card', tabindex: '0' },
    el('div', { class: 'card-head' }, el('span', { class: 'name' }), el('span', { class: 'presence', 'data-testid': 'presence-status' })),
    el('div', { class: 'workspace' }),
    el('div', { class: 'seat-call' }, el('span', { class: 'seat-call-text' }), el('span', { class: 'timer', 'data-testid': 'call-timer' })),
  );
  card.addEventListener('click', () => seatChosen(card));
  card.addEventListener('keydown', (event) => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target === card) {
      event.preventDefault();
      seatChosen(card);
    }
  });
  return card;
}

function updateSeat(card, seat) {
  card.dataset.agentId = seat.agent_id;
  card.dataset.presence = seat.presence;
  card.dataset.workspace = seat.workspace;
  const name = seat.name ?? floor.seatName(seat.agent_id);
  setText(card, '.name', name);
  setText(card, '.presence', presenceLabel(seat.presence));
  setText(card, '.workspace', seat.workspace);
  const call = floor.seatCall(seat);
  const timer = card.querySelector('.timer');
  if (call) {
    card.dataset.callId = call.call_id;
    setText(card, '.seat-call-text', `${call.status === 'connected' ? 'On a call with' : 'Call from'} ${phone(call.from)}`);
    timer.dataset.since = String(call.since);
    timer.textContent = duration(call.since);
    timer.hidden = false;
  } else {
    delete card.dataset.callId;
    setText(card, '.seat-call-text', seat.call_id ? 'On a call' : 'No call');
    delete timer.dataset.since;
    timer.textContent = '';
    timer.hidden = true;
  }
  // Seats a parked call can go to: its workspace's, while one is selected or dragged.
  const picking = selected ?? (drag && drag.active ? { workspace: drag.workspace } : null);
  const target = picking && (!picking.workspace || picking.workspace === seat.workspace);
  card.classList.toggle('drop-target', Boolean(target));
  card.setAttribute(
    'aria-label',
    selected ? `Give the call from ${phone(selected.from)} to ${name}` : `${name}, ${presenceLabel(seat.presence)}, ${call ? `call from ${phone(call.from)}` : 'no call'}`,
  );
}

function seatChosen(card) {
  if (!selected) return;
  const call = selected;
  clearSelection();
  unpark(call.call_id, card.dataset.agentId);
}

function unpark(callId, agentId) {
  if (send({ type: 'unpark', call_id: callId, agent_id: agentId })) {
    announce(`Giving the parked call to ${floor.seatName(agentId)}.`);
  }
}

// ---- calls and the lot -----------------------------------------------------

function button(testid, label, onClick, extra = {}) {
  const node = el('button', { type: 'button', 'data-testid': testid, class: `btn ${testid}`, text: label, ...extra });
  node.addEventListener('click', (event) => {
    event.stopPropagation();
    onClick(node);
  });
  return node;
}

function cardActions(card, { park }) {
  const id = () => card.dataset.callId;
  const actions = el('div', { class: 'actions' });
  actions.append(
    button('listen', 'Listen', () => toggleListen(id()), { 'aria-pressed': 'false' }),
  );
  if (park) {
    actions.append(button('park', 'Park', () => send({ type: 'park', call_id: id() })));
  }
  actions.append(
    button('seat-transfer', 'Transfer…', () => openPicker(id()), { 'aria-expanded': 'false' }),
    button('seat-hangup', 'Hang up', () => {
      if (send({ type: 'hangup', call_id: id() })) announce('Hanging up the call.');
    }),
  );
  return actions;
}

function createCall(call) {
  const card = el(
    'li',
    { class: 'card call-card', 'data-testid': 'call-card' },
    el('div', { class: 'card-head' }, el('span', { class: 'from' }), el('span', { class: 'timer', 'data-testid': 'call-timer' })),
    el('div', { class: 'to' }),
    el('div', { class: 'call-status' }),
  );
  card.dataset.callId = call.call_id;
  card.append(cardActions(card, { park: true }), el('div', { class: 'picker-slot' }));
  return card;
}

function updateCall(card, call) {
  card.dataset.callId = call.call_id;
  card.dataset.status = call.status;
  card.dataset.workspace = call.workspace;
  card.dataset.agentId = call.agent_id ?? '';
  setText(card, '.from', phone(call.from));
  setText(card, '.to', `to ${phone(call.to)} · ${call.workspace}`);
  setText(card, '.call-status', statusLabel(call));
  const timer = card.querySelector('.timer');
  timer.dataset.since = String(call.since);
  timer.textContent = duration(call.since);
  const park = card.querySelector('[data-testid="park"]');
  if (park) park.disabled = call.status !== 'connected';
  updateCommon(card, call.call_id, call.workspace, call.agent_id);
}

function createParked(entry) {
  const card = el(
    'li',
    { class: 'card parked-card', 'data-testid': 'parked-card', tabindex: '0', role: 'button', 'aria-pressed': 'false' },
    el('div', { class: 'card-head' }, el('span', { class: 'slot' }), el('span', { class: 'from' }), el('span', { class: 'timer', 'data-testid': 'call-timer' })),
    el('div', { class: 'to' }),
    el('div', { class: 'parked-by' }),
  );
  card.dataset.callId = entry.call_id;
  card.append(cardActions(card, { park: false }), el('div', { class: 'picker-slot' }));
  card.addEventListener('pointerdown', pointerDown);
  card.addEventListener('keydown', (event) => {
    if (event.target !== card) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      toggleSelection(card.dataset.callId);
    }
  });
  return card;
}

function updateParked(card, entry) {
  card.dataset.callId = entry.call_id;
  card.dataset.workspace = entry.workspace ?? '';
  setText(card, '.slot', entry.slot !== null && entry.slot !== undefined ? `#${entry.slot}` : '#?');
  setText(card, '.from', phone(entry.from));
  setText(card, '.to', `to ${phone(entry.to)}${entry.workspace ? ` · ${entry.workspace}` : ''}`);
  const by = entry.parked_by_name ?? (entry.parked_by ? floor.seatName(entry.parked_by) : null);
  setText(card, '.parked-by', by ? `parked by ${by}` : entry.reason === 'supervisor' ? 'parked by a supervisor' : 'parked');
  const timer = card.querySelector('.timer');
  timer.dataset.since = String(entry.parked_at);
  timer.textContent = duration(entry.parked_at);
  const isSelected = selected && selected.call_id === entry.call_id;
  card.classList.toggle('selected', Boolean(isSelected));
  card.setAttribute('aria-pressed', isSelected ? 'true' : 'false');
  card.setAttribute('aria-label', `Parked call from ${phone(entry.from)}, slot ${entry.slot ?? 'unknown'}${by ? `, parked by ${by}` : ''}. Drag onto a seat, or press Enter and then pick a seat.`);
  updateCommon(card, entry.call_id, entry.workspace, null);
}

// What call and parked cards share: the Listen state and the transfer picker.
function updateCommon(card, callId, workspace, agentId) {
  const listen = card.querySelector('[data-testid="listen"]');
  const on = listening === callId;
  listen.setAttribute('aria-pressed', on ? 'true' : 'false');
  listen.textContent = on ? 'Stop listening' : 'Listen';
  card.classList.toggle('listening', on);
  const transfer = card.querySelector('[data-testid="seat-transfer"]');
  transfer.setAttribute('aria-expanded', pickerFor === callId ? 'true' : 'false');
  const slot = card.querySelector('.picker-slot');
  if (pickerFor !== callId) {
    slot.replaceChildren();
    return;
  }
  const targets = floor
    .seatList()
    .filter((seat) => seat.agent_id !== agentId && (!workspace || seat.workspace === workspace));
  const signature = targets.map((seat) => `${seat.agent_id}:${seat.presence}:${seat.name}`).join('|');
  if (slot.dataset.signature === signature && slot.firstChild) return;
  slot.dataset.signature = signature;
  const picker = el('div', { class: 'picker', role: 'group', 'aria-label': 'Transfer to' }, el('p', { class: 'picker-title', text: 'Transfer to:' }));
  for (const seat of targets) {
    picker.append(
      button('transfer-target', `${seat.name ?? floor.seatName(seat.agent_id)} (${presenceLabel(seat.presence)})`, () => {
        closePicker();
        if (send({ type: 'transfer', call_id: callId, agent_id: seat.agent_id })) {
          announce(`Transferring the call to ${floor.seatName(seat.agent_id)}.`);
        }
      }, { 'data-agent-id': seat.agent_id }),
    );
  }
  if (targets.length === 0) picker.append(el('p', { class: 'empty', text: 'No other agent of this workspace is connected.' }));
  picker.append(button('transfer-cancel', 'Cancel', () => closePicker()));
  const focusedInside = slot.contains(document.activeElement);
  slot.replaceChildren(picker);
  if (focusedInside || !slot.dataset.opened) {
    slot.dataset.opened = '1';
    picker.querySelector('button')?.focus();
  }
}

function openPicker(callId) {
  pickerFor = pickerFor === callId ? null : callId;
  for (const slot of document.querySelectorAll('.picker-slot')) {
    delete slot.dataset.signature;
    delete slot.dataset.opened;
  }
  render();
}

function closePicker() {
  const callId = pickerFor;
  pickerFor = null;
  render();
  const card = callId && findCard(callId);
  card?.querySelector('[data-testid="seat-transfer"]')?.focus();
}

function findCard(callId) {
  for (const card of document.querySelectorAll('[data-testid="call-card"], [data-testid="parked-card"]')) {
    if (card.dataset.callId === callId) return card;
  }
  return null;
}

// ---- selection (keyboard / click alternative to the drag) ------------------

function toggleSelection(callId) {
  if (selected && selected.call_id === callId) {
    clearSelection();
    announce('Selection cleared.');
    return;
  }
  const entry = floor.lot.get(callId);
  if (!entry) return;
  selected = entry;
  ui.seatHint.hidden = false;
  render();
  announce(`Call from ${phone(entry.from)} selected. Pick a seat to give it to; Escape cancels.`);
  const first = ui.seats.querySelector('.drop-target') ?? ui.seats.querySelector('[data-testid="seat-card"]');
  first?.focus();
}

function clearSelection() {
  selected = null;
  ui.seatHint.hidden = true;
  render();
}

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  if (drag) cancelDrag();
  else if (pickerFor) closePicker();
  else if (selected) {
    const callId = selected.call_id;
    clearSelection();
    findCard(callId)?.focus();
    announce('Selection cleared.');
  }
});

// ---- pointer drag ----------------------------------------------------------

const DRAG_THRESHOLD = 5;

function pointerDown(event) {
  if (event.button !== 0 || drag) return;
  if (event.target.closest('button, .picker')) return;
  const card = event.currentTarget;
  const box = card.getBoundingClientRect();
  drag = {
    callId: card.dataset.callId,
    workspace: card.dataset.workspace,
    card,
    pointerId: event.pointerId,
    startX: event.clientX,
    startY: event.clientY,
    offsetX: event.clientX - box.left,
    offsetY: event.clientY - box.top,
    width: box.width,
    active: false,
    ghost: null,
    over: null,
  };
  try {
    card.setPointerCapture(event.pointerId);
  } catch {
    // Capture is a nicety: the document listeners below see the pointer anyway.
  }
  event.preventDefault();
}

function seatAt(x, y) {
  const hit = document.elementFromPoint(x, y);
  return hit ? hit.closest('[data-testid="seat-card"]') : null;
}

function pointerMove(event) {
  if (!drag || event.pointerId !== drag.pointerId) return;
  const dx = event.clientX - drag.startX;
  const dy = event.clientY - drag.startY;
  if (!drag.active) {
    if (Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    startDrag();
  }
  drag.ghost.style.transform = `translate(${event.clientX - drag.offsetX}px, ${event.clientY - drag.offsetY}px)`;
  const seat = seatAt(event.clientX, event.clientY);
  if (seat !== drag.over) {
    drag.over?.classList.remove('drop-over');
    drag.over = seat;
    seat?.classList.add('drop-over');
  }
  event.preventDefault();
}

function startDrag() {
  drag.active = true;
  const ghost = drag.card.cloneNode(true);
  // The ghost is a picture of the card, not a card: no ids, no controls.
  ghost.removeAttribute('data-testid');
  ghost.removeAttribute('data-call-id');
  ghost.removeAttribute('tabindex');
  ghost.removeAttribute('role');
  ghost.setAttribute('aria-hidden', 'true');
  for (const node of ghost.querySelectorAll('[data-testid]')) node.removeAttribute('data-testid');
  ghost.querySelector('.actions')?.remove();
  ghost.querySelector('.picker-slot')?.remove();
  ghost.classList.add('drag-ghost');
  ghost.style.width = `${drag.width}px`;
  document.body.append(ghost);
  drag.ghost = ghost;
  drag.card.classList.add('dragging');
  document.body.classList.add('drag-active');
  render();
}

function pointerUp(event) {
  if (!drag || event.pointerId !== drag.pointerId) return;
  const { active, callId } = drag;
  const seat = active ? seatAt(event.clientX, event.clientY) : null;
  endDrag();
  if (!active) {
    // A click, not a drag: select the card (then pick a seat).
    toggleSelection(callId);
  } else if (seat) {
    unpark(callId, seat.dataset.agentId);
  }
}

function cancelDrag() {
  endDrag();
}

function endDrag() {
  if (!drag) return;
  drag.ghost?.remove();
  drag.over?.classList.remove('drop-over');
  drag.card.classList.remove('dragging');
  try {
    drag.card.releasePointerCapture(drag.pointerId);
  } catch {
    // Already released.
  }
  document.body.classList.remove('drag-active');
  drag = null;
  render();
}

document.addEventListener('pointermove', pointerMove);
document.addEventListener('pointerup', pointerUp);
document.addEventListener('pointercancel', (event) => {
  if (drag && event.pointerId === drag.pointerId) cancelDrag();
});

// ---- Listen ----------------------------------------------------------------

async function toggleListen(callId) {
  if (listening === callId) {
    // The engine stops sending this call's mix (docs/protocol.md §2 `unlisten`).
    send({ type: 'unlisten', call_id: callId });
    listening = null;
    stopPlayback();
    announce('Stopped listening.');
    render();
    return;
  }
  try {
    if (!playback) playback = await startPlayback();
  } catch (error) {
    console.warn('supervisor: no audio playback', error);
    showNotice(`Cannot play audio in this browser: ${error.message ?? error}`);
    return;
  }
  // One call at a time: the one listened to so far is let go first.
  if (listening) send({ type: 'unlisten', call_id: listening });
  if (send({ type: 'listen', call_id: callId })) {
    listening = callId;
    announce('Listening to the call.');
    render();
  }
}

// Playback only (no microphone) through the shared audio module, loaded when
// first needed so the rest of the console works without it.
async function startPlayback() {
  const { CallAudio } = await import('./audio/index.js');
  const audio = new CallAudio();
  await audio.startPlayback();
  return audio;
}

function stopPlayback() {
  if (playback) {
    try {
      playback.close();
    } catch (error) {
      console.warn('supervisor: closing playback', error);
    }
  }
  playback = null;
}

function onAudio(data) {
  if (listening && playback) playback.receive(data);
}

if (debug) {
  window.switchboardDebug = {
    playbackLevel: () => (playback ? playback.playbackLevel() : 0),
  };
}

// ---- the socket ------------------------------------------------------------

// Why the floor shown may miss part of the cluster (cluster mode), in words.
function coverageText(reasons) {
  const said = reasons.map((reason) => {
    if (reason === 'redis-unreachable') return "Redis is unreachable: calls ring this node's agents only";
    if (reason.startsWith('node-unlinked:')) return `node ${reason.slice('node-unlinked:'.length)} is not linked: its agents and calls are missing`;
    return reason;
  });
  return `Partial floor — ${said.join('; ') || 'part of the cluster is missing'}`;
}

function render() {
  ui.partial.hidden = !floor.coverage.partial;
  ui.partial.textContent = floor.coverage.partial ? coverageText(floor.coverage.reasons) : '';
  syncList(ui.seats, floor.seatList(), (seat) => seat.agent_id, createSeat, updateSeat);
  syncList(ui.calls, floor.liveCalls(), (call) => call.call_id, createCall, updateCall);
  const parked = floor.parked();
  syncList(ui.lot, parked, (entry) => entry.call_id, createParked, updateParked);
  if (drag && !floor.lot.has(drag.callId)) cancelDrag();
  if (selected && !floor.lot.has(selected.call_id)) {
    selected = null;
    ui.seatHint.hidden = true;
  }
  if (pickerFor && !floor.calls.has(pickerFor) && !floor.lot.has(pickerFor)) pickerFor = null;
  for (const [name, count] of [['seats', floor.seats.size], ['calls', floor.liveCalls().length], ['lot', parked.length]]) {
    document.querySelector(`[data-count="${name}"]`).textContent = String(count);
    document.querySelector(`[data-empty="${name}"]`).hidden = count > 0;
  }
}

function onMessage(message) {
  if (message.type === 'ack') {
    if (message.command === 'unpark') announce('The parked call was given to the agent.');
    return;
  }
  if (message.type === 'error') {
    const text = typeof message.message === 'string' && message.message ? message.message : 'The engine refused the command.';
    showNotice(`${text}${typeof message.code === 'string' ? ` (${message.code})` : ''}`);
    return;
  }
  const before = new Set(floor.lot.keys());
  let changed;
  try {
    changed = floor.apply(message);
  } catch (error) {
    if (error instanceof Malformed) {
      console.warn('supervisor: ignored a malformed message', error.message, message);
      return;
    }
    throw error;
  }
  if (!changed) {
    console.warn('supervisor: ignored an unknown message', message);
    return;
  }
  if (message.type === 'call_ended' && listening === message.call_id) {
    listening = null;
    stopPlayback();
    announce('The call you listened to ended.');
  }
  if (message.type === 'snapshot') {
    // A fresh floor: what was listened to is no longer sent.
    if (listening && !floor.calls.has(listening)) {
      listening = null;
      stopPlayback();
    }
  } else if (message.type === 'parked' && !before.has(message.call_id)) {
    announce(`Call parked in slot ${message.slot ?? ''}.`);
  }
  render();
}

// The socket's status: connecting | open | reconnecting | closed.
function setConnected(status) {
  ui.reconnecting.hidden = status !== 'reconnecting';
  ui.connection.dataset.state = status;
  ui.connection.textContent = { connecting: 'Connecting…', open: 'Live', reconnecting: 'Offline', closed: 'Closed' }[status] ?? status;
}

function tick() {
  for (const timer of document.querySelectorAll('.timer[data-since]')) {
    const since = Number(timer.dataset.since);
    if (Number.isFinite(since)) timer.textContent = duration(since);
  }
}

async function main() {
  document.querySelector('.notice-close').addEventListener('click', hideNotice);
  document.querySelector('[data-testid="sign-out"]').addEventListener('click', () => signOut());
  const session = await requireSession('admin');
  if (!session) return;
  setConnected('connecting');
  socket = new EngineSocket('/ws/supervisor', session.token, {
    onStatus: setConnected,
    onBinary: onAudio,
  });
  // Every type comes to one place: the floor model knows which it takes.
  socket.on('*', onMessage);
  window.setInterval(tick, 1000);
  render();
}

main();
