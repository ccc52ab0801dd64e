// Small bar charts on canvas (response latency per turn, barge-in reactions), each with a
// text equivalent for screen readers.
function css(el, name, fallback) {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

export function barChart(canvas, { values, labels, unit = 'ms', color = '--accent' }) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const hgt = Math.max(1, Math.round(canvas.clientHeight * dpr));
  canvas.width = w;
  canvas.height = hgt;
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, w, hgt);
  const fg = css(canvas, '--fg', '#111827');
  const muted = css(canvas, '--muted', '#6b7280');
  g.font = `${11 * dpr}px system-ui, sans-serif`;
  const left = 44 * dpr;
  const bottom = hgt - 18 * dpr;
  const top = 8 * dpr;
  const max = Math.max(1, ...values) * 1.15;
  // A round step for the axis: 1, 2 or 5 times a power of ten, about four lines.
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw);
  g.strokeStyle = muted;
  g.fillStyle = muted;
  g.lineWidth = 1;
  for (let v = 0; v <= max; v += step) {
    const y = bottom - (v / max) * (bottom - top);
    g.globalAlpha = 0.3;
    g.beginPath(); g.moveTo(left, y); g.lineTo(w, y); g.stroke();
    g.globalAlpha = 1;
    g.fillText(`${Math.round(v)}`, 2 * dpr, y + 4 * dpr);
  }
  g.fillText(unit, 2 * dpr, top + 2 * dpr);
  if (!values.length) {
    g.fillText('nothing to show', left + 8 * dpr, (top + bottom) / 2);
    return;
  }
  const slot = (w - left) / values.length;
  const bar = Math.min(slot * 0.6, 48 * dpr);
  values.forEach((v, i) => {
    const x = left + i * slot + (slot - bar) / 2;
    const y = bottom - (v / max) * (bottom - top);
    g.fillStyle = css(canvas, color, '#2563eb');
    g.fillRect(x, y, bar, bottom - y);
    g.fillStyle = fg;
    g.fillText(`${Math.round(v)}`, x, y - 3 * dpr);
    g.fillStyle = muted;
    g.fillText(labels[i] ?? String(i + 1), x, hgt - 4 * dpr);
  });
}
