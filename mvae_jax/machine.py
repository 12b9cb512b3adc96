"""Which CPU this is: model, the vector ISA flags that matter to XLA's and TensorFlow's kernels,
and the core count. Benchmarks record it beside every figure; training uses it to warn when
bfloat16 products would be emulated. Also the memory allocator the training commands run with
(`use_fast_allocator`). Imports nothing heavy (the comparison drivers use it without
loading JAX)."""
import os
import platform
import sys

ISA_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16',
             'amx_bf16', 'amx_tile', 'asimd', 'sve')


def cpu_info() -> dict:
  """{'cpu_model', 'isa_flags', 'cpus'} from /proc/cpuinfo (x86 'flags' or ARM 'Features');
  where it cannot be read, the model falls back to `platform` and the flags are empty."""
  model, flags = '', set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        key = key.strip()
        if key == 'model name' and not model:
          model = value.strip()
        elif key in ('flags', 'Features') and not flags:
          flags = set(value.split())
  except OSError:
    pass
  return {'cpu_model': model or platform.processor() or platform.machine(),
          'isa_flags': [f for f in ISA_FLAGS if f in flags], 'cpus': os.cpu_count()}


# Flags of CPUs that multiply bfloat16 natively (AVX-512 BF16, AMX). Elsewhere XLA emulates
# bfloat16 products, so they are not expected to beat float32.
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def native_bfloat16(isa_flags=None) -> bool:
  """Whether the CPU (or the given flags) has native bfloat16 products."""
  flags = cpu_info()['isa_flags'] if isa_flags is None else isa_flags
  return bool(set(flags) & set(NATIVE_BF16_FLAGS))


# --- Memory allocator -------------------------------------------------------------------------
# A training step on the CPU allocates its large temporaries (the recurrences' stacked
# activations: 128 MB each for melody2:magenta at batch 512) afresh every step. glibc's malloc
# serves blocks above 32 MB with mmap and returns them to the kernel on free, so every step pays
# the page faults of touching that memory again. TCMalloc keeps freed memory for reuse: measured
# side by side (paired rounds), the melody2:magenta step got 1.13-1.27x as fast at batch 64 and
# 512 (benchmarks/RESULTS.md 1e); encoding at batch 64 got 1.27x as fast (RESULTS 3d). The
# training entry points (`python -m mvae_jax.train`, `python -m mvae_jax.quickstart`,
# experiments/table1.py, benchmarks/train_step.py) and the generation commands (`generate`,
# `eval`, `studio`, `score`, `attributes`) re-run
# themselves once with TCMalloc preloaded where the system has it (Debian / Ubuntu package
# `libtcmalloc-minimal4`); `MVAE_ALLOCATOR=system` keeps the system's malloc, and
# `MVAE_ALLOCATOR=/path/to/lib.so` preloads that library instead.
ALLOCATOR_ENV = 'MVAE_ALLOCATOR'
TCMALLOC_NAMES = ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4')
LIBRARY_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib',
                '/usr/local/lib')


class AllocatorError(ValueError):
  """MVAE_ALLOCATOR names a library that does not exist."""


def find_tcmalloc(dirs=LIBRARY_DIRS) -> str | None:
  """Path of the system's TCMalloc library, or None."""
  for d in dirs:
    for name in TCMALLOC_NAMES:
      path = os.path.join(d, name)
      if os.path.isfile(path):
        return path
  return None


def allocator_env(environ, dirs=LIBRARY_DIRS) -> dict | None:
  """The environment to re-run this process in with the fast allocator preloaded, or None where
  nothing is to change: `MVAE_ALLOCATOR=system`, no TCMalloc found, not Linux, or the library
  already in LD_PRELOAD (this process is the re-run).

  Raises:
    AllocatorError: MVAE_ALLOCATOR is a path that does not exist.
  """
  if not sys.platform.startswith('linux'):
    return None
  choice = environ.get(ALLOCATOR_ENV, 'auto')
  if choice == 'system':
    return None
  if choice == 'auto':
    lib = find_tcmalloc(dirs)
  elif os.path.isfile(choice):
    lib = choice
  else:
    raise AllocatorError(f'{ALLOCATOR_ENV}={choice}: no such file (use "system", "auto" or the '
                         'path of a malloc library such as libtcmalloc_minimal.so.4)')
  preload = environ.get('LD_PRELOAD', '')
  if lib is None or lib in preload.split(':'):
    return None
  env = dict(environ)
  env['LD_PRELOAD'] = ':'.join(p for p in (lib, preload) if p)
  # TCMalloc reports every allocation over 1 GB on stderr; a large model's buffers are not news.
  env.setdefault('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD', str(1 << 40))
  return env


def use_fast_allocator() -> None:
  """Re-runs this process (same arguments, same PID) with TCMalloc preloaded, where
  `allocator_env` says so; returns where nothing changes. Call it first thing in a command's
  `__main__` block, before JAX is imported; never from library code or tests (it replaces the
  running process). A bad MVAE_ALLOCATOR ends the command with one error line (exit status 2)."""
  try:
    env = allocator_env(os.environ)
  except AllocatorError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    raise SystemExit(2) from None
  if env is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def allocator_in_use() -> str:
  """'tcmalloc', 'jemalloc' or 'system': the malloc library mapped into this process (from
  /proc/self/maps; 'system' where it cannot be read). Benchmarks record it beside each figure."""
  try:
    with open('/proc/self/maps') as f:
      maps = f.read()
  except OSError:
    return 'system'
  for name in ('tcmalloc', 'jemalloc'):
    if f'lib{name}' in maps:
      return name
  return 'system'
