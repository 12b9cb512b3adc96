"""One training process per run directory: an advisory lock file `<workdir>/train.lock`.

The lock is a `fcntl.flock` on the file, which the kernel releases when its process ends in any
way (`kill -9` included), so a killed run never leaves the directory stuck: the file may still
name a dead process, and the next run simply takes the lock over. A run that ends (cleanly or by
an error) removes the file. The file holds the owner's
pid, host and start time, which the refusal message shows.

Multi-host runs write one shared directory by design: each process locks its own file
(`train.lock` for process 0, `train.<i>.lock` for process i), so the processes of one run never
block each other while a second run's processes are all refused. Where the filesystem does not
support `flock` (some network filesystems), the pid written in the file is checked instead.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from typing import Iterator


class RunLockedError(RuntimeError):
  """Another live process trains in the same run directory."""


def lock_path(workdir: str, process_index: int = 0, process_count: int = 1) -> str:
  name = 'train.lock' if process_count == 1 or process_index == 0 else f'train.{process_index}.lock'
  return os.path.join(workdir, name)


def _read_owner(fd: int) -> dict[str, str]:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 4096).decode(errors='replace').split()
  return dict(zip(('pid', 'host', 'since'), text))


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _refuse(workdir: str, owner: dict[str, str]) -> RunLockedError:
  host = owner.get('host', '?')
  where = '' if host == socket.gethostname() else f' on {host}'
  since = ''
  if owner.get('since', '').isdigit():
    since = time.strftime(' since %Y-%m-%d %H:%M:%S', time.localtime(int(owner['since'])))
  return RunLockedError(
      f'{workdir} is in use by training process {owner.get("pid", "?")}{where}{since}; wait for '
      'it to finish or stop it, or use another --workdir')


def _same_file(fd: int, path: str) -> bool:
  """Whether `path` still names the file open as `fd` (a lock file removed or replaced by its
  previous owner must not be locked)."""
  try:
    st = os.stat(path)
  except FileNotFoundError:
    return False
  own = os.fstat(fd)
  return (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev)


@contextlib.contextmanager
def locked_file(path: str, on_busy=None) -> Iterator[int]:
  """Holds an exclusive `flock` on the file `path` (created) for the `with` block; yields its fd.

  When another process holds it, `on_busy(fd)` runs: it may raise (refuse) or return after
  waiting (default: a blocking wait). The file is removed when the block ends, while the lock is
  still held; a process that was waiting on the removed file notices (the path names another
  file or none) and locks the new one, so two processes never both hold the lock.
  """
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        if on_busy is not None:
          on_busy(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
      os.close(fd)
      raise
    if _same_file(fd, path):
      break
    os.close(fd)
  try:
    yield fd
  finally:
    try:
      if _same_file(fd, path):
        os.unlink(path)
    except OSError:
      pass
    os.close(fd)  # releases the flock


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0, process_count: int = 1) -> Iterator[str]:
  """Holds the run directory's lock (creating the directory) for the `with` block; the lock file
  is removed when the block ends.

  Raises RunLockedError at once, naming the owner, when another live process holds it.
  """
  os.makedirs(workdir, exist_ok=True)
  path = lock_path(workdir, process_index, process_count)

  def refuse(fd):
    raise _refuse(workdir, _read_owner(fd))

  try:
    lock = locked_file(path, on_busy=refuse)
    fd = lock.__enter__()
  except OSError as e:
    if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
      raise
    lock, fd = None, os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    owner = _read_owner(fd)  # no flock here: trust a live pid of this host
    if (owner.get('pid', '').isdigit() and owner.get('host') == socket.gethostname()
        and int(owner['pid']) != os.getpid() and _pid_alive(int(owner['pid']))):
      os.close(fd)
      raise _refuse(workdir, owner) from None
  try:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f'{os.getpid()} {socket.gethostname()} {int(time.time())}\n'.encode())
    os.fsync(fd)
    yield path
  finally:
    if lock is not None:
      lock.__exit__(None, None, None)
    else:
      os.close(fd)
      try:
        os.remove(path)
      except OSError:
        pass
