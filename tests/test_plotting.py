"""Piano rolls a musician can read: octave labels, visible repeated notes, one pitch range for a
set of pictures, drum names. The figures are inspected through matplotlib's axes."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mvae_jax import plotting

MELODY = dict(part_names=['melody'], part_is_drums=[False])


def _melody(pitches, step=2):
  """A 2-bar melody (paper mode: class = pitch + 2), one note every `step` steps."""
  tokens = np.zeros(32, np.int32)
  for i, p in enumerate(pitches):
    tokens[i * step] = p + 2
  return tokens


def _labels(ax):
  return [t.get_text() for t in ax.get_yticklabels()]


@pytest.fixture
def figures():
  made = []

  def draw(pieces, **kwargs):
    fig = plotting.draw_pieces(pieces, **kwargs)
    made.append(fig)
    return fig.axes
  yield draw
  for fig in made:
    plt.close(fig)


def test_octave_labels(figures):
  [ax] = figures([_melody([60, 64, 67, 72, 76])], **MELODY)
  assert _labels(ax) == ['C4', 'C5', 'C6']
  lo, hi = ax.get_ylim()
  assert lo < 60 and hi > 76
  # A melody inside one octave still gets two octave labels (C to C).
  [ax] = figures([_melody([62, 64, 65])], **MELODY)
  assert _labels(ax) == ['C4', 'C5']
  # The magenta vocabulary (class 2 = MIDI 21) is labelled by MIDI pitch.
  [ax] = figures([_melody([60 - 21])], min_pitch=21, **MELODY)
  assert _labels(ax) == ['C4', 'C5']


def test_repeated_notes_are_separate(figures):
  [ax] = figures([_melody([60, 60, 60, 60], step=4)], **MELODY)
  boxes, marks = ax.collections[:2]
  starts = sorted(p.vertices[:, 0].min() for p in boxes.get_paths())
  ends = sorted(p.vertices[:, 0].max() for p in boxes.get_paths())
  assert len(starts) == 4
  # Each note begins after a gap: the previous note's box ends before the next one starts.
  assert all(end < start for end, start in zip(ends[:-1], starts[1:]))
  # ... and has a darker onset mark at its start.
  assert len(marks.get_paths()) == 4
  assert np.all(np.asarray(marks.get_facecolor())[:, :3] < np.asarray(
      boxes.get_facecolor())[:, :3])


def test_one_pitch_range_for_a_set(figures):
  low, high = _melody([40, 43]), _melody([84, 86])
  ranges = plotting.pitch_ranges([low, high], [False])
  assert ranges == [(36, 96)]
  [a] = figures([low], pitch_ranges=ranges, **MELODY)
  [b] = figures([high], pitch_ranges=ranges, **MELODY)
  assert a.get_ylim() == b.get_ylim() and _labels(a) == _labels(b)
  assert _labels(a) == ['C2', 'C3', 'C4', 'C5', 'C6', 'C7']
  # Without a shared range each picture fits its own notes.
  [c] = figures([low], **MELODY)
  assert c.get_ylim() != a.get_ylim()


def test_drums_and_trio_labels(figures):
  drums = np.zeros(32, np.int32)
  drums[::4] = 1 | 4  # kick and closed hi-hat
  [ax] = figures([drums], part_names=['drums'], part_is_drums=[True])
  assert _labels(ax) == ['kick', 'snare', 'closed hi-hat', 'open hi-hat', 'low tom', 'mid tom',
                         'high tom', 'crash', 'ride']
  rows = sorted({round(float(p.vertices[:, 1].mean())) for p in ax.collections[0].get_paths()})
  assert rows == [0, 2]  # kick and closed hi-hat rows
  trio = np.stack([_melody([72, 74]), _melody([36, 38]), drums], -1)
  axes = figures([trio], part_names=['lead', 'bass', 'drums'],
                 part_is_drums=[False, False, True])
  assert [ax.get_ylabel() for ax in axes] == ['lead', 'bass', 'drums']
  assert _labels(axes[0]) == ['C5', 'C6'] and _labels(axes[1]) == ['C2', 'C3']
  assert _labels(axes[2])[0] == 'kick'


def test_plot_pieces_writes_png(tmp_path):
  path = plotting.plot_pieces([_melody([60])], str(tmp_path / 'a' / 'x.png'), **MELODY)
  assert open(path, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_pitch_names_grid_and_the_input_files_bars(figures):
  [ax] = figures([_melody([60, 64, 67])], first_bars=[9], **MELODY)
  named = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
  assert named == ['E4', 'G4']  # the pitches played (C4 is a major tick)
  assert [t.get_text() for t in ax.get_xticklabels()] == ['9', '10']  # bars of the file
  vertical = sorted({line.get_xdata()[0] for line in ax.lines
                     if line.get_xdata()[0] == line.get_xdata()[1]})
  assert vertical == list(range(33))  # every sixteenth, beat and bar of the 2 bars
  widths = sorted({line.get_linewidth() for line in ax.lines
                   if line.get_xdata()[0] == line.get_xdata()[1]})
  assert len(widths) == 3  # bars, beats and sixteenths are drawn differently
  assert ax.figure.get_size_inches()[0] >= 8
  [ax] = figures([_melody([60]), _melody([62])], first_bars=[5, 1], **MELODY)
  assert [t.get_text() for t in ax.get_xticklabels()] == ['5', '6', '1', '2']  # each its own
