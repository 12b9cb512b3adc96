r"""Builds the window datasets (TFDS, array_record) and opens them; the command line.

Command line (one conversion pass serves every kind listed):

  python -m data_pipelines.build --source=folk --kinds=mel_2bar,mel_16bar,mel_32bar
  python -m data_pipelines.build --source=freedoom --kinds=all --mode=magenta
  python -m data_pipelines.build --source=folder --midi_dir=/data/lmd_full --kinds=mel_2bar \
      --data_dir=/data/tfds --workers=16

From Python (the training code calls this when a dataset is missing):

  builder = build('folk', 'mel_2bar', 'paper', data_dir)
  source = data_source('folk', 'mel_2bar', 'paper', 'train', data_dir)   # len(), source[i]

The conversion itself (inputs, workers, dedup, split, report) is `data_pipelines.conversion`; the
TFDS builders are `data_pipelines.mvae_datasets`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Sequence

import numpy as np

from data_pipelines import console, conversion, kinds, midi
from data_pipelines.conversion import (FILE_TIMEOUT_S, WORKER_MEMORY_GB, ConvertOptions,
                                       config_name, default_data_dir)
from data_pipelines.kinds import FOLK_KINDS, SOURCES


# ----------------------------------------------------------------------------- TFDS glue

def builder_name(source: str) -> str:
  from data_pipelines import mvae_datasets  # pylint: disable=g-import-not-at-top
  return mvae_datasets.BUILDERS[source].name


def folder_config_name(kind: str, mode: str, fingerprint: str) -> str:
  """`<kind>[_magenta]-<fingerprint>`: a MIDI folder's dataset is named by its content and
  build options (`conversion.FolderFingerprint`), so another folder, a changed folder or other
  options build their own dataset instead of reusing one made from other files."""
  return f'{config_name(kind, mode)}-{fingerprint}'


def manual_dir(data_dir: str | None = None) -> str:
  """TFDS's manual folder, where a folder build looks without `midi_dir`."""
  return os.path.join(data_dir or default_data_dir(), 'downloads', 'manual')


def get_builder(source: str, kind: str, mode: str = 'paper', data_dir: str | None = None,
                midi_dir: str | None = None, workers: int | None = None,
                options: ConvertOptions | None = None,
                fingerprint: conversion.FolderFingerprint | None = None, **kwargs):
  """The TFDS builder of (source, kind, mode) (not prepared). A folder's dataset is named by
  the `fingerprint` of `midi_dir` (`conversion.folder_fingerprint`; computed when not given)."""
  from data_pipelines import mvae_datasets  # pylint: disable=g-import-not-at-top
  cls = mvae_datasets.BUILDERS[source]
  expand = options.expand_repeats if options is not None and source == 'folk' else None
  filters = options.filters if options is not None else None
  config = config_name(kind, mode, expand)
  if source == 'folder':
    if fingerprint is None:
      midi_dir = os.path.abspath(midi_dir or manual_dir(data_dir))
      fingerprint = conversion.folder_fingerprint(midi_dir, data_dir or default_data_dir(),
                                                  options, mode)
    config = dataclasses.replace(mvae_datasets.make_config(kind, mode),
                                 name=folder_config_name(kind, mode, fingerprint.value))
    kwargs['fingerprint'] = fingerprint
  return cls(config=config, data_dir=data_dir or default_data_dir(),
             midi_dir=midi_dir, workers=workers, filters=filters, **kwargs)


def build(source: str, kind: str, mode: str = 'paper', data_dir: str | None = None,
          midi_dir: str | None = None, workers: int | None = None, *, beam: bool = False,
          timeout_s: float = FILE_TIMEOUT_S, memory_gb: float = WORKER_MEMORY_GB,
          keep_work: bool = False, quiet: bool = False, options: ConvertOptions | None = None,
          fingerprint: conversion.FolderFingerprint | None = None):
  """Builds (if missing) the dataset of (source, kind, mode) under `data_dir`; returns the builder.

  `options` (`ConvertOptions`): preprocessing filters (off by default) and, for folk, whether
  repeats are expanded (default: on in paper mode). A dataset built with filters lands in the same
  config folder as one without: use another `data_dir` for it.

  The conversion's work folder (`<data_dir>/mvae_work/...`) is deleted afterwards unless
  `keep_work`; `build_all` keeps it between kinds so that one conversion pass serves them all.

  `beam=True` (folder and freedoom sources only) runs the conversion as an Apache Beam pipeline on
  the local DirectRunner (see docs/DATA.md).

  A MIDI folder's dataset is named by `fingerprint` (computed from `midi_dir` and `options` when
  not given; without `midi_dir`, TFDS's manual folder is read): a dataset is never reused for
  other files or options, and the conversion checks that the files it read are those the
  fingerprint covers (ValueError when the folder changed during the build).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if source == 'folder':
    midi_dir = os.path.abspath(midi_dir or manual_dir(data_dir))
    if fingerprint is None:
      fingerprint = conversion.folder_fingerprint(midi_dir, data_dir or default_data_dir(),
                                                  options, mode)
  b = get_builder(source, kind, mode, data_dir, midi_dir, workers, options, fingerprint,
                  timeout_s=timeout_s, memory_gb=memory_gb, beam=beam, quiet=quiet,
                  verbose=console.is_verbose())
  dl_config = None
  if beam:
    import apache_beam as beam_lib  # pylint: disable=g-import-not-at-top
    dl_config = tfds.download.DownloadConfig(
        beam_options=beam_lib.options.pipeline_options.PipelineOptions(
            ['--runner=DirectRunner', f'--direct_num_workers={workers or 1}',
             '--direct_running_mode=in_memory']))
  b.download_and_prepare(file_format='array_record', download_config=dl_config)
  remove_incomplete(os.path.dirname(os.fspath(b.data_dir)))
  if not keep_work and b.work_dir:
    shutil.rmtree(b.work_dir, ignore_errors=True)
  return b


# Conversion rates per worker process, (slow, fast), inputs per second, measured on this
# project's 2-core development machine: folk tunes 4.0 (the shared 12,947-tune folk build:
# 1,607 s with 2 workers under load) to 11.3 (benchmarks/RESULTS.md section 4: 573 s); MIDI
# files 1.4 (the shared Freedoom builds: 67 files in 24 s with 2 workers, start-up included) to
# 7.8 (section 4b's build: 4.3 s). Files much larger than Freedoom's take longer.
BUILD_RATES = {'folk': (4.0, 11.3), 'midi': (1.4, 7.8)}


def build_estimate(source: str, midi_dir: str | None = None, workers: int | None = None) -> str:
  """What a build of `source` converts and about how long it takes, for a line printed before
  it starts: `12947 folk tunes, about 9m32s to 26m58s with 2 worker processes`."""
  try:
    n = len(conversion.list_items(source, midi_dir))
  except (OSError, ValueError):
    return f'{source} inputs'  # the build itself says what is wrong
  workers = workers or os.cpu_count() or 1
  slow, fast = BUILD_RATES['folk' if source == 'folk' else 'midi']
  what = 'folk tunes' if source == 'folk' else 'MIDI files'
  low, high = n / (fast * workers), n / (slow * workers)
  if high < 60:
    return f'{n} {what}, under a minute'
  return (f'{n} {what}, about {console.duration(low)} to {console.duration(high)} with '
          f'{workers} worker process{"es" if workers > 1 else ""}')


def remove_incomplete(config_dir: str) -> None:
  """Deletes the `incomplete.*` folders that interrupted TFDS builds left beside a now complete
  dataset (`<data_dir>/<builder>/<config>/`)."""
  if not os.path.isdir(config_dir):
    return
  for name in os.listdir(config_dir):
    if name.startswith('incomplete.'):
      shutil.rmtree(os.path.join(config_dir, name), ignore_errors=True)


def data_source(source: str, kind: str, mode: str = 'paper', split: str = 'train',
                data_dir: str | None = None, *, midi_dir: str | None = None,
                fingerprint: str | None = None):
  """Random-access source (len(), [i]) of the built dataset's `split` ('train' | 'eval').

  Each element is a dict: 'tokens' int16 numpy [T] or [T, 3], 'source' (bytes: file id),
  'path' (bytes: relative path). Reads the prepared array_record files; needs no TensorFlow and
  no builder code (so it also opens datasets built by an older checkout). A folder dataset is
  found by its `fingerprint`, or by the fingerprint of `midi_dir` as it is now.
  """
  b = data_source_builder(source, kind, mode, data_dir, midi_dir=midi_dir,
                          fingerprint=fingerprint)
  if split not in b.info.splits:
    raise ValueError(f'{b.data_dir} has no {split!r} split (it had no windows); '
                     f'splits: {list(b.info.splits)}')
  return b.as_data_source(split=split)


def read_rows(source: Any, keys: Sequence[int]) -> tuple[np.ndarray, list[str]]:
  """Examples `keys` of a `data_source` (or any random-access source of examples): (tokens
  int [k, time(, parts)], their `path` features).

  TFDS's own decoding costs ~0.7 ms an example (70 s for a 100k-window split); parsing the
  stored `tf.Example` records directly is ~30 times faster. Any other source (or a record
  without the expected features) takes the ordinary path.
  """
  raw = getattr(source, 'data_source', None)
  info = getattr(source, 'dataset_info', None)
  try:
    from tensorflow_datasets.proto import tf_example_pb2
    shape = tuple(info.features['tokens'].shape)
    records = raw.__getitems__(list(keys))
    feats = [tf_example_pb2.Example.FromString(r).features.feature for r in records]
    cells = int(np.prod(shape))
    flat = np.fromiter((v for f in feats for v in f['tokens'].int64_list.value), np.int64,
                       count=len(feats) * cells)
    paths = [f['path'].bytes_list.value[0].decode() for f in feats]
    return flat.reshape((len(feats),) + shape), paths
  except Exception:  # pylint: disable=broad-except  (not that layout: decode the usual way)
    getitems = getattr(source, '__getitems__', None)
    items = getitems(list(keys)) if getitems else [source[i] for i in keys]
    tokens = np.stack([np.asarray(ex['tokens'] if isinstance(ex, dict) else ex) for ex in items])
    paths = []
    for ex in items:
      p = ex.get('path', b'') if isinstance(ex, dict) else b''
      paths.append(p.decode() if isinstance(p, bytes) else str(p))
    return tokens, paths


def data_source_builder(source: str, kind: str, mode: str = 'paper',
                        data_dir: str | None = None, *, midi_dir: str | None = None,
                        fingerprint: str | None = None):
  """Read-only TFDS builder of a built dataset (its `.info.metadata` holds vocab sizes etc.)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder_from_directory(dataset_dir(source, kind, mode, data_dir, midi_dir,
                                                 fingerprint=fingerprint))


def dataset_dir(source: str, kind: str, mode: str = 'paper', data_dir: str | None = None,
                midi_dir: str | None = None, *, fingerprint: str | None = None) -> str:
  """`<data_dir>/<builder>/<config>/<version>` of the newest built version; raises
  FileNotFoundError (with the command that builds it) if none. A folder dataset's config is
  `<kind>-<fingerprint>`: pass the `fingerprint`, or the `midi_dir` whose current content
  (default options) names it; with neither, the only folder dataset of the kind in `data_dir`
  (ValueError when there are several)."""
  from data_pipelines import mvae_datasets  # pylint: disable=g-import-not-at-top
  config = config_name(kind, mode)
  if source == 'folder' and fingerprint is None and not midi_dir:
    # No folder named: the one folder dataset of this kind there is (several: say which).
    import glob  # pylint: disable=g-import-not-at-top
    root = os.path.join(data_dir or default_data_dir(), builder_name(source))
    version = str(mvae_datasets.BUILDERS[source].VERSION)
    found = sorted(os.path.dirname(p) for p in glob.glob(
        os.path.join(root, f'{config}-*', version, 'dataset_info.json')))
    if len(found) > 1:
      raise ValueError(f'{root} holds {len(found)} {config} datasets of different MIDI folders '
                       f'({", ".join(os.path.basename(os.path.dirname(f)) for f in found)}); '
                       'name the folder (midi_dir=) or the fingerprint')
    if found:
      return found[0]
  if source == 'folder':
    if fingerprint is None:
      if not midi_dir or not os.path.isdir(midi_dir):
        raise FileNotFoundError(
            f'no built dataset for the MIDI folder {midi_dir or "(none given)"}; run: python -m '
            f'data_pipelines.build --source=folder '
            f'--midi_dir={midi_dir or "<folder of MIDI files>"} '
            f'--kinds={kind} --mode={mode} --data_dir={data_dir or default_data_dir()}')
      fingerprint = conversion.folder_fingerprint(midi_dir, data_dir or default_data_dir(),
                                                  mode=mode).value
    config = folder_config_name(kind, mode, str(fingerprint))
  d = os.path.join(data_dir or default_data_dir(), builder_name(source), config)
  version = str(mvae_datasets.BUILDERS[source].VERSION)
  full = os.path.join(d, version)
  if not os.path.exists(os.path.join(full, 'dataset_info.json')):
    raise FileNotFoundError(
        f'no built dataset at {full}; run: python -m data_pipelines.build --source={source} '
        + (f'--midi_dir={midi_dir or "<folder of MIDI files>"} ' if source == 'folder' else '')
        + f'--kinds={kind} --mode={mode} --data_dir={data_dir or default_data_dir()}')
  return full


def build_all(source: str, window_kinds, mode: str = 'paper', data_dir: str | None = None,
              midi_dir: str | None = None, workers: int | None = None, *, beam: bool = False,
              timeout_s: float = FILE_TIMEOUT_S, memory_gb: float = WORKER_MEMORY_GB,
              keep_work: bool = False, options: ConvertOptions | None = None) -> dict:
  """Builds several kinds of one source with a single conversion pass; returns the report.

  Kinds whose dataset exists already (for a MIDI folder: from the same content and options, see
  `conversion.folder_fingerprint`) are not converted again; the report lists them under
  `already_built` and holds the other kinds only (None when every kind was built already).
  """
  t0 = time.monotonic()
  data_dir = data_dir or default_data_dir()
  options = options or ConvertOptions.default(mode)
  fingerprint = None
  if source == 'folder':
    midi_dir = os.path.abspath(midi_dir or manual_dir(data_dir))
    fingerprint = conversion.folder_fingerprint(midi_dir, data_dir, options, mode)
  already = {}
  for k in window_kinds:
    b = get_builder(source, k, mode, data_dir, midi_dir, workers, options, fingerprint)
    if os.path.exists(os.path.join(os.fspath(b.data_dir), 'dataset_info.json')):
      already[k] = os.fspath(b.data_dir)
  todo = [k for k in window_kinds if k not in already]
  ext = None
  if todo and not beam:
    # One pass for every kind; each builder then finds its kind in the work folder.
    ext = conversion.extract(source, todo, mode, data_dir, midi_dir, workers, timeout_s,
                             memory_gb, options=options)
  builders = {k: build(source, k, mode, data_dir, midi_dir, workers, beam=beam,
                       timeout_s=timeout_s, memory_gb=memory_gb, keep_work=True, quiet=True,
                       options=options, fingerprint=fingerprint)
              for k in todo}
  reports = []
  for b in builders.values():
    path = os.path.join(b.data_dir, 'build_report.json')
    with open(path) as f:
      r = json.load(f)
    if ext is not None and r.get('conversion_reused') and not ext.reused:
      # Reused the conversion this very call made: that conversion's time is this build's.
      r['convert_s'], r['conversion_reused'] = round(ext.convert_s, 1), False
      with open(path, 'w') as f:
        json.dump(r, f, indent=1)
    reports.append(r)
  rep = dict(reports[0]) if reports else {'source': source, 'mode': mode, 'kinds': {}}
  rep['kinds'] = {k: r['kinds'][k] for k, r in zip(todo, reports)}
  if ext is not None:  # the builders reused this pass: report its time
    rep['convert_s'], rep['conversion_reused'] = round(ext.convert_s, 1), ext.reused
  rep['total_s'] = round(time.monotonic() - t0, 1)
  rep['datasets'] = {**already, **{k: os.fspath(b.data_dir) for k, b in builders.items()}}
  rep['already_built'] = already
  if fingerprint is not None:
    rep['fingerprint'], rep['midi_dir'] = fingerprint.value, midi_dir
  if not keep_work:
    for b in builders.values():
      if b.work_dir:
        shutil.rmtree(b.work_dir, ignore_errors=True)
  return rep


def main(argv=None):
  import argparse  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--source', required=True, choices=SOURCES)
  p.add_argument('--kinds', default='all',
                 help='comma-separated window kinds, or "all" (folk: the melody kinds)')
  p.add_argument('--mode', default='paper', choices=kinds.MODES)
  p.add_argument('--midi_dir', default=None, help='MIDI folder (source=folder)')
  p.add_argument('--data_dir', default=None, help='default: $TFDS_DATA_DIR or ~/tensorflow_datasets')
  p.add_argument('--workers', type=int, default=None, help='worker processes (default: CPUs)')
  p.add_argument('--file_timeout', type=float, default=FILE_TIMEOUT_S, help='seconds per file')
  p.add_argument('--worker_memory_gb', type=float, default=WORKER_MEMORY_GB)
  p.add_argument('--beam', action='store_true', help='run the conversion with Apache Beam')
  p.add_argument('--keep_work', action='store_true', help='keep the extraction work folder')
  p.add_argument('--report', default=None, help='also write the combined report JSON here')
  g = p.add_argument_group(
      'conversion options', 'folk repeats, and the filters of Magenta\'s preprocessing script '
      '(preprocess_tfrecord.py); every filter is off by default')
  g.add_argument('--expand_repeats', default=None, action=argparse.BooleanOptionalAction,
                 help='folk: play out repeats and endings (default: on in paper mode, off in '
                      'magenta mode)')
  g.add_argument('--magenta_preprocess_filters', action='store_true',
                 help='all of the script\'s defaults: --max_parts=100 --max_seconds=1800 '
                      '--max_notes=10000 --min_velocities=1 --min_metric_positions=1')
  g.add_argument('--max_parts', type=int, default=None,
                 help='skip a file split at tempo / meter changes into more parts')
  g.add_argument('--max_seconds', type=float, default=None, help='drop longer parts')
  g.add_argument('--max_notes', type=int, default=None, help='drop parts with more notes')
  g.add_argument('--min_velocities', type=int, default=None,
                 help='drop parts with fewer distinct velocities')
  g.add_argument('--min_metric_positions', type=int, default=None,
                 help='drop parts whose onsets use fewer positions within a quarter (1/16 grid)')
  p.add_argument('--verbosity', type=int, default=None,
                 help='show library logging on the console too (default: only in '
                 '<data_dir>/build.log)')
  a = p.parse_args(argv)
  a.data_dir = os.path.abspath(a.data_dir or default_data_dir())
  log_path = console.setup(a.data_dir, 'build', verbose=a.verbosity is not None)
  filters = midi.Filters.magenta_preprocess() if a.magenta_preprocess_filters else midi.Filters()
  changes = {k: getattr(a, k) for k in ('max_parts', 'max_seconds', 'max_notes', 'min_velocities',
                                        'min_metric_positions') if getattr(a, k) is not None}
  filters = dataclasses.replace(filters, **changes)
  options = dataclasses.replace(ConvertOptions.default(a.mode), filters=filters)
  if a.expand_repeats is not None:
    options = dataclasses.replace(options, expand_repeats=a.expand_repeats)
  if a.kinds == 'all':
    window_kinds = FOLK_KINDS if a.source == 'folk' else kinds.KINDS
  else:
    window_kinds = tuple(k.strip() for k in a.kinds.split(',') if k.strip())
  rep = build_all(a.source, window_kinds, a.mode, a.data_dir, a.midi_dir, a.workers, beam=a.beam,
                  timeout_s=a.file_timeout, memory_gb=a.worker_memory_gb, keep_work=a.keep_work,
                  options=options)
  if rep['kinds']:
    conversion.print_report(rep)
  same = ('the same folder content and options' if a.source == 'folder'
          else 'the same source and options')
  for k, d in rep['datasets'].items():
    if k in rep['already_built']:
      print(f'{k}: already built from {same}, not converted again: {os.path.abspath(d)} '
            '(its report: build_report.json there)')
    else:
      print(f'{k}: {os.path.abspath(d)}')
  if rep.get('fingerprint'):
    print(f'folder fingerprint: {rep["fingerprint"]} ({rep["midi_dir"]}: file contents and '
          'build options; another or a changed folder builds its own dataset)')
  print(f'library log: {log_path}')
  if a.report:
    with open(a.report, 'w') as f:
      json.dump(rep, f, indent=1)


if __name__ == '__main__':
  # Run the importable module's main, so that pickled items name `data_pipelines.build.Item`
  # (workers cannot unpickle classes of `__main__`).
  from data_pipelines import build as _build  # pylint: disable=import-self
  _build.main()
