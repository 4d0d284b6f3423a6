// AudioWorklet "switchboard-playback": 8 kHz μ-law frames → the speakers, through an
// adaptive jitter buffer.
//
// The page posts each received frame as {type:"frame", bytes: ArrayBuffer}. Frames
// are decoded into a queue of 8 kHz samples; playback starts once the queue holds
// the target delay. The target adapts between 40 and 200 ms: it is 40 ms plus four
// times the frames' arrival jitter (RFC 3550's running estimate, measured on the
// audio clock), and an underrun (the queue ran dry while playing) raises it by
// 20 ms and waits for the queue to refill. When the queue holds more than the
// target plus one frame (20 ms: a late frame and the next came together, or a
// burst), samples are dropped a few at a time until it is back, so the delay a
// caller's voice sees stays near the target rather than growing with each burst. Output is resampled to the context's rate by linear interpolation.
// Every 10 ms it posts {type:"level", rms, onset, bufferedMs, targetMs, underruns}
// (rms over the last 100 ms of output; onset: the context time at which the
// output's 10 ms RMS last rose above 0.05 from below 0.01, or null; onsetWall:
// the wall time, Date.now() ms, at which the block holding that onset was
// rendered, i.e. handed to the output device);
// every second {type:"cpu", busyMs, audioMs}.
import { DECODE } from "./mulaw.js";

const IN_RATE = 8000;
const MIN_MS = 40;
const MAX_MS = 200;
const CAPACITY = IN_RATE; // one second of samples
const FRAME_MS = 20; // what one frame adds to the queue

const clock = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

class Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = new Float32Array(CAPACITY);
    this.head = 0; // next sample to play
    this.size = 0;
    this.playing = false;
    this.targetMs = MIN_MS;
    this.jitterMs = 0;
    this.lastArrival = null;
    this.underruns = 0;
    this.step = IN_RATE / sampleRate; // 8 kHz samples per output sample
    this.position = 0;
    this.current = 0;
    this.next = 0;
    // Output RMS over 100 ms, kept per 128-sample block.
    this.blocks = new Float64Array(Math.ceil((0.1 * sampleRate) / 128));
    this.blockCount = new Float64Array(this.blocks.length);
    this.block = 0;
    this.shortEnergy = [];
    this.quiet = true;
    this.onset = null;
    this.onsetWall = null;
    this.sincePost = 0;
    this.busy = 0;
    this.covered = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (!message || message.type !== "frame") return;
    const bytes = new Uint8Array(message.bytes);
    const now = currentTime * 1000;
    if (this.lastArrival !== null) {
      const transit = now - this.lastArrival - (bytes.length / IN_RATE) * 1000;
      this.jitterMs += (Math.abs(transit) - this.jitterMs) / 16;
    }
    this.lastArrival = now;
    const wanted = Math.min(MAX_MS, Math.max(MIN_MS, MIN_MS + 4 * this.jitterMs));
    if (wanted > this.targetMs) this.targetMs = wanted;
    else this.targetMs += (wanted - this.targetMs) / 50; // relax slowly
    for (let i = 0; i < bytes.length; i += 1) {
      if (this.size === CAPACITY) {
        this.head = (this.head + 1) % CAPACITY; // full: drop the oldest
        this.size -= 1;
      }
      this.queue[(this.head + this.size) % CAPACITY] = DECODE[bytes[i]];
      this.size += 1;
    }
    if (!this.playing && this.bufferedMs() >= this.targetMs) this.playing = true;
  }

  bufferedMs() {
    return (this.size / IN_RATE) * 1000;
  }

  take() {
    if (this.size === 0) return null;
    const sample = this.queue[this.head];
    this.head = (this.head + 1) % CAPACITY;
    this.size -= 1;
    return sample;
  }

  process(_inputs, outputs) {
    const started = clock();
    const output = outputs[0];
    const channel = output[0];
    let energy = 0;
    if (this.playing && this.bufferedMs() > this.targetMs + FRAME_MS) {
      // A burst: catch up by one 8 kHz sample in every few, inaudibly.
      for (let i = 0; i < 4 && this.size > 0; i += 1) this.take();
    }
    for (let i = 0; i < channel.length; i += 1) {
      let sample = 0;
      if (this.playing) {
        while (this.position >= 1) {
          const taken = this.take();
          if (taken === null) {
            this.playing = false;
            this.underruns += 1;
            this.targetMs = Math.min(MAX_MS, this.targetMs + 20);
            this.current = 0;
            this.next = 0;
            this.position = 0;
            break;
          }
          this.current = this.next;
          this.next = taken;
          this.position -= 1;
        }
        if (this.playing) {
          sample = this.current + (this.next - this.current) * this.position;
          this.position += this.step;
        }
      }
      channel[i] = sample;
      energy += sample * sample;
    }
    for (let c = 1; c < output.length; c += 1) output[c].set(channel);
    this.track(energy, channel.length);
    this.busy += clock() - started;
    this.covered += (channel.length / sampleRate) * 1000;
    if (this.covered >= 1000) {
      this.port.postMessage({ type: "cpu", busyMs: this.busy, audioMs: this.covered });
      this.busy = 0;
      this.covered = 0;
    }
    return true;
  }

  track(energy, length) {
    this.blocks[this.block] = energy;
    this.blockCount[this.block] = length;
    this.block = (this.block + 1) % this.blocks.length;
    // The last 10 ms (about 4 blocks at 48 kHz) for the onset.
    this.shortEnergy.push([energy, length]);
    const shortBlocks = Math.max(1, Math.round((0.01 * sampleRate) / length));
    while (this.shortEnergy.length > shortBlocks) this.shortEnergy.shift();
    let e = 0;
    let n = 0;
    for (const [blockEnergy, count] of this.shortEnergy) {
      e += blockEnergy;
      n += count;
    }
    const shortRms = Math.sqrt(e / n);
    if (this.quiet && shortRms > 0.05) {
      this.quiet = false;
      this.onset = currentTime;
      this.onsetWall = Date.now();
    } else if (!this.quiet && shortRms < 0.01) {
      this.quiet = true;
    }
    this.sincePost += length;
    if (this.sincePost >= 0.01 * sampleRate) {
      this.sincePost = 0;
      let total = 0;
      let count = 0;
      for (let b = 0; b < this.blocks.length; b += 1) {
        total += this.blocks[b];
        count += this.blockCount[b];
      }
      this.port.postMessage({
        type: "level",
        rms: count ? Math.sqrt(total / count) : 0,
        onset: this.onset,
        onsetWall: this.onsetWall,
        bufferedMs: this.bufferedMs(),
        targetMs: this.targetMs,
        underruns: this.underruns,
      });
    }
  }
}

registerProcessor("switchboard-playback", Playback);
