"""Shared fixtures: one TFDS data directory for the whole test session.

Datasets are built from the Freedoom songs shipped in data_pipelines/freedoom the first time a
test asks for them (the `smoke` presets all train on Freedoom), so the suite needs no network and
no download. Everything runs on the CPU.
"""
import os
import pathlib
import sys

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
  """`configs/<family>.py:<arg>` -> an unlocked copy with dotted overrides applied."""
  import importlib.util
  family, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location(family, CONFIG_DIR / f'{family}.py')
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  with config.unlocked():
    if data_dir is not None:
      config.data.data_dir = data_dir
    for key, value in overrides.items():
      node = config
      *path, leaf = key.split('.')
      for p in path:
        node = node[p]
      node[leaf] = value
  return config


@pytest.fixture(scope='session')
def make_config(tfds_dir):
  return lambda spec, **kw: load_config(spec, tfds_dir, **kw)
