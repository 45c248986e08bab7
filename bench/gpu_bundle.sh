#!/usr/bin/env bash
# The Python packages bench/gpu_frontier.py needs on a lent H200 that its image lacks (or has in another
# version), as one xz archive of an unpacked site-packages folder: .gpu/site312.tar.xz (~49 MiB, under the
# device tool's 64 MiB per call; the wheels themselves are 79 MB). Run it here, where pip reaches PyPI.
# Versions as in this project's CPU venv where both exist (the combination the tests ran).
# The image has Python 3.12, torch 2.11 (CUDA 13), triton, numpy, pyarrow, pyyaml, rich, pillow, scipy,
# einops, accelerate, safetensors; it has transformers 5.x (ltx-core 1.0.0 needs 4.x: its Gemma loader breaks
# on 5.x), tokenizers 0.23.2 (transformers 4.57.6 takes <=0.23.0) and huggingface-hub 1.x (4.57 takes <1.0).
# imageio-ffmpeg 0.4.9 bundles a static ffmpeg 4.2.2 in 27 MB (0.8.x: 68 MB). antlr4 4.9.3 is an sdist
# only: built into a wheel here. Takes ~6 minutes on 2 busy cores (xz -9).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
WHL=$(mktemp -d) SITE=$(mktemp -d)
trap 'rm -rf "$WHL" "$SITE"' EXIT
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$WHL" \
  ltx-core==1.0.0 ltx-pipelines==1.0.0 transformers==4.57.6 huggingface-hub==0.36.2 tokenizers==0.22.2 \
  torchao==0.18.0 hydra-core==1.3.2 omegaconf==2.3.0 ffmpeg-python==0.2.0 future==1.0.0 \
  imageio-ffmpeg==0.4.9 av==18.1.0
"$PY" -m pip wheel -q --no-deps -w "$WHL" antlr4-python3-runtime==4.9.3
# unzip keeps the files' modes (imageio-ffmpeg's ffmpeg must stay executable); Python's zipfile drops them
for wheel in "$WHL"/*.whl; do unzip -q -o "$wheel" -d "$SITE"; done
mkdir -p .gpu
tar cf - -C "$SITE" . | xz -9 -T"${XZ_THREADS:-0}" > .gpu/site312.tar.xz
ls -la .gpu/site312.tar.xz
