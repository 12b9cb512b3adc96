r"""2-bar drum loops: 512-class drums, 10-value roll encoder input (paper section 2.1).

  python -m mvae_jax.train --config=configs/drums2.py:small --workdir=runs/drums2_small

Presets: paper (default), magenta (the reference's cat-drums_2bar_small), magenta_big (the
reference's cat-drums_2bar_big), small, smoke.
Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped with the project (drums are
never transposed).
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'drums_2bar'},
    'paper': lib.FLAT_PAPER,
    'magenta': {**lib.FLAT_MAGENTA,
                'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0},
    'magenta_big': {**lib.FLAT_MAGENTA_BIG,
                    'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0},
    'small': {**lib.FLAT_SMALL, 'eval.num_batches': 0},
    'smoke': lib.SMOKE,
}


def get_config(arg=None):
  return lib.build('drums2', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
