// A WebSocket to the engine that reconnects by itself.
//
//   const socket = new EngineSocket("/ws/agent", token, {
//     onStatus(status) {},   // "connecting" | "open" | "reconnecting" | "closed"
//     onBinary(buffer) {},   // an ArrayBuffer (audio frames)
//   });
//   socket.on("ring", (message) => {});   // JSON text frames, dispatched by "type"
//   socket.send({ type: "answer", call_id });
//   socket.sendBinary(uint8Array);        // dropped while the socket is down
//   socket.reconnectNow();                // drop and reconnect at once
//   socket.close();                       // for good
//
// A text frame that is not JSON, has no string "type", or has a type no handler
// is registered for is logged with console.warn and otherwise ignored. A handler
// that throws is logged with console.error; the socket goes on. After a drop it
// reconnects with exponential backoff (250 ms doubling up to 10 s, with jitter),
// reset once a connection has stayed open for 5 s.
// The token goes in the socket URL's query, as the engine asks; it is never logged.

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;
const STABLE_MS = 5_000;

export function socketUrl(path, token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?token=${encodeURIComponent(token)}`;
}

export class EngineSocket {
  constructor(path, token, { onStatus = () => {}, onBinary = () => {} } = {}) {
    this.path = path;
    this.token = token;
    this.onStatus = onStatus;
    this.onBinary = onBinary;
    this.handlers = new Map();
    this.delay = FIRST_DELAY_MS;
    this.ws = null;
    this.timer = null;
    this.stableTimer = null;
    this.closed = false;
    this.status = "connecting";
    this.connect();
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  sendBinary(bytes) {
    if (!this.isOpen) return false;
    this.ws.send(bytes);
    return true;
  }

  reconnectNow() {
    if (this.closed) return;
    this.delay = FIRST_DELAY_MS;
    if (this.ws) this.ws.close();
    else this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.stableTimer);
    if (this.ws) this.ws.close(1000, "page closed");
    this.setStatus("closed");
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    try {
      this.onStatus(status);
    } catch (error) {
      console.error("socket status handler failed", error);
    }
  }

  connect() {
    if (this.closed) return;
    let ws;
    try {
      ws = new WebSocket(socketUrl(this.path, this.token));
    } catch (error) {
      console.warn("socket could not be opened", error && error.name);
      this.retry();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.setStatus("open");
      this.stableTimer = setTimeout(() => {
        this.delay = FIRST_DELAY_MS;
      }, STABLE_MS);
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", () => {
      clearTimeout(this.stableTimer);
      if (this.ws === ws) this.ws = null;
      this.retry();
    });
  }

  retry() {
    if (this.closed) return;
    this.setStatus("reconnecting");
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  receive(data) {
    if (typeof data !== "string") {
      try {
        this.onBinary(data);
      } catch (error) {
        console.error("binary frame handler failed", error);
      }
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("ignored a malformed message from the engine", data.slice(0, 200));
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") {
      console.warn("ignored a message without a type", data.slice(0, 200));
      return;
    }
    const handlers = this.handlers.get(message.type) || this.handlers.get("*");
    if (!handlers) {
      console.warn(`ignored an unknown message type "${message.type}"`);
      return;
    }
    for (const handler of handlers) {
      try {
        handler(message);
      } catch (error) {
        console.error(`handler of "${message.type}" failed`, error);
      }
    }
  }
}
