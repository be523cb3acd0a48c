# The two commands a fresh clone needs: `make serve` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the pair that installs from this machine's disk; override elsewhere, e.g.
# make TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := False
export AWS_EMF_ENVIRONMENT ?= local

.PHONY: install serve test lint typecheck browser-deps db-deps clean starter infra container-smoke container-smoke-slim \
	print-torch-spec

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The torch pair make test installs; the pipeline builds its image with the same (infra/stacks/pipeline.py).
print-torch-spec:
	@echo $(TORCH_SPEC)

serve: install
	$(BIN)/deepcanvas serve --host 127.0.0.1 --port 8000

# Chromium for the browser tests: Debian's package, installed when missing and we may (root with apt).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: browser tests will skip"; \
	fi

# PostgreSQL for the database tests (they start a throwaway cluster with initdb): Debian's package, installed
# when missing and we may (root with apt).
db-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "postgresql could not be installed: PostgreSQL tests will skip"; \
	fi

lint: install
	$(BIN)/ruff check app models bench infra tests deepcanvas
	$(BIN)/ruff format --check app models bench infra tests deepcanvas

typecheck: install
	$(BIN)/mypy

test: install browser-deps db-deps lint typecheck
	$(BIN)/python -m pytest

# Synthesize every CDK stack offline into infra/cdk.out and lint the templates. The service serves HTTPS only,
# so synthesis needs a certificate: by default a placeholder in AWS's documentation account (123456789012),
# which checks the templates but cannot deploy. For a deployment, name yours:
# make infra INFRA_CONTEXT="-c certificate_arn=arn:aws:acm:REGION:ACCOUNT:certificate/ID -c image_tag=COMMIT"
# The task definition names the image of IMAGE_TAG, by default this checkout's commit: the pipeline pushes one
# image per commit, tagged with its id (synthesis refuses to go without a tag; the registry holds no "latest").
PLACEHOLDER_CERTIFICATE_ARN := arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000
IMAGE_TAG ?= $(shell git rev-parse HEAD 2>/dev/null)
INFRA_CONTEXT ?= -c certificate_arn=$(PLACEHOLDER_CERTIFICATE_ARN) -c image_tag=$(IMAGE_TAG)
infra: install
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=1 $(BIN)/python -m infra.app --outdir infra/cdk.out $(INFRA_CONTEXT)
	$(BIN)/cfn-lint --non-zero-exit-code error infra/cdk.out/*.template.json

# The container smoke test: builds every image offline, starts docker-compose.yml, calls each endpoint,
# tears down. Needs root; installs and starts Docker on Debian when missing.
container-smoke: install
	docker/smoke.sh

# The slim image (OpenVINO, no torch): builds the slim target offline, runs it alone on the host network,
# calls each endpoint, checks that method=nst answers 422 and that RSS stays within SLIM_MAX_RSS_MB (800).
container-smoke-slim: install
	docker/smoke.sh --slim

starter: install
	$(BIN)/deepcanvas models starter models/store

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
