"""SQLite: the lock is a row of dlock_locks in the database file."""
import sqlite3
import urllib.parse

SCHEMES = ("sqlite",)


def fences(url: str) -> bool:
    return True


def take_away(url: str, name: str) -> None:
    """Delete its row."""
    path = urllib.parse.unquote(url[len("sqlite://"):] if url.startswith("sqlite://") else url[len("sqlite:"):])
    db = sqlite3.connect(path.split("?", 1)[0], timeout=10)
    try:
        deleted = db.execute("DELETE FROM dlock_locks WHERE name = ?", (name,)).rowcount
        db.commit()
    finally:
        db.close()
    assert deleted == 1, f"no row for {name}"


def refused_logins(url: str) -> list:
    """A file has no login."""
    return []
