"""The PEP 517 build backend of the dlock package, in the tree.

The package is pure Python, so a wheel is a zip of dlock/ and its metadata.
Doing that here, with the standard library only, means that
``pip install ./bindings/python`` needs nothing from an index: with build
isolation pip would otherwise fetch setuptools (and wheel) first, which
fails on a machine without network access.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "dlock"


def _project() -> Dict[str, Any]:
    """The few [project] fields the metadata needs, read from pyproject.toml
    (tomllib is Python 3.11+; the package supports 3.8)."""
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]

    def field(key: str) -> str:
        m = re.search(rf'^{key}\s*=\s*"([^"]*)"', project, re.M)
        if not m:
            raise RuntimeError(f"pyproject.toml: [project] {key} is missing")
        return m.group(1)

    classifiers = re.findall(r'^\s*"([^"]+::[^"]+)",?$', project, re.M)
    return {"name": field("name"), "version": field("version"), "summary": field("description"),
            "requires_python": field("requires-python"), "classifiers": classifiers}


def _metadata() -> str:
    p = _project()
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}",
             f"Summary: {p['summary']}", "License: MIT", f"Requires-Python: {p['requires_python']}"]
    lines += [f"Classifier: {c}" for c in p["classifiers"]]
    lines += ["Description-Content-Type: text/markdown", "", readme]
    return "\n".join(lines)


def _package_files() -> List[str]:
    """dlock/*.py and py.typed, relative to this folder, sorted."""
    names = sorted(n for n in os.listdir(os.path.join(HERE, PACKAGE)) if n.endswith(".py") or n == "py.typed")
    return [f"{PACKAGE}/{n}" for n in names]


def _dist_info() -> str:
    p = _project()
    return f"{p['name']}-{p['version']}.dist-info"


def _wheel_name() -> str:
    p = _project()
    return f"{p['name']}-{p['version']}-py3-none-any.whl"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write_wheel(directory: str, files: List[Tuple[str, bytes]]) -> str:
    info = _dist_info()
    files = files + [
        (f"{info}/METADATA", _metadata().encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: dlock build_backend.py\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = [_record_line(path, data) for path, data in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    name = _wheel_name()
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files:
            entry = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return name


def _read(path: str) -> bytes:
    with open(os.path.join(HERE, path), "rb") as f:
        return f.read()


# --- PEP 517 -------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None,
                metadata_directory: Optional[str] = None) -> str:
    return _write_wheel(wheel_directory, [(path, _read(path)) for path in _package_files()])


def build_editable(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None,
                   metadata_directory: Optional[str] = None) -> str:
    """PEP 660: a wheel whose .pth file puts this folder on sys.path."""
    return _write_wheel(wheel_directory, [(f"_{PACKAGE}_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    p = _project()
    base = f"{p['name']}-{p['version']}"
    members = ["pyproject.toml", "README.md", "build_backend.py"] + _package_files()
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for path, data in [(m, _read(m)) for m in members] + [("PKG-INFO", _metadata().encode())]:
            entry = tarfile.TarInfo(f"{base}/{path}")
            entry.size = len(data)
            entry.mode = 0o644
            entry.mtime = int(time.time())
            tf.addfile(entry, io.BytesIO(data))
    return name
