"""The VPC: two AZs, public, private and isolated subnets, NAT gateways as configured, S3 without NAT."""

from __future__ import annotations

import pytest

from tests.infra.cdk_support import as_text, require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.network)


def test_vpc_has_a_public_a_private_and_an_isolated_subnet_in_each_of_two_azs(template: Template) -> None:
    subnets = resources_of(template, "AWS::EC2::Subnet")
    public = [i for i, s in subnets.items() if s["Properties"].get("MapPublicIpOnLaunch") is True]
    private = [i for i, s in subnets.items() if s["Properties"].get("MapPublicIpOnLaunch") is False]
    assert (len(public), len(private)) == (2, 4)
    table_of = {
        a["Properties"]["SubnetId"]["Ref"]: a["Properties"]["RouteTableId"]["Ref"]
        for a in resources_of(template, "AWS::EC2::SubnetRouteTableAssociation").values()
    }
    routed = {r["Properties"]["RouteTableId"]["Ref"] for r in resources_of(template, "AWS::EC2::Route").values()}
    isolated = [subnet for subnet in private if table_of[subnet] not in routed]
    assert len(isolated) == 2, "the database subnets must have no route out"


def test_adding_the_database_subnets_kept_the_existing_cidrs(template: Template) -> None:
    cidrs = sorted(s["Properties"]["CidrBlock"] for s in resources_of(template, "AWS::EC2::Subnet").values())
    assert cidrs == ["10.0.0.0/24", "10.0.1.0/24", "10.0.12.0/24", "10.0.13.0/24", "10.0.4.0/22", "10.0.8.0/22"]


def test_nat_gateway_count_defaults_to_one(template: Template) -> None:
    template.resource_count_is("AWS::EC2::NatGateway", 1)


def test_s3_traffic_uses_a_gateway_endpoint(template: Template) -> None:
    endpoints = [e["Properties"] for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()]
    assert [(e["VpcEndpointType"], as_text(e["ServiceName"])) for e in endpoints] == [
        ("Gateway", "com.amazonaws.<token>.s3")
    ]
