using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Broker.MailServers.Tests.Infrastructure;
using Broker.Testing;
using Broker.Validation.Dovecot;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.MailServers.Tests;

/// <summary>The mail-server endpoints over HTTP through the gateway: the answers Dovecot and nginx rely on, and bad input.</summary>
[Collection(MailLabDefinition.Name)]
public sealed class MailServerEndpointTests(MailLab lab)
{
    private HttpClient Client(bool withKey = true) => lab.Broker.Gateway.CreateClient(withKey);

    [Fact]
    public async Task Introspect_BareToken_200Inactive()
    {
        using var client = Client();

        var response = await client.PostAsync("/v1/dovecot/oauth2/introspect", Form(("token", "some-bearer-token")));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False((await Json(response)).GetProperty("active").GetBoolean());
    }

    [Fact]
    public async Task Introspect_TokenWithUsername_ActiveOnlyForValidAppPassword()
    {
        var secret = await lab.IssueAsync("introspect@example.com");
        using var client = Client(withKey: false);
        // Caller key as HTTP Basic, as Dovecot sends it when the URL carries user:key@.
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("dovecot:" + BrokerApps.CallerKey)));
        client.DefaultRequestHeaders.Add("X-Dovecot-Auth-Service", "imap");

        var allow = await Json(await client.PostAsync("/v1/dovecot/oauth2/introspect", Form(("token", secret), ("username", "Introspect@example.com"))));
        var deniedResponse = await client.PostAsync("/v1/dovecot/oauth2/introspect", Form(("token", secret[..^2] + "zz"), ("username", "introspect@example.com")));

        Assert.True(allow.GetProperty("active").GetBoolean());
        Assert.Equal("introspect@example.com", allow.GetProperty("username").GetString());
        Assert.Equal(HttpStatusCode.OK, deniedResponse.StatusCode);
        Assert.False((await Json(deniedResponse)).GetProperty("active").GetBoolean());
    }

    [Fact]
    public async Task Introspect_WithoutCallerKey_401AndInactive()
    {
        using var client = Client(withKey: false);

        var response = await client.PostAsync("/v1/dovecot/oauth2/introspect", Form(("token", "x"), ("client_id", "dovecot"), ("client_secret", "wrong")));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.False((await Json(response)).GetProperty("active").GetBoolean());
    }

    [Theory]
    [InlineData("X-Dovecot-Auth-Service")]
    [InlineData("X-Dovecot-Auth-Protocol")]
    public async Task Grant_ServiceFromEitherVersionsHeader_ScopeCheckedAndDenyShapedForThatVersion(string header)
    {
        // Dovecot 2.3 sends the service as X-Dovecot-Auth-Service, 2.4 as X-Dovecot-Auth-Protocol.
        var user = $"grant-{header.ToLowerInvariant()}@example.com";
        var secret = await lab.IssueAsync(user, scopes: "imap");
        using var client = Client(withKey: false);
        client.DefaultRequestHeaders.Add(header, "imap");
        using var pop3 = Client(withKey: false);
        pop3.DefaultRequestHeaders.Add(header, "pop3");

        var allow = await client.PostAsync("/v1/dovecot/oauth2/token", Form(("grant_type", "password"), ("username", user), ("password", secret), ("client_id", "dovecot"), ("client_secret", BrokerApps.CallerKey)));
        var wrongScope = await pop3.PostAsync("/v1/dovecot/oauth2/token", Form(("grant_type", "password"), ("username", user), ("password", secret), ("client_id", "dovecot"), ("client_secret", BrokerApps.CallerKey)));

        Assert.Equal(HttpStatusCode.OK, allow.StatusCode);
        Assert.Equal(user, (await Json(allow)).GetProperty("username").GetString());
        if (header == "X-Dovecot-Auth-Service")
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrongScope.StatusCode);
            Assert.Equal("invalid_grant", (await Json(wrongScope)).GetProperty("error").GetString());
        }
        else
        {
            // Dovecot 2.4 takes any 4xx grant reply as a temporary failure: the deny is an inactive
            // token, naming no user, so nothing can log in on it.
            Assert.Equal(HttpStatusCode.OK, wrongScope.StatusCode);
            var deny = await Json(wrongScope);
            Assert.False(deny.GetProperty("active").GetBoolean());
            Assert.False(deny.TryGetProperty("username", out _));
        }
    }

    [Fact]
    public async Task Grant_DeniedPassword_400InvalidGrant_AndMissingServiceIsNotADeny()
    {
        using var client = Client(withKey: false);
        client.DefaultRequestHeaders.Add("X-Dovecot-Auth-Service", "imap");
        client.DefaultRequestHeaders.Add("X-Dovecot-Auth-Remote", "[::1]:5555");

        var denied = await client.PostAsync("/v1/dovecot/oauth2/token", Form(("grant_type", "password"), ("username", "nobody@example.com"), ("password", "nope"), ("client_id", "dovecot"), ("client_secret", BrokerApps.CallerKey)));

        Assert.Equal(HttpStatusCode.BadRequest, denied.StatusCode);
        Assert.Equal("invalid_grant", (await Json(denied)).GetProperty("error").GetString());

        using var noService = Client(withKey: true);
        var misconfigured = await noService.PostAsync("/v1/dovecot/oauth2/token", Form(("grant_type", "password"), ("username", "a@example.com"), ("password", "p")));
        Assert.Equal("invalid_request", (await Json(misconfigured)).GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("token=%ZZ")]
    [InlineData("token=a&token=b")]
    [InlineData("=novalue")]
    public async Task OAuth2Endpoints_MalformedForm_400NeverServerError(string body)
    {
        using var client = Client();

        var introspect = await client.PostAsync("/v1/dovecot/oauth2/introspect", new StringContent(body, Encoding.UTF8, "application/x-www-form-urlencoded"));
        var grant = await client.PostAsync("/v1/dovecot/oauth2/token", new StringContent(body, Encoding.UTF8, "application/x-www-form-urlencoded"));

        Assert.Equal(HttpStatusCode.BadRequest, introspect.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, grant.StatusCode);
    }

    [Fact]
    public async Task OAuth2Endpoints_OversizedBody_400()
    {
        using var client = Client();

        // Over the endpoint's 8 KiB, under the gateway's 16 KiB cap (past that the gateway answers 413 itself).
        var response = await client.PostAsync("/v1/dovecot/oauth2/introspect", new StringContent("token=" + new string('a', 10_000), Encoding.UTF8, "application/x-www-form-urlencoded"));
        var tooLarge = await client.PostAsync("/v1/dovecot/oauth2/introspect", new StringContent("token=" + new string('a', 20_000), Encoding.UTF8, "application/x-www-form-urlencoded"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("")]
    public async Task Policy_MalformedBody_400(string body)
    {
        using var client = Client();

        var response = await client.PostAsync("/v1/dovecot/policy?command=allow", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Policy_UnknownCommandOrNoKey_Refused()
    {
        using var keyed = Client();
        using var anonymous = Client(withKey: false);

        var unknown = await keyed.PostAsync("/v1/dovecot/policy?command=drop", new StringContent("{}", Encoding.UTF8, "application/json"));
        var noKey = await anonymous.PostAsync("/v1/dovecot/policy?command=allow", new StringContent("{}", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode);
    }

    [Fact]
    public async Task Policy_ReportsThenAllow_CountsOnlyFailuresOfThatSource()
    {
        using var client = Client();
        async Task<int> Allow(string ip) =>
            (await Json(await client.PostAsync("/v1/dovecot/policy?command=allow", new StringContent($$"""{"login":"x","remote":"{{ip}}","protocol":"imap"}""", Encoding.UTF8, "application/json")))).GetProperty("status").GetInt32();

        for (var i = 0; i < MailLab.PolicyThreshold; i++)
        {
            var report = await client.PostAsync("/v1/dovecot/policy?command=report", new StringContent("""{"login":"x","remote":"2001:db8::9","success":false,"policy_reject":false}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        }

        // Same /64 is the same source; another /64 is not.
        Assert.Equal(-1, await Allow("2001:db8::1234"));
        Assert.Equal(0, await Allow("2001:db8:0:1::1"));
    }

    [Fact]
    public async Task Nginx_ValidAppPassword_OkWithBackendAndSecret()
    {
        var secret = await lab.IssueAsync("nginx-http@example.com");
        using var client = Client();

        var response = await client.SendAsync(NginxAuthRequests.Plain("nginx-http%40example.com", Uri.EscapeDataString(secret), "192.0.2.10"));

        Assert.Equal("OK", NginxAuthRequests.Header(response, "Auth-Status"));
        Assert.Equal("127.0.0.1", NginxAuthRequests.Header(response, "Auth-Server"));
        Assert.Equal(lab.BackendDovecot.ImapPort.ToString(System.Globalization.CultureInfo.InvariantCulture), NginxAuthRequests.Header(response, "Auth-Port"));
        Assert.Equal(MailLab.BackendSecret, NginxAuthRequests.Header(response, "Auth-Pass"));
    }

    [Fact]
    public async Task OutsideItsAllowedCountry_ThePlainDenyOfEachMailServerProtocol()
    {
        const string user = "abroad@example.com";
        var secret = await lab.IssueAsync(user);
        await lab.AppPasswords.SetAllowedCountriesAsync(user, (await lab.AppPasswords.ListAsync(user)).Single().Id, ["DE"]);
        using var client = Client();
        client.DefaultRequestHeaders.Add("X-Dovecot-Auth-Service", "imap");

        async Task<string?> NginxAsync(string clientIp)
        {
            var request = NginxAuthRequests.Plain("abroad%40example.com", Uri.EscapeDataString(secret), "192.0.2.10");
            request.Headers.Remove("Client-IP");
            request.Headers.Add("Client-IP", clientIp);
            return NginxAuthRequests.Header(await client.SendAsync(request), "Auth-Status");
        }

        async Task<HttpResponseMessage> DovecotAsync(string path, string remote, params (string Key, string Value)[] form)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Form(form) };
            request.Headers.Add("X-Dovecot-Auth-Remote", remote + ":5555");
            return await client.SendAsync(request);
        }

        // nginx: OK from Germany; from Great Britain the same message as a wrong password, never "[UNAVAILABLE]".
        Assert.Equal("OK", await NginxAsync("5.9.1.1"));
        var nginxAbroad = await NginxAsync("81.2.69.142");
        var nginxWrongPassword = NginxAuthRequests.Header(await client.SendAsync(NginxAuthRequests.Plain("abroad%40example.com", "wrong-password", "192.0.2.10")), "Auth-Status");
        Assert.NotEqual("OK", nginxAbroad);
        Assert.Equal(nginxWrongPassword, nginxAbroad);

        // Dovecot's oauth2 passdb: grant allowed at home, invalid_grant (= wrong password) abroad; introspection inactive.
        var home = await DovecotAsync("/v1/dovecot/oauth2/token", "5.9.1.1", ("grant_type", "password"), ("username", user), ("password", secret));
        var abroad = await DovecotAsync("/v1/dovecot/oauth2/token", "81.2.69.142", ("grant_type", "password"), ("username", user), ("password", secret));
        var introspected = await DovecotAsync("/v1/dovecot/oauth2/introspect", "81.2.69.142", ("token", secret), ("username", user));

        Assert.Equal(HttpStatusCode.OK, home.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, abroad.StatusCode);
        Assert.Equal("invalid_grant", (await Json(abroad)).GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.OK, introspected.StatusCode);
        Assert.False((await Json(introspected)).GetProperty("active").GetBoolean());
    }

    [Theory]
    [InlineData("cram-md5", "u", "p")]
    [InlineData("plain", "", "p")]
    [InlineData("plain", "u%ZZ", "p")]
    [InlineData("plain", "u", "%E0%A4")]
    public async Task Nginx_BadOrUnsupportedInput_DenyNeverServerError(string method, string user, string pass)
    {
        using var client = Client();
        var request = NginxAuthRequests.Plain(user, pass, "192.0.2.10");
        request.Headers.Remove("Auth-Method");
        request.Headers.Add("Auth-Method", method);

        var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotEqual("OK", NginxAuthRequests.Header(response, "Auth-Status"));
    }

    [Fact]
    public async Task Nginx_StoreDown_TemporaryFailureMessage()
    {
        var secret = await lab.IssueAsync("nginx-down@example.com");
        // Straight to the validation role: nginx's own auth_http timeout is not what is tested here.
        using var client = lab.Broker.Validation.CreateClient();
        await lab.WithRedisDownAsync(async () =>
        {
            var response = await client.SendAsync(NginxAuthRequests.Plain("nginx-down%40example.com", Uri.EscapeDataString(secret), "192.0.2.10"));

            Assert.StartsWith("[UNAVAILABLE]", NginxAuthRequests.Header(response, "Auth-Status"), StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task DoveadmKick_DovecotUnreachable_LoggedNotThrown()
    {
        var kicker = lab.Broker.Validation.Services.GetRequiredService<DoveadmSessionKicker>();
        var options = Microsoft.Extensions.Options.Options.Create(new DoveadmOptions { Url = $"http://127.0.0.1:{FreePort.Get()}", ApiKey = "k", Timeout = TimeSpan.FromSeconds(1) });
        var monitor = new StaticMonitor(options.Value);
        var unreachable = new DoveadmSessionKicker(lab.Broker.Validation.Services.GetRequiredService<IHttpClientFactory>(), monitor, Microsoft.Extensions.Logging.Abstractions.NullLogger<DoveadmSessionKicker>.Instance);

        Assert.False(await unreachable.KickAsync("someone@example.com", CancellationToken.None));
        Assert.True(await kicker.KickAsync("nobody-logged-in@example.com", CancellationToken.None));
    }


    private static FormUrlEncodedContent Form(params (string Key, string Value)[] fields) =>
        new(fields.Select(f => new KeyValuePair<string, string>(f.Key, f.Value)));

    private static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    private sealed class StaticMonitor(DoveadmOptions value) : Microsoft.Extensions.Options.IOptionsMonitor<DoveadmOptions>
    {
        public DoveadmOptions CurrentValue => value;

        public DoveadmOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<DoveadmOptions, string?> listener) => null;
    }
}
