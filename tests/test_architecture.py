"""The layout the code promises (docs/ARCHITECTURE.md), checked on the source itself.

- no import circle among the project's modules (imports inside functions count too);
- the data side (`data_pipelines`) never imports the model side (`mvae_jax`);
- importing a library module defines no command-line flag (only a command's `define_flags` does);
- each shared concept is defined in exactly one module.
"""
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ('mvae_jax', 'data_pipelines')


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob('*.py')):
      parts = path.relative_to(ROOT).with_suffix('').parts
      name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
      out[name] = path
  return out


def _imports(path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
  """The project modules a file imports, anywhere in it."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      # `from pkg import sub` imports the module pkg.sub; `from pkg import name`, pkg itself.
      names = [f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in modules
               else node.module for a in node.names]
    for name in names:
      while name and name not in modules:
        name = name.rpartition('.')[0]
      if name and name not in PACKAGES:
        found.add(name)
  return found


def _graph():
  modules = _modules()
  return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_import_circle():
  graph = _graph()
  state, stack = {}, []

  def visit(node):
    state[node] = 'open'
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 'open':
        raise AssertionError('import circle: ' + ' -> '.join(stack[stack.index(nxt):] + [nxt]))
      if nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = 'done'

  for node in sorted(graph):
    if node not in state:
      visit(node)


def test_data_side_does_not_import_the_model_side():
  up = {m: sorted(i for i in deps if i.startswith('mvae_jax'))
        for m, deps in _graph().items() if m.startswith('data_pipelines')}
  assert not {m: d for m, d in up.items() if d}


def test_importing_the_library_defines_no_flags():
  modules = [m for m in _modules() if not m.endswith('__main__')]
  code = ('import importlib, sys\nfrom absl import flags\n'
          f'for m in {modules!r}:\n  importlib.import_module(m)\n'
          'print(sorted(m for m in flags.FLAGS.flags_by_module_dict() '
          f'if m.startswith({PACKAGES!r})))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == '[]', out.stdout


def _definitions() -> dict[str, set[str]]:
  """{top-level name: modules that define it (def, class or assignment)}."""
  out: dict[str, set[str]] = {}
  for name, path in _modules().items():
    for node in ast.parse(path.read_text()).body:
      targets = []
      if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        targets = [node.name]
      elif isinstance(node, ast.Assign):
        targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
      elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        targets = [node.target.id]
      for t in targets:
        out.setdefault(t, set()).add(name)
  return out


def test_each_concept_has_one_home():
  defined = _definitions()
  concepts = {
      # the data contract
      'KINDS': 'data_pipelines.kinds', 'MODES': 'data_pipelines.kinds',
      'SOURCES': 'data_pipelines.kinds', 'FOLK_KINDS': 'data_pipelines.kinds',
      'NO_EVENT': 'data_pipelines.kinds', 'NOTE_OFF': 'data_pipelines.kinds',
      'NUM_SPECIAL': 'data_pipelines.kinds', 'DRUM_VOCAB': 'data_pipelines.kinds',
      'DRUM_NAMES': 'data_pipelines.kinds', 'time_steps': 'data_pipelines.kinds',
      'part_vocab': 'data_pipelines.kinds',
      # a run directory and its loading
      'TrainState': 'mvae_jax.run', 'load_config': 'mvae_jax.run', 'load': 'mvae_jax.run',
      'create_model': 'mvae_jax.run', 'write_config': 'mvae_jax.run',
      'init_params_from': 'mvae_jax.run',
      # the one evaluation step and its metrics
      'eval_sums': 'mvae_jax.evaluation', 'evaluate': 'mvae_jax.evaluation',
      # the Python API, input windows, configs, the optimizer, console
      'Model': 'mvae_jax.trained_model', 'InputWindows': 'data_pipelines.inputs',
      'InputError': 'data_pipelines.inputs', 'from_file': 'mvae_jax.config_lib',
      'apply_overrides': 'mvae_jax.config_lib', 'parse_value': 'mvae_jax.config_lib',
      'make_optimizer': 'mvae_jax.optimizer', 'setup': 'data_pipelines.console',
      'failure_message': 'mvae_jax.cli',
  }
  wrong = {name: sorted(defined.get(name, ())) for name, home in concepts.items()
           if defined.get(name) != {home}}
  assert not wrong, wrong
