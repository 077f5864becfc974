using System.Diagnostics;
using System.Net;
using Broker.Portal.Accounts;
using Broker.Portal.Data;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Tests.Flows;

public sealed class SecurityTests
{
    [Fact]
    public async Task Posts_WithoutAntiforgeryToken_AreRejected()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("rita");

        var login = await env.NewClient().PostAsync("/Account/Login", "Password", [new("Username", "rita"), new("Password", PortalEnvironment.Password)], token: null, follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, login.Status);

        var issue = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "csrf"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], token: null, follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, issue.Status);
        var revokeAll = await user.Client.PostAsync("/AppPasswords", "RevokeAll", [], token: "forged-token", follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, revokeAll.Status);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("rita"));
    }

    [Fact]
    public async Task Login_UnknownUserAndWrongPassword_LookTheSame()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await env.EnrollWithTotpAsync("sam");

        using var a = env.NewClient();
        var unknown = await a.SubmitAsync("/Account/Login", "Password", [new("Username", "nobody"), new("Password", PortalEnvironment.Password)]);
        using var b = env.NewClient();
        var wrong = await b.SubmitAsync("/Account/Login", "Password", [new("Username", "sam"), new("Password", "wrong password here")]);

        Assert.Equal(unknown.Status, wrong.Status);
        Assert.Equal(unknown.TextOf("login-error"), wrong.TextOf("login-error"));
    }

    [Fact]
    public async Task Login_EveryRefusal_VerifiesOnePasswordHash_AndLooksTheSame()
    {
        var hasher = new CountingPasswordHasher();
        var pace = TimeSpan.FromMilliseconds(400);
        await using var env = await PortalEnvironment.StartAsync(
            new Dictionary<string, string?> { ["Broker:Portal:SignInRefusalPace"] = pace.ToString() },
            services: s => s.AddSingleton<IPasswordHasher<PortalUser>>(hasher));
        await env.EnrollWithTotpAsync("sam");
        await env.EnrollWithTotpAsync("lena");
        await env.EnrollWithTotpAsync("dirk");
        await env.CreateUserAsync("paul");
        await using (var scope = env.Portal.Services.CreateAsyncScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
            await users.SetLockoutEndDateAsync((await users.FindByNameAsync("lena"))!, DateTimeOffset.UtcNow.AddHours(1));
            await scope.ServiceProvider.GetRequiredService<AccountService>().DisableAsync((await users.FindByNameAsync("dirk"))!, "test");
        }

        // Unknown, wrong password, locked out, disabled, never enrolled (no password yet); the last
        // three used to return before any hashing, so they answered measurably faster, and an
        // existing account still answers a few milliseconds later than an unknown name without
        // the pacing.
        var errors = new List<string>();
        foreach (var username in new[] { "nobody", "sam", "lena", "dirk", "paul" })
        {
            using var client = env.NewClient();
            var form = await client.GetAsync("/Account/Login");
            var before = hasher.Verifications;
            var started = Stopwatch.GetTimestamp();
            var refused = await client.PostAsync(form.Url, "Password", [new("Username", username), new("Password", "wrong password here")], form.AntiforgeryToken());
            var took = Stopwatch.GetElapsedTime(started);
            Assert.True(hasher.Verifications - before == 1, $"{username}: {hasher.Verifications - before} hash verifications");
            // The database writes of a refusal for an existing account are hidden by the pacing: the
            // answer comes at a multiple of the pace, never sooner (the timer may round down by 1 ms).
            Assert.True(took >= pace - TimeSpan.FromMilliseconds(2), $"{username}: refused after {took.TotalMilliseconds:F0} ms, before the pace of {pace.TotalMilliseconds} ms");
            Assert.Equal(HttpStatusCode.OK, refused.Status);
            errors.Add(refused.TextOf("login-error"));
        }

        Assert.Single(errors.Distinct());
    }

    [Fact]
    public async Task Startup_LockoutThatNeverPausesOrSessionsThatCannotLast_Fail()
    {
        // A lockout of zero ended as it began: the count started again at once, guessing never paused.
        var failure = await SelfRegistrationTests.StartupFailureAsync(new()
        {
            ["Broker:Portal:LockoutDuration"] = "00:00:00",
            ["Broker:Portal:SessionLifetime"] = "-00:10:00",
            ["Broker:Portal:SignInRefusalPace"] = "-00:00:01",
        });

        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:LockoutDuration must be more than zero and at most 30 days", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:SessionLifetime must be between 1 minute and 30 days", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:SignInRefusalPace must be between 0 (off) and 10 seconds", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Login_RepeatedFailures_LockTheAccount()
    {
        // Identity's lockout runs on the real clock, so the test uses a short lockout and waits it out.
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:LockoutDuration"] = "00:00:02" });
        await env.EnrollWithTotpAsync("tina");
        using var c = env.NewClient();
        for (var i = 0; i < 5; i++)
        {
            await c.SubmitAsync("/Account/Login", "Password", [new("Username", "tina"), new("Password", "not the password " + i)]);
        }

        var right = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "tina"), new("Password", PortalEnvironment.Password)]);
        Assert.Equal("/Account/Login", right.Url.Split('?')[0]);
        Assert.Contains("login-error", right.Html, StringComparison.Ordinal);

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var later = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "tina"), new("Password", PortalEnvironment.Password)]);
        Assert.Equal("/Account/SecondFactor", later.Url.Split('?')[0]);
    }

    [Fact]
    public async Task SignInPosts_FromOneAddress_AreRateLimited()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:SignInPostsPerMinute"] = "5" });
        using var c = env.NewClient();
        var page = await c.GetAsync("/Account/Login");
        var responses = new List<PageResponse>();
        for (var i = 0; i < 7; i++)
        {
            responses.Add(await c.PostAsync("/Account/Login", "Password", [new("Username", $"spray{i}"), new("Password", "guess")], page.AntiforgeryToken(), follow: false));
        }

        Assert.All(responses.Take(5), r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(HttpStatusCode.TooManyRequests, responses[^1].Status);
        // The person is told to wait, not to go back and try again at once (which is refused again).
        Assert.Equal("Too many attempts", responses[^1].TextOf("error-title"));
        Assert.Contains("Wait a minute", responses[^1].TextOf("error-text"), StringComparison.Ordinal);
        // Pages and everything outside sign-in stay reachable.
        Assert.Equal(HttpStatusCode.OK, (await c.GetRawAsync("/Account/Login")).Status);
    }

    [Fact]
    public async Task SignInPosts_FromOneIPv6Host_AreLimitedPerSlash64_NotPerAddress()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:SignInPostsPerMinute"] = "5" });
        using var c = env.NewClient();
        var page = await c.GetAsync("/Account/Login");
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 7; i++)
        {
            // One host walking through the addresses of its /64, behind the gateway (a trusted proxy on loopback).
            using var request = new HttpRequestMessage(HttpMethod.Post, "/Account/Login?handler=Password")
            {
                Content = new FormUrlEncodedContent([new("Username", $"spray{i}"), new("Password", "guess"), new("__RequestVerificationToken", page.AntiforgeryToken())]),
            };
            request.Headers.Add("X-Forwarded-For", $"2001:db8:1:2::{i + 1:x}");
            using var response = await c.Http.SendAsync(request);
            statuses.Add(response.StatusCode);
        }

        Assert.All(statuses.Take(5), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
    }

    [Fact]
    public async Task Responses_CarrySecurityHeadersAndHardenedCookies()
    {
        await using var env = await PortalEnvironment.StartAsync();
        using var c = env.NewClient();
        var page = await c.GetAsync("/Account/Login");
        var h = page.Message.Headers;
        var csp = string.Join(' ', h.GetValues("Content-Security-Policy"));
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Equal("DENY", h.GetValues("X-Frame-Options").Single());
        Assert.Equal("no-referrer", h.GetValues("Referrer-Policy").Single());
        Assert.Equal("nosniff", h.GetValues("X-Content-Type-Options").Single());
        Assert.DoesNotContain("<script>", page.Html, StringComparison.Ordinal);
        Assert.DoesNotContain(" style=", page.Html, StringComparison.Ordinal);
        foreach (var cookie in h.GetValues("Set-Cookie").Where(v => !v.Contains("expires=Thu, 01 Jan 1970", StringComparison.Ordinal)))
        {
            Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("samesite", cookie, StringComparison.OrdinalIgnoreCase);
        }

        var js = await c.Http.GetAsync("/assets/portal.js");
        Assert.Equal(HttpStatusCode.OK, js.StatusCode);
        Assert.Contains("parseCreationOptionsFromJSON", await js.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PublicOriginOverHttps_MakesCookiesSecure()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:PublicOrigin"] = "https://portal.example.org" });
        using var c = env.NewClient();
        // As behind the gateway terminating TLS: a trusted loopback proxy says the browser used https.
        c.Http.DefaultRequestHeaders.Add("X-Forwarded-Proto", "https");
        c.Http.DefaultRequestHeaders.Add("X-Forwarded-For", "198.51.100.7");
        var page = await c.GetRawAsync("/Account/Login");
        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("max-age=", page.Message.Headers.GetValues("Strict-Transport-Security").Single(), StringComparison.Ordinal);
        Assert.All(page.Message.Headers.GetValues("Set-Cookie").Where(v => v.StartsWith("broker.", StringComparison.Ordinal)), v => Assert.Contains("secure", v, StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Logs_NeverContainSecrets()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("uma");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client);
        await env.ValidateAsync("uma", secret);
        using var c = env.NewClient();
        var second = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "uma"), new("Password", PortalEnvironment.Password)]);
        var code = env.NextCode(user.TotpKey);
        await c.PostAsync(second.Url, "Totp", [new("Code", code)], second.AntiforgeryToken());
        await c.PostAsync(second.Url, "Recovery", [new("RecoveryCode", user.RecoveryCodes[0])], second.AntiforgeryToken());

        var logs = string.Join('\n', env.Logs.Lines);
        Assert.NotEmpty(env.Logs.Lines);
        Assert.DoesNotContain(PortalEnvironment.Password, logs, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, logs, StringComparison.Ordinal);
        Assert.DoesNotContain(user.TotpKey, logs, StringComparison.Ordinal);
        Assert.DoesNotContain(code, logs, StringComparison.Ordinal);
        Assert.DoesNotContain(user.RecoveryCodes[0], logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SignOut_FromTheMenu_EndsTheSession()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("walt");
        var page = await user.Client.GetAsync("/AppPasswords");
        var signedOut = await user.Client.PostAsync("/Account/Logout", null, [], page.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, signedOut.Status);
        Assert.Contains("signed-out", signedOut.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("sign-out-form", signedOut.Html, StringComparison.Ordinal);
        Assert.Equal("/Account/Login", (await user.Client.GetAsync("/AppPasswords")).Url.Split('?')[0]);
    }

    [Fact]
    public async Task SignOutEverywhere_EndsOtherSessions()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("vera");
        using var other = await env.SignInWithTotpAsync(user);

        var security = await user.Client.GetAsync("/Security");
        await user.Client.PostAsync("/Security", "SignOutEverywhere", [], security.AntiforgeryToken());
        env.Time.Advance(TimeSpan.FromMinutes(2)); // past the security-stamp validation interval

        Assert.Equal("/Account/Login", (await other.GetAsync("/AppPasswords")).Url.Split('?')[0]);
        Assert.Equal("/Account/Login", (await user.Client.GetAsync("/AppPasswords")).Url.Split('?')[0]);
    }
}

/// <summary>The portal's password hasher, counting verifications: refusals must all do the same hashing work.</summary>
internal sealed class CountingPasswordHasher : IPasswordHasher<PortalUser>
{
    private readonly PasswordHasher<PortalUser> _inner = new();
    private int _verifications;

    public int Verifications => Volatile.Read(ref _verifications);

    public string HashPassword(PortalUser user, string password) => _inner.HashPassword(user, password);

    public PasswordVerificationResult VerifyHashedPassword(PortalUser user, string hashedPassword, string providedPassword)
    {
        Interlocked.Increment(ref _verifications);
        return _inner.VerifyHashedPassword(user, hashedPassword, providedPassword);
    }
}
