using System.Net.Http.Json;
using System.Text.Json;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Validation.Tests.Abuse;

/// <summary>Dovecot's auth-policy hook refuses a source that Broker's own throttling has cut off, before any password check.</summary>
public sealed class PolicyThrottlingTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task Policy_SprayingNetwork_IsRejectedBeforeThePasswordCheck_OthersAreNot()
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        using var client = app.CreateClient();
        for (var i = 0; i < 60; i++)
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", new { username = $"user{i}@example.com", password = "Spring2026!", service = "imap", remoteIp = "198.51.100.23" });
        }

        for (var i = 0; i < 50 && !await app.AppPasswords.IsNetworkThrottledAsync("198.51.100.23"); i++)
        {
            await Task.Delay(20);
        }

        var sprayer = await AskAsync(client, "198.51.100.99");
        var other = await AskAsync(client, "203.0.113.8");

        Assert.Equal(-1, sprayer.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(sprayer.GetProperty("msg").GetString()));
        Assert.Equal(0, other.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Policy_SprayedNetwork_IsRefusedForStrangers_ButNotForAUserWhoseKnownGoodNetworkItIs()
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        using var client = app.CreateClient();
        var user = $"colleague-{Guid.NewGuid():N}@example.com";
        var issued = await app.AppPasswords.IssueAsync(user, "Office", ["imap"], null);
        // The colleague works behind the NAT the sprayer uses: a successful login makes it known-good.
        using (var ok = await client.PostAsJsonAsync("/v1/validate", new { username = user, password = issued.Secret, service = "imap", remoteIp = "100.64.10.5" }))
        {
            ok.EnsureSuccessStatusCode();
        }

        for (var i = 0; i < 60; i++)
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", new { username = $"user{i}@example.com", password = "Spring2026!", service = "imap", remoteIp = "100.64.10.200" });
        }

        for (var i = 0; i < 50 && !await app.AppPasswords.IsNetworkThrottledAsync("100.64.10.200"); i++)
        {
            await Task.Delay(20);
        }

        var stranger = await AskAsync(client, "100.64.10.77");
        var colleague = await AskAsync(client, "100.64.10.77", login: " " + user.ToUpperInvariant());

        Assert.Equal(-1, stranger.GetProperty("status").GetInt32());
        Assert.Equal(0, colleague.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Policy_AddressOverItsFailureThreshold_IsRefusedForStrangers_ButNotForAUserWhoseKnownGoodNetworkItIs()
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        using var client = app.CreateClient();
        var user = $"colleague-{Guid.NewGuid():N}@example.com";
        var issued = await app.AppPasswords.IssueAsync(user, "Office", ["imap"], null);
        using (var ok = await client.PostAsJsonAsync("/v1/validate", new { username = user, password = issued.Secret, service = "imap", remoteIp = "100.64.20.5" }))
        {
            ok.EnsureSuccessStatusCode();
        }

        // Dovecot reports 20 failed logins (of any passdb) from the office's NAT address.
        for (var i = 0; i < 20; i++)
        {
            using var r = await client.PostAsJsonAsync("/v1/dovecot/policy?command=report", new { login = $"user{i}@example.com", remote = "100.64.20.9", success = false, policy_reject = false });
            r.EnsureSuccessStatusCode();
        }

        Assert.Equal(-1, (await AskAsync(client, "100.64.20.9")).GetProperty("status").GetInt32());
        Assert.Equal(0, (await AskAsync(client, "100.64.20.9", login: user)).GetProperty("status").GetInt32());
        // Known-good is per network: the colleague's network elsewhere is not.
        Assert.False(await app.AppPasswords.IsKnownNetworkAsync("100.64.21.9", user));
    }

    [Fact]
    public async Task Policy_CorruptAddressCounter_IsATemporaryFailure_NeverAServerError()
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        using var client = app.CreateClient();
        // Only INCR writes this key; anything else means the store is not what Broker wrote.
        var redisConnection = app.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
        await redisConnection.GetDatabase().StringSetAsync("broker:policy:fail:100.64.30.9", "not-a-number");

        using var response = await client.PostAsJsonAsync("/v1/dovecot/policy?command=allow", new { login = "victim@example.com", remote = "100.64.30.9" });

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(0, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetInt32());
    }

    private static async Task<JsonElement> AskAsync(HttpClient client, string remote, string login = "victim@example.com")
    {
        using var response = await client.PostAsJsonAsync("/v1/dovecot/policy?command=allow", new { device_id = "", login, mech = "PLAIN", protocol = "imap", pwhash = "abc", remote, session_id = "s1", tls = true });
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }
}
