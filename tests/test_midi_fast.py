"""The fast MIDI reader (data_pipelines/midi_fast.py) gives the full reader's parts, exactly.

The full reader (mido + pretty_midi + note-seq, `midi.quantized_parts(midi.read_midi(...))`) is
the one the reference uses; the fast one must give the same `QuantizedPart`s (every array, every
float-derived step) or the same skip reason, on every test corpus and on synthetic files with the
cases where MIDI readers disagree.
"""

import io
import os
import struct
import subprocess
import sys

import mido
import numpy as np
import pytest

from data_pipelines import midi
from data_pipelines import midi_fast

sys.path.insert(0, os.path.dirname(__file__))
import make_bad_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
import make_big_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines import conversion

FIELDS = ('start', 'end', 'pitch', 'velocity', 'instrument', 'program', 'is_drum')


def _full(data, reject):
  try:
    ns = midi.midi_bytes_to_note_sequence(data, 'x.mid', reject_empty_tracks=reject)
    return midi.quantized_parts(ns)
  except midi.MidiError as e:
    return e.reason


def _fast(data, reject):
  try:
    return midi_fast.read_parts(data, 'x.mid', reject_empty_tracks=reject)
  except midi.MidiError as e:
    return e.reason


def _assert_same(data, name=''):
  for reject in (False, True):
    want, got = _full(data, reject), _fast(data, reject)
    if isinstance(want, str) or isinstance(got, str):
      assert got == want, (name, reject)
      continue
    assert len(got) == len(want), (name, reject)
    for k, (a, b) in enumerate(zip(got, want)):
      for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f'{name} part {k} {f}')
      assert ((a.total_steps, a.steps_per_bar, a.qpm)
              == (b.total_steps, b.steps_per_bar, b.qpm)), name


def _takes_fast_path(data) -> bool:
  try:
    midi_fast._piece(data, 'x.mid', False)  # pylint: disable=protected-access
    return True
  except midi_fast._Fallback:  # pylint: disable=protected-access
    return False


def _bytes(*tracks, ticks_per_beat=480) -> bytes:
  mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
  for events in tracks:
    t = mido.MidiTrack()
    t.extend(events)
    mid.tracks.append(t)
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def _on(note, time, velocity=90, channel=0):
  return mido.Message('note_on', note=note, velocity=velocity, time=time, channel=channel)


def _off(note, time, channel=0, zero_velocity_on=False):
  if zero_velocity_on:
    return mido.Message('note_on', note=note, velocity=0, time=time, channel=channel)
  return mido.Message('note_off', note=note, velocity=64, time=time, channel=channel)


def _tempo(bpm, time=0):
  return mido.MetaMessage('set_tempo', tempo=mido.bpm2tempo(bpm), time=time)


def _melody(n=64, step=240, channel=0, pitch=60):
  out = []
  for i in range(n):
    out += [_on(pitch + i % 7, 0 if i == 0 else step // 2, channel=channel),
            _off(pitch + i % 7, step // 2, channel=channel, zero_velocity_on=i % 2 == 0)]
  return out


# Synthetic files with the cases where readers disagree; each has enough notes for windows.
SYNTHETIC = {
    # Two note-ons of one pitch, then one note-off: pretty_midi closes both there.
    'overlapping_same_pitch': [_melody(32) + [_on(60, 0), _on(60, 120), _off(60, 240),
                                              _off(60, 240)] + _melody(32)],
    # A note-off on its note-on's tick (zero length): the note is dropped; with an older open
    # note of the pitch, the older one closes and the new one stays open.
    'zero_length_notes': [_melody(16) + [_on(62, 0), _off(62, 0), _on(64, 60), _on(64, 180),
                                         _off(64, 0), _off(64, 300)] + _melody(32)],
    'note_off_before_on': [[_off(65, 0), _off(60, 10)] + _melody(48)],
    # Tempo and time signature events on a non-zero track: pretty_midi ignores them.
    'tempo_on_other_track': [[_tempo(100)] + _melody(40),
                             [_tempo(150, 960), mido.MetaMessage('time_signature', numerator=3,
                                                                 denominator=4, time=0)]
                             + _melody(40, channel=1)],
    'tempo_and_meter_changes': [[_tempo(97), _tempo(97, 1920), _tempo(133, 1920),
                                 mido.MetaMessage('time_signature', numerator=3, denominator=4,
                                                  time=7680),
                                 mido.MetaMessage('time_signature', numerator=4, denominator=4,
                                                  time=3840), _tempo(71, 0)],
                                _melody(200, step=180)],
    # A program change while a note sounds: the note goes to the program at its note-off.
    'program_change_mid_note': [[mido.Message('program_change', program=33, time=0), _on(40, 0),
                                 mido.Message('program_change', program=5, time=100),
                                 _off(40, 100)] + _melody(40) + _melody(30, channel=9, pitch=36)],
    'same_channel_two_tracks': [_melody(40), _melody(40, step=120), _melody(40, channel=9,
                                                                            pitch=35)],
    # Zero-length drum hits (every other one) next to real ones.
    'drums_zero_length': [[x for i in range(64) for x in (_on(36 + i % 6, 120, channel=9),
                                                          _off(36 + i % 6, 60 * (i % 2),
                                                               channel=9))]],
    'resolution_96': [_melody(64, step=48)],
}


def _synthetic(name, ticks_per_beat=480):
  tracks = SYNTHETIC[name]
  return _bytes(*tracks, ticks_per_beat=96 if name == 'resolution_96' else ticks_per_beat)


@pytest.mark.parametrize('name', sorted(SYNTHETIC))
def test_synthetic_cases_equal_the_full_reader(name):
  data = _synthetic(name)
  assert _takes_fast_path(data), name
  _assert_same(data, name)
  assert not isinstance(_fast(data, False), str) and _fast(data, False), name


def _random_pairing_file(seed: int) -> bytes:
  """Note-ons and note-offs of three pitches on two channels, often on one tick, with program
  changes between them: every order of opening and closing that pretty_midi's pairing treats
  differently (zero-length notes, notes kept open or forgotten at a note-off on their tick,
  note-offs with nothing open, several note-offs on one tick)."""
  rng = np.random.default_rng(seed)
  tracks = []
  for _ in range(2):
    events = []
    for _ in range(400):
      delta = int(rng.choice([0, 0, 0, 1, 60, 120]))
      channel = int(rng.choice([0, 9]))
      pitch = int(rng.choice([60, 62, 64]))
      r = rng.random()
      if r < 0.45:
        events.append(_on(pitch, delta, int(rng.integers(1, 128)), channel))
      elif r < 0.95:
        events.append(_off(pitch, delta, channel, zero_velocity_on=bool(rng.random() < 0.5)))
      else:
        events.append(mido.Message('program_change', program=int(rng.integers(128)),
                                   channel=channel, time=delta))
    tracks.append(events)
  return _bytes(*tracks, ticks_per_beat=96)


@pytest.mark.parametrize('seed', range(12))
def test_random_note_pairing_equals_the_full_reader(seed):
  data = _random_pairing_file(seed)
  assert _takes_fast_path(data)
  _assert_same(data, f'seed {seed}')
  assert not isinstance(_fast(data, False), str)


def test_running_status():
  data = _synthetic('overlapping_same_pitch')
  # mido writes running status already; check it is there.
  raw = bytearray(data)
  assert raw.count(b'\x90') < sum(1 for m in SYNTHETIC['overlapping_same_pitch'][0]
                                  if m.type == 'note_on')
  assert _takes_fast_path(data)
  _assert_same(bytes(raw), 'running status')


# System messages, written byte by byte (mido writes neither the 0xf7 escape form, nor system
# real-time bytes, nor running status next to a sysex). Each event is its delta-time and bytes.

def _varlen(n: int) -> bytes:
  out = [n & 0x7f]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7f))
    n >>= 7
  return bytes(reversed(out))


def _ev(delta: int, *raw) -> bytes:
  return _varlen(delta) + bytes(raw)


def _sysex(delta: int, body: bytes, status: int = 0xf0) -> bytes:
  return _varlen(delta) + bytes([status]) + _varlen(len(body)) + body


def _raw_file(*tracks: bytes, ticks_per_beat: int = 480) -> bytes:
  out = b'MThd' + struct.pack('>IHHH', 6, 1, len(tracks), ticks_per_beat)
  for events in tracks:
    events += _ev(0, 0xff, 0x2f, 0)
    out += b'MTrk' + struct.pack('>I', len(events)) + events
  return out


def _raw_melody(n: int = 48, channel: int = 0, pitch: int = 60, step: int = 240) -> bytes:
  """n notes under running status: one note-on status byte, then data bytes only (note-on with
  velocity 0 as note-off)."""
  out = _ev(0, 0x90 | channel, pitch, 90)
  for i in range(n):
    p = pitch + i % 7
    if i:
      out += _ev(step // 2, p, 90)
    out += _ev(step // 2, p, 0)
  return out


GM_ON = bytes([0x7e, 0x7f, 0x09, 0x01, 0xf7])
GS_RESET = bytes([0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7f, 0x00, 0x41, 0xf7])
XG_ON = bytes([0x43, 0x10, 0x4c, 0x00, 0x00, 0x7e, 0x00, 0xf7])
_SETUP = _sysex(0, GM_ON) + _sysex(0, GS_RESET) + _sysex(0, XG_ON)

# name -> (raw file, whether mido reads it: the fast path must take it; else the full path
# must refuse it, with the same skip reason).
SYSTEM = {
    # A type-1 file as sequencers write them: GM / GS / XG resets in the conductor track, device
    # setup at the start of each part.
    'gm_gs_xg_resets': (_raw_file(_SETUP + _ev(0, 0xff, 0x51, 3, 0x07, 0xa1, 0x20),
                                  _sysex(0, GS_RESET) + _raw_melody(),
                                  _sysex(0, XG_ON) + _raw_melody(channel=9, pitch=36)), True),
    # The 0xf7 escape form: a sysex split into packets (the first without its 0xf7), and an
    # escape carrying plain data bytes; both strip nothing but a leading 0xf0 / trailing 0xf7.
    'sysex_escape_form': (_raw_file(_sysex(0, bytes([0x43, 0x10, 0x4c]))
                                    + _sysex(10, bytes([0x00, 0x00, 0x7e, 0x00, 0xf7]), 0xf7)
                                    + _sysex(0, bytes([0x01, 0x02]), 0xf7)
                                    + _sysex(0, b'', 0xf7) + _sysex(0, b'\xf0\x7e\xf7', 0xf7)
                                    + _raw_melody()), True),
    # A sysex inside a track, running status before it and a new status byte after it.
    'sysex_mid_track': (_raw_file(_raw_melody(20) + _sysex(60, GS_RESET)
                                  + _ev(60, 0x90, 50, 80) + _ev(120, 50, 0) + _raw_melody(30)
                                  + _sysex(0, b'') + _sysex(0, bytes([0xf7]))
                                  + _raw_melody(20, pitch=70)), True),
    # Running status right after a sysex: mido keeps the sysex as the running status, drops the
    # data byte, and reads another sysex (length, then data) from the bytes after it.
    'running_status_after_sysex': (_raw_file(_raw_melody(20) + _sysex(0, GM_ON)
                                             + _ev(30, 0x05, 0x02, 0x11, 0x22)
                                             + _ev(0, 0x40, 0x00) + _raw_melody(30)), True),
    # System common messages (quarter frame, song position, song select, tune request) and the
    # running status they set: the data byte is the message's first data byte.
    'system_common': (_raw_file(_ev(0, 0xf1, 0x21) + _ev(0, 0x35) + _ev(0, 0xf2, 0x10, 0x7f)
                                + _ev(5, 0x01, 0x02) + _ev(0, 0xf3, 0x07) + _ev(0, 0x08)
                                + _ev(0, 0xf6) + _raw_melody(24)
                                + _ev(0, 0xf1, 0x70) + _raw_melody(24, pitch=48)), True),
    # System real-time bytes between notes.
    'system_realtime': (_raw_file(_ev(0, 0xfa) + _raw_melody(24) + _ev(10, 0xf8) + _ev(0, 0xfe)
                                  + _ev(0, 0xfb) + _raw_melody(24, pitch=55) + _ev(0, 0xfc)),
                        True),
    # Tracks the tokeniser leaves to the one-event-at-a-time reader (a meta message of 200
    # bytes, running status right after a meta message, a 5-byte delta-time) next to tracks it
    # reads.
    'tokens_and_loop_tracks': (_raw_file(_ev(0, 0xff, 0x51, 3, 0x07, 0xa1, 0x20),
                                         _ev(0, 0xff, 0x01) + _varlen(200) + b'x' * 200
                                         + _raw_melody(30),
                                         _raw_melody(10, channel=1) + _ev(0, 0xff, 0x06, 1, 0x41)
                                         + _ev(60, 70, 90) + _ev(60, 70, 0)
                                         + _raw_melody(20, channel=1),
                                         _raw_melody(30, channel=9, pitch=36),
                                         _raw_melody(5, channel=2) + b'\x80\x80\x80\x80\x00'
                                         + bytes([0x90 | 2, 50, 0]) + _raw_melody(5, channel=2)),
                               True),
    # What mido refuses (the full path's skip reason, by the full path): undefined status bytes,
    # a data byte > 127 in a sysex, running status after a message without data bytes, a sysex
    # longer than the file.
    'undefined_status': (_raw_file(_raw_melody(20) + _ev(0, 0xf4) + _raw_melody(20)), False),
    'undefined_realtime': (_raw_file(_raw_melody(20) + _ev(0, 0xfd) + _raw_melody(20)), False),
    'sysex_byte_over_127': (_raw_file(_sysex(0, bytes([0xf8, 0x01]), 0xf7) + _raw_melody()),
                            False),
    'running_status_after_realtime': (_raw_file(_ev(0, 0xf8) + _ev(0, 0x40)
                                                + _raw_melody()), False),
    'sysex_past_the_end': (_raw_file(_raw_melody() + _ev(0, 0xf0, 0x7f, 0x01)), False),
    # A 10-byte delta-time (mido reads any length): beyond MAX_TICKS, and beyond int64.
    'delta_beyond_int64': (_raw_file(_raw_melody() + b'\xff' * 9 + bytes([0x7f, 0x90, 60, 0])),
                           False),
}


@pytest.mark.parametrize('name', sorted(SYSTEM))
def test_system_messages_equal_the_full_reader(name):
  data, read_by_mido = SYSTEM[name]
  _assert_same(data, name)
  assert _takes_fast_path(data) == read_by_mido, name
  full = _full(data, False)
  assert isinstance(full, str) != read_by_mido, (name, full)
  if read_by_mido:
    assert full, name  # windows come out of it: the notes around the messages are read


def _chunks(data: bytes):
  size = int.from_bytes(data[4:8], 'big')
  pos = 8 + size
  for _ in range(int.from_bytes(data[10:12], 'big')):
    n = int.from_bytes(data[pos + 4:pos + 8], 'big')
    yield pos + 8, pos + 8 + n
    pos += 8 + n


def _lexers_agree(data: bytes) -> int:
  """Asserts the numpy tokeniser reads each track of `data` as the one-event-at-a-time reader;
  returns how many tracks it read (the others it leaves to that reader)."""
  read = 0
  tokens, lex_tokens, lex_loop = (midi_fast._TOKEN, midi_fast._lex_tokens,  # pylint: disable=protected-access
                                  midi_fast._lex_track_loop)  # pylint: disable=protected-access
  for start, end in _chunks(data):
    toks = tokens.findall(data, start, end)
    if start == end or sum(map(len, toks)) != end - start:
      continue
    events, metas, last = lex_tokens(data, [(start, end)], [toks])
    loop_events, loop_metas, loop_last = lex_loop(data, start, end)
    np.testing.assert_array_equal(events[:, 1:], np.array(loop_events, np.int64).reshape(-1, 4))
    assert (metas[0], last[0]) == (loop_metas, loop_last)
    read += 1
  return read


def test_tokeniser_reads_tracks_as_the_event_loop():
  """The numpy tokeniser (most tracks) against the one-event-at-a-time reader (the rest)."""
  names = sorted(f for f in os.listdir(conversion.FREEDOOM_DIR) if f.endswith('.mid'))
  for name in names:
    with open(os.path.join(conversion.FREEDOOM_DIR, name), 'rb') as f:
      data = f.read()
    assert _lexers_agree(data) == sum(1 for a, e in _chunks(data) if e > a), name
  for name, (data, read_by_mido) in SYSTEM.items():
    if read_by_mido:  # running status after a sysex is left to the event loop
      assert bool(_lexers_agree(data)) == (name != 'running_status_after_sysex'), name
  assert _lexers_agree(SYSTEM['tokens_and_loop_tracks'][0]) == 2
  for seed in range(3):
    assert _lexers_agree(_random_pairing_file(seed)) == 2


def test_reset_sysex_takes_the_fast_path():
  """GM / GS / XG resets (a third of real collections carry them) stay on the fast path."""
  for body in (GM_ON, GS_RESET, XG_ON):
    data = _raw_file(_sysex(0, body) + _raw_melody())
    assert _takes_fast_path(data), body.hex()
    _assert_same(data, body.hex())
  with_sysex = _bytes([mido.Message('sysex', data=[1, 2, 3])] + _melody(40))
  assert _takes_fast_path(with_sysex)
  _assert_same(with_sysex, 'sysex written by mido')


def test_corruptions_of_a_file_with_system_messages_equal_the_full_reader():
  good = _raw_file(_SETUP + _raw_melody(30) + _ev(0, 0xf1, 0x21) + _ev(0, 0xf8)
                   + _sysex(0, bytes([0x01, 0x02]), 0xf7) + _raw_melody(30))
  rng = np.random.default_rng(1)
  fast = 0
  for k in range(60):
    raw = bytearray(good)
    if k % 5 == 0:
      raw = raw[:int(rng.integers(14, len(raw)))]
    else:
      for i in rng.integers(14, len(raw), size=1 + k % 3):
        raw[i] = int(rng.integers(256))
    fast += _takes_fast_path(bytes(raw))
    _assert_same(bytes(raw), f'corruption {k}')
  assert fast  # some corruptions are still read (by both paths), not all refused


def test_meta_checks_are_mido_and_pretty_midi():
  """`_check_metas` refuses exactly the meta messages mido's decoder refuses; the values the fast
  path takes from tempo and time signature payloads are mido's; pretty_midi takes every key
  signature mido decodes."""
  from mido.midifiles import meta as mido_meta  # pylint: disable=g-import-not-at-top
  import pretty_midi  # pylint: disable=g-import-not-at-top
  assert midi.MAX_TICKS == pretty_midi.pretty_midi.MAX_TICK
  types = sorted(set(range(0x00, 0x0b)) | {0x20, 0x21, 0x2f, 0x51, 0x54, 0x58, 0x59, 0x60, 0x7f,
                                            0x80, 0xff})
  checked = refused = 0
  for mtype in types:
    for length in range(7):
      for first in range(256) if length else (0,):
        for second in (0, 1, 2, 29, 31, 59, 60, 0x7f, 0x80, 0xff) if length > 1 else (0,):
          payload = bytes([first, second, 3, 4, 5, 6][:length])
          try:
            msg = mido_meta.build_meta_message(mtype, list(payload))
          except Exception:  # pylint: disable=broad-except
            msg = None
          try:
            midi_fast._check_metas([(0, mtype, payload)])  # pylint: disable=protected-access
            ours = True
          except midi_fast._Fallback:  # pylint: disable=protected-access
            ours = False
          assert ours == (msg is not None), (mtype, payload)
          checked += 1
          refused += not ours
          if msg is None:
            continue
          if mtype == 0x51:
            assert msg.tempo == (payload[0] << 16) | (payload[1] << 8) | payload[2]
          elif mtype == 0x58:
            assert (msg.numerator, msg.denominator) == (payload[0], 2 ** payload[1])
          elif mtype == 0x59:
            pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(msg.key), 0.0)
  assert checked > 100_000 and refused > 1000
  # The later SMPTE fields: each range mido checks.
  for third in (59, 60):
    for fifth in (99, 100):
      payload = bytes([0x20, 5, third, 7, fifth])
      try:
        mido_meta.build_meta_message(0x54, list(payload))
        ok = True
      except ValueError:
        ok = False
      try:
        midi_fast._check_metas([(0, 0x54, payload)])  # pylint: disable=protected-access
        assert ok
      except midi_fast._Fallback:  # pylint: disable=protected-access
        assert not ok


@pytest.mark.parametrize('numerator,exponent', [(3, 2), (0, 2), (4, 30), (4, 31), (4, 32),
                                                 (4, 255)])
def test_time_signatures_equal_the_full_reader(numerator, exponent):
  """Numerator 0 (pretty_midi refuses it), denominators beyond int32 (note-seq refuses them) or
  that fail mido's power-of-two check (2**31), and ordinary ones."""
  data = _raw_file(_ev(0, 0xff, 0x58, 4, numerator, exponent, 24, 8) + _raw_melody(20)
                   + _ev(0, 0xff, 0x58, 4, 4, 2, 24, 8) + _raw_melody(40))
  _assert_same(data, f'{numerator}/2**{exponent}')
  assert _takes_fast_path(data) == (numerator > 0 and exponent <= 30)


def test_extraction_imports_no_midi_library():
  """The fast path needs neither mido, pretty_midi nor note-seq (slow imports); the extract CLI
  imports them only for a file the fast path leaves to the full reader."""
  code = ('import sys; from data_pipelines import extract; '
          'extract.extract_folder(sys.argv[1], "magenta", log=lambda _: None); '
          'print(sorted(m for m in ("mido", "pretty_midi", "note_seq") if m in sys.modules))')
  out = subprocess.run([sys.executable, '-c', code, conversion.FREEDOOM_DIR], capture_output=True,
                       text=True, check=True,
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
                           os.path.abspath(__file__)))))
  assert out.stdout.strip() == '[]', out.stdout + out.stderr


def test_freedoom_equals_the_full_reader_and_takes_the_fast_path():
  names = sorted(f for f in os.listdir(conversion.FREEDOOM_DIR) if f.endswith('.mid'))
  assert len(names) > 60
  for name in names:
    with open(os.path.join(conversion.FREEDOOM_DIR, name), 'rb') as f:
      data = f.read()
    assert _takes_fast_path(data), name
    _assert_same(data, name)


def test_big_and_malformed_corpora_equal_the_full_reader(tmp_path):
  make_big_midi.write_corpus(str(tmp_path / 'big'))
  make_bad_midi.write_corpus(str(tmp_path / 'bad'),
                             os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_VICTOR.mid'))
  os.remove(tmp_path / 'bad' / 'hangs_on_open.mid')
  for folder in ('big', 'bad'):
    for name in sorted(os.listdir(tmp_path / folder)):
      with open(tmp_path / folder / name, 'rb') as f:
        _assert_same(f.read(), name)


def test_corruptions_of_a_real_file_equal_the_full_reader():
  """Byte flips and cuts of a real file: the fast path accepts only what it reads exactly."""
  with open(os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_E1M1.mid'), 'rb') as f:
    good = f.read()
  rng = np.random.default_rng(0)
  for k in range(40):
    raw = bytearray(good)
    if k % 4 == 0:
      raw = raw[:int(rng.integers(14, len(raw)))]
    else:
      for i in rng.integers(14, len(raw), size=1 + k % 3):
        raw[i] = int(rng.integers(256))
    _assert_same(bytes(raw), f'corruption {k}')
