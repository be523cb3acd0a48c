# The DeepCanvas inference service.
#
#   docker build -t deepcanvas .                    # CPU-only torch from download.pytorch.org
#   docker run --rm -p 8000:8000 deepcanvas         # serves the store baked into the image
#   docker run --rm -p 8000:8000 -e DEEPCANVAS_STORE=s3://bucket/models deepcanvas
#   docker build --target slim -t deepcanvas:slim .  # OpenVINO / ONNX Runtime, no torch; the store in ONNX
#
# Build arguments:
#   BASE_IMAGE       a Debian bookworm image with Python 3.11 (docker/base-image.sh makes one without a registry)
#   TORCH_INDEX_URL  where torch and torchvision come from when building online
#   TORCH_SPEC       which torch and torchvision to install (default: the pair the Makefile's tests run on)
#   WHEELS           a wheel folder in the build context (e.g. docker/wheels): install offline from it alone
#   EXTRAS           the project's optional dependency groups to install, comma-separated
#                    (default: serve,torch,openvino: every network on OpenVINO, NST on torch)
#   STORE_DIR        the store folder baked into the image (default: models/store, the repository's store of
#                    trained and imported models and their stable aliases)
#
# The slim target needs the export, onnx and openvino extras too (onnx, onnxscript, onnxruntime, openvino):
# a WHEELS folder must hold them (pip download '.[serve,torch,export,onnx,openvino]'). The classic builder
# (DOCKER_BUILDKIT=0) builds every stage before its target, so there a default build runs the slim stages as
# well; BuildKit skips them.
#
# Layers go from the least to the most often changed: dependencies (gigabytes; rebuilt only when
# pyproject.toml or the wheels change), the store, then the project's own code (a few hundred kilobytes).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS dependencies
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
ARG WHEELS=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# docker/wheels holds only a .gitignore unless docker/smoke.sh (or you) filled it: copying it is cheap then.
COPY ${WHEELS:-docker/wheels}/ /tmp/wheels/
RUN if [ -n "$WHEELS" ]; then set -- --no-index --find-links /tmp/wheels; \
    else set -- --index-url "$TORCH_INDEX_URL"; fi \
    && pip install "$@" $TORCH_SPEC
COPY pyproject.toml /tmp/pyproject.toml
# The project's dependencies alone (its code comes later): pyproject.toml's, plus those of EXTRAS.
# ultralytics asks for opencv-python, whose GUI build needs libGL and X libraries: the headless build is
# the same cv2 without them. triton (pulled in by CUDA builds of torch) serves only torch.compile.
ARG EXTRAS=serve,torch,openvino
RUN python -c 'import os, tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
extras = [e for e in os.environ["EXTRAS"].split(",") if e]; \
print("\n".join(p["dependencies"] + [r for e in extras for r in p["optional-dependencies"][e]]))' \
        >/tmp/requirements.txt \
    && if [ -n "$WHEELS" ]; then set -- --no-index --find-links /tmp/wheels; else set --; fi \
    && pip install "$@" --requirement /tmp/requirements.txt \
    && if pip show --quiet opencv-python 2>/dev/null; then \
        pip uninstall --yes opencv-python && pip install "$@" --no-deps opencv-python-headless; fi \
    && pip uninstall --yes triton

# The project, installed into a tree that mirrors the venv's paths, so the final stage lays it over the venv.
FROM dependencies AS project
ARG WHEELS=
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY deepcanvas ./deepcanvas
COPY models ./models
RUN if [ -n "$WHEELS" ]; then set -- --no-index --find-links /tmp/wheels; else set --; fi \
    && pip install "$@" --no-deps --target /tmp/project . \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && mkdir -p "/opt/overlay$site" /opt/overlay/opt/venv/bin \
    && mv /tmp/project/bin/* /opt/overlay/opt/venv/bin/ && rmdir /tmp/project/bin \
    && rm -rf /tmp/project/models/store \
    && mv /tmp/project/* "/opt/overlay$site/"

# The baked store, world-readable whatever modes its files had in the build context.
FROM ${BASE_IMAGE} AS store
ARG STORE_DIR=models/store
COPY ${STORE_DIR}/ /opt/deepcanvas/store/
RUN chmod -R a+rX,go-w /opt/deepcanvas/store

# What both images share: the user, the environment, the health check and the command.
# The venv and the store stay root-owned and read-only; the service writes only below its home:
# the verified artifact cache, and the config folders ultralytics and matplotlib insist on.
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="DeepCanvas" \
      org.opencontainers.image.description="Face detection, face classification and style transfer over HTTP"
RUN groupadd --system --gid 10001 deepcanvas \
    && useradd --system --uid 10001 --gid deepcanvas --create-home --home-dir /home/deepcanvas \
        --shell /usr/sbin/nologin deepcanvas
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/deepcanvas \
    DEEPCANVAS_STORE=file:///opt/deepcanvas/store \
    DEEPCANVAS_CACHE_DIR=/home/deepcanvas/cache \
    YOLO_CONFIG_DIR=/home/deepcanvas/.config \
    MPLCONFIGDIR=/home/deepcanvas/.config/matplotlib \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=False
USER 10001:10001
WORKDIR /home/deepcanvas
RUN mkdir -p "$DEEPCANVAS_CACHE_DIR" "$MPLCONFIGDIR"
EXPOSE 8000
# Ready, not merely alive: 503 until every model is loaded, so orchestrators route traffic only then.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["deepcanvas", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- slim: docker build --target slim -------------------------------------------------------------------
# Every network of the baked store as ONNX files: the embedded store ships them; an artifact of another
# STORE_DIR that has none is exported here, on the torch image (the style gallery holds no network).
FROM dependencies AS export
ARG WHEELS=
# The export extra's own packages; its deepcanvas[torch] is the dependencies stage already.
RUN python -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
print("\n".join(r for r in p["optional-dependencies"]["export"] if not r.startswith("deepcanvas")))' \
        >/tmp/export-requirements.txt \
    && if [ -n "$WHEELS" ]; then set -- --no-index --find-links /tmp/wheels; else set --; fi \
    && pip install "$@" --requirement /tmp/export-requirements.txt
COPY --from=store /opt/deepcanvas/store /opt/deepcanvas/store
COPY --from=project /opt/overlay/ /
ENV YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=False \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    MPLCONFIGDIR=/tmp/matplotlib
RUN set -e; for manifest in /opt/deepcanvas/store/*/*/manifest.json; do \
        task="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["task"])' "$manifest")"; \
        onnx="$(python -c 'import json, sys; print(any(f["path"].endswith(".onnx") for f in json.load(open(sys.argv[1]))["files"]))' "$manifest")"; \
        [ "$task" = style-gallery ] || [ "$onnx" = True ] || deepcanvas models export "${manifest%/manifest.json}"; \
    done; \
    chmod -R a+rX,go-w /opt/deepcanvas/store

# The wheels of the slim venv alone (about 150 MB), picked here where pip resolves against the wheel folder,
# so the slim venv stage does not copy the whole folder (gigabytes of torch and CUDA) into a layer.
FROM dependencies AS slim-wheels
ARG WHEELS=
RUN mkdir -p /opt/slim \
    && python -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + [r for e in ("serve", "onnx", "openvino") for r in p["optional-dependencies"][e]]))' \
        >/opt/slim/requirements.txt \
    && if [ -n "$WHEELS" ]; then set -- --no-index --find-links /tmp/wheels; else set --; fi \
    && pip download "$@" --dest /opt/slim/wheels --requirement /opt/slim/requirements.txt

# The project's dependencies with the serve, onnx and openvino extras: no torch, torchvision, ultralytics or OpenCV.
FROM ${BASE_IMAGE} AS slim-venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY --from=slim-wheels /opt/slim /tmp/slim
RUN pip install --no-index --find-links /tmp/slim/wheels --requirement /tmp/slim/requirements.txt \
    && pip uninstall --yes pip setuptools wheel \
    && python -c 'import importlib.util as u, sys; \
found = [m for m in ("torch", "torchvision", "ultralytics", "cv2") if u.find_spec(m)]; \
sys.exit(f"the slim venv must not hold {found}" if found else 0)'

FROM runtime AS slim
LABEL org.opencontainers.image.description="Face detection, face classification and AdaIN on OpenVINO or ONNX Runtime"
COPY --from=slim-venv /opt/venv /opt/venv
COPY --from=export /opt/deepcanvas/store /opt/deepcanvas/store
COPY --from=project /opt/overlay/ /
# The default backends (auto) run every network on OpenVINO here, and torch is not installed: the service
# never imports it, and method=nst answers 422 (GET /models says which engine runs what, and why).

# --- the full image (the default target) ----------------------------------------------------------------
# The runtime venv: no pip, setuptools or wheel.
FROM dependencies AS venv
RUN pip uninstall --yes pip setuptools wheel

FROM runtime
COPY --from=venv /opt/venv /opt/venv
COPY --from=store /opt/deepcanvas/store /opt/deepcanvas/store
COPY --from=project /opt/overlay/ /
