"""The CDK app: builds the seven stacks from the context and synthesizes them, offline, without the cdk CLI.

    python -m infra.app --outdir infra/cdk.out -c certificate_arn=arn:aws:acm:... [-c image_tag=abc123 ...]

The service serves HTTPS with that certificate; without one, synthesis stops unless ``-c allow_plain_http=true``
(plain HTTP on port 80, for a private test account only).
Stacks are environment-agnostic (no account, region or context lookups), so synthesis needs no AWS access.
Deploy the synthesized assembly with ``cdk deploy --app infra/cdk.out --all``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import DeployConfig
from infra.stacks.database import DatabaseStack
from infra.stacks.network import NetworkStack
from infra.stacks.observability import ObservabilityStack
from infra.stacks.pipeline import PipelineStack
from infra.stacks.registry import RegistryStack
from infra.stacks.service import ServiceStack
from infra.stacks.storage import StorageStack

DEFAULT_OUTDIR = Path(__file__).resolve().parent / "cdk.out"
PREFIX = "DeepCanvas"
# Exports (Fn::ImportValue) stop a stack from being deleted while another uses it: say so explicitly,
# rather than rely on the library default that cdk warns is going to change.
DEFAULT_CONTEXT: dict[str, Any] = {"@aws-cdk/core:defaultCrossStackReferences": "strong"}


@dataclass(frozen=True)
class DeepCanvasApp:
    """The app and its stacks, so tests and scripts reach each one by name."""

    app: cdk.App
    config: DeployConfig
    storage: StorageStack
    registry: RegistryStack
    network: NetworkStack
    database: DatabaseStack
    service: ServiceStack
    observability: ObservabilityStack
    pipeline: PipelineStack

    @property
    def stacks(self) -> list[cdk.Stack]:
        return [
            self.storage,
            self.registry,
            self.network,
            self.database,
            self.service,
            self.observability,
            self.pipeline,
        ]


def build_app(outdir: str | Path | None = None, context: Mapping[str, Any] | None = None) -> DeepCanvasApp:
    """All stacks wired together; ``outdir`` None lets cdk choose (``CDK_OUTDIR`` under the cdk CLI)."""
    app = cdk.App(outdir=None if outdir is None else str(outdir), context={**DEFAULT_CONTEXT, **(context or {})})
    config = DeployConfig.from_context(app.node.try_get_context)
    storage = StorageStack(app, f"{PREFIX}-Storage", description="DeepCanvas model store")
    registry = RegistryStack(app, f"{PREFIX}-Registry", keep_images=config.keep_images, description="DeepCanvas images")
    network = NetworkStack(app, f"{PREFIX}-Network", nat_gateways=config.nat_gateways, description="DeepCanvas VPC")
    database = DatabaseStack(
        app, f"{PREFIX}-Database", config=config, vpc=network.vpc, description="DeepCanvas identity database"
    )
    service = ServiceStack(
        app,
        f"{PREFIX}-Service",
        config=config,
        vpc=network.vpc,
        bucket=storage.bucket,
        repository=registry.repository,
        database=database.instance,
        database_secret=database.secret,
        description="DeepCanvas inference service on ECS Fargate",
    )
    observability = ObservabilityStack(
        app,
        f"{PREFIX}-Observability",
        config=config,
        service=service.service,
        target_group=service.target_group,
        load_balancer=service.load_balancer,
        database=database.instance,
        description="DeepCanvas alarms and dashboard",
    )
    pipeline = PipelineStack(
        app,
        f"{PREFIX}-Pipeline",
        config=config,
        repository=registry.repository,
        service=service.service,
        description="DeepCanvas delivery pipeline",
    )
    cdk.Tags.of(app).add("project", "deepcanvas")
    return DeepCanvasApp(app, config, storage, registry, network, database, service, observability, pipeline)


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` as a dict, like the cdk CLI's ``-c``."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"context must be KEY=VALUE, got {pair!r}")
        context[key.strip()] = value
    return context


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.app", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, help=f"cloud assembly folder (default {DEFAULT_OUTDIR})")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    # Under the cdk CLI, CDK_OUTDIR names the folder the CLI reads back; otherwise default to infra/cdk.out.
    outdir = args.outdir or (None if os.environ.get("CDK_OUTDIR") else DEFAULT_OUTDIR)
    started = time.perf_counter()
    try:
        built = build_app(outdir, parse_context(args.context))
    except ValueError as error:  # DeployConfig refused the context: say why in one line, not a traceback
        raise SystemExit(f"python -m infra.app: {error}") from error
    assembly = built.app.synth()
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {Path(assembly.directory) / stack.template_file}")
    print(f"synthesized {len(assembly.stacks)} stacks in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
