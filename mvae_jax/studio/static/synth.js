// A small WebAudio synthesizer and step sequencer: a piano-like voice for melodies (and the trio
// lead), a bass voice, and the nine drum rows synthesised from noise and sine sweeps. Nothing is
// loaded from anywhere: every sound is made here.

const DRUM_TOMS = {4: 95, 5: 135, 6: 185};  // low / mid / high tom, Hz

function freq(pitch) {
  return 440 * Math.pow(2, (pitch - 69) / 12);
}

export class Synth {
  constructor() {
    this.ctx = null;
    this.volume = 0.8;
    this.notesPlayed = 0;
  }

  // The AudioContext, made (or resumed) on a user gesture.
  ensure() {
    if (!this.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      this.ctx = new AC();
      this.master = this.ctx.createGain();
      this.master.gain.value = this.volume;
      this.comp = this.ctx.createDynamicsCompressor();
      this.comp.threshold.value = -14; this.comp.ratio.value = 4;
      this.master.connect(this.comp).connect(this.ctx.destination);
      const len = this.ctx.sampleRate;  // one second of white noise, reused by every drum
      this.noise = this.ctx.createBuffer(1, len, this.ctx.sampleRate);
      const d = this.noise.getChannelData(0);
      for (let i = 0; i < len; i++) d[i] = Math.random() * 2 - 1;
    }
    if (this.ctx.state === 'suspended') this.ctx.resume();
    return this.ctx;
  }

  // Sounds already scheduled stop at once: they play into a bus that is faded out and dropped.
  silence() {
    if (!this.ctx) return;
    const old = this.master;
    old.gain.setTargetAtTime(0, this.ctx.currentTime, 0.01);
    this.master = this.ctx.createGain();
    this.master.gain.value = this.volume;
    this.master.connect(this.comp);
    setTimeout(() => old.disconnect(), 300);
  }

  setVolume(v) {
    this.volume = v;
    if (this.master) this.master.gain.setTargetAtTime(v, this.ctx.currentTime, 0.02);
  }

  _env(t, peak, attack) {
    const g = this.ctx.createGain();
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(peak, t + attack);
    return g;
  }

  piano(pitch, t, dur, vel = 0.8) {
    const c = this.ctx, f = freq(pitch);
    const g = this._env(t, 0.22 * vel, 0.004);
    const tau = 0.9 * Math.pow(2, -(pitch - 60) / 30);      // higher notes die sooner
    g.gain.setTargetAtTime(0.0, t + 0.004, tau);
    const end = t + Math.max(dur, 0.05);
    g.gain.cancelScheduledValues(end);
    g.gain.setTargetAtTime(0, end, 0.06);
    const lp = c.createBiquadFilter();
    lp.type = 'lowpass';
    lp.frequency.setValueAtTime(Math.min(12000, f * 10), t);
    lp.frequency.setTargetAtTime(Math.min(6000, f * 3), t, 0.25);
    const parts = [['triangle', 1, 1], ['sine', 2, 0.35], ['sine', 3.003, 0.12]];
    for (const [type, mult, amp] of parts) {
      const o = c.createOscillator(), a = c.createGain();
      o.type = type; o.frequency.value = f * mult; a.gain.value = amp;
      o.connect(a).connect(lp);
      o.start(t); o.stop(end + 0.5);
    }
    lp.connect(g).connect(this.master);
  }

  bass(pitch, t, dur, vel = 0.8) {
    const c = this.ctx, f = freq(pitch);
    const g = this._env(t, 0.3 * vel, 0.008);
    g.gain.setTargetAtTime(0.18 * vel, t + 0.01, 0.2);
    const end = t + Math.max(dur, 0.05);
    g.gain.cancelScheduledValues(end);
    g.gain.setTargetAtTime(0, end, 0.04);
    const lp = c.createBiquadFilter();
    lp.type = 'lowpass'; lp.Q.value = 6;
    lp.frequency.setValueAtTime(300 + f * 6, t);
    lp.frequency.setTargetAtTime(150 + f * 2, t, 0.12);
    const saw = c.createOscillator(), sub = c.createOscillator(), sg = c.createGain();
    saw.type = 'sawtooth'; saw.frequency.value = f;
    sub.type = 'sine'; sub.frequency.value = f; sg.gain.value = 0.8;
    saw.connect(lp); sub.connect(sg).connect(lp);
    lp.connect(g).connect(this.master);
    for (const o of [saw, sub]) { o.start(t); o.stop(end + 0.3); }
  }

  _noise(t, dur, type, hz, q, peak, decay) {
    const c = this.ctx, src = c.createBufferSource();
    src.buffer = this.noise;
    const f = c.createBiquadFilter();
    f.type = type; f.frequency.value = hz; f.Q.value = q;
    const g = c.createGain();
    g.gain.setValueAtTime(peak, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + decay);
    src.connect(f).connect(g).connect(this.master);
    src.start(t, Math.random() * 0.5); src.stop(t + decay + 0.02);
  }

  _sweep(t, f0, f1, sweep, peak, decay, type = 'sine') {
    const c = this.ctx, o = c.createOscillator(), g = c.createGain();
    o.type = type;
    o.frequency.setValueAtTime(f0, t);
    o.frequency.exponentialRampToValueAtTime(f1, t + sweep);
    g.gain.setValueAtTime(peak, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + decay);
    o.connect(g).connect(this.master);
    o.start(t); o.stop(t + decay + 0.02);
  }

  // row: 0 kick, 1 snare, 2 closed hi-hat, 3 open hi-hat, 4-6 toms, 7 crash, 8 ride
  drum(row, t, vel = 0.8) {
    if (row === 0) {
      this._sweep(t, 130, 42, 0.12, 0.9 * vel, 0.38);
    } else if (row === 1) {
      this._noise(t, 0.2, 'highpass', 1400, 0.7, 0.45 * vel, 0.17);
      this._sweep(t, 240, 170, 0.05, 0.35 * vel, 0.1, 'triangle');
    } else if (row === 2) {
      this._noise(t, 0.06, 'highpass', 7500, 0.8, 0.22 * vel, 0.05);
    } else if (row === 3) {
      this._noise(t, 0.4, 'highpass', 7000, 0.8, 0.2 * vel, 0.32);
    } else if (row in DRUM_TOMS) {
      const f = DRUM_TOMS[row];
      this._sweep(t, f * 1.6, f, 0.1, 0.6 * vel, 0.34);
    } else if (row === 7) {
      this._noise(t, 1.4, 'highpass', 4200, 0.6, 0.25 * vel, 1.3);
    } else {
      this._noise(t, 0.8, 'bandpass', 8500, 1.2, 0.22 * vel, 0.7);
      this._sweep(t, 3350, 3300, 0.5, 0.03 * vel, 0.6);
    }
  }

  note(ev, t, dur) {
    this.notesPlayed++;
    if (ev.row !== undefined && ev.row !== null) this.drum(ev.row, t);
    else if (ev.voice === 'bass') this.bass(ev.pitch, t, dur);
    else this.piano(ev.pitch, t, dur);
  }
}

// Per piece, its notes by start step, with the voice of their part.
function byStep(pieces, parts) {
  return pieces.map((p) => {
    const m = new Map();
    for (const n of p.notes) {
      if (!m.has(n.start)) m.set(n.start, []);
      m.get(n.start).push({...n, voice: parts[n.part] && parts[n.part].voice});
    }
    return m;
  });
}

// Plays pieces one after another (or one in a loop) at a tempo that may change while it plays:
// notes are scheduled a little ahead of the audio clock, step by step.
export class Player {
  constructor(synth) {
    this.synth = synth;
    this.qpm = 120;
    this.timer = null;
    this.scheduled = 0;       // notes scheduled since the page loaded (tests read it)
    this.onStep = null;       // (pieceIndex, stepInPiece) while playing, (-1, -1) at the end
    this.onEnd = null;
  }

  get playing() { return this.timer !== null; }

  stepSeconds() { return 60 / this.qpm / 4; }

  // pieces: [{steps, notes}], parts: the run's parts (voices); loop: repeat until stop.
  play(pieces, parts, {loop = false, onStep = null, onEnd = null} = {}) {
    this.stop();
    const ctx = this.synth.ensure();
    this.pieces = pieces; this.parts = parts; this.loop = loop;
    this.onStep = onStep; this.onEnd = onEnd;
    this.byStep = byStep(pieces, parts);
    this.piece = 0; this.step = 0;
    this.nextTime = ctx.currentTime + 0.06;
    this.marks = [];  // [time, piece, step] for the playhead
    this.timer = setInterval(() => this._tick(), 25);
    this._tick();
    this._frame();
  }

  // Replaces what plays from the next loop on (dragging the interpolation slider).
  replace(pieces) {
    if (!this.playing) return;
    this.pending = pieces;
  }

  _tick() {
    const ctx = this.synth.ctx;
    while (this.timer !== null && this.nextTime < ctx.currentTime + 0.12) {
      const p = this.pieces[this.piece];
      const sd = this.stepSeconds();
      for (const ev of this.byStep[this.piece].get(this.step) || []) {
        this.synth.note(ev, this.nextTime, (ev.end - ev.start) * sd);
        this.scheduled++;
      }
      this.marks.push([this.nextTime, this.piece, this.step]);
      this.nextTime += sd;
      this.step++;
      if (this.step >= p.steps) {
        this.step = 0;
        this.piece++;
        if (this.piece >= this.pieces.length) {
          if (!this.loop) { this._finish(this.nextTime); return; }
          this.piece = 0;
          if (this.pending) {
            this.pieces = this.pending;
            this.byStep = byStep(this.pending, this.parts);
            this.pending = null;
          }
        }
      }
    }
  }

  _finish(at) {
    clearInterval(this.timer);
    this.timer = null;
    const wait = Math.max(0, (at - this.synth.ctx.currentTime) * 1000);
    this.endTimer = setTimeout(() => {
      if (this.onStep) this.onStep(-1, -1);
      if (this.onEnd) this.onEnd();
    }, wait);
  }

  _frame() {
    if (this.timer === null && !this.marks.length) return;
    const now = this.synth.ctx.currentTime;
    let cur = null;
    while (this.marks.length && this.marks[0][0] <= now) cur = this.marks.shift();
    if (cur && this.onStep) this.onStep(cur[1], cur[2]);
    requestAnimationFrame(() => this._frame());
  }

  stop() {
    const was = this.playing || this.endTimer;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.endTimer) clearTimeout(this.endTimer);
    this.timer = null; this.endTimer = null; this.marks = []; this.pending = null;
    if (was) {
      if (this.onStep) this.onStep(-1, -1);
      const onEnd = this.onEnd;
      this.onEnd = null;
      if (onEnd) onEnd();
      this.synth.silence();
    }
  }
}
