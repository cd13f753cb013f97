"""Test-only helpers for delivery tests: a self-signed certificate for TLS on loopback.

The HTTP and SMTP receivers themselves are ``intelmq_nsm.testbed.http_receiver`` and
``intelmq_nsm.testbed.smtp_sink`` (the benchmarks use them too).
"""


def self_signed_certificate(directory) -> tuple:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    import subprocess
    from pathlib import Path

    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
