r"""16-bar trios (lead, bass, drums): one conductor, three bottom decoders (paper section 2.3).

  python -m mvae_jax.train --config=configs/trio16.py:small --workdir=runs/trio16_small

Presets: paper (appendix sizes, 16 segments of 1 bar, free bits 256, beta 0 -> 0.2 at rate 0.99999;
default), magenta (the reference's hierdec-trio_16bar: encoder 2 x 2048, batch 256, teacher forcing
only), small, smoke. Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped with the project.
"""
from mvae_jax import config_lib

_HIER = {'model.decoder': 'hier', 'model.num_segments': 16}

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'trio_16bar', **_HIER},
    'paper': {
        'model.enc_sizes': (2048,), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
        'model.embedding_size': 512, 'model.dec_sizes': (1024, 1024),
        'loss.free_bits': 256.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
        'train.batch_size': 512, 'train.num_steps': 50_000,
    },
    'magenta': {
        'data.mode': 'magenta',
        'model.enc_sizes': (2048, 2048), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
        'model.embedding_size': None, 'model.dec_sizes': (1024, 1024),
        'loss.free_bits': 256.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0,
        'train.batch_size': 256, 'train.num_steps': 50_000, 'train.scheduled_sampling': False,
    },
    'small': {
        'model.enc_sizes': (256,), 'model.z_size': 128, 'model.conductor_sizes': (256,),
        'model.embedding_size': 128, 'model.dec_sizes': (256,),
        'loss.free_bits': 64.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.999,
        'train.batch_size': 16, 'train.num_steps': 2000, 'train.ss_rate': 100.0,
        'train.log_every_steps': 50, 'train.checkpoint_every_steps': 500,
        'eval.every_steps': 500, 'eval.num_batches': 4, 'eval.batch_size': 64,
    },
    'smoke': {**config_lib.SMOKE, 'model.num_segments': 16},
}


def get_config(arg=None):
  return config_lib.build('trio16', PRESETS, arg)


def sweep():
  return [{'model.use_encoder': False}, {'train.scheduled_sampling': False}, {}]
