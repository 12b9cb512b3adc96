r"""4-bar trios (lead, bass, drums): the length of magenta.js's trio_4bar model.

  python -m mvae_jax.train --config=configs/trio4.py:small --workdir=runs/trio4_small

One conductor step per bar (4 segments of 16 steps), three bottom decoders. Presets: paper (the
paper's trio sizes on 4 bars, its flat encoder; default), magenta (the reference's hier-trio_16bar
recipe on 4 bars: the hierarchical encoder, a BiLSTM per bar and one over the 4 bar summaries,
drums read as a 512-way one-hot: the structure of magenta.js's trio_4bar), small, smoke (both
with the hierarchical encoder). Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped
with the project.
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'trio_4bar'},
    'paper': {**lib.HIER_PAPER, 'model.num_segments': 4, 'loss.max_beta': 0.2,
              'loss.beta_rate': 0.99999, 'train.num_steps': 50_000},
    'magenta': {**lib.HIER_ENC_MAGENTA, 'model.num_segments': 4, 'model.drum_input': 'one_hot',
                'train.batch_size': 256, 'train.num_steps': 50_000},
    'small': {**lib.HIER_SMALL, 'model.num_segments': 4, 'model.encoder': 'hier',
              'train.batch_size': 16, 'eval.batch_size': 64},
    'smoke': {**lib.HIER_ENC_SMOKE, 'model.num_segments': 4},
}


def get_config(arg=None):
  return lib.build('trio4', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
