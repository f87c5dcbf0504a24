"""``trio-gateway bundle build|verify`` (argparse wiring; the work is in ``build.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .build import BuildError, build_bundle, verify_bundle

__all__ = ["add_bundle_parser", "run_bundle_command"]

EXIT_OK = 0
EXIT_ERRORS = 1


def add_bundle_parser(sub: Any) -> None:
    bundle = sub.add_parser("bundle", help="build or verify a Tyk plugin bundle")
    actions = bundle.add_subparsers(dest="bundle_command", required=True)
    build = actions.add_parser(
        "build", help="build bundle.zip from manifest.json (as `tyk bundle build`)"
    )
    build.add_argument("-m", "--manifest", type=Path, default=Path("manifest.json"))
    build.add_argument("-o", "--output", type=Path, default=Path("bundle.zip"))
    build.add_argument("-k", "--key", type=Path, help="RSA private key (PEM) to sign with")
    build.add_argument(
        "-y", "--skip-signing", action="store_true", help="build unsigned without asking"
    )
    verify = actions.add_parser("verify", help="check a bundle's checksum (and signature)")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--key", type=Path, help="RSA public key (PEM): the signature must verify")


def run_bundle_command(args: argparse.Namespace) -> int:
    try:
        if args.bundle_command == "build":
            if args.key is None and not args.skip_signing:
                # Tyk asks before building an unsigned bundle; an answer not starting with y stops.
                print("The bundle will be unsigned. Continue? (y/n) ", end="", flush=True)
                answer = sys.stdin.readline()
                if not answer.strip().lower().startswith("y"):
                    print("Aborting", file=sys.stderr)
                    return EXIT_ERRORS
            manifest = build_bundle(args.manifest, args.output, args.key)
            signed = "signed" if manifest.signed else "unsigned"
            print(f"wrote {args.output} ({signed}, checksum {manifest.checksum})")
            return EXIT_OK
        manifest = verify_bundle(args.bundle, args.key)
    except BuildError as exc:
        print(f"trio-gateway bundle: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    checked = "checksum and signature" if args.key else "checksum"
    print(f"ok: {args.bundle}: {checked} verified ({len(manifest.file_list)} file(s))")
    return EXIT_OK
