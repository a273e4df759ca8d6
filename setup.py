"""Packaging for target-stitch-import (the design packages with setup.py)."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
ABOUT: dict[str, str] = {}
exec((HERE / "target_stitch_import" / "__version__.py").read_text(), ABOUT)  # noqa: S102

setup(
    name="target-stitch-import",
    version=ABOUT["__version__"],
    description=(
        "Singer target (Meltano Singer SDK) that loads any tap into Stitch through the "
        "Import API, with bookmark-derived sequences and an embedded Import API emulator."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["target_stitch_import", "target_stitch_import.*"]),
    include_package_data=True,
    package_data={"target_stitch_import": ["demo/*.singer"]},
    install_requires=[
        "singer-sdk[msgspec]>=0.54.9,<0.55",
        "requests>=2.31,<3",
        # singer-sdk already requires python-backoff, which provides `import backoff`;
        # never list the `backoff` distribution as well (two distributions, one module).
        "python-backoff>=2.2.2,<4",
        "msgspec>=0.19,<1",
        "jsonschema>=4.18,<5",
        # JSON Schema patterns searched without catastrophic backtracking, with a timeout and
        # without holding the GIL (re needs minutes for ^(a|aa)+$ against 40 characters): the
        # emulator's bounded cost per request, and the target's local record validation.
        "regex>=2024.4.16,<2028",
        "typing-extensions>=4.5; python_version < '3.12'",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "hypothesis>=6,<7",
            "singer-sdk[testing,msgspec]>=0.54.9,<0.55",
        ],
    },
    entry_points={
        "console_scripts": [
            "target-stitch-import=target_stitch_import.cli:main",
            "stitch-import-emulator=target_stitch_import.emulator.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Database",
    ],
)
