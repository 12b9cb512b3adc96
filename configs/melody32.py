r"""32-bar melodies with the paper's hierarchical decoder: 16 segments of 2 bars (paper section 2.2).

  python -m mvae_jax.train --config=configs/melody32.py --workdir=runs/melody32

Presets: paper (appendix sizes: encoder 2048, z 512, conductor 2 x 1024 emitting 16 embeddings of 512,
bottom 2 x 1024, free bits 256, beta 1, 150k steps; default), magenta (the reference's hierarchical
sizes, as in hierdec-mel_16bar, on 32 bars of 90-class data), small, smoke.
Modifiers: `,baseline`, `,no_ss`. Data: folk melodies (3,068 folk windows reach 32 bars, repeats
played out: use `--config.data.source=folder --config.data.midi_dir=...` with a MIDI collection
for real work).
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_32bar'},
    'paper': {**lib.HIER_PAPER, 'loss.max_beta': 1.0, 'loss.beta_rate': 0.0,
              'train.num_steps': 150_000},
    'magenta': {**lib.HIER_MAGENTA, 'train.batch_size': 512, 'train.num_steps': 150_000},
    'small': {**lib.HIER_SMALL, 'train.batch_size': 16, 'eval.batch_size': 64},
    'smoke': lib.HIER_SMOKE,
}


def get_config(arg=None):
  return lib.build('melody32', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
