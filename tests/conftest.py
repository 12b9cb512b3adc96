"""Shared fixtures: one TFDS data directory for the whole test session.

Datasets are built from the Freedoom songs shipped in data_pipelines/freedoom the first time a
test asks for them (the `smoke` presets all train on Freedoom), so the suite needs no network and
no download. Everything runs on the CPU.
"""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / 'configs'
os.environ.setdefault('JAX_PLATFORMS', 'cpu')


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory):
  """A TFDS data dir for this session, also exported as TFDS_DATA_DIR for subprocesses."""
  path = os.environ.get('MVAE_TEST_TFDS_DIR') or str(tmp_path_factory.mktemp('tfds'))
  os.environ['TFDS_DATA_DIR'] = path
  return path


def load_config(spec: str, data_dir: str | None = None, **overrides):
  """`configs/<family>.py:<arg>` (as `melody2:smoke`) with dotted overrides applied, locked."""
  from mvae_jax import config_lib
  if data_dir is not None:
    overrides = {'data.data_dir': data_dir, **overrides}
  return config_lib.from_file(spec, overrides)


@pytest.fixture(scope='session')
def make_config(tfds_dir):
  return lambda spec, **kw: load_config(spec, tfds_dir, **kw)
