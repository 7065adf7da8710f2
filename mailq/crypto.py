"""Encryption of stored IMAP passwords (Fernet, key from ``MAILQ_SECRET_KEY`` or ``VAR_DIR/secret.key``).

Secrets are decrypted only inside the process that logs in, just before login;
they never travel through Redis, job arguments, logs or output.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from . import files
from .config import Settings
from .errors import SecretKeyError


def _fernet(key: str, source: str) -> Fernet:
    try:
        return Fernet(key.strip().encode())
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"{source}: not a valid key (expected 32 url-safe base64-encoded bytes; "
            "make one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
        ) from None


def key_source(settings: Settings) -> str:
    return "MAILQ_SECRET_KEY" if settings.secret_key else f"MAILQ_SECRET_KEY (key file {settings.secret_key_file})"


def load_key(settings: Settings) -> str:
    """The configured key; a clear error when there is none."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.secret_key_file
    if path.is_file():
        return path.read_text().strip()
    raise SecretKeyError(
        f"MAILQ_SECRET_KEY is not set and {path} does not exist: run `mailq db upgrade` to generate a key, or set MAILQ_SECRET_KEY"
    )


def ensure_key(settings: Settings) -> Path | None:
    """Generate ``secret.key`` (mode 0600) when no key is configured; returns its path if created."""
    if settings.secret_key or settings.secret_key_file.is_file():
        _fernet(load_key(settings), key_source(settings))  # validate early
        return None
    path = settings.secret_key_file
    files.private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(Fernet.generate_key().decode() + "\n")
    return path


def encrypt(settings: Settings, plaintext: str) -> str:
    return _fernet(load_key(settings), key_source(settings)).encrypt(plaintext.encode()).decode()


def decrypt(settings: Settings, token: str, what: str = "a stored secret") -> str:
    try:
        return _fernet(load_key(settings), key_source(settings)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            f"{what} cannot be decrypted with {key_source(settings)}: the key is not the one it was "
            "encrypted with; restore the right key or re-enter the password"
        ) from None


def reencrypt(token: str, old_key: str, new_key: str, what: str) -> str:
    try:
        plain = _fernet(old_key, "MAILQ_SECRET_KEY").decrypt(token.encode())
    except InvalidToken:
        raise SecretKeyError(f"{what} cannot be decrypted with the current MAILQ_SECRET_KEY: nothing was changed") from None
    return _fernet(new_key, "new key").encrypt(plain).decode()
