using Broker.Testing;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>The store contract against a real three-master Redis Cluster: the hash-tag key design works unchanged.</summary>
public sealed class RedisClusterAppPasswordStoreTests(RedisClusterFixture cluster) : AppPasswordStoreContract, IClassFixture<RedisClusterFixture>
{
    protected override string RedisConfiguration => cluster.Cluster.Configuration + ",allowAdmin=true";
}
