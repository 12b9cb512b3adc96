"""Which CPU this is: model, the vector ISA flags that matter to XLA's and TensorFlow's kernels,
and the core count. Benchmarks record it beside every figure; training uses it to warn when
bfloat16 products would be emulated. Imports nothing heavy (the comparison drivers use it without
loading JAX)."""
import os
import platform

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
