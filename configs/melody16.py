r"""16-bar melodies with the hierarchical decoder: 16 segments of 1 bar (the reference's layout).

  python -m mvae_jax.train --config=configs/melody16.py:small --workdir=runs/melody16_small

Presets: paper (the paper's 32-bar sizes on 16 one-bar segments; default), magenta (the reference's
hierdec-mel_16bar: encoder 2 x 2048, raw conductor output as embedding, teacher forcing only),
magenta_hier (the reference's hier-mel_16bar, the structure of magenta.js's mel_16bar_small_q2: a
hierarchical encoder, a 1024 BiLSTM per bar and one over the 16 bar summaries), small, smoke,
smoke_hier (smoke with the hierarchical encoder). Modifiers: `,baseline`, `,no_ss`. Data: folk melodies.
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_16bar'},
    'paper': {**lib.HIER_PAPER, 'loss.max_beta': 1.0, 'loss.beta_rate': 0.0,
              'train.num_steps': 150_000},
    'magenta': {**lib.HIER_MAGENTA, 'train.batch_size': 512, 'train.num_steps': 150_000},
    'magenta_hier': {**lib.HIER_ENC_MAGENTA, 'train.batch_size': 512, 'train.num_steps': 150_000},
    'small': {**lib.HIER_SMALL, 'train.batch_size': 16, 'eval.batch_size': 128},
    'smoke': lib.HIER_SMOKE,
    'smoke_hier': lib.HIER_ENC_SMOKE,
}


def get_config(arg=None):
  return lib.build('melody16', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
