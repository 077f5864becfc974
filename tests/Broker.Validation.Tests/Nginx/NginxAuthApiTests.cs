using System.Net;
using Broker.Testing;
using Broker.Validation.Nginx;

namespace Broker.Validation.Tests.Nginx;

/// <summary>GET /v1/nginx/auth through real HTTP against a real redis-server: the headers nginx's mail proxy reads.</summary>
#pragma warning disable CA1001 // Disposed in DisposeAsync (xunit's IAsyncLifetime).
public sealed class NginxAuthApiTests(RedisFixture redis) : IClassFixture<RedisFixture>, IAsyncLifetime
#pragma warning restore CA1001
{
    private RunningApp _app = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var config = BrokerApps.BaseConfig(redis.Server.Configuration);
        config["Broker:Nginx:Backends:imap"] = "127.0.0.1:1143";
        config["Broker:Nginx:BackendPassword"] = "backend-secret";
        _app = await BrokerApps.StartValidationAsync(config);
        _client = _app.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
    }

    [Theory]
    [InlineData("jürgen@example.com")]
    [InlineData("zoë@example.com")]
    [InlineData("用户@例子.公司")]
    public async Task NonAsciiUsername_RightPassword_OkWithoutAuthUser(string user)
    {
        var issued = await _app.AppPasswords.IssueAsync(user, "Thunderbird", ["imap"], null);

        using var response = await _client.SendAsync(NginxAuthRequests.Plain(Uri.EscapeDataString(user), Uri.EscapeDataString(issued.Secret), "198.51.100.7"));

        // Kestrel refuses non-ASCII header values; nginx keeps the client's login when Auth-User is absent.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("OK", NginxAuthRequests.Header(response, "Auth-Status"));
        Assert.Equal("127.0.0.1", NginxAuthRequests.Header(response, "Auth-Server"));
        Assert.Equal("1143", NginxAuthRequests.Header(response, "Auth-Port"));
        Assert.Equal("backend-secret", NginxAuthRequests.Header(response, "Auth-Pass"));
        Assert.Null(NginxAuthRequests.Header(response, "Auth-User"));
    }

    [Fact]
    public async Task AsciiUsername_RightPassword_OkWithCanonicalAuthUser()
    {
        var user = $"nginx-{Guid.NewGuid():N}@example.com";
        var issued = await _app.AppPasswords.IssueAsync(user, "Thunderbird", ["imap"], null);

        using var response = await _client.SendAsync(NginxAuthRequests.Plain(Uri.EscapeDataString(user.ToUpperInvariant()), Uri.EscapeDataString(issued.Secret), "198.51.100.7"));

        Assert.Equal("OK", NginxAuthRequests.Header(response, "Auth-Status"));
        Assert.Equal(user, NginxAuthRequests.Header(response, "Auth-User"));
    }

    [Theory]
    [InlineData("alice@example.com", true)]
    [InlineData("o'brien+tag@example.com", true)]
    [InlineData("jürgen@example.com", false)]
    [InlineData("", false)]
    [InlineData("a b@example.com", false)]
    [InlineData("a\tb@example.com", false)]
    [InlineData("a\u007Fb@example.com", false)]
    public void IsPrintableAscii_OnlyVisibleAsciiCanBeAHeaderValue(string value, bool expected) =>
        Assert.Equal(expected, NginxAuthApi.IsPrintableAscii(value));
}
