"""The studio end to end: the real command (`python -m mvae_jax.studio`) serving a trained
melody2 smoke run, driven in headless Chromium (Debian's chromium + chromium-driver, through
Selenium; no browser download).

In the page: sample 4 (the rolls are drawn), a non-MIDI file refused with its reason, two
Freedoom files uploaded and interpolated, the path played (the audio context runs and notes are
scheduled), its MIDI downloaded and read back with note-seq, no console errors. A screenshot goes
to the test's temporary folder. Without chromium / chromedriver / selenium the browser test is
skipped with the reason; the command's own test still runs.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import note_seq
import pytest

from tests.test_generate import INPUT_A, INPUT_B, runs_root, smoke_run  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
NOTE_COLOUR = (0x4f, 0xb3, 0xff)  # roll.js PART_COLOURS[0]


@pytest.fixture(scope='module')
def studio_url(runs_root, tfds_dir):  # noqa: F811
  """The command started on a free port; its address, as printed."""
  pytest.importorskip('uvicorn')
  run = smoke_run('melody2', runs_root, trained=True, data_dir=tfds_dir)
  env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''),
             JAX_PLATFORMS='cpu')
  proc = subprocess.Popen([sys.executable, '-m', 'mvae_jax.studio', f'--workdir={run}',
                           '--port=0', '--no-warmup'], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
  lines = []
  try:
    deadline = time.time() + 300
    while time.time() < deadline:
      line = proc.stdout.readline()
      if not line:
        break
      lines.append(line)
      if line.startswith('mvae_jax studio:'):
        break
    assert lines and lines[-1].startswith('mvae_jax studio: 1 run at http://127.0.0.1:'), (
        lines, proc.poll() is not None and proc.stderr.read())
    url = lines[-1].split(' at ')[1].split()[0]
    yield url, lines
  finally:
    proc.send_signal(signal.SIGINT)  # as Ctrl-C: a clean stop
    try:
      proc.wait(30)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
    stderr = proc.stderr.read()
    assert 'Traceback' not in stderr, stderr


def test_command_prints_its_address_and_serves(studio_url):
  url, lines = studio_url
  assert lines[0].startswith('loaded ') and 'melody2:smoke (mel_2bar, paper mode)' in lines[0]
  with urllib.request.urlopen(url + 'api/info', timeout=30) as r:
    info = json.load(r)
  assert [r['kind'] for r in info['runs']] == ['mel_2bar']
  req = urllib.request.Request(url + 'api/info', headers={'Host': 'attacker.example'})
  with pytest.raises(urllib.error.HTTPError) as e:
    urllib.request.urlopen(req, timeout=30)
  assert e.value.code == 400


@pytest.fixture
def browser(tmp_path):
  if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip('needs Debian chromium and chromium-driver (apt-get install chromium '
                'chromium-driver)')
  webdriver = pytest.importorskip('selenium.webdriver', reason='needs selenium (the studio '
                                  'extra: pip install -e ".[studio]")')
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--disable-quic', '--no-first-run', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--window-size=1400,1800',
              '--autoplay-policy=no-user-gesture-required', f'--user-data-dir={tmp_path}/profile'):
    options.add_argument(arg)
  downloads = tmp_path / 'downloads'
  downloads.mkdir()
  options.add_experimental_option('prefs', {'download.default_directory': str(downloads),
                                            'download.prompt_for_download': False})
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.execute_cdp_cmd('Browser.setDownloadBehavior', {'behavior': 'allow',
                                                         'downloadPath': str(downloads)})
  driver.downloads = downloads
  try:
    yield driver
  finally:
    driver.quit()


def _wait(driver, condition, what, timeout=300):
  from selenium.webdriver.support.ui import WebDriverWait
  return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
      lambda d: condition(d), message=f'waiting for {what}')


def _note_pixels(driver, selector):
  """Per canvas under `selector`, how many pixels have the melody colour."""
  return driver.execute_script('''
    const [r, g, b] = arguments[1];
    return [...document.querySelectorAll(arguments[0])].map((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - r) < 3 && Math.abs(d[i + 1] - g) < 3 && Math.abs(d[i + 2] - b) < 3) n++;
      }
      return n;
    });''', selector, list(NOTE_COLOUR))


def test_sample_upload_interpolate_play_download(studio_url, browser, tmp_path):
  from selenium.webdriver.common.by import By
  url, _ = studio_url
  d = browser
  d.get(url)
  _wait(d, lambda d: d.execute_script("return document.body.classList.contains('ready')"),
        'the page to load')
  # Sample 4: four rolls, each with notes drawn.
  num = d.find_element(By.ID, 's-num')
  num.clear()
  num.send_keys('4')
  d.find_element(By.ID, 's-go').click()
  _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, '#s-out .card canvas')) == 4,
        'four samples')
  pixels = _note_pixels(d, '#s-out canvas')
  assert len(pixels) == 4 and all(p > 20 for p in pixels), pixels

  # Interpolate: a non-MIDI file is refused in the page with its reason, then two real files.
  d.find_element(By.CSS_SELECTOR, '.tabs button[data-tab="interpolate"]').click()
  bad = tmp_path / 'notes.mid'
  bad.write_text('not a MIDI file')
  d.find_element(By.CSS_SELECTOR, '#pick-a input[type=file]').send_keys(str(bad))
  _wait(d, lambda d: 'cannot read it as MIDI' in d.find_element(By.CSS_SELECTOR,
                                                                '#pick-a .msg').text,
        'the message about the bad file')
  assert d.find_element(By.CSS_SELECTOR, '#pick-a .msg').text.startswith('notes.mid: ')
  for slot, path in (('a', INPUT_A), ('b', INPUT_B)):
    d.find_element(By.CSS_SELECTOR, f'#pick-{slot} input[type=file]').send_keys(str(path))
    _wait(d, lambda d, s=slot: d.find_elements(By.CSS_SELECTOR, f'#pick-{s} .preview canvas'),
          f'the preview of {path.name}')
  options = d.find_elements(By.CSS_SELECTOR, '#pick-a select.windows option')
  assert len(options) > 10 and 'default' in options[int(d.find_element(
      By.CSS_SELECTOR, '#pick-a select.windows').get_attribute('value'))].text
  d.find_element(By.ID, 'i-go').click()
  _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, '#i-strip .card')) == 9,
        'the interpolation (A, 7 steps, B)')
  assert sum(_note_pixels(d, '#i-strip canvas')[1:-1]) > 0  # the path (inputs are white)

  # Play the path: the audio context runs and notes are scheduled; the playhead moves.
  d.find_element(By.ID, 'i-play').click()
  _wait(d, lambda d: d.execute_script(
      'return studio.synth.ctx && studio.synth.ctx.state === "running" && '
      'studio.player.scheduled > 0'), 'playback', timeout=30)
  _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#i-strip .card.playing'),
        'the playhead', timeout=30)
  d.find_element(By.ID, 'stop').click()
  assert d.execute_script('return studio.player.playing') is False

  # Download the path as MIDI and read it back.
  d.find_element(By.ID, 'i-midi').click()
  _wait(d, lambda d: [p for p in d.downloads.iterdir() if p.suffix == '.mid'],
        'the MIDI download', timeout=60)
  [midi] = [p for p in d.downloads.iterdir() if p.suffix == '.mid']
  ns = note_seq.midi_file_to_note_sequence(str(midi))
  want = d.execute_script('return studio.interp.pieces.map((p) => p.notes.length)')
  assert len(want) == 7 and len(ns.notes) == sum(want)
  assert ns.total_time <= 7 * 4.0 + 1e-6  # 7 pieces of 2 bars at 120 qpm

  d.save_screenshot(str(tmp_path / 'studio.png'))
  assert (tmp_path / 'studio.png').stat().st_size > 10_000
  # No errors in the console but the refused upload's answer (422), none thrown by the page.
  logs = [e for e in d.get_log('browser') if e['level'] == 'SEVERE']
  assert all('uploads?name=notes.mid' in e['message'] and '422' in e['message'] for e in logs), \
      logs
  assert d.execute_script('return studio.errors') == []
