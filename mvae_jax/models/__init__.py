"""MusicVAE models: LSTM layers, BiLSTM encoder, flat / hierarchical decoders, the VAE."""

from mvae_jax.models.vae import MusicVAE, default_part_names

__all__ = ['MusicVAE', 'default_part_names']
