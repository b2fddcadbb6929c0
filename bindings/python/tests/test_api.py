"""Backend-independent behaviour of the binding: loading, errors, arguments."""
from __future__ import annotations

import os
import re
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
        self.assertEqual(_native.lib._name, override)
        # And it really is that file in this process's map, not another copy.
        with open("/proc/self/maps") as maps:
            mapped = {line.split()[-1] for line in maps if "libdlock" in line}
        self.assertIn(os.path.realpath(override), {os.path.realpath(p) for p in mapped})

    def test_required_backends_are_tested(self):
        tested = {backend_of(url) for url in test_urls()}
        missing = required_backends() - tested
        self.assertFalse(missing, f"DLOCK_TEST_REQUIRE asks for {sorted(missing)} "
                                  f"but DLOCK_TEST_URLS has no URL for them")


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

    def test_status_codes_match_the_header(self):
        header = os.path.join(os.path.dirname(support.PACKAGE_PARENT), "..", "include", "dlock.h")
        if not os.path.exists(header):
            self.skipTest("no source tree header next to the binding")
        with open(header) as f:
            codes = dict(re.findall(r"\bDLOCK_(E[A-Z]+|OK)\s*=\s*(-?\d+)", f.read()))
        self.assertEqual(len(codes), 9)
        for name, value in codes.items():
            self.assertEqual(getattr(dlock, name), int(value), name)

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
            dlock.Client("redis://127.0.0.1/0")
        self.assertEqual(cm.exception.status, dlock.ENOTSUP)
        self.assertIn("redis", cm.exception.detail)

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
        self.assertNotIn(secret, str(err))
        self.assertNotIn(secret, repr(err))

    def test_unreachable_postgresql_names_no_password(self):
        # Port 1 on loopback: nothing listens there, the refusal is immediate.
        self._unreachable("postgresql://jobs:Pw-9f3k2@127.0.0.1:1/app?connect_timeout=3", "Pw-9f3k2")

    def test_unreachable_mysql_names_no_password(self):
        self._unreachable("mysql://jobs:Pw-7c1x8@127.0.0.1:1/app", "Pw-7c1x8")


if __name__ == "__main__":
    unittest.main()
