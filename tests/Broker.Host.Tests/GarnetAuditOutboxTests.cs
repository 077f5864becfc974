using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>The audit outbox and pump against the embedded Garnet, which the all-in-one portal uses.</summary>
public sealed class GarnetAuditOutboxTests(GarnetFixture garnet) : AuditOutboxContract, IClassFixture<GarnetFixture>
{
    protected override string RedisConfiguration => garnet.Configuration;
}
