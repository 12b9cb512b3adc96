r"""mvae_jax studio: play with trained models in the browser.

  pip install -e ".[studio]"
  python -m mvae_jax.studio --workdir=runs/mel2 [--workdir=runs/trio16 ...]

starts a local web server (127.0.0.1 unless --host) with a page to sample, interpolate between
two MIDI files (or held-out examples, or pieces on the page), reconstruct, listen (a built-in
WebAudio synthesizer) and download MIDI, and a JSON API under /api (OpenAPI description at
/api/openapi.json, a readable listing at /api/docs).

Modules: `engine` (runs, uploads, jobs: no web code), `server` (the ASGI app, FastAPI),
`__main__` (the command). The package itself imports nothing heavy: the upload workers import
`engine` only.
"""
