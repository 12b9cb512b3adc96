r"""CPU time of the reference converters over a MIDI folder (run with the REFERENCE's python).

  /work/magenta_venv/bin/python benchmarks/reference_data_time.py \
      ../shared/tools/magenta/windows.py data_pipelines/freedoom

Called by `benchmarks/data_build.py --compare_reference`. It does not import the reference: it
runs the reference tool `windows.py` (the converters of cat-mel_2bar_small, hierdec-mel_16bar,
cat-drums_2bar_small and hierdec-trio_16bar, as the test fixtures were made) and, with those
converters, times per file: one read (note-seq's `midi_file_to_note_sequence`) and the four
converters' `to_tensors` on a copy, as `windows.py` does (but reading each file once, not once per
converter). Imports and TensorFlow start-up are outside the timed part. Prints one JSON line.
"""
import copy
import json
import os
import runpy
import sys
import time


def main(tool: str, midi_dir: str) -> None:
  ref = runpy.run_path(tool)  # the reference tool's namespace (its converters, note_seq)
  files = sorted(f for f in os.listdir(midi_dir) if f.lower().endswith(('.mid', '.midi')))
  converters = []
  for name in ref['CONFIGS']:
    conv = ref['configs'].CONFIG_MAP[name].data_converter
    conv.max_tensors_per_notesequence = None  # every window, as the fixtures
    if hasattr(conv, 'set_mode'):
      conv.set_mode('eval')
    converters.append(conv)
  read = ref['note_seq'].midi_file_to_note_sequence
  windows = skipped = 0
  t0 = time.process_time()
  for f in files:
    try:
      ns = read(os.path.join(midi_dir, f))
    except Exception:  # pylint: disable=broad-except  # the reference skips what it cannot read
      skipped += 1
      continue
    for conv in converters:
      windows += len(conv.to_tensors(copy.deepcopy(ns)).outputs)
  cpu = time.process_time() - t0
  print(json.dumps({'who': 'reference', 'files': len(files), 'skipped': skipped,
                    'windows': windows, 'cpu_s': round(cpu, 3)}))


if __name__ == '__main__':
  main(*sys.argv[1:3])
