#!/usr/bin/env bash
# Installs the benchmark peers (FAISS and scikit-learn) from Debian packages.
# Only bench/ needs them; the library and its tests never do.
set -euo pipefail
if /usr/bin/python3 -c "import faiss, sklearn" 2>/dev/null; then
  echo "peers already installed"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-numpy python3-faiss python3-sklearn python3-threadpoolctl
/usr/bin/python3 -c "import faiss, sklearn; print('faiss', faiss.__version__, 'sklearn', sklearn.__version__)"
