// G.711 μ-law (ITU-T G.711), as Twilio Media Streams carry it: 8 kHz, one byte a
// sample. Shared by the worklets and the page (a plain module, no DOM).

const BIAS = 0x84;
const CLIP = 32635;

export function encodeSample(sample) {
  // sample: a float in -1..1
  let value = Math.round(Math.max(-1, Math.min(1, sample)) * 32767);
  let sign = 0;
  if (value < 0) {
    value = -value;
    sign = 0x80;
  }
  value = Math.min(value, CLIP) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; exponent > 0 && (value & mask) === 0; mask >>= 1) exponent -= 1;
  const mantissa = (value >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

// The 256 decoded values, as floats in -1..1.
export const DECODE = new Float32Array(256);
for (let byte = 0; byte < 256; byte += 1) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = (((u & 0x0f) << 3) + BIAS) << exponent;
  const sample = magnitude - BIAS;
  DECODE[byte] = ((u & 0x80) ? -sample : sample) / 32768;
}
