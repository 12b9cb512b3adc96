// Piano rolls on <canvas>: melodies as pitch by time with octave labels (C3, C4, ...), drums as
// their nine named rows, trios as three lanes (lead, bass, drums). A note starts after a small
// gap and its first step is darker, so repeated notes of one pitch read as separate notes (as in
// mvae_jax.plotting). Pieces of one set (samples, an interpolation) share one pitch range
// (`pitchRanges`), so they compare.

export const PART_COLOURS = ['#4fb3ff', '#ffa94d', '#69db7c'];
export const INPUT_COLOUR = '#e9ecef';  // the inputs of an interpolation (black in the paper)
const NAMES = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B'];

export function pitchName(p) {
  return `${NAMES[p % 12]}${Math.floor(p / 12) - 1}`;
}

// Per part, the [low, high] MIDI pitch over `pieces`, widened to whole octaves (C to C);
// null for drum parts.
export function pitchRanges(pieces, run) {
  return run.parts.map((part, k) => {
    if (part.drums) return null;
    let lo = Infinity, hi = -Infinity;
    for (const piece of pieces) {
      for (const n of piece.notes) {
        if (n.part === k) { lo = Math.min(lo, n.pitch); hi = Math.max(hi, n.pitch); }
      }
    }
    if (lo === Infinity) { lo = 60; hi = 71; }
    return [12 * Math.floor(lo / 12), 12 * Math.floor(hi / 12) + 12];
  });
}

function shade(hex, f) {
  const v = parseInt(hex.slice(1), 16);
  const c = [v >> 16, (v >> 8) & 255, v & 255].map((x) => Math.round(x * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// Lane layout of a run's parts for a canvas of height-giving row sizes.
function lanes(run, ranges, compact) {
  const out = [];
  let y = compact ? 4 : 16;  // bar numbers above
  run.parts.forEach((part, k) => {
    let rows, rowH;
    if (part.drums) {
      rows = 9; rowH = compact ? 6 : 12;
    } else {
      rows = ranges[k][1] - ranges[k][0] + 1;
      rowH = Math.max(compact ? 1.5 : 2.5, Math.min(compact ? 3 : 6, (compact ? 60 : 150) / rows));
    }
    out.push({part: k, drums: part.drums, name: part.name, y, rows, rowH, h: rows * rowH,
              range: ranges[k]});
    y += rows * rowH + (compact ? 4 : 10);
  });
  return {lanes: out, height: y - (compact ? 0 : 4)};
}

// Draws `piece` into `canvas` (CSS width = the canvas's parent width unless opts.width).
// opts: {ranges, highlight: bool (draw as an input), compact: bool (no labels), width}
// Returns the geometry {gutter, stepW} (for a playhead).
export function drawRoll(canvas, piece, run, opts = {}) {
  const ranges = opts.ranges || pitchRanges([piece], run);
  const compact = !!opts.compact;
  const {lanes: ls, height} = lanes(run, ranges, compact);
  const gutter = compact ? 0 : (run.parts.some((p) => p.drums) ? 86 : 40);
  const cssW = Math.max(80, Math.floor(opts.width || canvas.parentElement.clientWidth || 300));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = cssW + 'px';
  canvas.style.height = height + 'px';
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, height);
  const steps = piece.steps;
  const stepW = (cssW - gutter - 2) / steps;
  const spb = run.steps_per_bar;
  const x = (s) => gutter + s * stepW;
  g.font = '10.5px system-ui, sans-serif';
  g.textBaseline = 'middle';

  for (const lane of ls) {
    // lane background
    g.fillStyle = '#1b1f24';
    g.fillRect(gutter, lane.y, cssW - gutter - 2, lane.h);
    // rows: octave lines (melody), row lines (drums); labels
    if (lane.drums) {
      for (let r = 0; r < 9; r++) {
        const yy = lane.y + (8 - r) * lane.rowH;
        if (r % 2 === 0) { g.fillStyle = '#20252b'; g.fillRect(gutter, yy, cssW - gutter - 2, lane.rowH); }
        if (!compact) {
          g.fillStyle = '#9aa4ae'; g.textAlign = 'right';
          g.fillText(run.drum_rows[r].name, gutter - 4, yy + lane.rowH / 2);
        }
      }
    } else {
      const [lo, hi] = lane.range;
      for (let p = lo; p <= hi; p++) {
        const yy = lane.y + (hi - p) * lane.rowH;
        if ([1, 3, 6, 8, 10].includes(p % 12)) {
          g.fillStyle = '#171a1f'; g.fillRect(gutter, yy, cssW - gutter - 2, lane.rowH);
        }
        if (p % 12 === 0) {
          g.fillStyle = '#38404a'; g.fillRect(gutter, yy + lane.rowH - 0.5, cssW - gutter - 2, 1);
          if (!compact) {
            g.fillStyle = '#9aa4ae'; g.textAlign = 'right';
            g.fillText(pitchName(p), gutter - 4, yy + lane.rowH / 2);
          }
        }
      }
    }
    // beats and bars
    for (let s = 0; s <= steps; s += 4) {
      g.fillStyle = s % spb === 0 ? '#4a5560' : '#262c33';
      g.fillRect(Math.round(x(s)), lane.y, 1, lane.h);
    }
    if (!compact && run.parts.length > 1) {
      g.fillStyle = PART_COLOURS[lane.part % 3]; g.textAlign = 'left';
      g.fillText(lane.name, gutter + 3, lane.y - 6 + (lane === ls[0] ? 0 : 0));
    }
  }
  // bar numbers
  if (!compact) {
    g.fillStyle = '#7d8790'; g.textAlign = 'left';
    const every = Math.max(1, Math.ceil(28 / (spb * stepW)));
    for (let b = 0; b * spb < steps; b += every) g.fillText(String(b + 1), x(b * spb) + 2, 7);
  }
  // notes
  let drawn = 0;
  for (const n of piece.notes) {
    const lane = ls[n.part];
    const colour = opts.highlight ? INPUT_COLOUR : PART_COLOURS[n.part % 3];
    let yy;
    if (lane.drums) {
      yy = lane.y + (8 - n.row) * lane.rowH;
    } else {
      if (n.pitch < lane.range[0] || n.pitch > lane.range[1]) continue;
      yy = lane.y + (lane.range[1] - n.pitch) * lane.rowH;
    }
    const gap = Math.min(1, stepW * 0.15);
    const x0 = x(n.start) + gap, x1 = Math.max(x0 + 1, x(n.end) - (lane.drums ? gap : 0));
    const h = Math.max(1, lane.rowH - (lane.rowH > 3 ? 1 : 0));
    g.fillStyle = colour;
    g.fillRect(x0, yy + (lane.rowH - h) / 2, x1 - x0, h);
    g.fillStyle = shade(opts.highlight ? '#adb5bd' : PART_COLOURS[n.part % 3], 0.55);
    g.fillRect(x0, yy + (lane.rowH - h) / 2, Math.min(Math.max(1.5, stepW * 0.45), x1 - x0), h);
    drawn++;
  }
  canvas.dataset.notes = String(drawn);
  return {gutter, stepW, height};
}
