"""DeployConfig: context values typed, defaults kept, impossible deployments refused before synthesis."""

from __future__ import annotations

import pytest

from app.runtime import ACTIVE_KEY, PARAMS_KEY
from infra.config import (
    FARGATE_MAX_STOP_TIMEOUT_S,
    MAX_ADMIN_CIDRS,
    STOP_TIMEOUT_MARGIN_S,
    DeployConfig,
    runtime_document_object_keys,
)
from tests.infra.cdk_support import TEST_CERTIFICATE_ARN, TEST_CONTEXT, TEST_IMAGE_TAG, service_settings


def test_a_certificate_alone_gives_the_documented_defaults() -> None:
    config = DeployConfig.from_mapping(TEST_CONTEXT)
    assert (config.certificate_arn, config.allow_plain_http) == (TEST_CERTIFICATE_ARN, False)
    assert (config.nat_gateways, config.grace_period_s) == (1, 20)
    assert (config.min_capacity, config.max_capacity) == (2, 4)


def test_an_image_tag_is_required_and_latest_is_refused() -> None:
    """The registry's tags are immutable commit ids pushed by the pipeline: the old default, latest, never existed,
    so a deployment without -c image_tag started tasks that could not pull their image (and a later cdk deploy of
    the service put the pipeline's image back to it)."""
    context = {key: value for key, value in TEST_CONTEXT.items() if key != "image_tag"}
    with pytest.raises(ValueError, match="no image_tag"):
        DeployConfig.from_mapping(context)
    with pytest.raises(ValueError, match="latest"):
        DeployConfig.from_mapping(context | {"image_tag": "latest"})


def test_cli_strings_are_coerced_to_the_field_types() -> None:
    config = DeployConfig.from_mapping(
        TEST_CONTEXT
        | {"nat_gateways": "2", "cpu": "4096", "memory": "8192", "alarm_p99_latency_s": "2.5", "image_tag": "abc123"}
    )
    assert (config.nat_gateways, config.cpu, config.memory) == (2, 4096, 8192)
    assert config.alarm_p99_latency_s == 2.5
    assert config.image_tag == "abc123"


def test_database_defaults_suit_production_and_flags_read_as_booleans() -> None:
    config = DeployConfig.from_mapping(TEST_CONTEXT)
    assert (config.db_multi_az, config.db_deletion_protection, config.db_backup_retention_days) == (True, True, 7)
    assert config.db_major_version == "17"
    relaxed = DeployConfig.from_mapping(TEST_CONTEXT | {"db_multi_az": "false", "db_deletion_protection": "no"})
    assert (relaxed.db_multi_az, relaxed.db_deletion_protection) == (False, False)
    assert DeployConfig.from_mapping(TEST_CONTEXT | {"db_multi_az": False}).db_multi_az is False


def test_the_nst_budget_is_the_services_and_draining_outlasts_it() -> None:
    config = DeployConfig.from_mapping(TEST_CONTEXT)
    assert config.nst_max_seconds == service_settings()["nst_max_seconds"]
    assert config.deregistration_delay_s >= config.nst_max_seconds + 5
    assert DeployConfig.from_mapping(TEST_CONTEXT | {"nst_max_seconds": "30.5"}).deregistration_delay_s == 41


def test_stop_timeout_leaves_a_margin_after_the_grace_period() -> None:
    config = DeployConfig.from_mapping(TEST_CONTEXT | {"grace_period_s": 45})
    assert config.stop_timeout_s == 45 + STOP_TIMEOUT_MARGIN_S


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"grace_period_s": FARGATE_MAX_STOP_TIMEOUT_S}, "stop timeout"),
        ({"nst_max_seconds": "58"}, "idle timeout"),
        ({"nst_max_seconds": "0"}, "positive"),
        ({"min_capacity": 5, "max_capacity": 4}, "min_capacity"),
        ({"min_capacity": 0}, "min_capacity"),
        ({"cpu": 3000}, "Fargate"),
        ({"cpu": 1024, "memory": 512}, "not valid with cpu"),
        ({"nat_gateways": 0}, "nat_gateways"),
        ({"nat_gateways": "-1"}, "non-negative integer"),
        ({"keep_images": "many"}, "non-negative integer"),
        ({"alarm_p99_latency_s": "0"}, "positive"),
        ({"image_tag": "  "}, "non-empty"),
        ({"db_multi_az": "maybe"}, "true or false"),
        ({"db_backup_retention_days": 0}, "db_backup_retention_days"),
        ({"db_backup_retention_days": 36}, "db_backup_retention_days"),
        ({"db_allocated_storage_gib": 10}, "db_allocated_storage_gib"),
        ({"db_allocated_storage_gib": 200, "db_max_allocated_storage_gib": 100}, "db_max_allocated_storage_gib"),
        ({"db_engine_version": "17"}, "MAJOR.MINOR"),
        ({"alarm_db_connections": 0}, "alarm_db_connections"),
        ({"cors_origins": "https://ok.example,app.example.com"}, "cors_origins"),
        ({"cors_origins": "https://app.example.com/path"}, "cors_origins"),
    ],
)
def test_impossible_deployments_are_refused_with_the_reason(context: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeployConfig.from_mapping(TEST_CONTEXT | context)


def test_plain_http_is_refused_unless_asked_for_by_name() -> None:
    for context in ({}, {"allow_plain_http": "false"}):
        with pytest.raises(ValueError, match=r"no certificate_arn.*allow_plain_http=true for a private test account"):
            DeployConfig.from_mapping(context)
    config = DeployConfig.from_mapping({"allow_plain_http": "true", "image_tag": TEST_IMAGE_TAG})
    assert (config.certificate_arn, config.allow_plain_http) == (None, True)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"certificate_arn": TEST_CERTIFICATE_ARN, "allow_plain_http": "true"}, "contradict"),
        ({"certificate_arn": "my-certificate"}, "not an ACM or IAM certificate ARN"),
        ({"certificate_arn": "arn:aws:acm:us-east-1:123456789012:key/1234"}, "not an ACM or IAM certificate ARN"),
        ({"allow_plain_http": "maybe"}, "true or false"),
    ],
)
def test_certificate_and_plain_http_contexts_are_checked(context: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeployConfig.from_mapping(context)


def test_iam_server_certificates_and_other_partitions_are_certificates() -> None:
    for arn in (
        "arn:aws:iam::123456789012:server-certificate/deepcanvas/2026",
        "arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-000000000000",
    ):
        assert DeployConfig.from_mapping(TEST_CONTEXT | {"certificate_arn": arn}).certificate_arn == arn


def test_runtime_document_keys_are_the_ones_the_service_writes() -> None:
    assert runtime_document_object_keys() == [f"models/{PARAMS_KEY}", f"models/{ACTIVE_KEY}"]


def test_admin_cidrs_come_as_a_comma_separated_string_or_a_list_and_are_normalised() -> None:
    assert DeployConfig.from_mapping(TEST_CONTEXT).admin_cidrs == ()
    given = " 203.0.113.0/24, 198.51.100.7 ,2001:DB8::/32,203.0.113.0/24,"
    expected = ("203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32")
    assert DeployConfig.from_mapping(TEST_CONTEXT | {"admin_cidrs": given}).admin_cidrs == expected
    assert DeployConfig.from_mapping(TEST_CONTEXT | {"admin_cidrs": list(expected)}).admin_cidrs == expected
    assert DeployConfig.from_mapping(TEST_CONTEXT | {"admin_cidrs": ""}).admin_cidrs == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("203.0.113.9/24", "host bits"),
        ("admin.example.com", "not an IP network"),
        ("10.0.0.0/33", "not an IP network"),
        (42, "CIDRs, comma-separated or a list"),
        ([f"10.0.{n}.0/24" for n in range(MAX_ADMIN_CIDRS + 1)], f"at most {MAX_ADMIN_CIDRS}"),
    ],
)
def test_admin_cidrs_that_are_not_networks_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeployConfig.from_mapping(TEST_CONTEXT | {"admin_cidrs": value})


def test_admin_cidrs_given_directly_must_be_written_as_networks() -> None:
    with pytest.raises(ValueError, match="not written as a network"):
        DeployConfig(certificate_arn=TEST_CERTIFICATE_ARN, admin_cidrs=("198.51.100.7",))
