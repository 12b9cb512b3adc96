r"""4-bar melodies: the length of magenta.js's mel_4bar models (flat, or hierarchical on 4 bars).

  python -m mvae_jax.train --config=configs/melody4.py:small --workdir=runs/melody4_small

Presets: paper (the paper's 2-bar sizes on 4 bars, 130 classes; default), magenta (the reference's
cat-mel_2bar_small recipe on 4 bars, 90 classes: the structure of magenta.js's flat mel_4bar
checkpoints), magenta_hier (the reference's hier-mel_16bar recipe on 4 one-bar segments: the
hierarchical encoder and decoder of a hierarchical mel_4bar checkpoint), small, smoke, smoke_hier.
Modifiers: `,baseline`, `,no_ss`. Data: the folk melodies (4-bar windows).
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_4bar'},
    'paper': lib.FLAT_PAPER,
    # Transposed by randint(-5, 5), both ends included (cat-mel_2bar's augmentation).
    'magenta': {**lib.FLAT_MAGENTA, 'data.shift_min': -5, 'data.shift_max': 5,
                'loss.free_bits': 0.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999},
    'magenta_hier': {**lib.HIER_ENC_MAGENTA, 'model.num_segments': 4,
                     'train.batch_size': 512, 'train.num_steps': 150_000},
    'small': {**lib.FLAT_SMALL, 'eval.num_batches': 8},
    'smoke': lib.SMOKE,
    'smoke_hier': {**lib.HIER_ENC_SMOKE, 'model.num_segments': 4},
}


def get_config(arg=None):
  return lib.build('melody4', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
