'use strict';
// A hand-written SVG bar chart: ops/s per operation and record size at
// concurrency 64, ours beside each peer, on a log scale (the operations span
// three orders of magnitude), each bar labelled with its value and each group
// with the ratio to the best peer.

const { OP_LABELS } = require('./report');
const { STORE_NAMES } = require('./stores');

const WIDTH = 960;
const HEIGHT = 460;
const MARGIN = { top: 70, right: 20, bottom: 70, left: 80 };
const COLORS = { ours: '#d9480f', ioredis: '#1c7ed6', nodeRedis: '#7048e8' };
const LEGEND = { ours: 'ours (redis-conversation-store)', ioredis: 'ioredis store', nodeRedis: 'node-redis store' };
const BAR_GAP = 4;
const GROUP_PADDING = 0.28;

const escapeXml = (text) => String(text).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);

function text(x, y, content, attrs = '') {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(content)}</text>`;
}

function shortRate(v) {
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Math.round(v).toString();
}

function logScale(min, max, height) {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const y = (v) => height - ((Math.log10(v) - lo) / (hi - lo)) * height;
  return { y, lo, hi };
}

function gridLines(scale, plotWidth) {
  const out = [];
  for (let e = scale.lo; e <= scale.hi; e++) {
    for (const m of e === scale.hi ? [1] : [1, 2, 5]) {
      const v = m * 10 ** e;
      const y = scale.y(v);
      out.push(`<line x1="0" x2="${plotWidth}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" ` +
        `stroke="${m === 1 ? '#adb5bd' : '#e9ecef'}" stroke-width="1"/>`);
      if (m === 1 || m === 5) out.push(text(-8, y + 4, shortRate(v), 'text-anchor="end" font-size="12" fill="#495057"'));
    }
  }
  return out;
}

function bars(groups, scale, plotWidth, plotHeight) {
  const out = [];
  const groupWidth = plotWidth / groups.length;
  const barWidth = (groupWidth * (1 - GROUP_PADDING) - BAR_GAP * (STORE_NAMES.length - 1)) / STORE_NAMES.length;
  groups.forEach((cell, g) => {
    const left = g * groupWidth + (groupWidth * GROUP_PADDING) / 2;
    STORE_NAMES.forEach((store, b) => {
      const value = cell[store].opsPerSec;
      const x = left + b * (barWidth + BAR_GAP);
      const y = scale.y(value);
      out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" ` +
        `height="${(plotHeight - y).toFixed(1)}" fill="${COLORS[store]}"><title>${escapeXml(
          `${store}: ${Math.round(value)} ops/s`)}</title></rect>`);
      out.push(text(x + barWidth / 2, y - 4, shortRate(value), 'text-anchor="middle" font-size="11" fill="#212529"'));
    });
    const center = g * groupWidth + groupWidth / 2;
    const ratio = cell.ours.opsPerSec / cell.best.opsPerSec;
    out.push(text(center, -8, `${ratio.toFixed(2)}×`, 'text-anchor="middle" font-size="13" font-weight="bold" ' +
      `fill="${ratio >= 1 ? '#2b8a3e' : '#c92a2a'}"`));
    out.push(text(center, plotHeight + 18, OP_LABELS[cell.op].replace('*', ''), 'text-anchor="middle" font-size="12"'));
    out.push(text(center, plotHeight + 34, `${cell.size}${cell.op === 'listFields' ? ' (vs full)' : ''}`,
      'text-anchor="middle" font-size="12" fill="#495057"'));
  });
  return out;
}

function legend(x, y) {
  return STORE_NAMES.flatMap((store, k) => [
    `<rect x="${x + 230 * k}" y="${y - 10}" width="12" height="12" fill="${COLORS[store]}"/>`,
    text(x + 230 * k + 18, y, LEGEND[store], 'font-size="12"'),
  ]);
}

/** The SVG text, or null when no cell at concurrency 64 was measured. */
function throughputChart(cells, meta) {
  const groups = cells.filter((c) => c.concurrency === 64);
  if (groups.length === 0) return null;
  const values = groups.flatMap((c) => STORE_NAMES.map((store) => c[store].opsPerSec)).filter((v) => v > 0);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const scale = logScale(Math.min(...values), Math.max(...values), plotHeight);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">',
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    text(MARGIN.left, 24, 'Throughput at concurrency 64 (ops/s, log scale; label above each group: ours ÷ the best peer)',
      'font-size="15" font-weight="bold"'),
    text(MARGIN.left, 42, `median of ${meta.rounds} rounds · ${meta.node} · ${meta.cpu} (${meta.cores} cores) · ` +
      `${meta.date.slice(0, 10)}`, 'font-size="11" fill="#495057"'),
    `<g transform="translate(${MARGIN.left},${MARGIN.top})">`,
    ...gridLines(scale, plotWidth),
    ...bars(groups, scale, plotWidth, plotHeight),
    `<line x1="0" x2="${plotWidth}" y1="${plotHeight}" y2="${plotHeight}" stroke="#212529"/>`,
    '</g>',
    ...legend(MARGIN.left, HEIGHT - 14),
    text(WIDTH - MARGIN.right, HEIGHT - 14, '* fields: ours lists 4 fields, the peers the full records',
      'text-anchor="end" font-size="11" fill="#495057"'),
    '</svg>',
    '',
  ].join('\n');
}

module.exports = { throughputChart };
