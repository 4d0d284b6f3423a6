// The audio check page (see audio-check.html): the audio module on a live call.
import { token } from "/assets/js/session.js";
import { EngineSocket } from "/assets/js/socket.js";
import { CallAudio, bindDeviceSelect, installDebugHook } from "/assets/js/audio/index.js";

const state = document.querySelector('[data-testid="call-state"]');
const meter = document.querySelector('[data-testid="mic-level"]');
const notice = document.querySelector('[data-testid="notice"]');
const setState = (value) => {
  state.dataset.state = value;
  state.textContent = value;
};

const audio = new CallAudio({ send: (bytes) => socket.sendBinary(bytes) });
const socket = new EngineSocket("/ws/agent", token() || "", {
  onBinary: (buffer) => audio.receive(buffer),
  onStatus: (status) => {
    if (status === "open") socket.send({ type: "presence", status: "available" });
  },
});
socket.on("presence", (message) => {
  state.dataset.presence = message.status;
});
socket.on("ring", (message) => {
  setState("ringing");
  socket.send({ type: "answer", call_id: message.call_id });
});
socket.on("connected", () => setState("connected"));
socket.on("*", () => {});
audio.onLevel = (rms) => {
  meter.value = rms;
};
installDebugHook(audio);

(async () => {
  await audio.startPlayback();
  try {
    await audio.startMic();
    await bindDeviceSelect(document.querySelector('[data-testid="audio-device"]'), audio);
  } catch (error) {
    notice.textContent = error.message;
  }
  document.body.dataset.ready = "true";
})();
