using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Validation.Tests.Validation;

/// <summary>POST /v1/validate through real HTTP against a real redis-server.</summary>
#pragma warning disable CA1001 // Disposed in DisposeAsync (xunit's IAsyncLifetime).
public sealed class ValidationApiTests(RedisFixture redis) : IClassFixture<RedisFixture>, IAsyncLifetime
#pragma warning restore CA1001
{
    private readonly CapturingLoggerProvider _logs = new();
    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();
    private RunningApp _app = null!;
    private HttpClient _client = null!;
    private readonly string _user = $"alice-{Guid.NewGuid():N}@example.com";

    public async Task InitializeAsync()
    {
        var config = BrokerApps.BaseConfig(redis.Server.Configuration);
        config["Logging:LogLevel:Default"] = "Trace";
        config["Broker:GeoIp:CountryDatabase"] = _countries.Path;
        _app = await BrokerApps.StartValidationAsync(config, logs: _logs);
        _client = _app.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
        _logs.Dispose();
        _countries.Dispose();
    }

    private Task<HttpResponseMessage> Validate(object body, HttpClient? client = null) =>
        (client ?? _client).PostAsJsonAsync("/v1/validate", body);

    private Task<HttpResponseMessage> ValidateRaw(string body, string contentType = "application/json") =>
        _client.PostAsync("/v1/validate", new StringContent(body, Encoding.UTF8, contentType));

    [Fact]
    public async Task ValidAppPassword_Returns200WithCanonicalUserAndCredentialId()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "Thunderbird", ["imap"], null);

        using var response = await Validate(new { username = "  " + _user.ToUpperInvariant(), password = issued.Secret, service = "imap", remoteIp = "198.51.100.7", clientId = "Thunderbird" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("allow", body.GetProperty("result").GetString());
        Assert.Equal(_user, body.GetProperty("username").GetString());
        Assert.Equal(issued.AppPassword.Id, body.GetProperty("credentialId").GetString());
        var lastUse = (await _app.AppPasswords.ListAsync(_user)).Single().LastUsed;
        Assert.Equal("198.51.100.7", lastUse?.RemoteIp);
    }

    [Fact]
    public async Task EveryDenyReason_GetsTheSameFixed403Body()
    {
        var imapOnly = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        var revoked = await _app.AppPasswords.IssueAsync(_user, "B", ["imap"], null);
        await _app.AppPasswords.RevokeAsync(_user, revoked.AppPassword.Id);
        var germanyOnly = await _app.AppPasswords.IssueAsync(_user, "C", ["imap"], null);
        await _app.AppPasswords.SetAllowedCountriesAsync(_user, germanyOnly.AppPassword.Id, ["DE"]);
        var officeOnly = await _app.AppPasswords.IssueAsync(_user, "D", ["imap"], null);
        await _app.AppPasswords.SetAllowedNetworksAsync(_user, officeOnly.AppPassword.Id, ["192.0.2.0/24"]);

        object[] attempts =
        [
            new { username = _user, password = AppPasswordFormat.Generate(), service = "imap" },
            new { username = _user, password = "the account password", service = "imap" },
            new { username = _user, password = revoked.Secret, service = "imap" },
            new { username = _user, password = imapOnly.Secret, service = "pop3" },
            new { username = _user, password = imapOnly.Secret, service = "imap", mech = "XOAUTH2" },
            new { username = _user, password = string.Empty, service = "imap" },
            new { username = "nobody@example.com", password = imapOnly.Secret, service = "imap" },
            new { username = new string('a', 300), password = imapOnly.Secret, service = "imap" },
            new { username = _user, password = germanyOnly.Secret, service = "imap", remoteIp = "81.2.69.142" },
            new { username = _user, password = germanyOnly.Secret, service = "imap", remoteIp = "10.1.2.3" },
            new { username = _user, password = officeOnly.Secret, service = "imap", remoteIp = "81.2.69.142" },
        ];
        var bodies = new HashSet<string>();
        foreach (var attempt in attempts)
        {
            using var response = await Validate(attempt);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            bodies.Add(await response.Content.ReadAsStringAsync());
        }

        Assert.Equal("{\"result\":\"deny\"}", Assert.Single(bodies));
    }

    [Fact]
    public async Task DenyReasons_AreLoggedInternally_WithoutTheSecret()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        await _app.AppPasswords.RevokeAsync(_user, issued.AppPassword.Id);

        using var response = await Validate(new { username = _user, password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains(_logs.Lines, l => l.Contains("Validation denied", StringComparison.Ordinal) && l.Contains("Revoked", StringComparison.Ordinal) && l.Contains(_user, StringComparison.Ordinal));
        AppPasswordFormat.TryCanonicalize(issued.Secret, out var canonical);
        Assert.DoesNotContain(_logs.Lines, l => l.Contains(issued.Secret, StringComparison.OrdinalIgnoreCase) || l.Contains(canonical, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(_logs.Lines, l => l.Contains(BrokerApps.CallerKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task DeniesAndFirstUseFromANetwork_GoToTheAuditOutbox_WithoutSecrets()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        (await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "198.51.100.9", clientId = "\"name\" \"Thunderbird\"" })).Dispose();
        (await Validate(new { username = _user, password = issued.Secret, service = "pop3", remoteIp = "198.51.100.9" })).Dispose();
        await _app.AppPasswords.SetAllowedNetworksAsync(_user, issued.AppPassword.Id, ["198.51.100.0/24"]);
        (await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "203.0.113.80" })).Dispose();

        var outbox = _app.Services.GetRequiredService<Broker.Core.Audit.AuditOutbox>();
        var events = new List<Broker.Core.Audit.AuditEvent>();
        for (var i = 0; i < 50 && events.Count(e => e.Username == _user) < 3; i++)
        {
            events.AddRange(await outbox.DequeueAsync(1000));
            await Task.Delay(20);
        }

        var mine = events.Where(e => e.Username == _user).ToList();
        Assert.Contains(mine, e => e.Kind == "App password used from a new network" && e.RemoteIp == "198.51.100.9" && e.Client == "\"name\" \"Thunderbird\"" && e.Caller == "test");
        Assert.Contains(mine, e => e.Kind == "Mail login denied" && e.Detail.Contains("ScopeNotAllowed", StringComparison.Ordinal));
        // The right secret from outside its allowed networks: its own kind, which mails the owner a warning.
        Assert.Contains(mine, e => e.Kind == "App password used outside its allowed networks or countries" && e.Detail.Contains("NetworkNotAllowed", StringComparison.Ordinal) && e.RemoteIp == "203.0.113.80");
        AppPasswordFormat.TryCanonicalize(issued.Secret, out var canonical);
        Assert.DoesNotContain(mine, e => e.Detail.Contains(canonical, StringComparison.OrdinalIgnoreCase) || e.Detail.Contains(issued.Secret, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task UnapprovedNetwork_Returns503TempFail_UntilApproved()
    {
        await _app.AppPasswords.SetNewNetworkApprovalAsync(_user, true);
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null, approvedFromIp: "192.0.2.1");

        using var held = await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "203.0.113.5" });
        await _app.AppPasswords.ApproveNetworkAsync(_user, issued.AppPassword.Id, "203.0.113.0/24");
        using var approved = await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "203.0.113.5" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, held.StatusCode);
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
    }

    [Fact]
    public async Task ApprovalRequired_WithoutRemoteIp_IsDenied_AndTheReasonIsLoggedAndAudited()
    {
        await _app.AppPasswords.SetNewNetworkApprovalAsync(_user, true);
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null, approvedFromIp: "192.0.2.1");

        using var response = await Validate(new { username = _user, password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains(_logs.Lines, l => l.Contains("Validation denied", StringComparison.Ordinal) && l.Contains("NoClientAddress", StringComparison.Ordinal) && l.Contains(_user, StringComparison.Ordinal));
        var outbox = _app.Services.GetRequiredService<Broker.Core.Audit.AuditOutbox>();
        var events = new List<Broker.Core.Audit.AuditEvent>();
        for (var i = 0; i < 50 && !events.Any(e => e.Username == _user); i++)
        {
            events.AddRange(await outbox.DequeueAsync(1000));
            await Task.Delay(20);
        }

        Assert.Contains(events, e => e.Username == _user && e.Kind == "Mail login denied" && e.Detail.Contains("NoClientAddress", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UsernameWithInvisibleCharacter_IsDeniedAsMalformed()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        // Looks like the real user in a log or the audit trail, but is not their name.
        var lookalike = "\u200B" + _user;

        using var response = await Validate(new { username = lookalike, password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains(_logs.Lines, l => l.Contains("Validation denied (malformed): Malformed", StringComparison.Ordinal));
        Assert.DoesNotContain(_logs.Lines, l => l.Contains(lookalike, StringComparison.Ordinal));
    }

    [Fact]
    public async Task MissingOrWrongCallerKey_Returns401()
    {
        using var anonymous = _app.CreateClient(withCallerKey: false);
        using var wrong = _app.CreateClient(withCallerKey: false);
        wrong.DefaultRequestHeaders.Add("X-Broker-Api-Key", "bk_not-a-key");

        using var r1 = await Validate(new { username = _user, password = "x", service = "imap" }, anonymous);
        using var r2 = await Validate(new { username = _user, password = "x", service = "imap" }, wrong);

        Assert.Equal(HttpStatusCode.Unauthorized, r1.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, r2.StatusCode);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "not valid JSON")]
    [InlineData("null", "JSON object")]
    [InlineData("{\"password\":\"x\",\"service\":\"imap\"}", "username is required")]
    [InlineData("{\"username\":\"a\",\"service\":\"imap\"}", "password is required")]
    [InlineData("{\"username\":\"a\",\"password\":\"x\"}", "service is required")]
    [InlineData("{\"username\":1,\"password\":\"x\",\"service\":\"imap\"}", "not valid JSON")]
    [InlineData("{\"username\":\"a\",\"password\":\"x\",\"service\":\"imap\",\"remoteIp\":\"not-an-ip\"}", "remoteIp")]
    [InlineData("{\"username\":\"a\",\"password\":\"x\",\"service\":\"imap\",\"localPort\":70000}", "Ports")]
    public async Task MalformedRequests_Return400WithAReason(string body, string reason)
    {
        using var response = await ValidateRaw(body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(reason, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"service\":\"pop3\",\"service\":\"imap\"")]
    [InlineData("\"service\":\"pop3\",\"Service\":\"imap\"")]
    [InlineData("\"service\":\"imap\",\"remoteIp\":\"192.0.2.1\",\"REMOTEIP\":\"198.51.100.1\"")]
    public async Task FieldNamedTwice_Returns400_NotTheLastOneWins(string fields)
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);

        using var response = await ValidateRaw($"{{\"username\":\"{_user}\",\"password\":\"{issued.Secret}\",{fields}}}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString();
        Assert.Contains("named twice", detail, StringComparison.Ordinal);
        Assert.DoesNotContain(issued.Secret, detail, StringComparison.Ordinal);
        Assert.Null(Assert.Single(await _app.AppPasswords.ListAsync(_user)).LastUsed);
    }

    [Fact]
    public async Task BrokenJson_TheReasonSaysWhere_NeverQuotesTheBody()
    {
        // An unquoted password: the JSON reader's own message would quote its first character.
        using var response = await ValidateRaw("{\"username\":\"a\",\"password\":Zq7-secret,\"service\":\"imap\"}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var detail = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!;
        Assert.Contains("$.password", detail, StringComparison.Ordinal);
        Assert.DoesNotContain("Z", detail, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OversizedBody_Returns400_WithoutReadingItAll()
    {
        var body = "{\"username\":\"a\",\"password\":\"" + new string('x', 100_000) + "\",\"service\":\"imap\"}";

        using var response = await ValidateRaw(body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("larger than", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OverlongField_Returns400()
    {
        using var response = await Validate(new { username = "a", password = "x", service = "imap", clientId = new string('c', 600) });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task NonUtf8Body_Returns400()
    {
        using var content = new ByteArrayContent([(byte)'{', 0xff, 0xfe, (byte)'}']);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        using var response = await _client.PostAsync("/v1/validate", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("UTF-8", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, "[]", "400")]
    [InlineData(false, "{}", "401")]
    public async Task ProblemAnswers_CarryAContentLength_NeverChunked(bool withKey, string body, string status)
    {
        // Mail servers read one answer with one read; docs/validation-api.md promises a Content-Length.
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, _app.Address.Port);
        await using var stream = new System.Net.Sockets.NetworkStream(socket);
        var key = withKey ? $"X-Broker-Api-Key: {BrokerApps.CallerKey}\r\n" : string.Empty;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/validate HTTP/1.1\r\nHost: broker\r\n{key}Content-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        using var received = new MemoryStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.CopyToAsync(received, timeout.Token);
        var raw = Encoding.UTF8.GetString(received.ToArray());
        var end = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);

        Assert.StartsWith($"HTTP/1.1 {status}", raw, StringComparison.Ordinal);
        var head = raw[..(end + 2)];
        Assert.DoesNotContain("Transfer-Encoding", head, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(raw[(end + 4)..])}\r\n", head, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("application/problem+json", head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Expect100Continue_IsHandled()
    {
        // Dovecot's HTTP client sends Expect: 100-continue on every POST.
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        _client.DefaultRequestHeaders.ExpectContinue = true;

        using var response = await Validate(new { username = _user, password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Metrics_CountValidationsByResultAndReason()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "A", ["imap"], null);
        (await Validate(new { username = _user, password = issued.Secret, service = "imap" })).Dispose();
        (await Validate(new { username = _user, password = issued.Secret, service = "pop3" })).Dispose();

        // The Prometheus exporter caches a scrape for a short time; ask until the counters show up.
        string metrics = string.Empty;
        for (var i = 0; i < 50 && !metrics.Contains("reason=\"scopenotallowed\"", StringComparison.Ordinal); i++)
        {
            await Task.Delay(100);
            metrics = await _client.GetStringAsync("/metrics");
        }

        Assert.Contains("broker_validations_total{", metrics, StringComparison.Ordinal);
        Assert.Matches("broker_validations_total\\{[^}]*result=\"allow\"", metrics);
        Assert.Matches("broker_validations_total\\{[^}]*reason=\"scopenotallowed\"[^}]*result=\"deny\"|broker_validations_total\\{[^}]*result=\"deny\"[^}]*reason=\"scopenotallowed\"", metrics);
        Assert.Contains("broker_validation_duration_seconds_bucket", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CountryDenial_IsThePlainDeny_LoggedAndCountedWithItsReason()
    {
        var issued = await _app.AppPasswords.IssueAsync(_user, "Laptop", ["imap"], null);
        await _app.AppPasswords.SetAllowedCountriesAsync(_user, issued.AppPassword.Id, ["DE"]);

        using var home = await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "5.9.1.1" });
        using var abroad = await Validate(new { username = _user, password = issued.Secret, service = "imap", remoteIp = "81.2.69.142" });

        Assert.Equal(HttpStatusCode.OK, home.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, abroad.StatusCode);
        Assert.Equal("{\"result\":\"deny\"}", await abroad.Content.ReadAsStringAsync());
        Assert.Contains(_logs.Lines, l => l.Contains("Validation denied", StringComparison.Ordinal) && l.Contains("CountryNotAllowed", StringComparison.Ordinal) && l.Contains(_user, StringComparison.Ordinal));
        string metrics = string.Empty;
        for (var i = 0; i < 50 && !metrics.Contains("reason=\"countrynotallowed\"", StringComparison.Ordinal); i++)
        {
            await Task.Delay(100);
            metrics = await _client.GetStringAsync("/metrics");
        }

        Assert.Contains("reason=\"countrynotallowed\"", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_LiveAndReadyAreUp()
    {
        using var live = await _client.GetAsync("/health/live");
        using var ready = await _client.GetAsync("/health/ready");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }
}
