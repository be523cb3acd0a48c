"""The identity database: RDS PostgreSQL, isolated subnets, encrypted, generated credentials, the tasks only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cdk_support import exported_value, only_resource, require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402
from infra.config import DATABASE_NAME, DATABASE_PORT  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.database)


@pytest.fixture(scope="module")
def instance(template: Template) -> dict[str, Any]:
    return only_resource(template, "AWS::RDS::DBInstance")


def test_postgresql_encrypted_private_and_named_as_the_service_expects(instance: dict[str, Any]) -> None:
    assert instance["Engine"] == "postgres"
    assert instance["StorageEncrypted"] is True
    assert instance["PubliclyAccessible"] is False
    assert (instance["DBName"], str(instance["Port"])) == (DATABASE_NAME, str(DATABASE_PORT))


def test_production_defaults_multi_az_backups_deletion_protection_and_a_final_snapshot(
    template: Template, instance: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    config = deepcanvas.config
    assert instance["MultiAZ"] is config.db_multi_az is True
    assert instance["BackupRetentionPeriod"] == config.db_backup_retention_days >= 7
    assert instance["DeletionProtection"] is True
    assert instance["DeleteAutomatedBackups"] is False
    (resource,) = resources_of(template, "AWS::RDS::DBInstance").values()
    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")


def test_storage_grows_on_its_own_up_to_the_configured_bound(
    instance: dict[str, Any], deepcanvas: DeepCanvasApp
) -> None:
    assert int(instance["AllocatedStorage"]) == deepcanvas.config.db_allocated_storage_gib
    assert instance["MaxAllocatedStorage"] == deepcanvas.config.db_max_allocated_storage_gib
    assert instance["StorageType"] == "gp3"


def test_clients_must_use_tls(template: Template) -> None:
    parameters = only_resource(template, "AWS::RDS::DBParameterGroup")["Parameters"]
    assert parameters["rds.force_ssl"] == "1"


def test_password_is_generated_in_secrets_manager_never_written_in_the_template(
    template: Template, instance: dict[str, Any]
) -> None:
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 1
    (secret_id, secret), *_ = secrets.items()
    assert secret["Properties"]["GenerateSecretString"]["GenerateStringKey"] == "password"
    password = instance["MasterUserPassword"]["Fn::Join"][1]
    assert {"Ref": secret_id} in password
    assert any(isinstance(part, str) and part.startswith("{{resolve:secretsmanager:") for part in password)


def test_instance_lives_in_the_isolated_subnets_without_a_route_out(
    template: Template, deepcanvas: DeepCanvasApp
) -> None:
    network = Template.from_stack(deepcanvas.network)
    subnets = only_resource(template, "AWS::RDS::DBSubnetGroup")["SubnetIds"]
    subnet_ids = {exported_value(network, subnet)["Ref"] for subnet in subnets}
    assert len(subnet_ids) == 2
    route_tables = {
        association["Properties"]["RouteTableId"]["Ref"]
        for association in resources_of(network, "AWS::EC2::SubnetRouteTableAssociation").values()
        if association["Properties"]["SubnetId"]["Ref"] in subnet_ids
    }
    routes = [r["Properties"] for r in resources_of(network, "AWS::EC2::Route").values()]
    assert not [r for r in routes if r["RouteTableId"]["Ref"] in route_tables], "the database subnets route out"
    for subnet_id in subnet_ids:
        assert network.to_json()["Resources"][subnet_id]["Properties"]["MapPublicIpOnLaunch"] is False


def test_only_the_service_tasks_reach_the_database_port(template: Template, deepcanvas: DeepCanvasApp) -> None:
    (group_id, group), *others = resources_of(template, "AWS::EC2::SecurityGroup").items()
    assert not others
    assert "SecurityGroupIngress" not in group["Properties"], "the database admits someone inline"
    service = Template.from_stack(deepcanvas.service)
    rules = []
    for stack in deepcanvas.stacks:
        for rule in resources_of(Template.from_stack(stack), "AWS::EC2::SecurityGroupIngress").values():
            target = rule["Properties"]["GroupId"]
            if target == {"Fn::GetAtt": [group_id, "GroupId"]} or (
                "Fn::ImportValue" in target
                and exported_value(template, target) == {"Fn::GetAtt": [group_id, "GroupId"]}
            ):
                rules.append((stack.stack_name, rule["Properties"]))
    assert len(rules) == 1, rules
    stack_name, rule = rules[0]
    assert stack_name == deepcanvas.service.stack_name
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", DATABASE_PORT, DATABASE_PORT)
    service_groups = only_resource(service, "AWS::ECS::Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert [rule["SourceSecurityGroupId"]] == service_groups["SecurityGroups"]
