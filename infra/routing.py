"""What the public load balancer answers itself, before a request reaches a task: listener rules.

In priority order: a %-escape in the first path segment (404), the internal /metrics (404), the admin-token routes
from ``admin_cidrs`` (forwarded), the admin-token routes from anywhere else (403). Source-ip conditions compare the
connection's address, never X-Forwarded-For, so a client cannot claim an allowed address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from infra.config import (
    ADMIN_ALLOW_PRIORITY_BLOCK,
    ADMIN_ALLOW_RULE_PRIORITY,
    ADMIN_DENY_RULE_PRIORITY,
    ADMIN_ROUTES,
    ENCODED_SEGMENT_REGEX,
    ENCODED_SEGMENT_RULE_PRIORITY,
    INTERNAL_PATHS,
    INTERNAL_RULE_PRIORITY,
    RULE_VALUES_PER_CONDITION,
    RULE_VALUES_PER_RULE,
)

JSON = "application/json"


class PathRegexCondition(elbv2.ListenerCondition):
    """A path-pattern condition on regular expressions: CDK's ``ListenerCondition`` offers only wildcards."""

    def __init__(self, regexes: Sequence[str]) -> None:
        super().__init__()
        self.regexes = list(regexes)

    def render_raw_condition(self) -> Any:
        return {"field": "path-pattern", "pathPatternConfig": {"regexValues": self.regexes}}


def cidr_batches(cidrs: Sequence[str], paths: Sequence[str]) -> list[tuple[str, ...]]:
    """``cidrs`` in groups that fit one rule beside ``paths`` (3 values in a condition, 5 in a rule)."""
    size = min(RULE_VALUES_PER_CONDITION, RULE_VALUES_PER_RULE - len(paths))
    assert size > 0 and len(paths) <= RULE_VALUES_PER_CONDITION, f"{paths} leave no room for a source address"
    return [tuple(cidrs[start : start + size]) for start in range(0, len(cidrs), size)]


def add_route_rules(
    listener: elbv2.ApplicationListener, target_group: elbv2.IApplicationTargetGroup, admin_cidrs: Sequence[str]
) -> None:
    """Every rule of the listener; its default action forwards the rest to ``target_group``."""
    # The health checks go to the targets directly, not through these rules.
    listener.add_action(
        "EncodedPath",
        priority=ENCODED_SEGMENT_RULE_PRIORITY,
        conditions=[PathRegexCondition([ENCODED_SEGMENT_REGEX])],
        action=_answer(404, "Not Found"),
    )
    # /metrics is for scrapers inside the VPC (CloudWatch gets the tasks' EMF lines).
    listener.add_action(
        "InternalOnly",
        priority=INTERNAL_RULE_PRIORITY,
        conditions=[elbv2.ListenerCondition.path_patterns(list(INTERNAL_PATHS))],
        action=_answer(404, "Not Found"),
    )
    _restrict_admin_routes(listener, target_group, admin_cidrs)


def _restrict_admin_routes(
    listener: elbv2.ApplicationListener, target_group: elbv2.IApplicationTargetGroup, admin_cidrs: Sequence[str]
) -> None:
    for route, (name, paths) in enumerate(ADMIN_ROUTES.items()):
        first = ADMIN_ALLOW_RULE_PRIORITY + route * ADMIN_ALLOW_PRIORITY_BLOCK
        batches = cidr_batches(admin_cidrs, paths)
        assert len(batches) <= ADMIN_ALLOW_PRIORITY_BLOCK, f"{len(batches)} rules overrun {name}'s priorities"
        assert first + ADMIN_ALLOW_PRIORITY_BLOCK <= ADMIN_DENY_RULE_PRIORITY, "allow rules overrun the deny rules"
        for index, cidrs in enumerate(batches):
            listener.add_action(
                f"{name}From{index}",
                priority=first + index,
                conditions=[
                    elbv2.ListenerCondition.path_patterns(list(paths)),
                    elbv2.ListenerCondition.source_ips(list(cidrs)),
                ],
                action=elbv2.ListenerAction.forward([target_group]),
            )
    for offset, (name, paths) in enumerate(ADMIN_ROUTES.items()):
        listener.add_action(
            f"{name}Elsewhere",
            priority=ADMIN_DENY_RULE_PRIORITY + offset,
            conditions=[elbv2.ListenerCondition.path_patterns(list(paths))],
            action=_answer(403, "Admin routes answer only from the deployment's admin_cidrs"),
        )


def _answer(status: int, detail: str) -> elbv2.ListenerAction:
    """A fixed JSON answer shaped like the service's own errors."""
    return elbv2.ListenerAction.fixed_response(status, content_type=JSON, message_body=f'{{"detail": "{detail}"}}')
