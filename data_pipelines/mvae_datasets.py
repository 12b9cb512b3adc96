"""TFDS builders of MusicVAE training windows (array_record; no TensorFlow needed).

Builders (TFDS names) and their sources:
  `mvae_folk`         music21's bundled ABC folk collections (`folk.py`), melody kinds only
  `mvae_freedoom`     the 67 Freedoom MIDI files in `data_pipelines/freedoom/`
  `mvae_midi_folder`  any MIDI folder (e.g. Lakh MIDI `lmd_full`), given as `midi_dir=` or
                      TFDS's `manual_dir`; Apache Beam capable (`beam=True`)

One `WindowConfig` per window kind and mode: `mel_2bar`, `drums_2bar`, `mel_16bar`, `mel_32bar`,
`trio_16bar`, `mel_4bar`, `drums_4bar`, `trio_4bar` (paper mode) and the same names with
`_magenta` (magenta mode). Features:
  tokens  int16 [T] or [T, 3] (trio): class indices, see docs/ARCHITECTURE.md
  source  text: content hash of the file (md5 of a MIDI file's bytes; of a folk tune's text)
  path    text: the file's path relative to the source root (folk: `<collection>/<file>.abc#<n>`)
Splits `train` / `eval` by the file's content hash (10% eval); keys `<source>:<window index>`.
The dataset info's metadata holds the vocab sizes, steps per bar, kind, mode, file and skip counts.

Build with `python -m data_pipelines.build` or `data_pipelines.build.build(...)`; the conversion
they run is `data_pipelines.conversion`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import conversion
from data_pipelines import encoding, kinds


_LOG = logging.getLogger(__name__)


_CITATION = """@inproceedings{roberts2018hierarchical,
  title={A Hierarchical Latent Vector Model for Learning Long-Term Structure in Music},
  author={Roberts, Adam and Engel, Jesse and Raffel, Colin and Hawthorne, Curtis and Eck, Douglas},
  booktitle={ICML}, year={2018}}"""


@dataclasses.dataclass(eq=False)
class WindowConfig(tfds.core.BuilderConfig):
  """Window kind and mode; the name is `<kind>` (paper) or `<kind>_magenta`."""
  kind: str = 'mel_2bar'
  mode: str = 'paper'
  max_per_file: int | None = None   # magenta: reference cap of 5 windows per file, seeded pick
  seed: int = 0                     # for the per-file pick
  eval_percent: int = conversion.EVAL_PERCENT
  expand_repeats: bool | None = None  # folk: play out repeats (None: the mode's default)


def make_config(kind: str, mode: str = 'paper', max_per_file='default',
                expand_repeats: bool | None = None, **kwargs) -> WindowConfig:
  spec = encoding.window_spec(kind, mode)
  cap = spec.max_per_file if max_per_file == 'default' else max_per_file
  name = conversion.config_name(kind, mode, expand_repeats)
  if cap != spec.max_per_file:
    name += f'_cap{cap}' if cap else '_all'
  desc = (f'{spec.num_bars}-bar {kind.split("_")[0]} windows, {mode} mode, tokens '
          f'{spec.shape} in {spec.part_vocab} classes')
  if expand_repeats is not None:
    desc += ', repeats ' + ('played out' if expand_repeats else 'as written')
  return WindowConfig(name=name, description=desc, kind=kind, mode=mode, max_per_file=cap,
                      expand_repeats=expand_repeats, **kwargs)


def _configs(window_kinds, **kwargs):
  return [make_config(k, m, **kwargs) for m in kinds.MODES for k in window_kinds]


class _WindowsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared logic; subclasses set SOURCE and BUILDER_CONFIGS."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '1.1.0': 'No file is skipped for its size any more (no note, length, tempo or time-change '
               'caps); folk tunes are played out with their repeats (paper mode).',
  }
  SOURCE = ''
  BEAM_CAPABLE = False

  def __init__(self, *, midi_dir=None, workers=None, timeout_s=conversion.FILE_TIMEOUT_S,
               memory_gb=conversion.WORKER_MEMORY_GB, beam=False, quiet=False, filters=None,
               verbose=False, fingerprint=None, **kwargs):
    """`quiet`: no progress line or report printed; `verbose`: library output (TFDS's progress
    bars) shown on the console, as `--verbosity` asks (`data_pipelines.console`);
    `fingerprint`: the `conversion.FolderFingerprint` of a MIDI folder (its dataset's name)."""
    self._root = kwargs.get('data_dir') or conversion.default_data_dir()
    kwargs['data_dir'] = self._root
    self._midi_dir = os.path.abspath(midi_dir) if midi_dir else None
    self._workers = workers
    self._timeout_s = timeout_s
    self._memory_gb = memory_gb
    self._quiet = quiet
    self._verbose = verbose
    self._report = None
    self.work_dir = None
    self._beam = beam
    self._filters = filters
    self._fingerprint = fingerprint
    super().__init__(**kwargs)
    if beam:
      if not self.BEAM_CAPABLE:
        raise ValueError(f'{self.name} has no Beam pipeline')
      # TFDS hands a shared pipeline to `_split_generators` when it asks for one by name.
      self._split_generators = self._beam_split_generators

  @property
  def options(self) -> conversion.ConvertOptions:
    """Conversion options: the config's repeat setting, the filters given to the builder."""
    cfg = self.builder_config
    opts = conversion.ConvertOptions.default(cfg.mode)
    if cfg.expand_repeats is not None:
      opts = dataclasses.replace(opts, expand_repeats=cfg.expand_repeats)
    if self._filters is not None:
      opts = dataclasses.replace(opts, filters=self._filters)
    return opts

  @property
  def spec(self) -> encoding.WindowSpec:
    return encoding.window_spec(self.builder_config.kind, self.builder_config.mode)

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self.spec
    cfg = self.builder_config
    metadata = tfds.core.MetadataDict(
        source=self.SOURCE, kind=spec.kind, mode=spec.mode, shape=list(spec.shape),
        part_vocab=list(spec.part_vocab), parts=list(spec.parts),
        melody_vocab=spec.melody_vocab, min_pitch=spec.min_pitch, max_pitch=spec.max_pitch,
        drum_vocab=kinds.DRUM_VOCAB, steps_per_bar=spec.steps_per_bar,
        steps_per_quarter=spec.steps_per_quarter, num_bars=spec.num_bars,
        max_per_file=cfg.max_per_file, seed=cfg.seed, eval_percent=cfg.eval_percent)
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split('\n')[0],
        features=tfds.features.FeaturesDict({
            'tokens': tfds.features.Tensor(shape=spec.shape, dtype=np.int16),
            'source': tfds.features.Text(),
            'path': tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage='https://arxiv.org/abs/1803.05428',
        citation=_CITATION,
        metadata=metadata,
    )

  def _items_dir(self, dl_manager):
    del dl_manager
    return None

  def _split_generators(self, dl_manager):
    t0 = time.monotonic()
    cfg = self.builder_config
    midi_dir = self._items_dir(dl_manager)
    ext = conversion.extract(self.SOURCE, [cfg.kind], cfg.mode, self._root, midi_dir,
                            self._workers, self._timeout_s, self._memory_gb,
                            progress=not self._quiet, options=self.options)
    self.work_dir = ext.work_dir
    self._check_fingerprint(ext.items)
    sel = conversion.select(ext, cfg.kind, cfg.max_per_file, cfg.seed, cfg.eval_percent)
    self._report = conversion.report(ext, {cfg.kind: sel})
    self._report['midi_dir'] = midi_dir
    self._t0 = t0
    rep = self._report
    if self._fingerprint is not None:
      rep['fingerprint'] = self._fingerprint.value
      self.info.metadata.update(fingerprint=self._fingerprint.value)
    self.info.metadata.update(
        midi_dir=midi_dir, num_files=rep['files_total'], files_read=rep['files_read'],
        files_skipped=rep['files_skipped'], skipped_by_reason=rep['skipped_by_reason'],
        counted=rep['counted'], options=rep['options'], **sel.stats)
    splits = {s: self._generate_examples(sel, s) for s in ('train', 'eval')
              if sel.stats[s] > 0}
    if not splits:
      raise conversion.NothingFoundError(
          conversion.nothing_found_message(self.SOURCE, ext.items, midi_dir, cfg.kind))
    return splits

  def _check_fingerprint(self, items: list) -> None:
    """The files converted are those the fingerprint (the dataset's name) covers: a file
    added, removed or rewritten since the fingerprint was taken stops the build."""
    fp = self._fingerprint
    if fp is None:
      return
    converted = {r['path']: r['file_id'] for r in items}
    for path in sorted(set(converted) | set(fp.files)):
      if path not in converted or path not in fp.files or (
          converted[path] and fp.files[path] and converted[path] != fp.files[path]):
        raise ValueError(f'{fp.midi_dir} changed while its dataset was being built ({path}); '
                         'build again once it stays unchanged')

  def _generate_examples(self, selection, split):
    yield from selection.examples(split)

  # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and
  # prepared" in bold (escape codes) on stdout, although nothing is downloaded: into the log.
  def _log_download_bytes(self) -> None:
    _LOG.info('building %s/%s in %s', self.name, self.builder_config.name, self.data_dir)

  def _log_download_done(self) -> None:
    _LOG.info('built %s/%s in %s', self.name, self.builder_config.name, self.data_dir)

  def download_and_prepare(self, *args, **kwargs):
    existed = self.is_prepared() if hasattr(self, 'is_prepared') else False
    if not existed and not (self._verbose and sys.stderr.isatty()):
      # TFDS's nested tqdm bars (writing and shuffling the examples) leave escape codes in a
      # log; our own progress line covers the slow part, the conversion.
      tfds.disable_progress_bar()
    super().download_and_prepare(*args, **kwargs)
    if self._report is None and not existed and self._beam:
      self._report = self._beam_report()
    if self._report is not None and not existed:
      self._report['total_s'] = round(time.monotonic() - self._t0, 1)
      self._report['dataset_dir'] = str(self.data_dir)
      with open(os.path.join(self.data_dir, 'build_report.json'), 'w') as f:
        json.dump(self._report, f, indent=1)
      if not self._quiet:
        conversion.print_report(self._report)

  # --------------------------------------------------------------------------- Beam

  def _beam_split_generators(self, dl_manager, pipeline):
    """The same dataset as the in-process path, as an Apache Beam pipeline.

    Steps: convert each file (one element per file) -> drop later files with an already-seen
    content hash -> paper: global dedup keyed by the window's content (first in (path, window
    index) order kept, as without Beam) / magenta: seeded per-file cap -> split by file hash.
    """
    beam = tfds.core.lazy_imports.apache_beam
    cfg = self.builder_config
    midi_dir = self._items_dir(dl_manager)
    items = conversion.list_items(self.SOURCE, midi_dir)
    self.info.metadata.update(midi_dir=midi_dir, num_files=len(items))
    if self._fingerprint is not None:
      self.info.metadata.update(fingerprint=self._fingerprint.value)
    self._t0 = time.monotonic()
    self._report = None
    kind, mode = cfg.kind, cfg.mode
    converted = (
        pipeline
        | 'Items' >> beam.Create(items)
        | 'Convert' >> beam.Map(_beam_convert, kind=kind, mode=mode, options=self.options))
    good = (
        converted
        | 'ReadOk' >> beam.Filter(lambda r: r['reason'] is None)
        | 'ByFileId' >> beam.Map(lambda r: (r['file_id'], r))
        | 'FirstPath' >> beam.CombinePerKey(_first_by_path)
        | 'DropKey' >> beam.Values())
    windows = good | 'Windows' >> beam.FlatMap(
        _beam_windows, max_per_file=cfg.max_per_file, seed=cfg.seed)
    if mode == 'paper':
      windows = (
          windows
          | 'ByContent' >> beam.Map(lambda w: (w['hash'], w))
          | 'FirstOccurrence' >> beam.CombinePerKey(_first_window)
          | 'DropHash' >> beam.Values())
    examples = windows | 'Count' >> beam.Map(_beam_count)
    out = {}
    for split in ('train', 'eval'):
      want = split == 'eval'
      out[split] = (
          examples
          | f'Split{split}' >> beam.Filter(
              lambda w, want=want, p=cfg.eval_percent: conversion.is_eval(w['file_id'], p) == want)
          | f'Key{split}' >> beam.Map(lambda w: (f'{w["file_id"]}:{w["window"]}', {
              'tokens': w['tokens'], 'source': w['file_id'], 'path': w['path']})))
    return out

  def _beam_report(self):
    """The build report of a Beam build, from its counters (skipped file names: worker logs)."""
    md = self.info.metadata
    splits = {k: v.num_examples for k, v in self.info.splits.items()}
    return {
        'source': self.SOURCE, 'mode': self.builder_config.mode, 'beam': True,
        'files_total': md.get('num_files'), 'files_read': md.get('files_read'),
        'files_skipped': md.get('files_skipped'),
        'skipped_by_reason': md.get('skipped_by_reason', {}), 'skipped_files': {},
        'skipped_details': {}, 'duplicate_files': None,
        'kinds': {self.builder_config.kind: {
            'windows_before_dedup': None, 'windows': sum(splits.values()), 'dedup_ratio': None,
            'train': splits.get('train', 0), 'eval': splits.get('eval', 0),
            'files_with_windows': None, 'duplicate_files': None}},
        'convert_s': None, 'workers': self._workers, 'midi_dir': md.get('midi_dir'),
    }

  def _process_pipeline_result(self, pipeline_result):
    beam = tfds.core.lazy_imports.apache_beam
    counters = {}
    res = pipeline_result.metrics().query(beam.metrics.MetricsFilter().with_namespace('mvae'))
    for c in res['counters']:
      counters[c.key.metric.name] = c.committed if c.committed is not None else c.attempted
    skipped = {k[len('skipped_'):]: v for k, v in counters.items() if k.startswith('skipped_')}
    self.info.metadata.update(
        files_read=counters.get('files_read', 0), files_skipped=sum(skipped.values()),
        skipped_by_reason=skipped, windows=counters.get('windows', 0))


def _beam_convert(item, kind, mode, options):
  beam = tfds.core.lazy_imports.apache_beam
  res = conversion.convert_item(item, {kind: encoding.window_spec(kind, mode)}, options)
  if res['reason'] is None:
    beam.metrics.Metrics.counter('mvae', 'files_read').inc()
  else:
    beam.metrics.Metrics.counter('mvae', f'skipped_{res["reason"]}').inc()
    print(f'skipped {res["path"]}: {res["reason"]} {res["detail"]}', file=sys.stderr)
  res['windows'] = res['windows'].get(kind)
  res['hashes'] = res['hashes'].get(kind)
  return res


def _first_by_path(results):
  return min(results, key=lambda r: r['path'])


def _first_window(windows):
  return min(windows, key=lambda w: (w['path'], w['window']))


def _beam_windows(res, max_per_file, seed):
  w = res['windows']
  if w is None or not len(w):
    return
  idx = np.arange(len(w))
  if max_per_file and len(w) > max_per_file:
    idx = conversion.capped(len(w), max_per_file, seed, res['file_id'])
  for i in idx:
    yield {'file_id': res['file_id'], 'path': res['path'], 'window': int(i),
           'tokens': w[i], 'hash': res['hashes'][i].tobytes()}


def _beam_count(w):
  beam = tfds.core.lazy_imports.apache_beam
  beam.metrics.Metrics.counter('mvae', 'windows').inc()
  return w


class MvaeFolk(_WindowsBuilder):
  """Monophonic folk melodies from music21's ABC collections (Essen, O'Neill, Ryan, Aird...)."""
  SOURCE = 'folk'
  # Repeats played out by default in paper mode; `<kind>_written` keeps the written form
  # (`_expanded`: magenta mode with repeats played out).
  BUILDER_CONFIGS = (_configs(kinds.FOLK_KINDS)
                     + [make_config(k, m, expand_repeats=m != 'paper')
                        for m in kinds.MODES for k in kinds.FOLK_KINDS])


class MvaeFreedoom(_WindowsBuilder):
  """The 67 Freedoom game MIDI files shipped in data_pipelines/freedoom (BSD licence)."""
  SOURCE = 'freedoom'
  BEAM_CAPABLE = True
  # 25% of the files: with 66 distinct songs, 10% would leave 2 songs (13 drum windows) to
  # evaluate on; 25% gives 8 songs.
  BUILDER_CONFIGS = _configs(kinds.KINDS, eval_percent=25)


class MvaeMidiFolder(_WindowsBuilder):
  """Any folder of MIDI files, e.g. the Lakh MIDI dataset's `lmd_full`."""
  SOURCE = 'folder'
  BEAM_CAPABLE = True
  BUILDER_CONFIGS = _configs(kinds.KINDS)
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Pass the MIDI folder as `midi_dir=` (CLI: --midi_dir) or place the files (any depth of
  sub-folders) in the manual dir (`<data_dir>/downloads/manual/`). For the Lakh MIDI dataset:
  download and unpack http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz.
  """

  def _items_dir(self, dl_manager):
    if self._midi_dir:
      return self._midi_dir
    return os.fspath(dl_manager.manual_dir)


BUILDERS = {'folk': MvaeFolk, 'freedoom': MvaeFreedoom, 'folder': MvaeMidiFolder}
