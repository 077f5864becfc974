using Broker.Host.Embedded;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>The same store contract as against redis-server, against the embedded Garnet: one key design for both.</summary>
public sealed class GarnetAppPasswordStoreTests(GarnetFixture garnet) : AppPasswordStoreContract, IClassFixture<GarnetFixture>
{
    protected override string RedisConfiguration => garnet.Configuration;
}

public sealed class GarnetFixture : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("broker-garnet-").FullName;
    private readonly EmbeddedGarnet _garnet;

    public GarnetFixture() => _garnet = EmbeddedGarnet.Start(_dir, FreePort.Get());

    public string Configuration => _garnet.Endpoint + ",allowAdmin=true";

    public void Dispose()
    {
        _garnet.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
