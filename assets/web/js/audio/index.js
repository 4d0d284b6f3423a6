// The call audio of a page: microphone → 8 kHz μ-law frames on the socket, and
// frames from the socket → a jitter buffer → the speakers. Used by the softphone
// (both ways) and the supervisor's Listen (playback only).
//
//   import { CallAudio, debugEnabled } from "/assets/js/audio/index.js";
//
//   const audio = new CallAudio({ send: (bytes) => socket.sendBinary(bytes) });
//   socket.onBinary = (buffer) => audio.receive(buffer);   // or pass to EngineSocket
//   await audio.startPlayback();       // playback only (Listen): no microphone
//   await audio.startMic(deviceId?);   // asks for the microphone; throws a
//                                      // MicError (error.reason "denied" | "missing"
//                                      // | "failed", error.message for people)
//   audio.setMuted(true|false);        // frames keep flowing, as μ-law silence
//   audio.stopMic();                   // no more frames
//   audio.onLevel = (rms) => {};       // input level, 0–1, every 20 ms
//   await audio.inputDevices();        // [{deviceId, label}] of microphones
//   await audio.setInputDevice(id);    // switch microphone (restarts capture if running)
//   audio.stats();                     // {underruns, bufferedMs, targetMs, captureCpu,
//                                      //  playbackCpu, framesSent, framesReceived}
//   audio.close();
//
//   bindLevelMeter(element, audio)     // sets --level and aria-valuenow on element
//   bindDeviceSelect(select, audio)    // fills a <select> and switches on change
//
// With ?debug=1 in the page URL (and only then) `installDebugHook(audio)` defines
// window.switchboardDebug.playbackLevel(): RMS (0–1) of the audio played over the
// last 100 ms; and .audioStats() (stats() plus onset timings, for the benchmark).
//
// Frames are sent as they are made (one every 20 ms, paced by the audio clock);
// nothing is sent while the socket is down. The AudioContext runs at the device's
// rate; the worklets resample.

import { DECODE } from "./mulaw.js";

const BASE = new URL(".", import.meta.url);
// The onset timings kept for the benchmark (debug only): the last this many.
const ONSETS_KEPT = 300;

export class MicError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "MicError";
    this.reason = reason;
  }
}

export function debugEnabled() {
  return new URLSearchParams(location.search).get("debug") === "1";
}

export class CallAudio {
  constructor({ send = () => {} } = {}) {
    this.send = send;
    this.onLevel = () => {};
    this.context = null;
    this.loading = null;
    this.playback = null;
    this.capture = null;
    this.source = null;
    this.stream = null;
    this.deviceId = undefined;
    this.muted = false;
    this.level = 0;
    this.last = { rms: 0, onset: null, bufferedMs: 0, targetMs: 0, underruns: 0 };
    this.captureCpu = 0;
    this.playbackCpu = 0;
    this.framesSent = 0;
    this.framesReceived = 0;
    this.micStartedAt = null;
    // The latency benchmark's stamps (wall ms), kept only with ?debug=1:
    // captureOnsets {onsetWall, postWall, sentWall} — an onset's sample reached the
    // capture worklet, its frame was posted, the page handed it to the socket;
    // arrivalOnsets — a received frame rose from silence; playOnsets {renderWall,
    // heardWall} — the playback worklet rendered that sound (handed it to the
    // output device), and when the device plays it (the audio clock mapped to wall
    // time); underrunWalls — when the jitter buffer ran dry; arrivalGaps {at,
    // gapMs} — frames that came more than 50 ms after the one before.
    this.timing = debugEnabled();
    this.captureOnsets = [];
    this.arrivalOnsets = [];
    this.playOnsets = [];
    this.underrunWalls = [];
    this.arrivalGaps = [];
    this.lastArrivalWall = null;
    this.arrivalQuiet = true;
  }

  async ensureContext() {
    if (!this.loading) {
      this.loading = (async () => {
        const context = new AudioContext({ latencyHint: "interactive" });
        await Promise.all([
          context.audioWorklet.addModule(new URL("capture-worklet.js", BASE)),
          context.audioWorklet.addModule(new URL("playback-worklet.js", BASE)),
        ]);
        this.context = context;
        return context;
      })();
    }
    const context = await this.loading;
    if (context.state === "suspended") await context.resume().catch(() => {});
    return context;
  }

  async startPlayback() {
    const context = await this.ensureContext();
    if (this.playback) return;
    const node = new AudioWorkletNode(context, "switchboard-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
    });
    node.port.onmessage = (event) => {
      const data = event.data;
      if (data.type === "level") {
        if (this.timing && data.underruns > this.last.underruns) keep(this.underrunWalls, Date.now());
        if (this.timing && data.onset !== null && data.onset !== this.last.onset) {
          keep(this.playOnsets, { renderWall: data.onsetWall, heardWall: this.contextWallMs(data.onset) });
        }
        this.last = data;
      }
      else if (data.type === "cpu") this.playbackCpu = data.busyMs / data.audioMs;
    };
    node.connect(context.destination);
    this.playback = node;
  }

  receive(buffer) {
    if (!this.playback) return;
    this.framesReceived += 1;
    if (this.timing) {
      const now = Date.now();
      if (this.lastArrivalWall !== null && now - this.lastArrivalWall > 50) {
        keep(this.arrivalGaps, { at: now, gapMs: now - this.lastArrivalWall });
      }
      this.lastArrivalWall = now;
      this.stampArrival(buffer);
    }
    this.playback.port.postMessage({ type: "frame", bytes: buffer }, [buffer]);
  }

  async startMic(deviceId = this.deviceId) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicError("failed", "This browser cannot use a microphone here (a secure page is needed).");
    }
    const context = await this.ensureContext();
    this.stopMic();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          deviceId: deviceId ? { exact: deviceId } : undefined,
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
          channelCount: 1,
        },
        video: false,
      });
    } catch (error) {
      const name = error && error.name;
      if (name === "NotAllowedError" || name === "SecurityError") {
        throw new MicError("denied", "The microphone was refused: calls work, but the other side will not hear you. Allow the microphone in the browser and reload.");
      }
      if (name === "NotFoundError" || name === "OverconstrainedError") {
        throw new MicError("missing", "No microphone was found.");
      }
      throw new MicError("failed", `The microphone could not be opened (${name || "error"}).`);
    }
    this.micStartedAt = performance.timeOrigin + performance.now();
    this.deviceId = deviceId;
    this.stream = stream;
    this.source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "switchboard-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
    });
    node.port.postMessage({ type: "mute", muted: this.muted });
    node.port.onmessage = (event) => {
      const data = event.data;
      if (data.type === "frame") {
        this.level = data.level;
        const sent = this.send(new Uint8Array(data.bytes)) !== false;
        if (sent) this.framesSent += 1;
        if (sent && this.timing && data.onsetWall !== undefined) {
          keep(this.captureOnsets, { onsetWall: data.onsetWall, postWall: data.postWall, sentWall: Date.now() });
        }
        try {
          this.onLevel(data.level);
        } catch (error) {
          console.error("level handler failed", error);
        }
      } else if (data.type === "cpu") {
        this.captureCpu = data.busyMs / data.audioMs;
      }
    };
    this.source.connect(node);
    this.capture = node;
  }

  stopMic() {
    if (this.source) this.source.disconnect();
    if (this.capture) {
      this.capture.port.onmessage = null;
      this.capture.disconnect();
    }
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.source = null;
    this.capture = null;
    this.stream = null;
    this.level = 0;
  }

  setMuted(muted) {
    this.muted = !!muted;
    if (this.capture) this.capture.port.postMessage({ type: "mute", muted: this.muted });
  }

  async inputDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices
      .filter((device) => device.kind === "audioinput")
      .map((device, index) => ({ deviceId: device.deviceId, label: device.label || `Microphone ${index + 1}` }));
  }

  async setInputDevice(deviceId) {
    this.deviceId = deviceId || undefined;
    if (this.capture) await this.startMic(this.deviceId);
  }

  playbackLevel() {
    return this.last.rms;
  }

  // The page time (performance.timeOrigin + now, ms) at which the last onset of
  // the played audio reached the speakers, or null.
  playbackOnsetWallMs() {
    if (this.last.onset === null || !this.context) return null;
    return this.contextWallMs(this.last.onset);
  }

  // The wall time (ms) at which the sample of context time `time` (s) is heard:
  // getOutputTimestamp() pairs a context time with the performance time at which
  // the device plays that sample (the Web Audio API's AudioTimestamp), so the output latency is in
  // the pairing already (the benchmark sees heard − rendered ≈ outputLatency).
  contextWallMs(time) {
    const stamp = this.context.getOutputTimestamp();
    const ms = stamp.performanceTime + (time - stamp.contextTime) * 1000;
    return performance.timeOrigin + ms;
  }

  // A received frame that rises from silence (RMS above 0.05 after one below 0.01).
  stampArrival(buffer) {
    const bytes = new Uint8Array(buffer);
    let energy = 0;
    for (let i = 0; i < bytes.length; i += 1) energy += DECODE[bytes[i]] * DECODE[bytes[i]];
    const rms = Math.sqrt(energy / Math.max(1, bytes.length));
    if (this.arrivalQuiet && rms > 0.05) {
      this.arrivalQuiet = false;
      keep(this.arrivalOnsets, Date.now());
    } else if (!this.arrivalQuiet && rms < 0.01) {
      this.arrivalQuiet = true;
    }
  }

  stats() {
    return {
      underruns: this.last.underruns,
      bufferedMs: this.last.bufferedMs,
      targetMs: this.last.targetMs,
      captureCpu: this.captureCpu,
      playbackCpu: this.playbackCpu,
      framesSent: this.framesSent,
      framesReceived: this.framesReceived,
      micStartedAt: this.micStartedAt,
      sampleRate: this.context ? this.context.sampleRate : null,
      // The audio clock (s): the pacing test counts frames against it.
      audioClock: this.context ? this.context.currentTime : null,
      outputLatencyMs: this.context ? ((this.context.outputLatency || 0) + (this.context.baseLatency || 0)) * 1000 : null,
      // Chromium's own figures for the microphone track (MediaStreamTrackAudioStats).
      inputTrack: this.inputTrackStats(),
      captureOnsets: this.captureOnsets,
      arrivalOnsets: this.arrivalOnsets,
      playOnsets: this.playOnsets,
      underrunWalls: this.underrunWalls,
      arrivalGaps: this.arrivalGaps,
    };
  }

  inputTrackStats() {
    const track = this.stream && this.stream.getAudioTracks()[0];
    const stats = track && track.stats;
    return stats && typeof stats.toJSON === "function" ? stats.toJSON() : null;
  }

  close() {
    this.stopMic();
    if (this.playback) this.playback.disconnect();
    this.playback = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.loading = null;
  }
}

function keep(list, entry) {
  list.push(entry);
  if (list.length > ONSETS_KEPT) list.shift();
}

export function bindLevelMeter(element, audio) {
  element.setAttribute("role", "meter");
  element.setAttribute("aria-valuemin", "0");
  element.setAttribute("aria-valuemax", "100");
  const previous = audio.onLevel;
  audio.onLevel = (rms) => {
    previous(rms);
    // A speech level of about 0.1 RMS shows near the top.
    const percent = Math.min(100, Math.round(Math.sqrt(rms) * 300));
    element.style.setProperty("--level", `${percent}%`);
    element.setAttribute("aria-valuenow", String(percent));
    element.dataset.level = rms.toFixed(3);
  };
}

export async function bindDeviceSelect(select, audio) {
  const fill = async () => {
    const devices = await audio.inputDevices();
    const chosen = select.value;
    select.replaceChildren(
      ...devices.map((device) => {
        const option = document.createElement("option");
        option.value = device.deviceId;
        option.textContent = device.label;
        return option;
      }),
    );
    if (devices.some((device) => device.deviceId === chosen)) select.value = chosen;
  };
  select.addEventListener("change", () => {
    audio.setInputDevice(select.value).catch((error) => console.warn("device switch failed", error.message));
  });
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", () => fill().catch(() => {}));
  }
  await fill();
}

export function installDebugHook(audio) {
  if (!debugEnabled()) return;
  window.switchboardDebug = Object.assign(window.switchboardDebug || {}, {
    playbackLevel: () => audio.playbackLevel(),
    audioStats: () => ({ ...audio.stats(), playbackOnsetWallMs: audio.playbackOnsetWallMs() }),
  });
}
