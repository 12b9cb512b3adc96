"""The studio's ASGI app (FastAPI): the page, its assets and the JSON API over `engine.Studio`.

  app = create_app(Studio(['runs/mel2']))   # serve with uvicorn, or test with TestClient(app)

API (all JSON unless said; errors are {"error": "one line naming the input and the reason"} with
status 404 for something that does not exist, 413 for a file over the size limit, 422 for an
input the model cannot use, 500 for a bug):

  GET  /api/info                                runs and limits
  GET  /api/runs/{run}                          one run: parts, drum rows, pitch range, bars
  POST /api/runs/{run}/sample                   {num, temperature, greedy, seed} -> pieces
  POST /api/runs/{run}/interpolate              {a, b, steps, ...} -> inputs, pieces, z_a, z_b
  POST /api/runs/{run}/point                    {z_a, z_b, t, ...} -> the piece at t of the path
  POST /api/runs/{run}/reconstruct              {input, ...} -> input, output
  POST /api/runs/{run}/jobs/{op}                the same bodies, in the background -> a job
  GET  /api/jobs/{job}                          its state, stage, progress, and result when done
  POST /api/runs/{run}/uploads?name=tune.mid    the file's bytes as the body -> its windows
  GET  /api/runs/{run}/uploads/{upload}         an upload's windows for another run
  GET  /api/runs/{run}/uploads/{upload}/windows/{window}   one window (K or bar:N) as a piece
  GET  /api/runs/{run}/eval                     held-out examples: {available, count, reason}
  GET  /api/runs/{run}/eval/{index}             one as a piece
  POST /api/runs/{run}/midi                     {pieces, qpm} -> a MIDI file (audio/midi)
  GET  /api/runs/{run}/attributes               attribute vectors of the run ([] without)
  POST /api/runs/{run}/attributes/apply         {input, amounts: {name: a}} -> the changed piece
  GET  /api/openapi.json, /api/docs             the OpenAPI description, and a page listing it

An input (`a`, `b`, `input`) is {"upload": ID, "window": K | "bar:N" | null}, {"eval": I} or
{"tokens": [[...]]} (any piece's tokens, e.g. one the API returned).
"""
from __future__ import annotations

import os
from typing import Any, Literal, Optional, Union

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mvae_jax.studio import engine
from mvae_jax.studio.engine import StudioError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1', '[::1]')

Temperature = Field(engine.DEFAULT_TEMPERATURE, gt=0, le=engine.MAX_TEMPERATURE,
                    allow_inf_nan=False, description='softmax temperature of the sampling')
Greedy = Field(False, description='argmax decoding instead of sampling')
Seed = Field(0, ge=0, le=engine.MAX_SEED, description='random seed (z and sampling noise)')
Tokens = list[list[int]]


class _Body(BaseModel):
  model_config = ConfigDict(extra='forbid')


class InputRef(_Body):
  """One input of an operation: exactly one of `upload` (with `window`), `eval` or `tokens`."""
  upload: Optional[str] = Field(None, description='an upload id (POST .../uploads)')
  window: Optional[Union[int, str]] = Field(
      None, description="the upload's window: K (from 0, in time order) or 'bar:N' (the window "
      'starting at bar N); null = the default, the first with notes starting in every bar')
  eval: Optional[int] = Field(None, ge=0, description='index of a held-out example')
  tokens: Optional[Tokens] = Field(None, description="a piece's tokens, int [time][parts]")
  label: Optional[str] = Field(None, max_length=200, description='its name in the result')

  @model_validator(mode='after')
  def _one_source(self):
    given = [k for k in ('upload', 'eval', 'tokens') if getattr(self, k) is not None]
    if len(given) != 1:
      raise ValueError('give exactly one of upload (with window), eval or tokens; got '
                       + (', '.join(given) or 'none'))
    return self


class SampleRequest(_Body):
  num: int = Field(4, ge=1, le=engine.MAX_NUM, description='number of pieces')
  temperature: float = Temperature
  greedy: bool = Greedy
  seed: int = Seed


class InterpolateRequest(_Body):
  a: InputRef
  b: InputRef
  steps: int = Field(7, ge=2, le=engine.MAX_STEPS, description='points, endpoints included')
  temperature: float = Temperature
  greedy: bool = Greedy
  seed: int = Seed


class PointRequest(_Body):
  z_a: list[float] = Field(description='z of A (`z_a` of an interpolation)')
  z_b: list[float] = Field(description='z of B')
  t: float = Field(ge=0, le=1, allow_inf_nan=False, description='0 = A, 1 = B (slerp)')
  temperature: float = Temperature
  greedy: bool = Greedy
  seed: int = Field(0, ge=0, le=engine.MAX_SEED, description='the seed of the interpolation: '
                    'its points are decoded with the same noise, so t = k/(steps-1) gives its '
                    'k-th piece')


class ReconstructRequest(_Body):
  input: InputRef
  temperature: float = Temperature
  greedy: bool = Field(True, description='argmax decoding (the default) or sampling')
  seed: int = Seed


class ApplyAttributesRequest(_Body):
  input: InputRef
  amounts: dict[str, float] = Field(description='attribute name -> amount (in units of its '
                                    'vector, -10..10)')
  temperature: float = Temperature
  greedy: bool = Field(True, description='argmax decoding (the default) or sampling')
  seed: int = Seed


class MidiRequest(_Body):
  pieces: list[Tokens] = Field(min_length=1, max_length=engine.MAX_MIDI_PIECES,
                               description='pieces, played one after another')
  qpm: float = Field(120.0, ge=engine.QPM_MIN, le=engine.QPM_MAX, allow_inf_nan=False,
                     description='tempo in quarter notes per minute')
  name: str = Field('mvae_jax', max_length=100, description='the file name offered')


# Response shapes, for the OpenAPI description (responses are sent as built by the engine).
class Note(BaseModel):
  part: int
  pitch: int = Field(description='MIDI pitch (drums: the General MIDI pitch of the row)')
  row: Optional[int] = Field(None, description='drums: row of `drum_rows` (0 = kick)')
  start: int = Field(description='first step (16th notes from the start)')
  end: int = Field(description='step after the last')


class Piece(BaseModel):
  label: str
  steps: int
  tokens: Tokens
  notes: list[Note]


class Pieces(BaseModel):
  pieces: list[Piece]


class Interpolation(BaseModel):
  inputs: list[Piece] = Field(description='A and B as read (the windows encoded)')
  pieces: list[Piece]
  t: list[float]
  z_a: list[float]
  z_b: list[float]


class Point(BaseModel):
  piece: Piece
  t: float


class Reconstruction(BaseModel):
  input: Piece
  output: Piece
  equal_steps: float = Field(description='share of the steps where output equals input')


class Changed(BaseModel):
  input: Piece
  piece: Piece


class JobState(BaseModel):
  id: str
  op: str
  run: str
  state: Literal['queued', 'running', 'done', 'error']
  stage: str
  progress: Optional[float] = Field(description='0..1, null while unknown (first of a size)')
  estimate_s: Optional[float]
  elapsed_s: float
  error: Optional[str] = None
  status: Optional[int] = None
  result: Optional[dict] = None


class Window(BaseModel):
  index: int
  bars: list[int] = Field(description='first and last bar of the file, from 1')
  seconds: float
  label: str


class UploadInfo(BaseModel):
  upload: str
  name: str
  bytes: int
  num_bars: int
  default: int
  windows: list[Window]
  summary: str


class Error(BaseModel):
  error: str


OPS = {'sample': (SampleRequest, Pieces, 'Pieces from z ~ N(0, I) (a baseline: its decoder).'),
       'interpolate': (InterpolateRequest, Interpolation,
                       'Decodes `steps` points of slerp(mu_a, mu_b) (endpoints included), all '
                       'with the same sampling noise.'),
       'point': (PointRequest, Point, 'Decodes one point of an interpolation\'s path.'),
       'reconstruct': (ReconstructRequest, Reconstruction,
                       'Encodes an input to mu and decodes it (greedy by default).'),
       'apply_attributes': (ApplyAttributesRequest, Changed,
                            'Encodes an input, adds the attribute vectors times their amounts '
                            'to mu and decodes.')}
ERRORS = {404: {'model': Error}, 413: {'model': Error}, 422: {'model': Error}}


def _error(message: str, status: int, **extra) -> JSONResponse:
  return JSONResponse({'error': message, **extra}, status_code=status)


def create_app(studio: engine.Studio, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS
               ) -> FastAPI:
  """The app. `allowed_hosts`: Host headers served (None: any). Loopback names only by default,
  so a web page elsewhere cannot reach the studio by DNS rebinding."""
  app = FastAPI(
      title='mvae_jax studio', version='1',
      description='Sample, interpolate and reconstruct with MusicVAE runs. Pieces are '
      'returned as tokens int [time][parts] (the model\'s classes) and notes in 16th-note '
      'steps. Every operation is also available as a background job with progress '
      '(POST /api/runs/{run}/jobs/{op}, then GET /api/jobs/{id}).',
      docs_url=None, redoc_url=None, openapi_url='/api/openapi.json')
  if allowed_hosts is not None:
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts) + ['testserver'])
  app.state.studio = studio

  @app.exception_handler(StudioError)
  async def studio_error(request: Request, e: StudioError):
    del request
    extra = {'upload': e.upload} if getattr(e, 'upload', None) else {}
    return _error(str(e), e.status, **extra)

  @app.exception_handler(RequestValidationError)
  async def validation_error(request: Request, e: RequestValidationError):
    del request
    lines = []
    for err in e.errors():
      where = '.'.join(str(x) for x in err.get('loc', ()) if x != 'body')
      lines.append(f'{where}: {err.get("msg", "invalid")}' if where else err.get('msg', ''))
    return _error('; '.join(lines) or 'invalid request', 422)

  # -- the page
  @app.get('/', include_in_schema=False)
  def index():
    return FileResponse(os.path.join(STATIC_DIR, 'index.html'))

  @app.get('/favicon.ico', include_in_schema=False)
  def favicon():
    return FileResponse(os.path.join(STATIC_DIR, 'favicon.svg'), media_type='image/svg+xml')

  @app.get('/api/docs', include_in_schema=False)
  def api_docs():
    return FileResponse(os.path.join(STATIC_DIR, 'api.html'))

  @app.get('/api', include_in_schema=False)
  def api_root():
    return RedirectResponse('/api/docs')

  app.mount('/static', StaticFiles(directory=STATIC_DIR), name='static')

  # -- runs
  @app.get('/api/info', tags=['runs'], summary='The runs of this studio and its limits')
  def info():
    return studio.info()

  @app.get('/api/runs/{run}', tags=['runs'], responses=ERRORS,
           summary='A run: parts, drum rows, pitch range, bars per piece')
  def run_info(run: str):
    return studio.run_info(run)

  @app.get('/api/status', tags=['jobs'], summary='Jobs queued or running')
  def status():
    return studio.status()

  # -- operations, each both waiting and as a background job
  def add_op(op: str, body_model: type, result_model: type, doc: str) -> None:
    path = 'attributes/apply' if op == 'apply_attributes' else op

    def wait(run: str, body):
      return JSONResponse(studio.call(op, run, **_args(body)))

    def background(run: str, body):
      job = studio.submit(op, run, **_args(body))
      return JSONResponse(studio.describe(job), status_code=202)

    # Annotations are strings here (postponed evaluation): give FastAPI the body's class.
    for fn in (wait, background):
      fn.__annotations__.update(run=str, body=body_model)

    app.add_api_route(f'/api/runs/{{run}}/{path}', wait, methods=['POST'], tags=['operations'],
                      summary=doc, response_model=None, name=op,
                      responses={200: {'model': result_model}, **ERRORS})
    app.add_api_route(f'/api/runs/{{run}}/jobs/{op}', background, methods=['POST'],
                      tags=['jobs'], summary=f'{op} in the background: returns a job to poll',
                      response_model=None, name=f'{op}_job', status_code=202,
                      responses={202: {'model': JobState}, **ERRORS})

  for op, (body_model, result_model, doc) in OPS.items():
    add_op(op, body_model, result_model, doc)

  @app.get('/api/jobs/{job}', tags=['jobs'], responses={200: {'model': JobState}, **ERRORS},
           summary="A job's state, stage and progress; its result once done", response_model=None)
  def job_state(job: str):
    return JSONResponse(studio.describe(studio.job(job)))

  # -- inputs
  @app.post('/api/runs/{run}/uploads', tags=['inputs'],
            responses={200: {'model': UploadInfo}, **ERRORS}, response_model=None,
            summary="Upload a MIDI file (the request body is the file's bytes); lists its "
                    'windows for the run',
            openapi_extra={'requestBody': {'required': True, 'content': {
                'application/octet-stream': {'schema': {'type': 'string', 'format': 'binary'}},
                'audio/midi': {'schema': {'type': 'string', 'format': 'binary'}}}}})
  async def upload(run: str, request: Request,
                   name: str = Query('upload.mid', max_length=255,
                                     description="the file's name (shown in messages)")):
    studio.run(run)
    limit = studio.uploads.max_bytes
    length = request.headers.get('content-length', '')
    if length.isdigit() and int(length) > limit:
      raise studio.uploads.too_big(int(length), name)
    data = bytearray()
    async for chunk in request.stream():
      data += chunk
      if len(data) > limit:
        raise studio.uploads.too_big(len(data), name)
    return JSONResponse(await run_in_threadpool(studio.add_upload, run, name, bytes(data)))

  @app.get('/api/runs/{run}/uploads/{upload}', tags=['inputs'], response_model=None,
           responses={200: {'model': UploadInfo}, **ERRORS},
           summary="An upload's windows for this run")
  def upload_info(run: str, upload: str):
    return JSONResponse(studio.upload_info(run, upload))

  @app.get('/api/runs/{run}/uploads/{upload}/windows/{window}', tags=['inputs'],
           response_model=None, responses={200: {'model': Piece}, **ERRORS},
           summary="One window of an upload (K or bar:N) as a piece")
  def upload_window(run: str, upload: str, window: str):
    return JSONResponse(studio.upload_window(run, upload, window))

  @app.get('/api/runs/{run}/eval', tags=['inputs'], summary='Held-out examples of the run',
           responses=ERRORS)
  def eval_info(run: str):
    return studio.eval_info(run)

  @app.get('/api/runs/{run}/eval/{index}', tags=['inputs'], response_model=None,
           responses={200: {'model': Piece}, **ERRORS}, summary='One held-out example')
  def eval_piece(run: str, index: int):
    return JSONResponse(studio.eval_piece(run, index))

  # -- outputs
  @app.post('/api/runs/{run}/midi', tags=['outputs'], response_class=Response,
            responses={200: {'content': {'audio/midi': {}}, 'description': 'a MIDI file'},
                       **ERRORS},
            summary='Pieces one after another as a standard MIDI file')
  def midi(run: str, body: MidiRequest):
    data = studio.midi(run, body.pieces, body.qpm)
    name = engine.safe_name(body.name)
    name = name if name.lower().endswith(('.mid', '.midi')) else name + '.mid'
    return Response(data, media_type='audio/midi',
                    headers={'Content-Disposition': f'attachment; filename="{name}"'})

  @app.get('/api/runs/{run}/attributes', tags=['attributes'], responses=ERRORS,
           summary="The run's attribute vectors ([] when it has none)")
  def attributes(run: str):
    return studio.attributes(run)

  return app


def _args(body: BaseModel) -> dict[str, Any]:
  """A request body as the engine's keyword arguments (inputs as plain dicts)."""
  return {k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in body}
