"""Every config file x preset x modifier builds, is locked, and takes command-line overrides."""
import pathlib
import subprocess
import sys

import pytest

from data_pipelines import kinds
from mvae_jax import config_lib

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'configs'
FAMILIES = ('melody2', 'drums2', 'melody16', 'melody32', 'trio16')
PRESETS = ('paper', 'magenta', 'small', 'smoke')


def load(family):
  return config_lib.config_module(family)


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('preset', PRESETS)
@pytest.mark.parametrize('modifier', ['', ',baseline', ',no_ss', ',baseline,no_ss'])
def test_every_preset_builds(family, preset, modifier):
  c = load(family).get_config(preset + modifier)
  assert c.family == family
  assert c.preset == preset + modifier
  assert c.model.use_encoder == ('baseline' not in modifier)
  if 'no_ss' in modifier:
    assert not c.train.scheduled_sampling
  vocab = c.model.part_vocab
  assert len(vocab) == len(c.model.part_is_drums) == (3 if family == 'trio16' else 1)
  melody = 90 if c.data.mode == 'magenta' else 130
  assert all(v == (512 if d else melody) for v, d in zip(vocab, c.model.part_is_drums))
  steps = kinds.time_steps(c.data.kind)
  if c.model.decoder == 'hier':
    assert steps % c.model.num_segments == 0
  assert c.train.batch_size % 8 == 0 or preset != 'smoke'


def test_paper_sizes_follow_the_appendix():
  m2 = load('melody2').get_config('paper')
  assert (m2.model.enc_sizes, m2.model.z_size, m2.model.dec_sizes) == ((2048,), 256, (2048,) * 3)
  assert (m2.loss.free_bits, m2.loss.max_beta, m2.loss.beta_rate) == (48.0, 0.2, 0.99999)
  m32 = load('melody32').get_config('paper')
  assert (m32.model.decoder, m32.model.num_segments, m32.model.embedding_size) == ('hier', 16, 512)
  assert kinds.time_steps(m32.data.kind) // m32.model.num_segments == 32  # 2 bars a segment
  assert (m32.loss.free_bits, m32.loss.max_beta, m32.train.num_steps) == (256.0, 1.0, 150_000)
  t16 = load('trio16').get_config('paper')
  assert kinds.time_steps(t16.data.kind) // t16.model.num_segments == 16  # 1 bar a segment
  assert t16.model.part_vocab == (130, 130, 512)
  assert load('trio16').get_config('magenta').model.part_vocab == (90, 90, 512)


def test_config_is_locked_with_a_helpful_error():
  c = load('melody2').get_config('small')
  with pytest.raises(AttributeError, match='z_size'):
    c.model.z_sise = 3


def test_unknown_preset_and_modifier_are_errors():
  with pytest.raises(ValueError, match='unknown preset'):
    load('melody2').get_config('huge')
  with pytest.raises(ValueError, match='unknown modifier'):
    load('melody2').get_config('small,typo')


def _parse_train_flags(*args):
  """Parses args with mvae_jax.train's own flags (the real command line) in a fresh process."""
  code = ('import sys; from absl import flags; from mvae_jax import train; '
          'train.define_flags(); flags.FLAGS(sys.argv); c = flags.FLAGS.config; '
          'print(c.model.z_size, tuple(c.model.dec_sizes))')
  return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True,
                        timeout=120)


def test_command_line_overrides_of_the_train_entry_point():
  path = CONFIG_DIR / 'melody32.py'
  ok = _parse_train_flags(f'--config={path}:small', '--config.model.z_size=256',
                          '--config.model.dec_sizes=(64,64)', '--workdir=/tmp/x')
  assert ok.returncode == 0, ok.stderr
  assert ok.stdout.split() == ['256', '(64,', '64)']
  bad = _parse_train_flags(f'--config={path}:small', '--config.model.z_sise=256')
  assert bad.returncode != 0
  assert 'z_sise' in bad.stderr and 'Did you mean "z_size"' in bad.stderr


def test_sweep_expands_to_the_three_table1_columns():
  import sys
  sys.path.insert(0, str(CONFIG_DIR.parent / 'launch'))
  import sweep
  cmds = sweep.commands(f'{CONFIG_DIR}/melody2.py:small', '/tmp/sw', 'bash launch/single_host.sh', [])
  assert len(cmds) == 3
  assert '--config.model.use_encoder=False' in cmds[0]
  assert '--config.train.scheduled_sampling=False' in cmds[1]
  assert len({c[3] for c in cmds}) == 3  # distinct workdirs
