using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Broker.Core.Callers;
using Broker.Testing;
using Broker.Validation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Gateway.Tests.Routing;

/// <summary>The YARP front door in front of real validation instances backed by a real redis-server.</summary>
public sealed class GatewayTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static Dictionary<string, string?> GatewayConfig(params RunningApp[] destinations)
    {
        var config = new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Broker:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["Broker:Gateway:HealthCheckTimeout"] = "00:00:00.500",
        };
        for (var i = 0; i < destinations.Length; i++)
        {
            config[$"Broker:Gateway:ValidationDestinations:v{i}"] = destinations[i].Address.ToString();
        }

        return config;
    }

    /// <summary>A validation instance with one extra endpoint that reports which instance answered and whom it saw.</summary>
    private Task<RunningApp> StartValidation(string name, IDictionary<string, string?>? extra = null) =>
        BrokerApps.StartAsync(
            BrokerApps.BaseConfig(redis.Server.Configuration, PepperForAll).Concat(extra ?? new Dictionary<string, string?>()).ToDictionary(),
            s => s.AddBrokerValidation(),
            app =>
            {
                app.MapBrokerValidation();
                app.MapGet("/v1/whoami", (HttpContext c) => $"{name} {c.Connection.RemoteIpAddress}");
                app.MapPost("/v1/echo", async (HttpContext c) =>
                    $"expect=[{c.Request.Headers.Expect}] length={c.Request.ContentLength} body={await new StreamReader(c.Request.Body).ReadToEndAsync()}");
            });

    private static readonly string PepperForAll = Convert.ToBase64String(new byte[32]);

    private static HttpClient Client(RunningApp gateway, string? forwardedFor = null)
    {
        var client = gateway.CreateClient();
        if (forwardedFor is not null)
        {
            client.DefaultRequestHeaders.Add("X-Forwarded-For", forwardedFor);
        }

        return client;
    }

    [Fact]
    public async Task ValidationRoute_ForwardsToAValidationInstance()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        var issued = await validation.AppPasswords.IssueAsync("carol@example.com", "A", ["imap"], null);
        using var client = Client(gateway);

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "carol@example.com", password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task SourceOutsideAllowedNetworks_Gets403BeforeAnyValidation()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:AllowedNetworks:0"] = "192.0.2.0/24";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var client = Client(gateway);

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });
        using var health = await client.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("not an allowed mail server", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Healthy", await health.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task PerSourceRateLimit_Returns429PastTheLimit()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:RateLimitPermits"] = "5";
        config["Broker:Gateway:RateLimitWindow"] = "00:01:00";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var client = Client(gateway);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });
            statuses.Add(response.StatusCode);
        }

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.Forbidden));
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task LoadIsBalanced_AndADeadInstanceIsTakenOut()
    {
        var a = await StartValidation("a");
        await using var b = await StartValidation("b");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(a, b));
        using var client = Client(gateway);

        var seen = new HashSet<string>();
        for (var i = 0; i < 40; i++)
        {
            seen.Add((await client.GetStringAsync("/v1/whoami")).Split(' ')[0]);
        }

        Assert.Equal(["a", "b"], seen.Order());

        await a.DisposeAsync();
        // Give the active health check (200 ms interval) time to notice.
        await Task.Delay(1500);
        var afterDeath = new List<HttpStatusCode>();
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("/v1/whoami");
            afterDeath.Add(response.StatusCode);
            if (response.IsSuccessStatusCode)
            {
                Assert.StartsWith("b ", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }

        Assert.All(afterDeath, s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task InstanceDownOrNotReady_IsLoggedInOneLineUntilMarkedUnhealthy_AndItsReturnOnce()
    {
        var ready = false;
        await using var flaky = await BrokerApps.StartAsync(
            new Dictionary<string, string?>(),
            _ => { },
            app => app.MapGet("/health/ready", () => ready ? Results.Ok("ready") : Results.StatusCode(503)));
        var dead = await StartValidation("dead");
        var logs = new CapturingLoggerProvider();
        var config = GatewayConfig(dead, flaky);
        config["Logging:LogLevel:Default"] = "Information";
        await using var gateway = await BrokerApps.StartGatewayAsync(config, logs);
        await dead.DisposeAsync();

        // About ten probes of each at the 200 ms interval.
        await Task.Delay(2000);
        ready = true;
        await Task.Delay(1000);

        var lines = logs.Lines.ToList();
        var deadFailures = lines.Where(l => l.Contains("[5002] Readiness probe of validation instance v0", StringComparison.Ordinal)).ToList();
        var flakyFailures = lines.Where(l => l.Contains("[5002] Readiness probe of validation instance v1", StringComparison.Ordinal)).ToList();
        // YARP's own policy marks an instance unhealthy after two failed probes in a row; after that, silence.
        Assert.InRange(deadFailures.Count, 1, 2);
        Assert.InRange(flakyFailures.Count, 1, 2);
        Assert.All(deadFailures, l => Assert.Contains("failed: Connection refused", l, StringComparison.Ordinal));
        Assert.All(flakyFailures, l => Assert.Contains("failed: answered 503 (not ready)", l, StringComparison.Ordinal));
        Assert.Single(lines, l => l.Contains("[5003] validation instance v1", StringComparison.Ordinal) && l.Contains("ready again", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("[5003] validation instance v0", StringComparison.Ordinal));
        // No probe failure with a stack trace from YARP's monitor.
        Assert.DoesNotContain(lines, l => l.Contains("ActiveHealthCheckMonitor", StringComparison.Ordinal) && !l.StartsWith("Error", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("   at System.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProbeFailure_OverTls_SaysWhyInItsOneLine()
    {
        // YARP's own warning, with the inner exceptions, is turned down; the one line must not stop
        // at .NET's "The SSL connection could not be established, see inner exception."
        using var certificate = SelfSignedCertificate();
        await using var untrusted = await BrokerApps.StartAsync(
            new Dictionary<string, string?>(),
            s => s.Configure<KestrelServerOptions>(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate))),
            app => app.MapGet("/health/ready", () => "ready"));
        var logs = new CapturingLoggerProvider();
        var config = GatewayConfig(untrusted);
        config["Broker:Gateway:HealthCheckTimeout"] = "00:00:05";
        await using var gateway = await BrokerApps.StartGatewayAsync(config, logs);

        await Task.Delay(1000);

        var failures = logs.Lines.Where(l => l.Contains("[5002]", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(failures);
        Assert.All(failures, l => Assert.Contains("remote certificate", l, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task NoInstanceReady_RequestsStillReachThem_AndGetTheirOwnTemporaryFailure()
    {
        // A validation instance whose Redis is down: not ready, and it answers every login "tempfail".
        await using var unready = await BrokerApps.StartAsync(
            new Dictionary<string, string?>(),
            _ => { },
            app =>
            {
                app.MapGet("/health/ready", () => Results.StatusCode(503));
                app.MapPost("/v1/validate", () => Results.Json(new { result = "tempfail" }, statusCode: 503));
            });
        var logs = new CapturingLoggerProvider();
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(unready), logs);
        using var client = Client(gateway);
        // Marked unhealthy after two failed probes at the 200 ms interval.
        await Task.Delay(1500);
        Assert.Contains(logs.Lines, l => l.Contains("is set to 'Unhealthy'", StringComparison.Ordinal));

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("""{"result":"tempfail"}""", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task LoginWithABody_BalancedOntoAnInstanceThatRefusesConnections_GoesToAnotherOne()
    {
        var stopped = await StartValidation("a");
        await using var live = await StartValidation("b");
        var config = GatewayConfig(stopped, live);
        // No probe marks the stopped one unhealthy during the test: only the retry can route around it.
        config["Broker:Gateway:HealthCheckInterval"] = "00:10:00";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        await stopped.DisposeAsync();
        var issued = await live.AppPasswords.IssueAsync("dora@example.com", "A", ["imap"], null);
        using var client = Client(gateway);

        for (var i = 0; i < 20; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "dora@example.com", password = issued.Secret, service = "imap" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task LoginReceivedByAnInstanceThatDiesBeforeAnswering_IsNotSentToAnotherInstance()
    {
        // nginx's auth_http is a GET without a body. Sent on a kept-alive connection to an instance
        // that read it and then died, HttpClient sends it again on a new connection by itself; that
        // connection is refused, and the error reads "could not connect" although the first instance
        // had the login. Sent on to another instance, it would be counted and audited twice.
        await using var dying = new DyingInstance();
        var seenByOther = new ConcurrentBag<string>();
        await using var other = await BrokerApps.StartAsync(
            new Dictionary<string, string?>(),
            _ => { },
            app =>
            {
                app.MapGet("/health/ready", () => "ready");
                app.MapGet("/v1/nginx/auth", (HttpContext c) =>
                {
                    seenByOther.Add(c.Request.Headers["X-Test-Id"].ToString());
                    c.Response.Headers["Auth-Status"] = "OK";
                    return "OK";
                });
            });
        var config = new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Broker:Gateway:ValidationDestinations:v0"] = dying.Address.ToString(),
            ["Broker:Gateway:ValidationDestinations:v1"] = other.Address.ToString(),
            // No probe in between to take the dying instance out, or to hold a connection to it.
            ["Broker:Gateway:HealthCheckInterval"] = "00:10:00",
        };
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var client = Client(gateway);
        async Task<HttpStatusCode> Login(string id)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nginx/auth");
            request.Headers.Add("X-Test-Id", id);
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }

        // One login answered by it first, so that the gateway holds a kept-alive connection to it.
        for (var i = 0; dying.Answered == 0; i++)
        {
            Assert.True(i < 100, "no login was balanced onto the first instance");
            Assert.Equal(HttpStatusCode.OK, await Login($"warm-{i}"));
        }

        dying.DieOnNextLogin();
        var statuses = new Dictionary<string, HttpStatusCode>();
        for (var i = 0; dying.DiedOn is null; i++)
        {
            Assert.True(i < 100, "no login was balanced onto the first instance");
            statuses[$"fatal-{i}"] = await Login($"fatal-{i}");
        }

        Assert.DoesNotContain(dying.DiedOn, seenByOther);
        Assert.Equal(HttpStatusCode.BadGateway, statuses[dying.DiedOn]);
    }

    [Fact]
    public async Task DeadInstanceStillInRotation_EachFailureOrRetryIsOneLogLine_WithoutAStackTrace()
    {
        var dead = await StartValidation("dead");
        await using var live = await StartValidation("live");
        var logs = new CapturingLoggerProvider();
        var config = GatewayConfig(dead, live);
        // Probes far apart, so the dead instance stays in the rotation for the whole test.
        config["Broker:Gateway:HealthCheckInterval"] = "00:01:00";
        await using var gateway = await BrokerApps.StartGatewayAsync(config, logs);
        using var client = Client(gateway);
        await dead.DisposeAsync();

        // A POST with a body is sent to the live instance when the dead one cannot be connected to
        // (ConnectRetry); a bodiless GET that lands on the dead one is a 502.
        var posts = new List<HttpStatusCode>();
        var gets = new List<HttpStatusCode>();
        // Each request picks one of the two at random: 12 of each miss the dead one once in 4096 runs.
        for (var i = 0; i < 12; i++)
        {
            using var post = await client.PostAsync("/v1/echo", new StringContent("body " + i));
            posts.Add(post.StatusCode);
            using var get = await client.GetAsync("/v1/whoami");
            gets.Add(get.StatusCode);
        }

        Assert.All(posts, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Contains(HttpStatusCode.BadGateway, gets);
        var lines = logs.Lines.ToList();
        Assert.Contains(lines, l => l.Contains("[5005] validation instance v0 could not be connected to (Connection refused", StringComparison.Ordinal));
        Assert.Equal(
            gets.Count(s => s == HttpStatusCode.BadGateway),
            lines.Count(l => l.Contains("[5004] Could not forward GET /v1/whoami to validation instance v0: Request, Connection refused", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l.Contains("Yarp.ReverseProxy.Forwarder.HttpForwarder", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("   at System.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AllInstancesDead_AnswersAnErrorNeverAnAllow()
    {
        var a = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(a));
        using var client = Client(gateway);
        await a.DisposeAsync();

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });

        Assert.True((int)response.StatusCode >= 500, $"got {response.StatusCode}");
    }

    [Fact]
    public async Task ValidatorSeesTheCallersAddress_AndAForgedForwardedForIsNotTrusted()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var client = Client(gateway, forwardedFor: "203.0.113.66");

        using var whoami = await client.GetAsync("/v1/whoami");
        var seen = await whoami.Content.ReadAsStringAsync();

        // The gateway replaces X-Forwarded-For with the address it saw; the client's claim is dropped.
        Assert.True(whoami.IsSuccessStatusCode, seen);
        Assert.Equal("a 127.0.0.1", seen);
    }

    [Fact]
    public async Task ForwardedFor_FromAConfiguredTrustedProxy_ReachesTheValidator()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:TrustedProxies:0"] = "127.0.0.1";
        config["Broker:Gateway:AllowedNetworks:0"] = "203.0.113.0/24";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var viaProxy = Client(gateway, forwardedFor: "203.0.113.66");
        using var direct = Client(gateway);

        using var allowed = await viaProxy.GetAsync("/v1/whoami");
        using var refused = await direct.GetAsync("/v1/whoami");

        Assert.Equal("a 203.0.113.66", await allowed.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task CallerKey_IsPassedThroughToTheValidator()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var anonymous = new HttpClient { BaseAddress = gateway.Address };

        using var response = await anonymous.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.False(response.Headers.Contains(CallerKeyOptions.HeaderName));
    }

    [Fact]
    public async Task NginxAuth_NonAsciiUsernameAsRawUtf8_IsForwardedAndAllowed()
    {
        // nginx's auth_http escapes only space, '%' and control characters in Auth-User/Auth-Pass:
        // "jürgen" arrives as raw UTF-8 bytes. Kestrel reads them as UTF-8; the forwarder must send them
        // on the same way (HttpClient refuses non-ASCII header values by default: a 502, which nginx
        // turns into "* BAD internal server error" for every such user).
        await using var validation = await StartValidation("a", new Dictionary<string, string?> { ["Broker:Nginx:Backends:imap"] = "127.0.0.1:1143" });
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        var issued = await validation.AppPasswords.IssueAsync("jürgen@example.com", "A", ["imap"], null);
        using var handler = new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => System.Text.Encoding.UTF8 };
        using var nginxLike = new HttpClient(handler) { BaseAddress = gateway.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nginx/auth");
        request.Headers.Add(CallerKeyOptions.HeaderName, BrokerApps.CallerKey);
        request.Headers.Add("Auth-Method", "plain");
        request.Headers.Add("Auth-User", "Jürgen@example.com");
        request.Headers.Add("Auth-Pass", issued.Secret);
        request.Headers.Add("Auth-Protocol", "imap");
        request.Headers.Add("Auth-Login-Attempt", "1");
        request.Headers.Add("Client-IP", "127.0.0.1");

        using var response = await nginxLike.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("OK", string.Join(",", response.Headers.GetValues("Auth-Status")));
    }

    [Fact]
    public async Task ExpectContinue_IsAnsweredByTheGateway_AndTheBodyArrivesWhole()
    {
        // Dovecot's Lua HTTP client sends Expect: 100-continue and holds the body until "100 Continue".
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, gateway.Address.Port);
        await using var stream = new System.Net.Sockets.NetworkStream(socket);
        const string body = "{\"hello\":\"dovecot\"}";

        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
            $"POST /v1/echo HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {body.Length}\r\n\r\n"));
        var interim = await ReadUntilAsync(stream, "\r\n\r\n");
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(body));
        var final = await ReadUntilAsync(stream, "body=" + body);

        Assert.StartsWith("HTTP/1.1 100 Continue", interim, StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200", final, StringComparison.Ordinal);
        // Forwarded without the Expect header: the validation instance gets headers and body together.
        Assert.Contains($"expect=[] length={body.Length} body={body}", final, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChunkedBody_IsForwardedWithItsLength()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var client = Client(gateway);
        using var content = new StreamContent(new MemoryStream("chunked body"u8.ToArray()));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/echo") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("expect=[] length=12 body=chunked body", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OversizedBody_Gets413_AndNeverReachesValidation(bool chunked)
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var client = Client(gateway);
        var big = new byte[MachineApiBodyLimit + 1];
        using HttpContent content = chunked ? new StreamContent(new MemoryStream(big)) : new ByteArrayContent(big);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/echo") { Content = content };
        request.Headers.TransferEncodingChunked = chunked;

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("at most", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http2_BodyWithoutContentLength_IsCappedToo_AndASmallOneIsForwardedWithItsLength()
    {
        // HTTP/2 (and HTTP/3) send a body in frames, with neither Content-Length nor Transfer-Encoding.
        await using var validation = await StartValidation("a");
        using var certificate = SelfSignedCertificate();
        await using var gateway = await BrokerApps.StartAsync(
            GatewayConfig(validation),
            s =>
            {
                s.AddBrokerGateway();
                s.Configure<KestrelServerOptions>(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate)));
            },
            app => app.MapBrokerGateway());
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == certificate.GetCertHashString();
        using var client = new HttpClient(handler) { BaseAddress = gateway.Address };
        client.DefaultRequestHeaders.Add(CallerKeyOptions.HeaderName, BrokerApps.CallerKey);

        using var small = await client.SendAsync(Http2Post("/v1/echo", "framed body"u8.ToArray()));
        using var big = await client.SendAsync(Http2Post("/v1/echo", new byte[MachineApiBodyLimit + 1]));

        Assert.Equal(HttpVersion.Version20, small.Version);
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal("expect=[] length=11 body=framed body", await small.Content.ReadAsStringAsync());
        Assert.Equal(HttpVersion.Version20, big.Version);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, big.StatusCode);
        Assert.Contains("at most", await big.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PortalAffinityCookie_OverHttps_IsSecureHttpOnlyAndSameSiteLax()
    {
        await using var portal = await BrokerApps.StartAsync(new Dictionary<string, string?>(), _ => { }, app => app.MapGet("/", () => "portal"));
        await using var validation = await StartValidation("a");
        using var certificate = SelfSignedCertificate();
        var config = GatewayConfig(validation);
        config["Broker:Gateway:PortalDestinations:p0"] = portal.Address.ToString();
        await using var gateway = await BrokerApps.StartAsync(
            config,
            s =>
            {
                s.AddBrokerGateway();
                s.Configure<KestrelServerOptions>(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate)));
            },
            app => app.MapBrokerGateway());
        using var handler = new SocketsHttpHandler { UseCookies = false };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == certificate.GetCertHashString();
        using var client = new HttpClient(handler) { BaseAddress = gateway.Address };

        using var page = await client.GetAsync("/");

        Assert.Equal("portal", await page.Content.ReadAsStringAsync());
        var cookie = Assert.Single(page.Headers.GetValues("Set-Cookie"), c => c.StartsWith(".Broker.Affinity=", StringComparison.Ordinal));
        var attributes = cookie.Split(';', StringSplitOptions.TrimEntries).Skip(1).Select(a => a.ToLowerInvariant()).ToList();
        Assert.Contains("secure", attributes);
        Assert.Contains("httponly", attributes);
        Assert.Contains("samesite=lax", attributes);
    }

    private static HttpRequestMessage Http2Post(string path, byte[] body) => new(HttpMethod.Post, path)
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Content = new UnknownLengthContent(body),
    };

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 SelfSignedCertificate()
    {
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>A body whose length the client does not announce (no Content-Length header).</summary>
    private sealed class UnknownLengthContent(byte[] body) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => stream.WriteAsync(body).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task ProblemAnswers_CarryAContentLength_NeverChunked()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        var refusingConfig = GatewayConfig(validation);
        refusingConfig["Broker:Gateway:AllowedNetworks:0"] = "192.0.2.0/24";
        await using var refusing = await BrokerApps.StartGatewayAsync(refusingConfig);
        var big = new string('a', MachineApiBodyLimit + 1);
        const string json = "{\"username\":\"x\",\"password\":\"y\",\"service\":\"imap\"}";
        var key = $"{CallerKeyOptions.HeaderName}: {BrokerApps.CallerKey}\r\n";

        // The gateway's own answers: source not allowed (403), body too large (413).
        var notAllowed = await RawAsync(refusing, $"POST /v1/validate HTTP/1.1\r\nHost: broker\r\n{key}Content-Type: application/json\r\nContent-Length: {json.Length}\r\nConnection: close\r\n\r\n{json}");
        var tooLarge = await RawAsync(gateway, $"POST /v1/validate HTTP/1.1\r\nHost: broker\r\n{key}Content-Type: application/json\r\nContent-Length: {big.Length}\r\nConnection: close\r\n\r\n{big}");
        // The validation role's, passed through: malformed (400), no caller key (401).
        var malformed = await RawAsync(gateway, $"POST /v1/validate HTTP/1.1\r\nHost: broker\r\n{key}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]");
        var noKey = await RawAsync(gateway, $"POST /v1/validate HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\nConnection: close\r\n\r\n{json}");

        foreach (var (status, raw) in new[] { ("403", notAllowed), ("413", tooLarge), ("400", malformed), ("401", noKey) })
        {
            var (head, body) = SplitResponse(raw);
            Assert.StartsWith($"HTTP/1.1 {status}", head, StringComparison.Ordinal);
            Assert.DoesNotContain("Transfer-Encoding", head, StringComparison.OrdinalIgnoreCase);
            Assert.Contains($"Content-Length: {System.Text.Encoding.UTF8.GetByteCount(body)}\r\n", head, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("application/problem+json", head, StringComparison.Ordinal);
            Assert.Contains($"\"status\":{status}", body, StringComparison.Ordinal);
        }
    }

    /// <summary>Sends raw HTTP/1.1 (with Connection: close) and returns everything the server sent back.</summary>
    private static async Task<string> RawAsync(RunningApp app, string request)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, app.Address.Port);
        await using var stream = new System.Net.Sockets.NetworkStream(socket);
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(request));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var received = new MemoryStream();
        try
        {
            await stream.CopyToAsync(received, timeout.Token);
        }
        catch (IOException)
        {
            // The 413 is sent before the whole body is read; the server may then reset the connection.
        }

        return System.Text.Encoding.UTF8.GetString(received.ToArray());
    }

    private static (string Head, string Body) SplitResponse(string raw)
    {
        var end = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(end > 0, "no complete response head: " + raw);
        return (raw[..(end + 2)], raw[(end + 4)..]);
    }

    private const int MachineApiBodyLimit = 16 * 1024;

    private static async Task<string> ReadUntilAsync(Stream stream, string marker)
    {
        var text = new System.Text.StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!text.ToString().Contains(marker, StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0)
            {
                break;
            }

            text.Append(System.Text.Encoding.ASCII.GetString(buffer, 0, n));
        }

        return text.ToString();
    }
}
