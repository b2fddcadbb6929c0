"""Backend-independent behaviour of the binding: loading, errors, arguments."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import unittest

import support  # noqa: F401  (puts the package on sys.path)
from support import backend_of, required_backends, test_urls

import dlock
from dlock import _native


class LoadingTest(unittest.TestCase):
    def test_version_of_the_loaded_library(self):
        self.assertRegex(dlock.version(), r"^\d+\.\d+\.\d+$")
        self.assertEqual(dlock.version(), dlock.__version__)

    def test_library_override_is_the_one_loaded(self):
        override = os.environ.get("DLOCK_LIBRARY")
        if not override:
            self.skipTest("DLOCK_LIBRARY is not set")
        self.assertEqual(_native.get()._name, override)
        # And it really is that file in this process's map, not another copy.
        with open("/proc/self/maps") as maps:
            mapped = {line.split()[-1] for line in maps if "libdlock" in line}
        self.assertIn(os.path.realpath(override), {os.path.realpath(p) for p in mapped})

    def test_required_backends_are_tested(self):
        tested = {backend_of(url) for url in test_urls()}
        missing = required_backends() - tested
        self.assertFalse(missing, f"DLOCK_TEST_REQUIRE asks for {sorted(missing)} "
                                  f"but DLOCK_TEST_URLS has no URL for them")


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    """Run a small program with the package from this tree, in a process of
    its own; an env value of None removes that variable."""
    full_env = dict(os.environ, PYTHONPATH=support.PACKAGE_PARENT, **env)
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=60)


class WithoutTheLibraryTest(unittest.TestCase):
    """import dlock works without libdlock; the first Client() explains."""

    CODE = """
import dlock
print("version", dlock.__version__)
print("strerror", dlock.strerror(dlock.ELOST))
try:
    dlock.Client(42)
except TypeError:
    print("typeerror")
try:
    dlock.Client("sqlite:///tmp/never-created.db")
except dlock.LibraryNotFound as exc:
    print("notfound", isinstance(exc, ImportError), exc)
"""

    def test_import_works_and_client_explains(self):
        result = run_python(self.CODE, {"DLOCK_LIBRARY": "/nonexistent/libdlock.so.0"})
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^version \d+\.\d+\.\d+")
        self.assertEqual(lines[1], "strerror status -2")  # the texts live in the library
        self.assertEqual(lines[2], "typeerror")
        self.assertTrue(lines[3].startswith("notfound True "), lines[3])
        self.assertIn("/nonexistent/libdlock.so.0", lines[3])
        self.assertIn("DLOCK_LIBRARY", lines[3])  # the hint

    def test_version_comes_from_the_package_metadata(self):
        pyproject = os.path.join(support.PACKAGE_PARENT, "pyproject.toml")
        with open(pyproject) as f:
            declared = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.MULTILINE)
        assert declared is not None
        self.assertEqual(dlock.__version__, declared.group(1))


class DefaultUrlTest(unittest.TestCase):
    """Client.from_env() picks the store that dlock(1) picks."""

    CODE = "import dlock; print(dlock.default_url())"

    def test_dlock_url_wins(self):
        result = run_python(self.CODE, {"DLOCK_URL": "postgresql://jobs@db/app"})
        self.assertEqual(result.stdout.strip(), "postgresql://jobs@db/app")

    def test_root_uses_var_lib(self):
        if os.geteuid() != 0:
            self.skipTest("not root")
        result = run_python(self.CODE, {"DLOCK_URL": "", "HOME": "/root"})
        self.assertEqual(result.stdout.strip(), "sqlite:///var/lib/dlock/dlock.db")

    def _as_user(self, env: dict) -> str:
        # The user's branch, also when the tests run as root: the program
        # sees a non-zero effective uid (switching to a real user would need
        # this tree to be readable by it).
        code = "import os; os.geteuid = lambda: 1000; " + self.CODE
        result = run_python(code, dict(env, DLOCK_URL=None))
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.strip()

    def test_a_user_uses_xdg_state_home_else_home(self):
        self.assertEqual(self._as_user({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/u"}),
                         "sqlite:///srv/state/dlock/dlock.db")
        self.assertEqual(self._as_user({"XDG_STATE_HOME": "relative", "HOME": "/home/u"}),
                         "sqlite:///home/u/.local/state/dlock/dlock.db")
        self.assertEqual(self._as_user({"XDG_STATE_HOME": None, "HOME": "/home/a%b?c#d"}),
                         "sqlite:///home/a%25b%3Fc%23d/.local/state/dlock/dlock.db")

    def test_from_env_opens_dlock_url(self):
        url = "sqlite://" + os.path.join(support.scratch_dir(), "from-env.db")
        name = support.unique_name("fromenv")
        saved = os.environ.get("DLOCK_URL")
        os.environ["DLOCK_URL"] = url
        try:
            with dlock.Client.from_env() as client, client.lock(name, ttl=30):
                with dlock.Client(url) as other:
                    self.assertIsNotNone(other.holder(name))
        finally:
            if saved is None:
                del os.environ["DLOCK_URL"]
            else:
                os.environ["DLOCK_URL"] = saved


class ErrorMappingTest(unittest.TestCase):
    CASES = {
        dlock.EBUSY: dlock.LockBusy,
        dlock.ELOST: dlock.LockLost,
        dlock.EINVAL: dlock.InvalidArgument,
        dlock.ECONN: dlock.StoreUnreachable,
        dlock.EBACKEND: dlock.BackendError,
        dlock.ENOMEM: dlock.OutOfMemory,
        dlock.ENOTSUP: dlock.NotSupported,
        dlock.ECANCELED: dlock.Canceled,
    }

    def test_status_codes_match_the_library(self):
        # One list (DLOCK_STATUS_MAP in dlock.h) names every code; the
        # binding's constants must be those codes, and none may be missing.
        names = {"OK", "EBUSY", "ELOST", "EINVAL", "ECONN", "EBACKEND", "ENOMEM", "ENOTSUP", "ECANCELED"}
        for name in names:
            self.assertEqual(dlock.status_name(getattr(dlock, name)), "DLOCK_" + name)
        known = {dlock.status_name(code) for code in range(-64, 1)} - {""}
        self.assertEqual(known, {"DLOCK_" + name for name in names})
        self.assertEqual(dlock.status_name(-99), "")

    def test_each_status_has_its_class(self):
        for status, cls in self.CASES.items():
            err = dlock.error_for(status, "detail text", "dlock_x")
            self.assertIs(type(err), cls)
            self.assertIsInstance(err, dlock.DlockError)
            self.assertEqual(err.status, status)
            self.assertEqual(err.detail, "detail text")
            self.assertIn(dlock.strerror(status), str(err))
            self.assertIn("detail text", str(err))

    def test_builtin_bases(self):
        self.assertTrue(issubclass(dlock.InvalidArgument, ValueError))
        self.assertTrue(issubclass(dlock.OutOfMemory, MemoryError))
        # Not the built-in ConnectionError (an OSError with errno semantics).
        self.assertFalse(issubclass(dlock.StoreUnreachable, OSError))

    def test_unknown_status_is_a_plain_dlockerror(self):
        err = dlock.error_for(-99)
        self.assertIs(type(err), dlock.DlockError)
        self.assertEqual(err.status, -99)
        self.assertEqual(dlock.strerror(-99), "unknown status code")

    def test_strerror_texts(self):
        texts = {dlock.strerror(s) for s in self.CASES}
        self.assertEqual(len(texts), len(self.CASES))  # distinct, none empty
        self.assertNotIn("", texts)


class OpenTest(unittest.TestCase):
    def test_malformed_urls(self):
        for url in ["", "no-scheme-here", "://nohost/x"]:
            with self.subTest(url=url):
                with self.assertRaises(dlock.InvalidArgument) as cm:
                    dlock.Client(url)
                self.assertEqual(cm.exception.status, dlock.EINVAL)
                self.assertTrue(cm.exception.detail)

    def test_scheme_not_built_in(self):
        with self.assertRaises(dlock.NotSupported) as cm:
            dlock.Client("consul://127.0.0.1/0")
        self.assertEqual(cm.exception.status, dlock.ENOTSUP)
        self.assertIn("consul", cm.exception.detail)

    def test_url_with_nul_or_bad_type(self):
        with self.assertRaises(dlock.InvalidArgument):
            dlock.Client("sqlite:///tmp/x\0.db")
        with self.assertRaises(TypeError):
            dlock.Client(42)  # type: ignore[arg-type]

    def _unreachable(self, url: str, secret: str) -> None:
        try:
            client = dlock.Client(url)
        except dlock.NotSupported:
            self.skipTest(f"{url.split(':')[0]} is not built into this libdlock")
        except dlock.StoreUnreachable as exc:
            err = exc
        else:
            # A backend may connect on first use: the error comes then.
            with client, self.assertRaises(dlock.StoreUnreachable) as cm:
                client.lock(support.unique_name("unreachable"), ttl=5)
            err = cm.exception
        self.assertEqual(err.status, dlock.ECONN)
        self.assertNotIsInstance(err, dlock.LoginRefused)  # a down server may come back: retry
        self.assertNotIn(secret, str(err))
        self.assertNotIn(secret, repr(err))

    def test_refused_login_texts(self):
        # What the backends pass on from the servers (docs: LoginRefused).
        refused = [
            'postgresql: cannot connect: connection to server at "h", port 5432 failed: FATAL:  password '
            'authentication failed for user "jobs"',
            'postgresql: cannot connect: connection to server at "h", port 5432 failed: FATAL:  database "app" '
            'does not exist',
            "mysql: cannot connect to h:3306: Access denied for user 'jobs'@'10.0.0.2' (using password: YES)",
            "mysql: cannot connect to h:3306: Unknown database 'app'",
            "redis: authentication refused by h:6379: WRONGPASS invalid username-password pair",
        ]
        for detail in refused:
            with self.subTest(detail=detail):
                err = dlock.error_for(dlock.ECONN, detail, "dlock_open")
                self.assertIsInstance(err, dlock.LoginRefused)
                self.assertIsInstance(err, dlock.StoreUnreachable)
        down = [
            'postgresql: cannot connect: connection to server at "h", port 1 failed: Connection refused',
            "mysql: cannot connect to h:1: Can't connect to server on 'h' (115)",
            "redis: cannot connect to h:1: Connection refused",
            "postgresql: cannot connect: FATAL:  the database system is starting up",
        ]
        for detail in down:
            with self.subTest(detail=detail):
                err = dlock.error_for(dlock.ECONN, detail, "dlock_open")
                self.assertIs(type(err), dlock.StoreUnreachable)
        # Only a connection failure is a refused login.
        self.assertIs(type(dlock.error_for(dlock.EBACKEND, "Access denied for user 'x'")), dlock.BackendError)

    def test_scheme_typo_is_invalid_with_a_suggestion(self):
        with self.assertRaises(dlock.InvalidArgument) as cm:
            dlock.Client("sqlitee:///tmp/x.db")
        self.assertIn("did you mean 'sqlite'?", cm.exception.detail)

    def test_package_builds_without_an_index(self):
        # pyproject.toml's backend is build_backend.py, standard library only:
        # `pip install ./bindings/python` needs no download (build isolation).
        import importlib.util
        import tempfile
        import zipfile
        source = os.path.join(support.PACKAGE_PARENT, "build_backend.py")
        spec = importlib.util.spec_from_file_location("dlock_build_backend", source)
        backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(backend)
        self.assertEqual(backend.get_requires_for_build_wheel(), [])
        with open(os.path.join(support.PACKAGE_PARENT, "pyproject.toml"), encoding="utf-8") as f:
            self.assertIn("requires = []", f.read())
        with tempfile.TemporaryDirectory() as out:
            wheel = backend.build_wheel(out)
            self.assertEqual(wheel, f"dlock-{dlock.__version__}-py3-none-any.whl")
            with zipfile.ZipFile(os.path.join(out, wheel)) as zf:
                names = set(zf.namelist())
                self.assertLessEqual({"dlock/__init__.py", "dlock/client.py", "dlock/errors.py", "dlock/py.typed",
                                      f"dlock-{dlock.__version__}.dist-info/RECORD"}, names)
                meta = zf.read(f"dlock-{dlock.__version__}.dist-info/METADATA").decode()
                self.assertIn(f"Version: {dlock.__version__}\n", meta)
            sdist = backend.build_sdist(out)
            self.assertTrue(os.path.exists(os.path.join(out, sdist)))

    def test_unreachable_postgresql_names_no_password(self):
        # Port 1 on loopback: nothing listens there, the refusal is immediate.
        self._unreachable("postgresql://jobs:Pw-9f3k2@127.0.0.1:1/app?connect_timeout=3", "Pw-9f3k2")

    def test_unreachable_mysql_names_no_password(self):
        self._unreachable("mysql://jobs:Pw-7c1x8@127.0.0.1:1/app", "Pw-7c1x8")


if __name__ == "__main__":
    unittest.main()
