"""The load balancer's own answers, read off the listener rules as ELB evaluates them: a %-escape in the first
path segment and /metrics are 404, the admin-token routes answer only from admin_cidrs (403 elsewhere)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.infra.cdk_support import TEST_CONTEXT, require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp, build_app  # noqa: E402
from infra.config import ADMIN_ROUTES, MAX_ADMIN_CIDRS, RULE_VALUES_PER_CONDITION, RULE_VALUES_PER_RULE  # noqa: E402

# Four networks: one rule of three and one of one per admin route; the last is IPv6.
ADMIN_CIDRS = ["203.0.113.0/24", "198.51.100.7/32", "10.1.0.0/16", "2001:db8::/32"]
INSIDE, INSIDE_LAST_RULE, OUTSIDE = "203.0.113.9", "2001:db8::1", "192.0.2.1"
FORWARD = "forward"
HIDDEN = ("/metrics", "/admin/params", "/identities/7/faces")


@dataclass(frozen=True)
class Rule:
    priority: int
    paths: tuple[str, ...]
    regexes: tuple[str, ...]
    sources: tuple[str, ...]
    answer: str  # FORWARD, or the status code of a fixed response

    def matches(self, path: str, source: str) -> bool:
        address = ipaddress.ip_address(source)
        return (
            (not self.paths or any(_wildcard(pattern).fullmatch(path) for pattern in self.paths))
            and (not self.regexes or any(re.search(regex, path) for regex in self.regexes))
            and (not self.sources or any(address in ipaddress.ip_network(cidr) for cidr in self.sources))
        )


def _wildcard(pattern: str) -> re.Pattern[str]:
    """An ELB path pattern: ``*`` is any run of characters (slashes too), ``?`` one character."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


def _rule(properties: dict[str, Any]) -> Rule:
    paths: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    for condition in properties["Conditions"]:
        if condition["Field"] == "path-pattern":
            paths = tuple(condition["PathPatternConfig"].get("Values", []))
            regexes = tuple(condition["PathPatternConfig"].get("RegexValues", []))
        else:
            assert condition["Field"] == "source-ip", f"unexpected condition {condition}"
            sources = tuple(condition["SourceIpConfig"]["Values"])
    (action,) = properties["Actions"]
    answer = FORWARD if action["Type"] == "forward" else action["FixedResponseConfig"]["StatusCode"]
    return Rule(properties["Priority"], paths, regexes, sources, answer)


def rules_of(template: Template) -> list[Rule]:
    """The listener's rules in the order ELB tries them; its default action forwards to the tasks."""
    (listener,) = [
        listener["Properties"]
        for listener in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()
        if listener["Properties"]["Port"] == 443
    ]
    assert [action["Type"] for action in listener["DefaultActions"]] == [FORWARD]
    found = resources_of(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    return sorted((_rule(rule["Properties"]) for rule in found), key=lambda rule: rule.priority)


def answer(rules: list[Rule], path: str, source: str) -> str:
    return next((rule.answer for rule in rules if rule.matches(path, source)), FORWARD)


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> list[Rule]:
    context = TEST_CONTEXT | {"admin_cidrs": ",".join(ADMIN_CIDRS)}
    built = build_app(Path(tmp_path_factory.mktemp("cdk.out.admin")), context)
    return rules_of(Template.from_stack(built.service))


@pytest.fixture(scope="module")
def closed(deepcanvas: DeepCanvasApp) -> list[Rule]:
    """The default: admin_cidrs names no network."""
    return rules_of(Template.from_stack(deepcanvas.service))


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("/metrics", INSIDE, "404"),
        ("/metrics/", OUTSIDE, "404"),
        ("/admin/params", OUTSIDE, "403"),
        ("/admin/params", INSIDE, FORWARD),
        ("/admin/models/detector/activate", INSIDE_LAST_RULE, FORWARD),
        ("/identities", INSIDE, FORWARD),
        ("/identities/7/faces", INSIDE_LAST_RULE, FORWARD),
        ("/identities/7", OUTSIDE, "403"),
        ("/identities", OUTSIDE, "403"),
        # encoded, the admin-token routes are refused even from inside: no client needs to send them so
        ("/%61dmin/params", INSIDE, "404"),
        ("/admin%2Fparams", INSIDE, "404"),
        ("/%6detrics", OUTSIDE, "404"),
        # the public routes stay open, an escape after the first segment included
        ("/identify", OUTSIDE, FORWARD),
        ("/detect", OUTSIDE, FORWARD),
        ("/readyz", OUTSIDE, FORWARD),
        ("/styles/Starry%20Night/preview", OUTSIDE, FORWARD),
        ("/", OUTSIDE, FORWARD),
    ],
)
def test_requests_get_the_answer_the_rules_give(restricted: list[Rule], path: str, source: str, expected: str) -> None:
    assert answer(restricted, path, source) == expected


def test_without_admin_cidrs_the_admin_routes_answer_403_from_everywhere(closed: list[Rule]) -> None:
    assert not [rule for rule in closed if rule.sources]
    for paths in ADMIN_ROUTES.values():
        for path in (paths[0], paths[0] + "/x"):
            for source in (INSIDE, OUTSIDE, "10.0.0.1"):
                assert answer(closed, path, source) == "403"
    assert answer(closed, "/detect", OUTSIDE) == FORWARD


def test_every_admin_cidr_is_allowed_for_every_admin_route(restricted: list[Rule]) -> None:
    for paths in ADMIN_ROUTES.values():
        allowed = [cidr for rule in restricted if rule.paths == paths and rule.sources for cidr in rule.sources]
        assert sorted(allowed) == sorted(ADMIN_CIDRS)


def _encodings(path: str) -> set[str]:
    """``path`` with %-escapes where the service decodes them: each character of the first segment (lower- and
    upper-case hex), all of them, and the slash that ends it."""
    first, slash, rest = path[1:].partition("/")
    escapes = [(f"%{ord(c):02x}", f"%{ord(c):02X}") for c in first]
    variants = {
        "/" + first[:i] + escape + first[i + 1 :] + slash + rest for i, pair in enumerate(escapes) for escape in pair
    }
    variants |= {"/" + "".join(pair[case] for pair in escapes) + slash + rest for case in (0, 1)}
    if slash:
        variants |= {f"/{first}%2F{rest}", f"/{first}%2f{rest}"}
    return variants


@pytest.mark.parametrize("hidden", HIDDEN)
def test_no_encoding_of_a_hidden_path_is_forwarded_from_outside(
    restricted: list[Rule], closed: list[Rule], hidden: str
) -> None:
    variants = _encodings(hidden)
    assert all(unquote(variant) == hidden for variant in variants)
    for rules in (restricted, closed):
        forwarded = [variant for variant in variants if answer(rules, variant, OUTSIDE) == FORWARD]
        assert not forwarded


@pytest.mark.parametrize("fixture", ["restricted", "closed"])
def test_every_rule_fits_the_elb_limits_on_condition_values(fixture: str, request: pytest.FixtureRequest) -> None:
    rules: list[Rule] = request.getfixturevalue(fixture)
    for rule in rules:
        conditions = [values for values in (rule.paths, rule.regexes, rule.sources) if values]
        assert all(len(values) <= RULE_VALUES_PER_CONDITION for values in conditions), rule
        assert sum(map(len, conditions)) <= RULE_VALUES_PER_RULE, rule
    assert len({rule.priority for rule in rules}) == len(rules)


def test_the_most_admin_cidrs_still_fit_below_the_deny_rules(tmp_path: Path) -> None:
    cidrs = [f"198.18.{index}.0/24" for index in range(MAX_ADMIN_CIDRS)]
    built = build_app(tmp_path, TEST_CONTEXT | {"admin_cidrs": cidrs})
    rules = rules_of(Template.from_stack(built.service))
    assert answer(rules, "/admin/params", "198.18.29.1") == FORWARD
    assert answer(rules, "/admin/params", OUTSIDE) == "403"
    assert len(rules) == 2 + 2 * (MAX_ADMIN_CIDRS // 3) + 2
