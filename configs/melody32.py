r"""32-bar melodies with the paper's hierarchical decoder: 16 segments of 2 bars (paper section 2.2).

  python -m mvae_jax.train --config=configs/melody32.py --workdir=runs/melody32

Presets: paper (appendix sizes: encoder 2048, z 512, conductor 2 x 1024 emitting 16 embeddings of 512,
bottom 2 x 1024, free bits 256, beta 1, 150k steps; default), magenta (the reference's hierarchical
sizes, as in hierdec-mel_16bar, on 32 bars of 90-class data), small, smoke.
Modifiers: `,baseline`, `,no_ss`. Data: folk melodies (few folk tunes reach 32 bars: use
`--config.data.source=folder --config.data.midi_dir=...` with a MIDI collection for real work).
"""
from mvae_jax import config_lib

_HIER = {'model.decoder': 'hier', 'model.num_segments': 16}

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_32bar', **_HIER},
    'paper': {
        'model.enc_sizes': (2048,), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
        'model.embedding_size': 512, 'model.dec_sizes': (1024, 1024),
        'loss.free_bits': 256.0, 'loss.max_beta': 1.0, 'loss.beta_rate': 0.0,
        'train.batch_size': 512, 'train.num_steps': 150_000,
    },
    'magenta': {
        'data.mode': 'magenta',
        'model.enc_sizes': (2048, 2048), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
        'model.embedding_size': None, 'model.dec_sizes': (1024, 1024),
        'loss.free_bits': 256.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0,
        'train.batch_size': 512, 'train.num_steps': 150_000, 'train.scheduled_sampling': False,
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
  return config_lib.build('melody32', PRESETS, arg)


def sweep():
  return [{'model.use_encoder': False}, {'train.scheduled_sampling': False}, {}]
