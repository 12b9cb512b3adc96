r"""16-bar trios (lead, bass, drums): one conductor, three bottom decoders (paper section 2.3).

  python -m mvae_jax.train --config=configs/trio16.py:small --workdir=runs/trio16_small

Presets: paper (appendix sizes, 16 segments of 1 bar, free bits 256, beta 0 -> 0.2 at rate 0.99999;
default), magenta (the reference's hierdec-trio_16bar: encoder 2 x 2048, batch 256, teacher forcing
only), magenta_hier (the reference's hier-trio_16bar, the structure of magenta.js's trio_16bar: a
hierarchical encoder, a 1024 BiLSTM per bar and one over the bar summaries), small, smoke. Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped with the project.
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'trio_16bar'},
    'paper': {**lib.HIER_PAPER, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
              'train.num_steps': 50_000},
    # The reference's trio encoder reads the drums as a 512-way one-hot (its TrioConverter).
    'magenta': {**lib.HIER_MAGENTA, 'model.drum_input': 'one_hot', 'train.batch_size': 256,
                'train.num_steps': 50_000},
    'magenta_hier': {**lib.HIER_ENC_MAGENTA, 'model.drum_input': 'one_hot',
                     'train.batch_size': 256, 'train.num_steps': 50_000},
    'small': {**lib.HIER_SMALL, 'train.batch_size': 16, 'eval.batch_size': 64},
    'smoke': lib.HIER_SMOKE,
}


def get_config(arg=None):
  return lib.build('trio16', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
