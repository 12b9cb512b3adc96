r"""4-bar drum loops: the length of magenta.js's drums_4bar models (512-class drums, roll input).

  python -m mvae_jax.train --config=configs/drums4.py:small --workdir=runs/drums4_small

Presets: paper (the paper's 2-bar drums sizes on 4 bars; default), magenta (the reference's
cat-drums_2bar_small recipe on 4 bars: the structure of magenta.js's drums_4bar checkpoints),
small, smoke. Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped with the project
(drums are never transposed).
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'drums_4bar'},
    'paper': lib.FLAT_PAPER,
    'magenta': {**lib.FLAT_MAGENTA,
                'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0},
    'small': {**lib.FLAT_SMALL, 'eval.num_batches': 0},
    'smoke': lib.SMOKE,
}


def get_config(arg=None):
  return lib.build('drums4', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
