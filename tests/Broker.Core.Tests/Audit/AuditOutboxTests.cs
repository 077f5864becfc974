using Broker.Testing;

namespace Broker.Core.Tests.Audit;

/// <summary>The audit outbox and pump against a real redis-server.</summary>
public sealed class AuditOutboxTests(RedisFixture redis) : AuditOutboxContract, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;
}

/// <summary>The audit outbox and pump against a real three-master Redis Cluster: its keys share one slot.</summary>
public sealed class RedisClusterAuditOutboxTests(RedisClusterFixture cluster) : AuditOutboxContract, IClassFixture<RedisClusterFixture>
{
    protected override string RedisConfiguration => cluster.Cluster.Configuration;
}
