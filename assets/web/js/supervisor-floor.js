// The supervisor console's model of the floor: seats, live calls and the parking
// lot, built from the engine's `snapshot` and kept current by its events
// (docs/protocol.md §2). No DOM here: supervisor.js renders it.
//
// `apply(message)` returns true when the message changed the floor, false when it
// was not a floor message; it throws `Malformed` for a floor message whose fields
// are wrong, which the page logs and ignores.

export class Malformed extends Error {}

const isString = (value) => typeof value === 'string' && value.length > 0;
const optString = (value) => (typeof value === 'string' ? value : null);

function need(condition, what) {
  if (!condition) throw new Malformed(what);
}

// An RFC 3339 time as epoch milliseconds, or null.
function parseTime(value) {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

function parseSeat(raw) {
  need(raw && typeof raw === 'object', 'seat is not an object');
  need(isString(raw.agent_id), 'seat without agent_id');
  need(isString(raw.presence), 'seat without presence');
  return {
    agent_id: raw.agent_id,
    workspace: optString(raw.workspace) ?? '',
    name: optString(raw.name),
    presence: raw.presence,
    call_id: optString(raw.call_id),
  };
}

function parseCall(raw) {
  need(raw && typeof raw === 'object', 'call is not an object');
  need(isString(raw.call_id), 'call without call_id');
  need(isString(raw.status), 'call without status');
  return {
    call_id: raw.call_id,
    workspace: optString(raw.workspace) ?? '',
    status: raw.status,
    agent_id: optString(raw.agent_id),
    ringing: Array.isArray(raw.ringing) ? raw.ringing.filter(isString) : [],
    slot: Number.isInteger(raw.slot) ? raw.slot : null,
    from: optString(raw.from),
    to: optString(raw.to),
    since: parseTime(raw.since),
  };
}

function parseLot(raw) {
  need(raw && typeof raw === 'object', 'parked call is not an object');
  need(isString(raw.call_id), 'parked call without call_id');
  return {
    call_id: raw.call_id,
    workspace: optString(raw.workspace),
    slot: Number.isInteger(raw.slot) ? raw.slot : null,
    from: optString(raw.from),
    to: optString(raw.to),
    parked_by: optString(raw.parked_by),
    parked_by_name: optString(raw.parked_by_name),
    parked_at: parseTime(raw.parked_at),
    reason: optString(raw.reason),
  };
}

// Fields of `update` that are known (not null) win over `entry`'s.
function merge(entry, update) {
  const out = { ...(entry ?? {}) };
  for (const [key, value] of Object.entries(update)) {
    if (value !== null && value !== undefined) out[key] = value;
    else if (!(key in out)) out[key] = null;
  }
  return out;
}

export class Floor {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.reset();
  }

  reset() {
    /** agent_id -> seat */
    this.seats = new Map();
    /** call_id -> call (every live call, parked ones too) */
    this.calls = new Map();
    /** call_id -> parked call */
    this.lot = new Map();
    /** How much of the cluster this is (`partial`, `partial_reasons`). */
    this.coverage = { partial: false, reasons: [] };
    this.ready = false;
  }

  // The `partial` and `partial_reasons` of a snapshot or a `floor` message.
  setCoverage(message) {
    const reasons = Array.isArray(message.partial_reasons) ? message.partial_reasons.filter(isString) : [];
    this.coverage = { partial: message.partial === true, reasons };
  }

  apply(message) {
    switch (message.type) {
      case 'snapshot':
        this.snapshot(message);
        return true;
      case 'seat': {
        const seat = parseSeat(message);
        this.seats.set(seat.agent_id, merge(this.seats.get(seat.agent_id), seat));
        return true;
      }
      case 'seat_gone':
        need(isString(message.agent_id), 'seat_gone without agent_id');
        this.seats.delete(message.agent_id);
        return true;
      case 'call':
        this.upsertCall(parseCall(message));
        return true;
      case 'call_ended':
        need(isString(message.call_id), 'call_ended without call_id');
        this.calls.delete(message.call_id);
        this.lot.delete(message.call_id);
        return true;
      case 'parked': {
        const entry = parseLot(message);
        this.lot.set(entry.call_id, merge(this.lot.get(entry.call_id), entry));
        this.fillLot(entry.call_id);
        return true;
      }
      case 'unparked':
        need(isString(message.call_id), 'unparked without call_id');
        this.lot.delete(message.call_id);
        return true;
      case 'floor':
        this.setCoverage(message);
        return true;
      default:
        return false;
    }
  }

  snapshot(message) {
    need(Array.isArray(message.seats), 'snapshot without seats');
    need(Array.isArray(message.calls), 'snapshot without calls');
    const parking = Array.isArray(message.parking) ? message.parking : [];
    const seats = message.seats.map(parseSeat);
    const calls = message.calls.map(parseCall);
    const lot = parking.map(parseLot);
    // A fresh snapshot replaces everything (a reconnect's too).
    const before = this.calls;
    this.reset();
    for (const seat of seats) this.seats.set(seat.agent_id, seat);
    for (const call of calls) {
      const old = before.get(call.call_id);
      this.upsertCall(call, old);
    }
    for (const entry of lot) this.lot.set(entry.call_id, entry);
    for (const call of calls) {
      if (call.status === 'parked') this.lot.set(call.call_id, merge(this.lot.get(call.call_id), { call_id: call.call_id }));
    }
    for (const id of this.lot.keys()) this.fillLot(id);
    this.setCoverage(message);
    this.ready = true;
  }

  // A call's change: `since` is when its current status began (the engine's, or
  // the moment this page first saw the status).
  upsertCall(call, previous = this.calls.get(call.call_id)) {
    let since = call.since;
    if (since === null) {
      since = previous && previous.status === call.status ? previous.since : this.now();
    }
    const next = { ...call, since };
    if (previous) {
      next.from = next.from ?? previous.from;
      next.to = next.to ?? previous.to;
    }
    this.calls.set(call.call_id, next);
    if (call.status === 'parked') {
      this.lot.set(call.call_id, merge(this.lot.get(call.call_id), { call_id: call.call_id, slot: call.slot }));
      this.fillLot(call.call_id);
    } else {
      this.lot.delete(call.call_id);
    }
  }

  // The lot entry borrows what the call knows (numbers, workspace, when).
  fillLot(callId) {
    const entry = this.lot.get(callId);
    const call = this.calls.get(callId);
    if (!entry) return;
    if (call) {
      entry.workspace = entry.workspace ?? call.workspace;
      entry.from = entry.from ?? call.from;
      entry.to = entry.to ?? call.to;
      entry.slot = entry.slot ?? call.slot;
      if (entry.parked_at === null || entry.parked_at === undefined) {
        entry.parked_at = call.status === 'parked' ? call.since : null;
      }
    }
    if (entry.parked_at === null || entry.parked_at === undefined) entry.parked_at = this.now();
    if (entry.parked_by && !entry.parked_by_name) {
      const seat = this.seats.get(entry.parked_by);
      if (seat && seat.name) entry.parked_by_name = seat.name;
    }
  }

  // Calls shown as call cards: every live call that is not parked.
  liveCalls() {
    return [...this.calls.values()]
      .filter((call) => call.status !== 'parked')
      .sort((a, b) => a.since - b.since || a.call_id.localeCompare(b.call_id));
  }

  parked() {
    return [...this.lot.values()].sort(
      (a, b) => (a.workspace ?? '').localeCompare(b.workspace ?? '') || (a.slot ?? 0) - (b.slot ?? 0),
    );
  }

  seatList() {
    return [...this.seats.values()].sort(
      (a, b) =>
        a.workspace.localeCompare(b.workspace) ||
        (a.name ?? a.agent_id).localeCompare(b.name ?? b.agent_id) ||
        a.agent_id.localeCompare(b.agent_id),
    );
  }

  seatName(agentId) {
    if (!agentId) return null;
    const seat = this.seats.get(agentId);
    return (seat && seat.name) || `agent ${agentId.slice(0, 8)}`;
  }

  // The call a seat is on (or null).
  seatCall(seat) {
    if (seat.call_id) return this.calls.get(seat.call_id) ?? null;
    for (const call of this.calls.values()) {
      if (call.agent_id === seat.agent_id && call.status !== 'parked') return call;
    }
    return null;
  }

  // The workspace of a call or parked call.
  workspaceOf(callId) {
    return this.calls.get(callId)?.workspace ?? this.lot.get(callId)?.workspace ?? null;
  }
}
