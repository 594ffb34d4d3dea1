#!/usr/bin/env bash
# quickstart.sh: set up this machine, build safecl, and run the main job on the built-in
# synthetic dataset (no downloads needed). Safe to run again: setup and build are incremental.
#
# The main job today extracts ViT features of the synthetic benchmark (configs/features/
# quickstart.cfg) into run/quickstart/features.h5; it becomes a sweep when the orchestrator lands.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$SAFECL_ROOT"
safecl_install_packages
safecl_build
source "$SAFECL_ROOT/jobs/env.sh"
mkdir -p run/quickstart
"$SAFECL_BUILD_DIR/safecl" features configs/features/quickstart.cfg out=run/quickstart/features.h5
echo "quickstart: features written to run/quickstart/features.h5"
h5ls -r run/quickstart/features.h5 2>/dev/null || true
