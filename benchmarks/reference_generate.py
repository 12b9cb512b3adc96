r"""The reference's generation timed through its public API (run with the REFERENCE's python).

  /tmp/magenta_tf215/bin/python benchmarks/reference_generate.py make_checkpoint \
      --config=hierdec-mel_16bar --out=DIR
  /tmp/magenta_tf215/bin/python benchmarks/reference_generate.py time \
      --config=hierdec-mel_16bar --checkpoint=DIR --batch=1 --ops=sample,encode,interpolate \
      --calls=5

Called by `benchmarks/generate_vs_reference.py`; nothing in the project imports it, and it imports
nothing of ours. Needs `magenta_compat.py` (the shared tools folder) on `--tools`.

make_checkpoint: a checkpoint of a released config at its released sizes with the graph's own
random initial values (TensorFlow's initialisers), saved by `tf.train.Saver` as Magenta's trainer
saves one: the graph is built as `TrainedModel` builds it (`model.build(is_training=False)`,
`model.sample`, `model.encode`), so it holds exactly the variables `TrainedModel` restores.

time: `TrainedModel` on that checkpoint, one per batch size an operation needs (its batch size is
fixed when the graph is built), then per operation one first call and `--calls` timed calls:
  sample       decode_to_tensors(z ~ N(0, I) [batch, z], length, temperature)
  encode       encode_tensors(batch input tensors, full lengths)
  interpolate  max(1, batch // steps) interpolations ("pairs"): encode_tensors of the 2 * pairs
               endpoints, slerp to `--steps` points each (numpy, the reference's formula),
               decode_to_tensors of the steps * pairs points; encoding and decoding each at its
               own batch size (2 * pairs, steps * pairs), the reference at its best.
Inputs are random one-hot tensors of the converter's input depth (a random multi-hot roll for
drums); the time of a call does not depend on their values. Prints one JSON line: per operation
the graph build and restore time (`setup_s`), the first call, the median call (wall) and process
CPU seconds per call, all threads.
"""
import argparse
import json
import os
import sys
import time


def _imports(tools):
  sys.path.insert(0, tools)
  import magenta_compat  # noqa: F401  (must precede magenta)
  import numpy as np
  import tensorflow.compat.v1 as tf
  from magenta.models.music_vae import configs, trained_model
  tf.disable_v2_behavior()
  tf.logging.set_verbosity(tf.logging.ERROR)
  return np, tf, configs, trained_model


def make_checkpoint(a):
  np, tf, configs, _ = _imports(a.tools)
  import copy
  config = copy.deepcopy(configs.CONFIG_MAP[a.config])
  hp, conv = config.hparams, config.data_converter
  hp.batch_size = 1
  os.makedirs(a.out, exist_ok=True)
  with tf.Graph().as_default():
    tf.set_random_seed(a.seed)
    model = config.model
    model.build(hp, conv.output_depth, is_training=False)
    z = tf.placeholder(tf.float32, [1, hp.z_size])
    model.sample(1, max_length=hp.max_seq_len, z=z, temperature=tf.constant(0.5))
    model.encode(tf.placeholder(tf.float32, [1, None, conv.input_depth]),
                 tf.placeholder(tf.int32, [1]), tf.placeholder(tf.float32, [1, None, 0]))
    tf.train.get_or_create_global_step()
    saver = tf.train.Saver(save_relative_paths=True)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      prefix = saver.save(sess, os.path.join(a.out, 'model.ckpt'), global_step=1,
                          write_meta_graph=False)
      n = sum(int(np.prod(v.shape.as_list())) for v in tf.global_variables()
              if v.op.name != 'global_step')
  print(json.dumps({'config': a.config, 'prefix': prefix, 'params': n}))


def _inputs(np, config, n, seed=0):
  """n random input tensors [time, input_depth] and their lengths."""
  conv, t = config.data_converter, config.hparams.max_seq_len
  rng = np.random.default_rng(seed)
  depths = list(getattr(conv, '_split_output_depths', None) or [conv.output_depth])
  if conv.input_depth == sum(depths):
    x = np.concatenate([np.eye(d, dtype=np.float32)[rng.integers(0, d, (n, t))]
                        for d in depths], -1)
  else:  # drums: a multi-hot roll (and its "nothing" bit)
    x = (rng.random((n, t, conv.input_depth)) < 0.2).astype(np.float32)
  return list(x), [t] * n


def _slerp(np, p0, p1, ts):
  """Points at fractions ts [n] of the great-circle arc from p0 to p1 (norms interpolated the
  same way), as the reference's `interpolate` computes them: [n, z]."""
  w = np.arccos(np.clip(np.dot(p0 / np.linalg.norm(p0), p1 / np.linalg.norm(p1)), -1.0, 1.0))
  return (np.sin((1.0 - ts)[:, None] * w) * p0 + np.sin(ts[:, None] * w) * p1) / np.sin(w)


def time_ops(a):
  t0 = time.perf_counter()
  np, tf, configs, trained_model = _imports(a.tools)
  import_s = time.perf_counter() - t0
  config = configs.CONFIG_MAP[a.config]
  hp = config.hparams
  length = hp.max_seq_len
  b = a.batch
  models, setup = {}, {}

  def model(batch):
    if batch not in models:
      t0 = time.perf_counter()
      models[batch] = trained_model.TrainedModel(config, batch_size=batch,
                                                 checkpoint_dir_or_path=a.checkpoint)
      setup[batch] = time.perf_counter() - t0
    return models[batch]

  rng = np.random.default_rng(1)
  pairs = max(1, b // a.steps)  # as many interpolations as fit in `batch` decoded sequences
  x, lengths = _inputs(np, config, b)
  pairs_x, pairs_len = _inputs(np, config, 2 * pairs, seed=2)

  def sample():
    z = rng.standard_normal((b, hp.z_size)).astype(np.float32)
    return model(b).decode_to_tensors(z, length=length, temperature=a.temperature)

  def encode():
    return model(b).encode_tensors(list(x), list(lengths))

  def interpolate():
    _, mu, _ = model(2 * pairs).encode_tensors(list(pairs_x), list(pairs_len))
    ts = np.linspace(0.0, 1.0, a.steps)
    z = np.concatenate([_slerp(np, mu[i], mu[pairs + i], ts) for i in range(pairs)]
                       ).astype(np.float32)
    return model(a.steps * pairs).decode_to_tensors(z, length=length, temperature=a.temperature)

  fns = {'sample': (sample, (b,)), 'encode': (encode, (b,)),
         'interpolate': (interpolate, (2 * pairs, a.steps * pairs))}
  out = {'who': 'reference', 'config': a.config, 'batch': b, 'temperature': a.temperature,
         'steps': a.steps, 'calls': a.calls, 'import_s': round(import_s, 3), 'ops': {}}
  for op in a.ops.split(','):
    fn, batches = fns[op]
    new = [s for s in batches if s not in models]
    for s in new:
      model(s)
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(a.warmup):
      fn()
    times, c0 = [], time.process_time()
    for _ in range(a.calls):
      t1 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t1)
    cpu = (time.process_time() - c0) / a.calls
    out['ops'][op] = {'setup_s': round(sum(setup[s] for s in new), 3),
                      'first_call_s': round(first, 5),
                      'median_call_s': round(float(np.median(times)), 6),
                      'cpu_s_per_call': round(cpu, 6), 'times_s': [round(t, 6) for t in times]}
  out['loadavg_1m_after'] = round(os.getloadavg()[0], 2)
  print(json.dumps(out), flush=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('what', choices=['make_checkpoint', 'time'])
  ap.add_argument('--config', required=True)
  ap.add_argument('--tools', default='/work/shared/tools/magenta',
                  help='the folder holding magenta_compat.py')
  ap.add_argument('--out', help='make_checkpoint: the checkpoint folder')
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--checkpoint', help='time: checkpoint folder or prefix')
  ap.add_argument('--batch', type=int, default=1)
  ap.add_argument('--ops', default='sample,encode,interpolate')
  ap.add_argument('--calls', type=int, default=5)
  ap.add_argument('--warmup', type=int, default=1, help='untimed calls after the first')
  ap.add_argument('--temperature', type=float, default=0.5)
  ap.add_argument('--steps', type=int, default=7, help='interpolation points, endpoints included')
  a = ap.parse_args()
  if a.what == 'make_checkpoint':
    make_checkpoint(a)
  else:
    time_ops(a)


if __name__ == '__main__':
  main()
