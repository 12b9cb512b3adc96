"""Silences one import-time warning of a dependency.

note-seq imports pydub, which warns at import time that ffmpeg is missing; nothing here uses
pydub's audio (WAV rendering goes through midirenderer), so the warning says nothing to a user.
"""
import warnings

warnings.filterwarnings('ignore', message="Couldn't find ffmpeg or avconv", category=RuntimeWarning)
