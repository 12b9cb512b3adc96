"""Matrix-product FLOPs of a training step, counted from the config the way the issue counts the
reference's: every product of the model (one-hot inputs as products, as TensorFlow's graph does
them; our code gathers rows instead, so it does slightly fewer), 2 FLOPs per multiply-add;
training = 3 x forward (backward twice the forward). Elementwise work is not counted.

  python benchmarks/flops.py configs/melody2.py:magenta   # prints GFLOP per example
"""
import sys
from data_pipelines import kinds

# A large float32 matrix product on the development machine's 2 cores (numpy, 4096 x 4096,
# quiet machine): the roofline each figure in RESULTS.md is compared with.
ROOFLINE_GFLOPS = 205.0
NUM_DRUM_INPUTS = 10


def _lstm_step(in_size: int, sizes) -> int:
  flops = 0
  for h in sizes:
    flops += 2 * (in_size + h) * 4 * h
    in_size = h
  return flops


def forward_flops(model, time: int) -> int:
  """Forward matrix-product FLOPs per example for `config.model` and `time` steps."""
  vocab = list(model.part_vocab)
  enc_in = sum(NUM_DRUM_INPUTS if d else v for v, d in zip(vocab, model.part_is_drums))
  flops = 0
  z = model.z_size if model.use_encoder else 0
  if model.use_encoder:
    in_size = enc_in
    for h in model.enc_sizes:
      flops += 2 * time * 2 * (in_size + h) * 4 * h  # two directions
      in_size = 2 * h
    flops += 2 * 2 * in_size * z  # mu, sigma
  if model.decoder == 'hier':
    segs = model.num_segments
    csizes = list(model.conductor_sizes)
    if z:
      flops += 2 * z * 2 * sum(csizes)
    flops += segs * (_lstm_step(0, csizes))
    cond = model.embedding_size or csizes[-1]
    if model.embedding_size:
      flops += segs * 2 * csizes[-1] * model.embedding_size
  else:
    segs, cond = 1, z
  length = time // segs
  for v in vocab:
    if cond:
      flops += segs * 2 * cond * 2 * sum(model.dec_sizes)  # initial state per segment
    flops += segs * length * (_lstm_step(v + cond, model.dec_sizes) + 2 * model.dec_sizes[-1] * v)
  return flops


def train_gflop_per_example(config) -> float:
  return 3 * forward_flops(config.model, kinds.time_steps(config.data.kind)) / 1e9


if __name__ == '__main__':
  from mvae_jax import config_lib  # pylint: disable=g-import-not-at-top
  for spec in sys.argv[1:]:
    print(spec, round(train_gflop_per_example(config_lib.from_file(spec)), 4))
