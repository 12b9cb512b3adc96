"""One training process per run directory: an advisory lock file `<workdir>/train.lock`.

The lock is a `fcntl.flock` on the file, which the kernel releases when its process ends in any
way (`kill -9` included), so a killed run never leaves the directory stuck: the file may still
name a dead process, and the next run simply takes the lock over. The file holds the owner's
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


@contextlib.contextmanager
def hold(workdir: str, process_index: int = 0, process_count: int = 1) -> Iterator[str]:
  """Holds the run directory's lock (creating the directory) for the `with` block.

  Raises RunLockedError at once, naming the owner, when another live process holds it.
  """
  os.makedirs(workdir, exist_ok=True)
  path = lock_path(workdir, process_index, process_count)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise _refuse(workdir, _read_owner(fd)) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        raise
      owner = _read_owner(fd)  # no flock here: trust a live pid of this host
      if (owner.get('pid', '').isdigit() and owner.get('host') == socket.gethostname()
          and int(owner['pid']) != os.getpid() and _pid_alive(int(owner['pid']))):
        raise _refuse(workdir, owner) from None
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f'{os.getpid()} {socket.gethostname()} {int(time.time())}\n'.encode())
    os.fsync(fd)
    yield path
  finally:
    os.close(fd)  # releases the flock
