using Broker.Core;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Host.Tests;

/// <summary>
/// One redis-server store seen two ways: by the real executable (<see cref="Args"/>) and by the
/// test in process (<see cref="InProcess"/>), with the same pepper, so each sees what the other wrote.
/// </summary>
internal sealed class CliStore(RedisFixture redis, IDictionary<string, string?>? extra = null)
{
    private readonly string _pepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>Settings for the executable: the store, the pepper and <c>extra</c>.</summary>
    public string[] Args =>
    [
        $"--Redis:Configuration={redis.Server.Configuration}",
        $"--Broker:Pepper:Value={_pepper}",
        .. (extra ?? new Dictionary<string, string?>()).Select(s => $"--{s.Key}={s.Value}"),
    ];

    public ServiceProvider InProcess()
    {
        var settings = BrokerApps.BaseConfig(redis.Server.Configuration, _pepper);
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging();
        services.AddBrokerCore();
        return services.BuildServiceProvider();
    }
}
