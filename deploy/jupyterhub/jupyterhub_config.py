"""JupyterHub for a class on one machine: the course's JupyterLab for each student.

Started by `make hub` (README, "Teaching a class"), which builds the hub's environment in
HUB_DIR and passes the settings below as environment variables:

  HUB_DIR        the hub's environment (venv/, node_modules/) and, in state/, its secrets
  HUB_IP         the address to listen on: 127.0.0.1 unless the teacher sets another
  HUB_PORT       the port students open (8000)
  HUB_AUTH       pam (one OS user per student, the default) or shared-password (a demo only:
                 it refuses to start as root or on an HUB_IP other than loopback)
  HUB_USERS      the students' user names, space-separated; HUB_ADMIN the teacher's
  HUB_CHAPTERS   the chapters handed out into each student's ~/mnist-course at each start of
                 the student's server (notebooks/), by mnist_course.handout's rules: a file
                 the student never changed is replaced by the new version, a changed one is
                 kept with the new version beside it as "NAME (new version).EXT", a deleted
                 one comes back, the student's other files are never touched
  MNIST_COURSE_DATA, MNIST_COURSE_DEVICE   passed on to every student's kernels
  HUB_PASSWORD, HUB_ADMIN_PASSWORD         the shared passwords (HUB_AUTH=shared-password)

and, for tests and scripts: HUB_STATE_DIR (HUB_DIR/state), HUB_API_PORT (8081) and
HUB_PROXY_API_PORT (8001), the internal ports on 127.0.0.1, HUB_SERVICE_TOKEN (an API token
allowed to manage users, servers and tokens) and HUB_HOMES (the homes under shared-password).
"""

import ipaddress
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

from mnist_course import handout

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

REPO = Path(__file__).resolve().parents[2]
COPY_NAME = "mnist-course"  # each student's copy of the chapters: ~/mnist-course


def setting(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def stop(message: str) -> None:
    sys.exit(f"\njupyterhub_config.py: {message}\n")


HUB_DIR = Path(setting("HUB_DIR", str(REPO / "build" / "hub"))).absolute()
VENV = HUB_DIR / "venv"
STATE = Path(setting("HUB_STATE_DIR", str(HUB_DIR / "state"))).absolute()
IP = setting("HUB_IP", "127.0.0.1")
PORT = int(setting("HUB_PORT", "8000"))
AUTH = setting("HUB_AUTH", "pam")
USERS = set(setting("HUB_USERS").split())
ADMIN = setting("HUB_ADMIN")
CHAPTERS = Path(setting("HUB_CHAPTERS", str(REPO / "notebooks"))).absolute()
DATA = setting("MNIST_COURSE_DATA")

if AUTH not in ("pam", "shared-password"):
    stop(f"HUB_AUTH={AUTH!r}: use pam (the default) or shared-password.")
if not (VENV / "bin" / "jupyterhub-singleuser").exists():
    stop(
        f"{VENV} has no jupyterhub-singleuser: build it with `make hub-install HUB_DIR={HUB_DIR}`."
    )
if not USERS and not ADMIN:
    stop("nobody could log in: set HUB_USERS='ann bob ...' (the students) and/or HUB_ADMIN.")
if not CHAPTERS.is_dir():
    stop(f"HUB_CHAPTERS={CHAPTERS} is not a folder (the chapters each student gets a copy of).")


def loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


# The shared-password demo runs every student's server and kernel as the hub's own OS user,
# behind one password, over plain HTTP: only for trusted people on this machine.
CLASS_FIX = (
    "For a class, run the default instead, HUB_AUTH=pam, as root: one OS user per student "
    '(README, "Teaching a class"), with TLS in front if students connect over the network.'
)
if AUTH == "shared-password" and os.geteuid() == 0:
    stop(
        "HUB_AUTH=shared-password refuses to run as root: every student's server and kernel "
        "runs as the hub's own OS user, so each student would get root on this machine.\n"
        "Start the demo as an ordinary user, in a checkout that user owns (e.g. `su - demo`, "
        "then `make hub HUB_AUTH=shared-password ...`).\n" + CLASS_FIX
    )
if AUTH == "shared-password" and not loopback(IP):
    stop(
        f"HUB_AUTH=shared-password refuses HUB_IP={IP}: anyone who can reach it and learns the "
        "one password would be every student (their kernels all run as one OS user), and the "
        "hub speaks plain HTTP.\nKeep the demo on this machine (HUB_IP=127.0.0.1, the default). "
        + CLASS_FIX
    )


# --- Paths every student's account must reach ------------------------------------------------


def blocked(path: Path) -> str | None:
    """Why other users cannot use `path` (None when they can): every folder on the way must be
    world-executable (r-x), the path itself world-readable, or world-r-x if a folder or program."""
    path = Path(path)
    if not path.exists():
        return f"{path} does not exist"
    for candidate in {path.absolute(), path.resolve()}:
        for folder in reversed(candidate.parents):
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                return f"{folder} (on the way to {path}) is mode {stat.filemode(mode)}"
        mode = candidate.stat().st_mode
        need = stat.S_IROTH
        if candidate.is_dir() or mode & stat.S_IXUSR:
            need |= stat.S_IXOTH
        if mode & need != need:
            return f"{candidate} is mode {stat.filemode(mode)}"
    return None


def check_reachable() -> None:
    """Stop, naming the path and the fix, if a student's server could not start or read MNIST."""
    env_fix = (
        "build the hub's environment where every user can enter, e.g. "
        "`make hub HUB_DIR=/srv/mnist-course-hub` (or put the course itself under /srv/...)"
    )
    data_fix = (
        "set MNIST_COURSE_DATA to a copy every user can read "
        "(e.g. /srv/mnist-data, holding MNIST/raw/)"
    )
    needed = [(VENV / "bin" / "python", env_fix), (VENV / "bin" / "jupyterhub-singleuser", env_fix)]
    if not blocked(needed[0][0]):  # the package the students' kernels import
        where = "import sysconfig; print(sysconfig.get_path('purelib'))"
        purelib = subprocess.run(
            [VENV / "bin" / "python", "-c", where], capture_output=True, text=True, check=True
        ).stdout.strip()
        needed.append((Path(purelib) / "mnist_course" / "__init__.py", env_fix))
    if DATA:
        raw = Path(DATA) / "MNIST" / "raw"
        if not raw.is_dir():
            stop(f"MNIST_COURSE_DATA={DATA} has no MNIST/raw/ folder (where the MNIST files go).")
        needed += [(path, data_fix) for path in [raw, *sorted(raw.glob("*"))]]
    for path, fix in needed:
        why = blocked(path)
        if why:
            stop(
                f"the students' accounts cannot reach {path}: {why}.\n"
                f"Other users need r-x on every folder up to it. Fix: {fix}; "
                f"or `chmod o+rx` the folder named, if that is acceptable."
            )


# --- Where the hub listens: this machine only, unless the teacher says otherwise ---------------

c.JupyterHub.bind_url = f"http://{IP}:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{int(setting('HUB_API_PORT', '8081'))}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(setting('HUB_PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.command = [
    str(HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy")
]
c.Spawner.ip = "127.0.0.1"

# Secrets and state in one private folder.
STATE.mkdir(parents=True, exist_ok=True)
STATE.chmod(0o700)
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops the students' servers
c.JupyterHub.cleanup_proxy = True

# --- Who logs in -------------------------------------------------------------------------------

c.Authenticator.allowed_users = USERS
c.Authenticator.admin_users = {ADMIN} if ADMIN else set()

if AUTH == "pam":
    # One OS user per student: each student's server and kernels run as that user, so students
    # cannot read each other's files. The hub creates missing users (no password: the teacher
    # sets one with `passwd NAME`); it never deletes them.
    c.JupyterHub.authenticator_class = "jupyterhub.auth.PAMAuthenticator"
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
    c.LocalAuthenticator.create_system_users = True
    c.LocalAuthenticator.add_user_cmd = ["adduser", "-q", "--gecos", "", "--disabled-password"]
    check_reachable()
else:
    # A demo only: anyone with the password logs in as any (non-admin) user, and every server
    # and kernel runs as the hub's own OS user (never root, on loopback only: checked above),
    # which can read all homes and the hub's secrets.
    c.JupyterHub.authenticator_class = (
        "jupyterhub.authenticators.shared.SharedPasswordAuthenticator"
    )
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SharedPasswordAuthenticator.user_password = setting("HUB_PASSWORD") or None
    c.SharedPasswordAuthenticator.admin_password = setting("HUB_ADMIN_PASSWORD") or None
    c.SimpleLocalProcessSpawner.home_dir_template = setting(
        "HUB_HOMES", str(HUB_DIR / "homes" / "{username}")
    )
    if not setting("HUB_PASSWORD"):
        stop(
            "HUB_AUTH=shared-password needs HUB_PASSWORD (8 characters or more) in the environment."
        )

token = setting("HUB_SERVICE_TOKEN")
if token:  # for tests and scripts: create users, their tokens and servers through the REST API
    c.JupyterHub.services = [{"name": "course-admin", "api_token": token}]
    c.JupyterHub.load_roles = [
        {
            "name": "course-admin",
            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
            "services": ["course-admin"],
        }
    ]

# --- Each student's server: the course's JupyterLab from the hub's venv ----------------------

c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120  # first starts on a small machine, many students at once
c.Spawner.http_timeout = 90
# GOMP_SPINCOUNT: idle PyTorch threads spin briefly, then sleep, so students' kernels
# sharing the cores do not slow each other down tens of times (mnist_course/__init__.py).
environment = {
    "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "GOMP_SPINCOUNT": "1000",
}
if DATA:  # MNIST from one shared, read-only folder (the package reads this variable)
    environment["MNIST_COURSE_DATA"] = str(Path(DATA).absolute())
else:
    print(
        "jupyterhub_config.py: MNIST_COURSE_DATA is not set: each student's first MNIST "
        "chapter downloads its own copy (needs internet).",
        file=sys.stderr,
    )
if setting("MNIST_COURSE_DEVICE"):
    environment["MNIST_COURSE_DEVICE"] = setting("MNIST_COURSE_DEVICE")
c.Spawner.environment = environment


def hand_out_chapters(spawner) -> None:
    """Before each start of a student's server: hand the chapters out into ~/mnist-course.

    `python -I -m mnist_course.handout` (from the hub's venv) runs as the student's own OS user
    under PAM (the hub runs as root and never writes into a student's home itself), reading
    the chapters as a tar archive on stdin: the files belong to the student, and the originals
    in HUB_CHAPTERS cannot change. A file the student changed is kept, the new version put
    beside it. If the handout fails, the server still starts when a copy exists (the log says
    why); at the first login it does not."""
    from jupyterhub.spawner import SimpleLocalProcessSpawner

    if isinstance(spawner, SimpleLocalProcessSpawner):  # everything runs as the hub's OS user
        home, account = Path(spawner.home_dir), None
        home.mkdir(parents=True, exist_ok=True)
    else:
        account = pwd.getpwnam(spawner.user.name)
        home = Path(account.pw_dir)
    target = home / COPY_NAME
    command = [str(VENV / "bin" / "python"), "-I", "-m", "mnist_course.handout", str(target),
               "--archive", "-"]  # fmt: skip
    as_user = {}
    if account is not None:
        as_user = dict(user=account.pw_uid, group=account.pw_gid, extra_groups=[], umask=0o077)
    done = subprocess.run(
        command, input=handout.pack(handout.read_folder(CHAPTERS)), cwd=home,
        capture_output=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        **as_user,
    )  # fmt: skip
    lines = done.stdout.decode(errors="replace").splitlines()
    for line in lines:
        (spawner.log.warning if line.startswith("not updated") else spawner.log.info)(
            "Chapters for %s: %s", spawner.user.name, line
        )
    if done.returncode != 0:
        why = f"handing the chapters out to {target} failed: {done.stderr.decode().strip()}"
        if not target.is_dir():
            raise RuntimeError(why)
        spawner.log.error("%s (the server starts with the copy as it is)", why)


c.Spawner.pre_spawn_hook = hand_out_chapters
