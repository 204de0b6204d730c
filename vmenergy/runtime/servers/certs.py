"""The self-signed certificate of a private server (clients use it as their CA file)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .info import CERT_FILE, KEY_FILE, ServerError


def make_certificate(run_dir: Path, domain: str) -> tuple[Path, Path]:
    """A self-signed certificate (P-256, 10 years) whose SAN covers ``domain``, "localhost" and
    127.0.0.1. Clients use the certificate itself as their CA file. Reused if already there and
    covering the domain, so a restart in the same run dir keeps clients' CA files valid."""
    cert, key = run_dir / CERT_FILE, run_dir / KEY_FILE
    stamp = run_dir / "server.crt.domain"
    if cert.exists() and key.exists() and stamp.exists() and stamp.read_text() == domain:
        return cert, key
    names = [domain] + (["localhost"] if domain != "localhost" else [])
    san = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "3650", "-subj", f"/O=VME private XMPP server/CN={domain}",
        "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert),
    ]
    old_umask = os.umask(0o077)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    finally:
        os.umask(old_umask)
    if res.returncode != 0:
        raise ServerError(f"openssl could not make the certificate: {res.stderr.strip()[-500:]}")
    cert.chmod(0o644)
    stamp.write_text(domain)
    return cert, key
