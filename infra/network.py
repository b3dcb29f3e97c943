"""Where the functions run: the VPC, their subnets and security groups, and the database's SG.

Sandbox (no ``vpcId``): the stack creates a two-AZ VPC. Fetch, rank and publish run in isolated
subnets that reach AWS only through VPC endpoints (S3 gateway; Secrets Manager and Step Functions
interface endpoints); notify runs in private subnets with a NAT gateway, because Slack is on the
internet. A security group created for the sandbox's PostgreSQL admits the database clients.

Production: the functions run in the given private subnets of the given VPC, and the stack adds
one ingress rule to the given database security group (from the database clients' group). What
that VPC must provide is listed in docs/deploy.md.

Security groups: fetch and publish may reach the database port and HTTPS; rank and notify only
HTTPS. HTTPS egress is not narrowed to addresses because S3 is reached through a gateway endpoint
whose prefix list id has no CloudFormation-resolvable value in an environment-agnostic stack; where
HTTPS can actually go is decided by the subnets' routes (isolated subnets: the endpoints only).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StackConfig

VPC_CIDR = "10.42.0.0/16"


@dataclass(frozen=True)
class Network:
    vpc: ec2.IVpc
    stage_subnets: ec2.SubnetSelection
    """fetch, rank, publish"""
    notify_subnets: ec2.SubnetSelection
    database_clients: ec2.SecurityGroup
    """fetch, publish: the database port and HTTPS"""
    https_only: ec2.SecurityGroup
    """rank, notify: HTTPS only"""
    database_security_group: ec2.ISecurityGroup


def _sandbox_vpc(scope: Construct, flow_logs: logs.ILogGroup) -> ec2.Vpc:
    vpc = ec2.Vpc(
        scope,
        "Vpc",
        ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
        max_azs=2,
        nat_gateways=1,  # a sandbox: one NAT is enough for notify's Slack calls
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
            ec2.SubnetConfiguration(
                name="egress", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
            ),
            ec2.SubnetConfiguration(
                name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
            ),
        ],
        flow_logs={
            "all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                traffic_type=ec2.FlowLogTrafficType.ALL,
            )
        },
    )
    vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
    return vpc


def _interface_endpoints(
    scope: Construct, vpc: ec2.IVpc, clients: tuple[ec2.ISecurityGroup, ...]
) -> None:
    """Secrets Manager and Step Functions without leaving the VPC, for the functions only."""
    for name, service in (
        ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
        ("StepFunctions", ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS),
    ):
        endpoint = vpc.add_interface_endpoint(
            f"{name}Endpoint",
            service=service,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            # Private DNS: the endpoint answers for the service's public name in the whole VPC.
            private_dns_enabled=True,
            open=False,
        )
        for client in clients:
            endpoint.connections.allow_default_port_from(client, f"HTTPS to {name}")


def build_network(
    scope: Construct, config: StackConfig, flow_logs: logs.ILogGroup | None
) -> Network:
    """``flow_logs``: where the sandbox VPC's flow logs go (None with an existing VPC)."""
    if config.network is None:
        if flow_logs is None:
            raise ValueError("build_network: a created VPC needs a flow log group")
        vpc: ec2.IVpc = _sandbox_vpc(scope, flow_logs)
        stage_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        notify_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        database_sg: ec2.ISecurityGroup = ec2.SecurityGroup(
            scope,
            "DatabaseSecurityGroup",
            vpc=vpc,
            description="Attach to the sandbox PostgreSQL instance - admits the pipeline functions",
            allow_all_outbound=False,
        )
    else:
        existing = config.network
        # from_lookup would need an AWS account at synth: the subnets come from context instead.
        vpc = ec2.Vpc.from_vpc_attributes(
            scope,
            "Vpc",
            vpc_id=existing.vpc_id,
            availability_zones=list(existing.availability_zones),
            private_subnet_ids=list(existing.private_subnet_ids),
        )
        for subnet in vpc.private_subnets:
            Validations.of(subnet).acknowledge(
                Acknowledgment(
                    id="Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId",
                    reason="Lambda needs only the subnet ids; nothing here reads route tables.",
                )
            )
        stage_subnets = notify_subnets = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
        database_sg = ec2.SecurityGroup.from_security_group_id(
            scope, "DatabaseSecurityGroup", existing.database_security_group_id
        )

    database_clients = ec2.SecurityGroup(
        scope,
        "DatabaseClientsSecurityGroup",
        vpc=vpc,
        description="fetch and publish: PostgreSQL and HTTPS (S3, Secrets Manager, Step Functions)",
        allow_all_outbound=False,
    )
    https_only = ec2.SecurityGroup(
        scope,
        "HttpsOnlySecurityGroup",
        vpc=vpc,
        description="rank and notify: HTTPS only (S3, Secrets Manager, Step Functions, SNS, Slack)",
        allow_all_outbound=False,
    )
    for group in (database_clients, https_only):
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
    # Adds the egress rule to the clients' group and the ingress rule to the database's group.
    if config.network is None:
        _interface_endpoints(scope, vpc, clients=(database_clients, https_only))
    database_sg.connections.allow_from(
        database_clients,
        ec2.Port.tcp(config.database_port),
        "PostgreSQL from the leaderboard pipeline (fetch, publish)",
    )
    return Network(
        vpc=vpc,
        stage_subnets=stage_subnets,
        notify_subnets=notify_subnets,
        database_clients=database_clients,
        https_only=https_only,
        database_security_group=database_sg,
    )
