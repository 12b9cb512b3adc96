"""The machine helpers a training command starts with: which allocator it re-runs itself with
(`mvae_jax.machine.allocator_env` / `use_fast_allocator`), for real in a subprocess where the
system has TCMalloc (CI installs it)."""
import os
import subprocess
import sys

import pytest

from mvae_jax import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_lib_dir(tmp_path):
  (tmp_path / 'libtcmalloc_minimal.so.4').write_bytes(b'')
  return (str(tmp_path),)


def test_allocator_env_preloads_tcmalloc_once(tmp_path):
  dirs = _fake_lib_dir(tmp_path)
  lib = str(tmp_path / 'libtcmalloc_minimal.so.4')
  env = machine.allocator_env({'LD_PRELOAD': '/x/other.so'}, dirs)
  assert env['LD_PRELOAD'] == f'{lib}:/x/other.so'
  assert int(env['TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD']) >= 2**40
  # The re-run process already has it: nothing changes (no endless re-running).
  assert machine.allocator_env(env, dirs) is None


def test_allocator_env_respects_the_user(tmp_path):
  dirs = _fake_lib_dir(tmp_path)
  assert machine.allocator_env({machine.ALLOCATOR_ENV: 'system'}, dirs) is None
  assert machine.allocator_env({}, (str(tmp_path / 'empty'),)) is None  # none installed
  other = tmp_path / 'libjemalloc.so.2'
  other.write_bytes(b'')
  env = machine.allocator_env({machine.ALLOCATOR_ENV: str(other)}, dirs)
  assert env['LD_PRELOAD'] == str(other)
  with pytest.raises(machine.AllocatorError, match='no such file'):
    machine.allocator_env({machine.ALLOCATOR_ENV: str(tmp_path / 'missing.so')}, dirs)


@pytest.mark.parametrize('command', ['mvae_jax.train', 'mvae_jax.generate', 'mvae_jax.eval',
                                     'mvae_jax.studio', 'mvae_jax.score', 'mvae_jax.attributes'])
def test_commands_refuse_a_missing_allocator_library(command):
  """Training and the generation commands choose the allocator first thing (so they re-run with
  TCMalloc where it is installed): a bad MVAE_ALLOCATOR ends them with one error line before
  anything else is read."""
  env = dict(os.environ, **{machine.ALLOCATOR_ENV: '/nonexistent/libmalloc.so'})
  out = subprocess.run([sys.executable, '-m', command, '--config=x', '--workdir=y'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
      'error: MVAE_ALLOCATOR=/nonexistent/libmalloc.so: no such file (use "system", "auto" or '
      'the path of a malloc library such as libtcmalloc_minimal.so.4)']


@pytest.mark.skipif(machine.find_tcmalloc() is None,
                    reason='TCMalloc is not installed (apt-get install libtcmalloc-minimal4)')
def test_command_reruns_itself_with_tcmalloc():
  script = ('import sys\nfrom mvae_jax import machine\nmachine.use_fast_allocator()\n'
            'print(machine.allocator_in_use(), " ".join(sys.argv[1:]))\n')
  for choice, expected in (('auto', 'tcmalloc a b'), ('system', 'system a b')):
    env = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
    env[machine.ALLOCATOR_ENV] = choice
    out = subprocess.run([sys.executable, '-c', script, 'a', 'b'], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == expected
