// The studio page: runs, the Sample / Interpolate / Reconstruct / Attributes panels, input
// pickers (MIDI file with its windows, held-out example, a piece on the page), playback and
// MIDI downloads. Every model operation runs as a background job on the server (POST
// /api/runs/{run}/jobs/{op}); the page polls it and shows its stage, so it never freezes.

import {drawRoll, pitchRanges} from './roll.js';
import {Player, Synth} from './synth.js';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const synth = new Synth();
const player = new Player(synth);
const S = {info: null, run: null, runId: null, pickers: {}, cards: new Set(), errors: [],
           synth, player, interp: null, samples: [], attributes: []};
window.studio = S;  // for the console and the browser test
window.addEventListener('error', (e) => S.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => S.errors.push(String(e.reason)));

// ----------------------------------------------------------------------------- server calls

class ApiError extends Error {
  constructor(message, status, body) { super(message); this.status = status; this.body = body; }
}

async function api(path, opts = {}) {
  const init = {...opts};
  if (opts.json !== undefined) {
    init.method = init.method || 'POST';
    init.headers = {'Content-Type': 'application/json'};
    init.body = JSON.stringify(opts.json);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError('the studio server does not answer (was it stopped?)', 0);
  }
  const type = r.headers.get('content-type') || '';
  if (!r.ok) {
    const body = type.includes('json') ? await r.json() : {error: await r.text()};
    throw new ApiError(body.error || body.detail || `HTTP ${r.status}`, r.status, body);
  }
  return type.includes('json') ? r.json() : r.blob();
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// Runs operation `op` as a job, showing its stage and progress in `box`; returns its result.
async function runJob(op, body, box) {
  const started = performance.now();
  let job = await api(`/api/runs/${S.runId}/jobs/${op}`, {json: body});
  showJob(box, job, started);
  while (job.state === 'queued' || job.state === 'running') {
    await sleep(job.state === 'queued' ? 300 : 150);
    job = await api(`/api/jobs/${job.id}`);
    showJob(box, job, started);
  }
  showJob(box, null);
  if (job.state === 'error') throw new ApiError(job.error, job.status);
  return job.result;
}

function showJob(box, job, started) {
  if (!job) { box.classList.remove('busy'); box.replaceChildren(); return; }
  box.classList.add('busy');
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  const bar = el('div', 'progress');
  const fill = el('div');
  if (job.progress === null || job.progress === undefined || (job.state === 'running' && !job.estimate_s)) {
    bar.classList.add('indeterminate');
  } else {
    fill.style.width = `${Math.round(100 * job.progress)}%`;
  }
  bar.append(fill);
  box.replaceChildren(el('span', 'spinner'), el('span', 'stage', job.stage), el('span', 'time', `${secs} s`), bar);
}

function message(box, text, kind = 'error') {
  box.textContent = text || '';
  box.className = `msg ${text ? kind : ''}`;
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 6000);
}

// ----------------------------------------------------------------------------- pieces

// A card with a piece's roll and its buttons. opts: {ranges, highlight, compact, width,
// actions (default true), title}
function pieceCard(piece, opts = {}) {
  const card = el('div', `card${opts.highlight ? ' input' : ''}${opts.compact ? ' compact' : ''}`);
  const head = el('div', 'card-head');
  head.append(el('span', 'label', opts.title || piece.label));
  const buttons = el('span', 'buttons');
  const play = el('button', 'icon play', '\u25B6');
  play.title = 'play / stop';
  play.onclick = () => togglePlay(card);
  buttons.append(play);
  if (opts.actions !== false) {
    const midi = el('button', 'icon small', 'MIDI');
    midi.title = 'download as MIDI';
    midi.onclick = () => downloadMidi([piece], `${S.runId}-${slug(piece.label)}`);
    buttons.append(midi);
    if (S.run.use_encoder) {
      for (const [slot, text, title] of [['a', '\u2192A', 'use as input A of an interpolation'],
                                         ['b', '\u2192B', 'use as input B of an interpolation'],
                                         ['r', '\u2192R', 'reconstruct it'],
                                         ['t', '\u2192Attr', 'change its attributes']]) {
        if (slot === 't' && !S.attributes.length) continue;
        if (opts.compact && (slot === 'r' || slot === 't')) continue;  // small cards: A / B only
        const b = el('button', 'icon small', text);
        b.title = title;
        b.dataset.to = slot;
        b.onclick = () => S.pickers[slot].usePiece(piece);
        buttons.append(b);
      }
    }
  }
  head.append(buttons);
  const wrap = el('div', 'roll-wrap');
  wrap.title = 'click to play / stop';
  wrap.onclick = () => togglePlay(card);
  if (opts.width) card.style.width = `${opts.width + 14}px`;
  const canvas = el('canvas');
  const head2 = el('div', 'playhead');
  wrap.append(canvas, head2);
  card.append(head, wrap);
  card.piece = piece;
  card.opts = opts;
  card.draw = () => {
    if (!card.isConnected) { S.cards.delete(card); return; }
    card.geom = drawRoll(canvas, piece, S.run, {ranges: opts.ranges, highlight: opts.highlight,
                                                compact: opts.compact, width: opts.width});
  };
  S.cards.add(card);
  return card;
}

function mount(container, cards) {
  container.replaceChildren(...cards);
  for (const c of cards) c.draw();
}

function setPlayhead(card, step) {
  const ph = card.querySelector('.playhead');
  if (step < 0 || !card.geom) { ph.style.display = 'none'; card.classList.remove('playing'); return; }
  ph.style.display = 'block';
  ph.style.left = `${card.geom.gutter + step * card.geom.stepW}px`;
  card.classList.add('playing');
}

// Plays `cards`' pieces one after another; the playhead follows (S.playingCards may be swapped
// while it plays: the slider's point).
function playCards(cards, {loop = $('loop').checked, onEnd = null} = {}) {
  player.stop();
  S.playingCards = cards;
  player.play(cards.map((c) => c.piece), S.run.parts, {
    loop,
    onStep: (i, step) => (S.playingCards || []).forEach((c, k) => setPlayhead(c, k === i ? step : -1)),
    onEnd: () => {
      for (const c of S.playingCards || []) {
        setPlayhead(c, -1);
        c.querySelector('.play').textContent = '\u25B6';
      }
      S.playingCards = null;
      if (onEnd) onEnd();
    },
  });
  for (const c of cards) c.querySelector('.play').textContent = '\u25A0';
}

function togglePlay(card) {
  if (S.playingCards && S.playingCards.includes(card)) { player.stop(); return; }
  playCards([card]);
}

function slug(text) {
  return String(text).replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60) || 'piece';
}

async function downloadMidi(pieces, name) {
  try {
    const blob = await api(`/api/runs/${S.runId}/midi`, {
      json: {pieces: pieces.map((p) => p.tokens), qpm: player.qpm, name}});
    const a = el('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${name}.mid`;
    document.body.append(a);
    a.click();
    S.lastDownload = a.download;
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
  } catch (e) {
    toast(`MIDI download failed: ${e.message}`);
  }
}

// ----------------------------------------------------------------------------- input pickers

class Picker {
  constructor(root, slot, title) {
    this.root = root; this.slot = slot; this.title = title;
    this.source = 'file';
    this.upload = null;      // the upload's window list for the current run
    this.window = null;      // chosen window index
    this.evalIndex = 0;
    this.piece = null;       // what is shown (the chosen input as a piece)
    this.pagePiece = null;
    this.build();
  }

  build() {
    const r = this.root;
    r.replaceChildren();
    const head = el('div', 'picker-head');
    head.append(el('h3', '', this.title));
    this.tabs = el('div', 'seg');
    for (const [src, text] of [['file', 'MIDI file'], ['eval', 'Held-out'], ['page', 'From page']]) {
      const b = el('button', src === this.source ? 'on' : '', text);
      b.dataset.src = src;
      b.onclick = () => this.setSource(src);
      this.tabs.append(b);
    }
    head.append(this.tabs);
    r.append(head);

    this.fileBox = el('div', 'src src-file');
    const lab = el('label', 'file');
    this.fileInput = el('input');
    this.fileInput.type = 'file';
    this.fileInput.accept = '.mid,.midi,.kar,.smf,audio/midi,audio/x-midi';
    this.fileInput.onchange = () => this.fileInput.files[0] && this.sendFile(this.fileInput.files[0]);
    this.fileName = el('span', 'filename', 'choose or drop a MIDI file');
    lab.append(this.fileInput, el('span', 'button', 'Choose file'), this.fileName);
    this.windowSelect = el('select', 'windows');
    this.windowSelect.hidden = true;
    this.windowSelect.onchange = () => { this.window = Number(this.windowSelect.value); this.preview(); };
    this.summary = el('div', 'summary muted');
    this.fileBox.append(lab, this.windowSelect, this.summary);

    this.evalBox = el('div', 'src src-eval');
    this.evalInput = el('input');
    this.evalInput.type = 'number'; this.evalInput.min = '0'; this.evalInput.value = '0';
    this.evalInput.onchange = () => { this.evalIndex = Number(this.evalInput.value); this.preview(); };
    const dice = el('button', 'icon', 'Random');
    dice.title = 'a random held-out example';
    dice.onclick = () => {
      if (!this.evalCount) return;
      this.evalInput.value = String(Math.floor(Math.random() * this.evalCount));
      this.evalInput.onchange();
    };
    this.evalCountText = el('span', 'muted', '');
    const l = el('label', '', 'Example ');
    l.append(this.evalInput);
    this.evalBox.append(l, dice, this.evalCountText);

    this.pageBox = el('div', 'src src-page muted',
                      `Press \u2192${this.slot === 't' ? 'Attr' : this.slot.toUpperCase()} on any piece of the page.`);

    this.msg = el('div', 'msg');
    this.previewBox = el('div', 'preview');
    r.append(this.fileBox, this.evalBox, this.pageBox, this.msg, this.previewBox);
    r.ondragover = (e) => { e.preventDefault(); r.classList.add('drop'); };
    r.ondragleave = () => r.classList.remove('drop');
    r.ondrop = (e) => {
      e.preventDefault();
      r.classList.remove('drop');
      const f = e.dataTransfer.files[0];
      if (f) { this.setSource('file'); this.sendFile(f); }
    };
    this.setSource(this.source);
  }

  setSource(src) {
    this.source = src;
    for (const b of this.tabs.children) b.classList.toggle('on', b.dataset.src === src);
    this.fileBox.hidden = src !== 'file';
    this.evalBox.hidden = src !== 'eval';
    this.pageBox.hidden = src !== 'page';
    message(this.msg, '');
    if (src === 'eval') this.loadEval();
    this.preview();
  }

  async sendFile(file) {
    this.fileName.textContent = file.name;
    message(this.msg, '');
    this.upload = null; this.window = null;
    this.windowSelect.hidden = true; this.summary.textContent = '';
    this.previewBox.replaceChildren();
    const limit = S.info.limits.max_upload_bytes;
    if (file.size > limit) {
      message(this.msg, `${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the studio takes MIDI files up to ${(limit / 2 ** 20).toFixed(0)} MB`);
      return;
    }
    this.summary.textContent = 'reading the file\u2026';
    try {
      const info = await api(`/api/runs/${S.runId}/uploads?name=${encodeURIComponent(file.name)}`,
                             {method: 'POST', body: file, headers: {'Content-Type': 'application/octet-stream'}});
      this.uploadId = info.upload;
      this.setWindows(info);
    } catch (e) {
      this.uploadId = e.body && e.body.upload;  // kept: another run may read it
      this.summary.textContent = '';
      message(this.msg, e.message);
    }
  }

  setWindows(info) {
    this.upload = info;
    this.window = info.default;
    this.windowSelect.replaceChildren(...info.windows.map((w) => {
      const o = el('option', '', `window ${w.index}: bars ${w.bars[0]}\u2013${w.bars[1]}  (${fmtTime(w.seconds)})${w.index === info.default ? '  \u2605 default' : ''}`);
      o.value = String(w.index);
      return o;
    }));
    this.windowSelect.value = String(info.default);
    this.windowSelect.hidden = false;
    this.summary.textContent = `${info.windows.length} window${info.windows.length === 1 ? '' : 's'} of ${info.num_bars} bars; \u2605 the first with notes starting in every bar`;
    this.summary.title = info.summary;
    this.preview();
  }

  async loadEval() {
    this.evalCountText.textContent = 'loading\u2026';
    try {
      const info = await api(`/api/runs/${S.runId}/eval`);
      if (!info.available) {
        this.evalCount = 0;
        this.evalCountText.textContent = '';
        message(this.msg, info.reason);
        return;
      }
      this.evalCount = info.count;
      this.evalInput.max = String(info.count - 1);
      this.evalCountText.textContent = `of ${info.count} (0\u2013${info.count - 1})`;
      this.preview();
    } catch (e) {
      message(this.msg, e.message);
    }
  }

  usePiece(piece) {
    this.pagePiece = piece;
    this.setSource('page');
    selectTab({a: 'interpolate', b: 'interpolate', r: 'reconstruct', t: 'attributes'}[this.slot]);
    toast(`${piece.label} is now ${this.slot === 'a' || this.slot === 'b' ? `input ${this.slot.toUpperCase()} of the interpolation` : 'the input'}`);
  }

  async preview() {
    this.piece = null;
    this.previewBox.replaceChildren();
    try {
      let piece = null;
      if (this.source === 'file' && this.upload) {
        piece = await api(`/api/runs/${S.runId}/uploads/${this.upload.upload}/windows/${this.window}`);
      } else if (this.source === 'eval' && this.evalCount) {
        piece = await api(`/api/runs/${S.runId}/eval/${this.evalIndex}`);
      } else if (this.source === 'page' && this.pagePiece) {
        piece = this.pagePiece;
      }
      if (piece) {
        message(this.msg, '');
        this.piece = piece;
        mount(this.previewBox, [pieceCard(piece, {highlight: true, actions: false})]);
      }
    } catch (e) {
      message(this.msg, e.message);
    }
  }

  // The input for the API, or an Error saying what is missing.
  ref() {
    const name = this.title;
    if (this.source === 'file') {
      if (!this.upload) throw new Error(`${name}: choose a MIDI file${this.msg.textContent ? ' that has a usable window' : ''}`);
      return {upload: this.upload.upload, window: this.window};
    }
    if (this.source === 'eval') {
      if (!this.evalCount) throw new Error(`${name}: this run has no held-out examples`);
      return {eval: this.evalIndex};
    }
    if (!this.pagePiece) throw new Error(`${name}: press \u2192${this.slot.toUpperCase()} on a piece first`);
    return {tokens: this.pagePiece.tokens, label: this.pagePiece.label};
  }

  // The run changed: read the same upload for it, forget pieces of the old run.
  async onRunChange() {
    this.pagePiece = null;
    this.evalCount = 0;
    message(this.msg, '');
    if (this.uploadId) {
      this.upload = null;
      try {
        this.setWindows(await api(`/api/runs/${S.runId}/uploads/${this.uploadId}`));
      } catch (e) {
        this.windowSelect.hidden = true;
        this.summary.textContent = '';
        this.previewBox.replaceChildren();
        message(this.msg, e.message);
      }
    }
    this.setSource(this.source);
  }
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, '0')}`;
}

// ----------------------------------------------------------------------------- panels

function num(id, lo, hi, name) {
  const v = Number($(id).value);
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${name} must be a whole number in ${lo}..${hi}`);
  return v;
}

function temp(id) { return Number($(id).value); }

function busy(button, on) { button.disabled = on; }

async function doSample() {
  const go = $('s-go');
  message($('s-msg'), '');
  let body;
  try {
    body = {num: num('s-num', 1, S.info.limits.max_num, 'Pieces'), temperature: temp('s-temp'),
            greedy: $('s-greedy').checked, seed: num('s-seed', 0, S.info.limits.max_seed, 'Seed')};
  } catch (e) { message($('s-msg'), e.message); return; }
  busy(go, true);
  try {
    const res = await runJob('sample', body, $('s-job'));
    const ranges = pitchRanges(res.pieces, S.run);
    const cards = res.pieces.map((p) => pieceCard(p, {ranges}));
    S.samples = cards;
    const out = $('s-out');
    out.classList.toggle('wide', S.run.num_bars > 4);
    mount(out, cards);
    $('s-play').disabled = false;
  } catch (e) {
    message($('s-msg'), e.message);
  } finally {
    busy(go, false);
  }
}

async function doInterpolate() {
  const go = $('i-go');
  message($('i-msg'), '');
  let body;
  try {
    body = {a: S.pickers.a.ref(), b: S.pickers.b.ref(),
            steps: num('i-steps', 2, S.info.limits.max_steps, 'Steps'), temperature: temp('i-temp'),
            greedy: $('i-greedy').checked, seed: num('i-seed', 0, S.info.limits.max_seed, 'Seed')};
  } catch (e) { message($('i-msg'), e.message); return; }
  busy(go, true);
  try {
    const res = await runJob('interpolate', body, $('i-job'));
    S.interp = {...res, body};
    const all = [res.inputs[0], ...res.pieces, res.inputs[1]];
    const ranges = pitchRanges(all, S.run);
    const width = S.run.num_bars > 4 ? 330 : 168;
    const n = res.pieces.length;
    const cards = all.map((p, k) => pieceCard(p, {
      ranges, compact: true, width, highlight: k === 0 || k === all.length - 1,
      title: k === 0 ? `A: ${p.label}` : k === all.length - 1 ? `B: ${p.label}` : `${k - 1}/${n - 1}`,
    }));
    const path = cards.slice(1, -1);
    S.interpCards = cards;
    S.interpRanges = ranges;
    $('i-out').hidden = false;
    mount($('i-strip'), cards);
    $('i-point-out').replaceChildren();
    S.pathCards = path;
  } catch (e) {
    message($('i-msg'), e.message);
  } finally {
    busy(go, false);
  }
}

// The slider's point: one request at a time; a drag while one runs asks again for the latest t.
async function decodePoint(play) {
  if (!S.interp) return;
  if (S.pointBusy) { S.pointAgain = true; return; }
  S.pointBusy = true;
  const t = Number($('i-t').value);
  const interp = S.interp;
  const {body} = interp;
  try {
    const res = await runJob('point', {z_a: interp.z_a, z_b: interp.z_b, t, temperature: body.temperature,
                                       greedy: body.greedy, seed: body.seed}, $('p-job'));
    if (S.interp !== interp) return;  // a new interpolation meanwhile
    const card = pieceCard(res.piece, {ranges: S.interpRanges, title: `t = ${t.toFixed(2)} between A and B`});
    mount($('i-point-out'), [card]);
    if (play) {
      playCards([card], {loop: true, onEnd: () => { S.playingPoint = false; }});
      S.playingPoint = true;  // after playCards, whose stop() ended what played before
    } else if (S.playingPoint && player.playing) {
      player.replace([res.piece]);  // from the next loop on
      S.playingCards = [card];
      card.querySelector('.play').textContent = '\u25A0';
    }
  } catch (e) {
    message($('i-msg'), e.message);
  } finally {
    S.pointBusy = false;
    if (S.pointAgain) { S.pointAgain = false; decodePoint(false); }
  }
}

async function doReconstruct() {
  const go = $('r-go');
  message($('r-msg'), '');
  let body;
  try {
    body = {input: S.pickers.r.ref(), greedy: $('r-greedy').checked, temperature: temp('r-temp'),
            seed: num('r-seed', 0, S.info.limits.max_seed, 'Seed')};
  } catch (e) { message($('r-msg'), e.message); return; }
  busy(go, true);
  try {
    const res = await runJob('reconstruct', body, $('r-job'));
    const ranges = pitchRanges([res.input, res.output], S.run);
    const a = pieceCard(res.input, {ranges, highlight: true, title: `input: ${res.input.label}`});
    const b = pieceCard(res.output, {ranges, title: `reconstruction: ${Math.round(100 * res.equal_steps)}% of steps equal`});
    mount($('r-out'), [a, b]);
  } catch (e) {
    message($('r-msg'), e.message);
  } finally {
    busy(go, false);
  }
}

// HOOK (attributes): sliders for GET /api/runs/{run}/attributes, applied with
// POST /api/runs/{run}/jobs/apply_attributes. The tab stays hidden while the list is empty.
async function loadAttributes() {
  try {
    S.attributes = await api(`/api/runs/${S.runId}/attributes`);
  } catch (e) {
    S.attributes = [];
  }
  $('tab-attributes-button').hidden = !S.attributes.length;
  const box = $('t-sliders');
  box.replaceChildren(...S.attributes.map((a) => {
    const row = el('label', 'slider');
    const input = el('input');
    input.type = 'range'; input.min = '-3'; input.max = '3'; input.step = '0.1'; input.value = '0';
    input.dataset.name = a.name;
    const out = el('output', '', '0.0');
    input.oninput = () => { out.textContent = Number(input.value).toFixed(1); };
    const name = el('span', 'name', a.name.replace(/_/g, ' '));
    if (a.low !== null && a.high !== null) {
      row.title = `amount 1 moves a code as far as from windows of low ${a.name} (mean ${a.low.toFixed(2)}) to windows of high ${a.name} (mean ${a.high.toFixed(2)})`;
      name.append(el('small', 'muted', ` ${a.low.toFixed(1)} \u2192 ${a.high.toFixed(1)}`));
    }
    row.append(name, input, out);
    return row;
  }));
}

async function doAttributes() {
  message($('t-msg'), '');
  const amounts = {};
  for (const input of $('t-sliders').querySelectorAll('input')) amounts[input.dataset.name] = Number(input.value);
  let body;
  try { body = {input: S.pickers.t.ref(), amounts}; } catch (e) { message($('t-msg'), e.message); return; }
  busy($('t-go'), true);
  try {
    const res = await runJob('apply_attributes', body, $('t-job'));
    const ranges = pitchRanges([res.input, res.piece], S.run);
    const a = pieceCard(res.input, {ranges, highlight: true, title: `input: ${res.input.label}`});
    const b = pieceCard(res.piece, {ranges});
    mount($('t-out'), [a, b]);
  } catch (e) {
    message($('t-msg'), e.message);
  } finally {
    busy($('t-go'), false);
  }
}

// ----------------------------------------------------------------------------- page

function selectTab(name) {
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const s of document.querySelectorAll('.tab')) s.classList.toggle('active', s.id === `tab-${name}`);
  for (const c of S.cards) if (c.isConnected) c.draw();
}

async function selectRun(id) {
  player.stop();
  S.runId = id;
  S.run = S.info.runs.find((r) => r.id === id);
  const r = S.run;
  const parts = r.parts.map((p) => p.name).join(' + ');
  $('run-desc').textContent = `${r.family}:${r.preset} \u00B7 ${r.num_bars} bars of ${parts} \u00B7 ${r.hierarchical ? 'hierarchical' : 'flat'} decoder \u00B7 step ${r.step} \u00B7 ${r.mode} mode`;
  for (const id2 of ['s-out', 'i-strip', 'i-point-out', 'r-out', 't-out']) $(id2).replaceChildren();
  $('i-out').hidden = true;
  $('s-play').disabled = true;
  S.interp = null;
  S.cards.clear();
  for (const tab of ['interpolate', 'reconstruct']) {
    document.querySelector(`.tabs button[data-tab="${tab}"]`).hidden = !r.use_encoder;
  }
  if (!r.use_encoder) selectTab('sample');
  await loadAttributes();
  for (const p of Object.values(S.pickers)) p.onRunChange();
}

function wire() {
  for (const [id, out] of [['s-temp', 's-temp-out'], ['i-temp', 'i-temp-out'], ['r-temp', 'r-temp-out']]) {
    $(id).oninput = () => { $(out).textContent = Number($(id).value).toFixed(2); };
  }
  $('qpm').oninput = () => { player.qpm = Number($('qpm').value); $('qpm-out').textContent = $('qpm').value; };
  $('volume').oninput = () => synth.setVolume(Number($('volume').value));
  $('stop').onclick = () => player.stop();
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') player.stop(); });
  for (const b of document.querySelectorAll('.tabs button')) b.onclick = () => selectTab(b.dataset.tab);
  $('run').onchange = () => selectRun($('run').value);
  $('s-go').onclick = doSample;
  $('s-dice').onclick = () => { $('s-seed').value = String(Math.floor(Math.random() * 100000)); };
  $('s-play').onclick = () => S.samples.length && playCards(S.samples);
  $('i-go').onclick = doInterpolate;
  $('i-play').onclick = () => S.pathCards && playCards(S.pathCards);
  $('i-midi').onclick = () => S.interp && downloadMidi(S.interp.pieces, `${S.runId}-interpolation`);
  $('i-midi-all').onclick = () => S.interp && downloadMidi(
      [S.interp.inputs[0], ...S.interp.pieces, S.interp.inputs[1]], `${S.runId}-interpolation-with-inputs`);
  $('i-t').oninput = () => {
    $('i-t-out').textContent = `t = ${Number($('i-t').value).toFixed(2)}`;
    if (S.playingPoint) {
      clearTimeout(S.pointTimer);
      S.pointTimer = setTimeout(() => decodePoint(false), 120);
    }
  };
  $('i-point').onclick = () => decodePoint(true);
  $('r-go').onclick = doReconstruct;
  $('t-go').onclick = doAttributes;
  $('t-reset').onclick = () => {
    for (const input of $('t-sliders').querySelectorAll('input')) { input.value = '0'; input.oninput(); }
  };
  let resize = null;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => { for (const c of S.cards) c.draw(); }, 150);
  });
}

async function main() {
  wire();
  try {
    S.info = await api('/api/info');
  } catch (e) {
    toast(e.message);
    return;
  }
  $('run').replaceChildren(...S.info.runs.map((r) => {
    const o = el('option', '', `${r.name}  (${r.family}:${r.preset}, step ${r.step})`);
    o.value = r.id;
    return o;
  }));
  S.pickers.a = new Picker($('pick-a'), 'a', 'A');
  S.pickers.b = new Picker($('pick-b'), 'b', 'B');
  S.pickers.r = new Picker($('pick-r'), 'r', 'Input');
  S.pickers.t = new Picker($('pick-t'), 't', 'Input');
  await selectRun(S.info.runs[0].id);
  document.body.classList.add('ready');
}

main();
