using System.Net;
using Broker.Portal.Totp;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

public sealed class SecondFactorTests
{
    [Fact]
    public async Task SignIn_ReplayedTotpCode_IsRejected()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await ReplayedTotpCodeIsRejectedAsync(env);
    }

    /// <summary>A TOTP code accepted once is refused in another browser. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task ReplayedTotpCodeIsRejectedAsync(PortalEnvironment env)
    {
        var user = await env.EnrollWithTotpAsync("judy");
        var code = env.NextCode(user.TotpKey);

        using var first = env.NewClient();
        var second = await first.SubmitAsync("/Account/Login", "Password", [new("Username", "judy"), new("Password", PortalEnvironment.Password)]);
        var ok = await first.PostAsync(second.Url, "Totp", [new("Code", code)], second.AntiforgeryToken());
        Assert.Equal("/AppPasswords", ok.Url);

        // Same code, same 30-second step, another browser (an attacker who saw it): refused.
        using var replay = env.NewClient();
        var again = await replay.SubmitAsync("/Account/Login", "Password", [new("Username", "judy"), new("Password", PortalEnvironment.Password)]);
        var refused = await replay.PostAsync(again.Url, "Totp", [new("Code", code)], again.AntiforgeryToken());
        Assert.Equal("/Account/SecondFactor", refused.Url.Split('?')[0]);
        Assert.Contains("not valid", refused.Html, StringComparison.Ordinal);
        Assert.Equal("/Account/Login", (await replay.GetAsync("/AppPasswords")).Url.Split('?')[0]);
    }

    [Fact]
    public async Task SignIn_CodeTwoStepsAwayRejected_OneStepAccepted()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ken");
        env.Time.Advance(TimeSpan.FromMinutes(5));
        var now = env.Time.GetUtcNow();

        foreach (var offset in new[] { -60, 60, -90, 90 })
        {
            using var c = env.NewClient();
            var second = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "ken"), new("Password", PortalEnvironment.Password)]);
            var refused = await c.PostAsync(second.Url, "Totp", [new("Code", TotpService.Compute(user.TotpKey, now.AddSeconds(offset)))], second.AntiforgeryToken());
            Assert.Equal("/Account/SecondFactor", refused.Url.Split('?')[0]);
        }

        using var ok = env.NewClient();
        var step = await ok.SubmitAsync("/Account/Login", "Password", [new("Username", "ken"), new("Password", PortalEnvironment.Password)]);
        // Without a passkey the code is the first and only choice, not an "or".
        Assert.Contains("<h2>Enter the code from your authenticator app</h2>", step.Html, StringComparison.Ordinal);
        var accepted = await ok.PostAsync(step.Url, "Totp", [new("Code", TotpService.Compute(user.TotpKey, now.AddSeconds(-30)))], step.AntiforgeryToken());
        Assert.Equal("/AppPasswords", accepted.Url);
    }

    [Fact]
    public async Task RecoveryCode_WorksOnce_AndDoesNotCountAsFreshMfa()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("leo");
        var code = user.RecoveryCodes[3];

        using var first = env.NewClient();
        var second = await first.SubmitAsync("/Account/Login", "Password", [new("Username", "leo"), new("Password", PortalEnvironment.Password)]);
        var signedIn = await first.PostAsync(second.Url, "Recovery", [new("RecoveryCode", code.ToUpperInvariant())], second.AntiforgeryToken());
        Assert.Equal("/Security", signedIn.Url);
        Assert.Equal("9", signedIn.TextOf("recovery-left"));
        // A recovery code is not a passkey/TOTP check: issuing still asks for one.
        Assert.StartsWith("/Account/StepUp", (await first.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);

        using var again = env.NewClient();
        var retry = await again.SubmitAsync("/Account/Login", "Password", [new("Username", "leo"), new("Password", PortalEnvironment.Password)]);
        var refused = await again.PostAsync(retry.Url, "Recovery", [new("RecoveryCode", code)], retry.AntiforgeryToken());
        Assert.Contains("already used", refused.Html, StringComparison.Ordinal);
        Assert.Equal("/Account/Login", (await again.GetAsync("/Security")).Url.Split('?')[0]);
    }

    [Fact]
    public async Task SignIn_SameCodeRacedFromTwoBrowsers_OnlyOneWins()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ruth");
        var code = env.NextCode(user.TotpKey);
        var browsers = new List<(PortalClient Client, PageResponse Page)>();
        for (var i = 0; i < 4; i++)
        {
            var c = env.NewClient();
            browsers.Add((c, await c.SubmitAsync("/Account/Login", "Password", [new("Username", "ruth"), new("Password", PortalEnvironment.Password)])));
        }

        var results = await Task.WhenAll(browsers.Select(b => b.Client.PostAsync(b.Page.Url, "Totp", [new("Code", code)], b.Page.AntiforgeryToken())));

        Assert.Equal(1, results.Count(r => r.Url == "/AppPasswords"));
        foreach (var (c, _) in browsers)
        {
            c.Dispose();
        }
    }

    [Fact]
    public async Task SecondFactorPage_WithoutPasswordStep_SendsToLogin()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await env.EnrollWithTotpAsync("mallory");
        using var c = env.NewClient();
        var login = await c.GetAsync("/Account/Login");
        var post = await c.PostAsync("/Account/SecondFactor", "Totp", [new("Code", "123456")], login.AntiforgeryToken(), follow: false);
        Assert.Equal("/Account/Login", post.Location);
    }

    [Fact]
    public async Task SignIn_ReturnUrlWithControlCharacter_FallsBackToTheAppPasswordsPage()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("rex");

        // Browsers drop the tab, so "/\t/evil.example" would be "//evil.example": another site.
        using var client = env.NewClient();
        var second = await client.SubmitAsync("/Account/Login", "Password", [new("Username", "rex"), new("Password", PortalEnvironment.Password), new("ReturnUrl", "/\t/evil.example")]);
        var done = await client.PostAsync(second.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/\t/evil.example")], second.AntiforgeryToken(), follow: false);

        Assert.Equal(HttpStatusCode.Redirect, done.Status);
        Assert.Equal("/AppPasswords", done.Location);
    }
}
