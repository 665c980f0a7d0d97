// @ts-check
// Joining by camera: frames from getUserMedia are drawn on a canvas and handed to the QR
// decoder, a separate wasm module (./pkg/scan.js) loaded only when someone scans, so the
// first load stays small.

let decoder = null;

/** Loads the QR decoder once. */
async function loadDecoder() {
  if (!decoder) {
    decoder = (async () => {
      const scan = await import("./pkg/scan.js");
      await scan.default();
      return scan.decodeQr;
    })();
    decoder.catch(() => (decoder = null));
  }
  return decoder;
}

/** Longest side of the frame handed to the decoder: enough for an invite QR at arm's length. */
const MAX_SIDE = 800;
/** Pause between decode attempts. */
const FRAME_INTERVAL_MS = 180;

/**
 * Starts the camera into `video` and decodes frames until a QR code is read; then stops the
 * camera and calls `onText(text)`. Resolves to a `stop()` function; rejects if the camera
 * cannot be opened (no camera, permission refused) or the decoder does not load.
 */
export async function startScanner(video, onText) {
  const decodeQr = await loadDecoder();
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: false,
  });
  let stopped = false;
  let timer = 0;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  video.srcObject = stream;
  try {
    await video.play();
  } catch (err) {
    stop();
    throw err;
  }
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const tick = () => {
    if (stopped) return;
    if (video.readyState >= 2 && video.videoWidth > 0) {
      const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      const width = Math.round(video.videoWidth * scale);
      const height = Math.round(video.videoHeight * scale);
      if (canvas.width !== width) canvas.width = width;
      if (canvas.height !== height) canvas.height = height;
      ctx.drawImage(video, 0, 0, width, height);
      const frame = ctx.getImageData(0, 0, width, height);
      let text = null;
      try {
        text = decodeQr(width, height, frame.data);
      } catch {
        text = null; // A malformed frame: try the next one.
      }
      if (text) {
        stop();
        onText(text);
        return;
      }
    }
    timer = setTimeout(tick, FRAME_INTERVAL_MS);
  };
  tick();
  return stop;
}

/** Whether this browser can open a camera at all. */
export function canScan() {
  return Boolean(navigator.mediaDevices?.getUserMedia) && window.isSecureContext;
}
