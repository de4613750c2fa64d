# voicebrush: `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Torch is pinned here (not in pyproject) so this machine takes its local CPU build
# instead of a multi-GB CUDA download; users keep the package's own range.
TORCH_PIN := torch==2.13.0
# Debian packages the tests drive for real: Krita under Xvfb, espeak-ng voices,
# ALSA's virtual microphone, PortAudio for sounddevice, ffmpeg for test clips,
# PulseAudio for Qt 6's audio input in the PyQt6 test, DejaVu for storyboard sheets.
APT_PACKAGES := krita xvfb xauth python3-pyqt5 python3-pyqt5.qtmultimedia python3-pytest \
	libqt5multimedia5-plugins espeak-ng alsa-utils libportaudio2 ffmpeg sox pulseaudio fonts-dejavu-core
# `make serve` runs the real models; `make serve PRESET=tiny` tries it offline.
PRESET ?= sd2

.PHONY: install install-test system-deps demo test serve plugins bench clean

# `make install`: the daemon and what the demo needs, nothing a user does not run.
# `make install-test`: that plus the test stack (`make test` runs it).
TEST_STAMP := $(VENV)/.installed-test-stamp
# openai-whisper's requirements without triton (CUDA-only kernels, about 1 GB, useless
# on a CPU; a CUDA build of torch brings its own). torch, numpy and tqdm come with ours.
OPENAI_WHISPER := openai-whisper>=20240930
OPENAI_WHISPER_DEPS := more-itertools numba tiktoken

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[tiny]' $(OPENAI_WHISPER_DEPS) $(TORCH_PIN)
	$(PY) -m pip install -q --no-deps '$(OPENAI_WHISPER)'
	@# Only for the CLIP BPE vocabulary file of the tiny preset: without its deps,
	@# which would pull torchvision and a second torch.
	$(PY) -m pip install -q --no-deps open_clip_torch
	@touch $(STAMP)

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[tiny,test]' $(OPENAI_WHISPER_DEPS) $(TORCH_PIN)
	@# PyQt6 (Krita 6's Qt) for the plugin's PyQt6 test, kept out of the venv: there
	@# the Krita tests' Debian PyQt5 must stay the only Qt the plugin finds.
	rm -rf .cache/pyqt6
	$(PY) -m pip install -q --target .cache/pyqt6 'PyQt6>=6.5'
	@touch $(TEST_STAMP)

# Installs missing Debian packages when run as root; otherwise says what is missing.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages (run as root or install them): $$missing" >&2; exit 1; \
		fi; \
	fi

demo: install
	$(PY) -m voicebrush_daemon.demo

test: install-test system-deps
	$(PY) -m pytest

serve: install
	$(VENV)/bin/voicebrush serve --preset $(PRESET)

plugins: install
	$(PY) plugins/krita/package.py
	$(PY) plugins/blender/package.py

bench: install
	$(VENV)/bin/voicebrush bench --preset tiny --json bench.json

clean:
	rm -rf dist build $(VENV) .pytest_cache
