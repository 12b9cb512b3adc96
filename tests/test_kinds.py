"""The data contract (`data_pipelines.kinds`): the data side and the model side agree on it.

For every window kind and mode: the windows the extraction writes (shape, class range), the TFDS
builder's features, and the model the config file makes for that kind (vocabularies, drum parts,
time steps, input shape) all follow the same numbers.
"""
import os

import numpy as np
import pytest

from data_pipelines import conversion, encoding, kinds, midi, mvae_datasets
from mvae_jax import config_lib, input_pipeline, metrics, plotting
from mvae_jax import run as run_lib

# A Freedoom song with lead, bass and drums: every kind finds windows in it.
SONG = os.path.join(conversion.FREEDOOM_DIR, 'freedoom2_D_RUNNIN.mid')


@pytest.fixture(scope='module')
def song():
  return midi.read_midi(SONG)


@pytest.mark.parametrize('mode', kinds.MODES)
@pytest.mark.parametrize('kind', kinds.KINDS)
def test_config_and_data_agree(kind, mode, song):
  k = kinds.kind(kind)
  spec = encoding.window_spec(kind, mode)
  assert spec.parts == k.parts and spec.num_steps == k.time_steps == kinds.time_steps(kind)
  assert spec.part_vocab == kinds.part_vocab(kind, mode)
  assert (spec.min_pitch, spec.max_pitch) == kinds.PITCH_RANGE[mode]
  assert spec.steps_per_bar == kinds.STEPS_PER_BAR

  # The config family made for this kind, in this mode, describes that data.
  family = config_lib.FAMILY_OF_KIND[kind]
  config = config_lib.from_file(f'{family}:{mode}')
  assert config.data.kind == kind and config.data.mode == mode
  assert tuple(config.model.part_vocab) == spec.part_vocab
  assert tuple(config.model.part_is_drums) == k.part_is_drums
  config_lib.validate(config)

  # Real windows have the contract's shape and classes, and fit the model's input.
  windows = encoding.extract_windows(song, spec)
  assert len(windows) > 0 and windows.shape[1:] == spec.shape and windows.dtype == np.int16
  for p, vocab in enumerate(spec.part_vocab):
    part = windows if windows.ndim == 2 else windows[..., p]
    assert 0 <= part.min() and part.max() < vocab
  tokens = input_pipeline.to_parts(windows[0])
  assert (1,) + tokens.shape == run_lib.input_shape(config)

  # The TFDS builder stores exactly that shape.
  builder_config = mvae_datasets.make_config(kind, mode)
  assert (builder_config.kind, builder_config.mode) == (kind, mode)


def test_model_side_constants_are_the_contract():
  assert metrics.NO_EVENT == kinds.NO_EVENT == encoding.NO_EVENT
  assert input_pipeline.NOTE_ON_OFFSET == kinds.NUM_SPECIAL
  assert plotting.DRUM_NAMES == kinds.DRUM_NAMES and len(encoding.DRUM_CLASS_PITCHES) == 9
  assert kinds.DRUM_VOCAB == 2 ** len(kinds.DRUM_NAMES) == 512
  assert kinds.melody_vocab('paper') == 130 and kinds.melody_vocab('magenta') == 90
  assert set(config_lib.FAMILY_OF_KIND) == set(kinds.KINDS)
  assert set(kinds.FOLK_KINDS) <= set(kinds.KINDS)


def test_unknown_kind_and_mode_name_the_choices():
  with pytest.raises(ValueError, match='unknown window kind .*mel_2bar'):
    kinds.kind('mel_3bar')
  with pytest.raises(ValueError, match="unknown mode 'reference'"):
    encoding.window_spec('mel_2bar', 'reference')
