// Charts on <canvas>: the node's requests, the rows' sparklines, an app's series.

import { num } from './format.js';

/** Draws lines (each {values, color}) on a canvas, scaled to the largest value; a thin zero line. */
export function drawChart(canvas, lines, { fill = false, labels = false } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let max = 0;
  for (const l of lines) for (const v of l.values) if (v > max) max = v;
  const top = labels ? 14 : 2;
  const scale = max > 0 ? (height - top - 2) / max : 0;
  ctx.strokeStyle = '#e3e6eb';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, height - 1.5);
  ctx.lineTo(width, height - 1.5);
  ctx.stroke();
  for (const l of lines) {
    const n = l.values.length;
    if (n < 2) continue;
    const step = width / (l.points ?? n - 1);
    const x0 = width - (n - 1) * step;
    ctx.beginPath();
    l.values.forEach((v, i) => {
      const x = x0 + i * step;
      const y = height - 2 - v * scale;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    if (fill && l === lines[0]) {
      ctx.lineTo(width, height - 1);
      ctx.lineTo(x0, height - 1);
      ctx.closePath();
      ctx.fillStyle = 'rgba(36, 89, 201, 0.12)';
      ctx.fill();
    }
  }
  if (labels) {
    ctx.fillStyle = '#667085';
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(`max ${num(max)}`, 4, 11);
  }
}
