// AudioWorklet "switchboard-capture": the microphone → 8 kHz μ-law, 160-byte frames.
//
// Input: the microphone at the context's rate (48 kHz usually). A 4th-order
// low-pass at 3.4 kHz (two biquads) keeps what the phone network carries and
// stops aliasing, then the signal is resampled to 8 kHz (linear interpolation at
// the exact ratio), encoded to μ-law and cut into 160-sample (20 ms) frames. Each
// frame is posted to the page as {type:"frame", bytes: ArrayBuffer(160), level}
// (level: the frame's RMS, 0–1); the audio clock paces them, one every 20 ms.
// Muted (`{type:"mute", muted:true}`), frames carry μ-law silence (0xFF).
// Every second it posts {type:"cpu", busyMs, audioMs}: the time spent in
// process() (performance.now() accounting) against the audio it covered.
// Timing (the latency benchmark): a frame whose RMS rises above 0.05 after one
// below 0.01 (the rule the benchmark applies at the fake Twilio) is an onset; its
// message carries `onsetWall`, the wall time (Date.now(), ms) at which the
// frame's first sample above 0.05 reached this worklet, and `postWall`, when the
// frame was posted.
import { encodeSample } from "./mulaw.js";

const FRAME = 160;
const OUT_RATE = 8000;

function lowpass(rate, cutoff, q) {
  const w = (2 * Math.PI * cutoff) / rate;
  const alpha = Math.sin(w) / (2 * q);
  const cos = Math.cos(w);
  const a0 = 1 + alpha;
  return {
    b0: (1 - cos) / 2 / a0, b1: (1 - cos) / a0, b2: (1 - cos) / 2 / a0,
    a1: (-2 * cos) / a0, a2: (1 - alpha) / a0,
    x1: 0, x2: 0, y1: 0, y2: 0,
  };
}

function run(f, x) {
  const y = f.b0 * x + f.b1 * f.x1 + f.b2 * f.x2 - f.a1 * f.y1 - f.a2 * f.y2;
  f.x2 = f.x1; f.x1 = x; f.y2 = f.y1; f.y1 = y;
  return y;
}

const clock = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    // Butterworth 4th order = two biquads with Q 0.541 and 1.307.
    this.filters = sampleRate > 2 * 3400 * 1.1
      ? [lowpass(sampleRate, 3400, 0.5412), lowpass(sampleRate, 3400, 1.3066)]
      : [];
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.position = 0; // where the next output sample falls, in input samples from `previous`
    this.previous = 0;
    this.frame = new Uint8Array(FRAME);
    this.filled = 0;
    this.energy = 0;
    this.muted = false;
    this.busy = 0;
    this.covered = 0;
    this.frameQuiet = true;
    this.firstLoudWall = null;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "mute") this.muted = !!event.data.muted;
    };
  }

  process(inputs) {
    const started = clock();
    const input = inputs[0];
    const channel = input && input[0];
    const length = channel ? channel.length : 128;
    // The wall time at which this block's last sample arrived (the block is whole).
    const wall = Date.now();
    for (let i = 0; i < length; i += 1) {
      const sampleWall = wall - ((length - 1 - i) / sampleRate) * 1000;
      let x = channel ? channel[i] : 0;
      for (const f of this.filters) x = run(f, x);
      // Output samples between `previous` (time -1) and x (time 0).
      while (this.position <= 1) {
        const sample = this.previous + (x - this.previous) * this.position;
        this.push(this.muted ? 0 : sample, sampleWall);
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = x;
    }
    this.busy += clock() - started;
    this.covered += (length / sampleRate) * 1000;
    if (this.covered >= 1000) {
      this.port.postMessage({ type: "cpu", busyMs: this.busy, audioMs: this.covered });
      this.busy = 0;
      this.covered = 0;
    }
    return true;
  }

  push(sample, wall) {
    if (this.firstLoudWall === null && Math.abs(sample) > 0.05) this.firstLoudWall = wall;
    this.frame[this.filled] = encodeSample(sample);
    this.energy += sample * sample;
    this.filled += 1;
    if (this.filled === FRAME) {
      const bytes = this.frame.buffer;
      const level = Math.sqrt(this.energy / FRAME);
      const message = { type: "frame", bytes, level, at: currentTime };
      if (this.frameQuiet && level > 0.05) {
        this.frameQuiet = false;
        message.onsetWall = this.firstLoudWall === null ? wall : this.firstLoudWall;
        message.postWall = Date.now();
      } else if (!this.frameQuiet && level < 0.01) {
        this.frameQuiet = true;
      }
      this.firstLoudWall = null;
      this.port.postMessage(message, [bytes]);
      this.frame = new Uint8Array(FRAME);
      this.filled = 0;
      this.energy = 0;
    }
  }
}

registerProcessor("switchboard-capture", Capture);
