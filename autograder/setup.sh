#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image. Pick the image
# "Ubuntu 24.04" in the assignment's autograder settings: the project needs Python >= 3.11.
set -euo pipefail
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -c 'import sys; assert sys.version_info >= (3, 11), "needs Python >= 3.11: choose Ubuntu 24.04"'
python3 -m venv /autograder/venv
# CPU wheels: the autograder has no GPU, and the CUDA ones are 2 GB
/autograder/venv/bin/pip install --no-cache-dir torch torchvision \
    --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install --no-cache-dir /autograder/source/project
/autograder/venv/bin/python -c 'import miniplaces.grading.grade, nbformat, torch'   # fail the build, not a submission
