"""The AWS CDK app of DeepCanvas: storage, registry, network, service, observability and pipeline stacks."""
