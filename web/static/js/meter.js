// The stats panel's live graph (round trip and loss over the last minute) and
// the microphone level meter (a WebAudio AnalyserNode).

// drawGraph draws in the colours of the page's theme (its CSS variables).
export function drawGraph(canvas, history) {
  const css = getComputedStyle(canvas);
  const col = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = col("--graph-bg", "#f7f7f9");
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = col("--graph-line", "#ddd");
  ctx.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    ctx.beginPath();
    ctx.moveTo(0, (h * i) / 4);
    ctx.lineTo(w, (h * i) / 4);
    ctx.stroke();
  }
  if (!history.length) return;
  const maxRTT = Math.max(5, ...history.map((p) => p.rtt)) * 1.5;
  const step = w / 59;
  const line = (color, f) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    history.forEach((p, i) => {
      const x = w - (history.length - 1 - i) * step;
      const y = h - f(p) * (h - 4) - 2;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(col("--rtt", "#2563eb"), (p) => p.rtt / maxRTT);
  line(col("--loss", "#dc2626"), (p) => Math.min(1, p.loss * 5)); // full height = 20 % loss
  ctx.fillStyle = col("--muted", "#555");
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(`${Math.round(maxRTT)} ms`, 4, 12);
}

// LevelMeter shows the level of a stream (the microphone) in a <meter>:
// the loudest 20 ms of each tick, in dBFS from -60 (empty) to -6 (full),
// rising at once and falling back gently, so that it follows the voice.
export class LevelMeter {
  constructor(audioContext, stream, meterEl) {
    this.ctx = audioContext;
    this.src = audioContext.createMediaStreamSource(stream);
    this.an = audioContext.createAnalyser();
    this.an.fftSize = 1024; // about 21 ms at 48 kHz
    this.an.smoothingTimeConstant = 0;
    this.src.connect(this.an);
    this.buf = new Float32Array(this.an.fftSize);
    this.el = meterEl;
    this.shown = 0;
    this.level = -100;
    this.timer = setInterval(() => this.tick(), 50);
  }

  tick() {
    // A context the browser left suspended reads silence: ask again.
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    this.an.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const v of this.buf) sum += v * v;
    const rms = Math.sqrt(sum / this.buf.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const v = Math.max(0, Math.min(1, (db + 60) / 54));
    this.shown = v >= this.shown ? v : Math.max(v, this.shown - 0.08);
    this.el.value = this.shown;
    this.level = db;
  }

  stop() {
    clearInterval(this.timer);
    this.src.disconnect();
    this.el.value = 0;
  }
}
