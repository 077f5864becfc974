using Broker.Testing;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>The store contract against a real redis-server.</summary>
public sealed class RedisAppPasswordStoreTests(RedisFixture redis) : AppPasswordStoreContract, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;
}
