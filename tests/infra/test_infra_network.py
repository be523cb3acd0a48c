"""The VPC: two AZs, public and private subnets, NAT gateways as configured, S3 without NAT."""

from __future__ import annotations

import pytest

from tests.infra.cdk_support import as_text, require_cdk, resources_of

require_cdk()

from aws_cdk.assertions import Template  # noqa: E402

from infra.app import DeepCanvasApp  # noqa: E402


@pytest.fixture(scope="module")
def template(deepcanvas: DeepCanvasApp) -> Template:
    return Template.from_stack(deepcanvas.network)


def test_vpc_has_a_public_and_a_private_subnet_in_each_of_two_azs(template: Template) -> None:
    subnets = resources_of(template, "AWS::EC2::Subnet").values()
    public = [s for s in subnets if s["Properties"].get("MapPublicIpOnLaunch") is True]
    private = [s for s in subnets if s["Properties"].get("MapPublicIpOnLaunch") is False]
    assert (len(public), len(private)) == (2, 2)


def test_nat_gateway_count_defaults_to_one(template: Template) -> None:
    template.resource_count_is("AWS::EC2::NatGateway", 1)


def test_s3_traffic_uses_a_gateway_endpoint(template: Template) -> None:
    endpoints = [e["Properties"] for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()]
    assert [(e["VpcEndpointType"], as_text(e["ServiceName"])) for e in endpoints] == [
        ("Gateway", "com.amazonaws.<token>.s3")
    ]
