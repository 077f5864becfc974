using System.Net;
using Broker.Portal.Data;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Tests.Flows;

public sealed class StepUpTests
{
    [Fact]
    public async Task NewAppPassword_AfterFiveMinutes_RequiresStepUp()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("frank");
        var form = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Equal("/AppPasswords/New", form.Url);

        env.Time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));

        var get = await user.Client.GetRawAsync("/AppPasswords/New");
        Assert.Equal(HttpStatusCode.Redirect, get.Status);
        Assert.StartsWith("/Account/StepUp", get.Location, StringComparison.Ordinal);
        // The post itself is checked too: a form opened while fresh does not issue once stale.
        var post = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Late"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], form.AntiforgeryToken(), follow: false);
        Assert.StartsWith("/Account/StepUp", post.Location, StringComparison.Ordinal);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("frank"));

        var stepUp = await user.Client.GetAsync(get.Location!);
        var back = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());
        Assert.Equal("/AppPasswords/New", back.Url);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "After step-up");
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("frank", secret));
    }

    [Fact]
    public async Task Renew_AfterFiveMinutes_RequiresStepUpAndKeepsExpiry()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("grace");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        var ap = (await env.Portal.AppPasswords.ListAsync("grace")).Single();

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var list = await user.Client.GetAsync("/AppPasswords");
        var renew = await user.Client.PostAsync("/AppPasswords", "Renew", [new("Id", ap.Id)], list.AntiforgeryToken(), follow: false);

        Assert.StartsWith("/Account/StepUp", renew.Location, StringComparison.Ordinal);
        Assert.Equal(ap.Expires, (await env.Portal.AppPasswords.GetAsync("grace", ap.Id))!.Expires);
    }

    [Fact]
    public async Task StepUp_WithWrongCode_StaysStale()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("heidi");
        env.Time.Advance(TimeSpan.FromMinutes(10));

        var stepUp = await user.Client.GetAsync("/Account/StepUp?returnUrl=/AppPasswords/New");
        var wrong = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", "000000"), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());
        Assert.Contains("not valid", wrong.Html, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await user.Client.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StepUpWindow_IsConfigurable()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:StepUpWindow"] = "00:01:00" });
        var user = await env.EnrollWithTotpAsync("ivan");
        env.Time.Advance(TimeSpan.FromSeconds(61));
        Assert.StartsWith("/Account/StepUp", (await user.Client.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PasskeyRequiredPolicy_TotpOnlyUser_CannotIssue()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:RequiredFactor"] = "passkey" });
        var user = await env.EnrollWithTotpAsync("zoe");

        var page = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Equal("/Security", page.Url);
        Assert.Contains("requires a passkey", page.TextOf("enroll-required"), StringComparison.Ordinal);
        Assert.Equal("/Security", (await user.Client.GetAsync("/AppPasswords")).Url);
    }

    [Fact]
    public async Task StepUp_ReturnUrlWithControlCharacter_FallsBackToTheAppPasswordsPage()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("rhea");
        env.Time.Advance(TimeSpan.FromMinutes(10));

        var stepUp = await user.Client.GetAsync("/Account/StepUp?returnUrl=%2F%0A%2Fevil.example");
        Assert.Equal(HttpStatusCode.OK, stepUp.Status);
        var back = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/\t/evil.example")], stepUp.AntiforgeryToken(), follow: false);

        Assert.Equal(HttpStatusCode.Redirect, back.Status);
        Assert.Equal("/AppPasswords", back.Location);
    }

    [Fact]
    public async Task PasskeyRequiredPolicy_TotpSignInAndTotpStepUp_DoNotMakeAppPasswordWritesFresh()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:RequiredFactor"] = "passkey" });
        var user = await env.EnrollWithTotpAsync("pat");
        await AddPasskeyAsync(env, "pat");

        // Password + TOTP meets nothing more than the sign-in itself: the fresh check must be a passkey.
        using var client = await env.SignInWithTotpAsync(user);
        var get = await client.GetRawAsync("/AppPasswords/New");
        Assert.StartsWith("/Account/StepUp", get.Location, StringComparison.Ordinal);

        var stepUp = await client.GetAsync(get.Location!);
        Assert.Contains("requires a passkey", stepUp.TextOf("stepup-passkey-required"), StringComparison.Ordinal);
        Assert.Contains("id=\"stepup-passkey\"", stepUp.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"stepup-verify\"", stepUp.Html, StringComparison.Ordinal);
        var totp = await client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());
        Assert.Contains("requires a passkey", totp.Html, StringComparison.Ordinal);

        Assert.StartsWith("/Account/StepUp", (await client.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
        var post = await client.PostAsync("/AppPasswords/New", null, [new("Name", "Phone"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], stepUp.AntiforgeryToken(), follow: false);
        Assert.StartsWith("/Account/StepUp", post.Location, StringComparison.Ordinal);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("pat"));
    }

    [Fact]
    public async Task AddPasskey_StaleSession_TheScriptIsSentToStepUp_NotToTheNotAllowedPage()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("rosa");
        env.Time.Advance(TimeSpan.FromMinutes(10));
        var security = await user.Client.GetAsync("/Security");

        // The page script fetches the passkey options; a redirect to "Not allowed" left it with an
        // HTML page it could not read, and the user with an error instead of the step-up.
        var stale = await user.Client.PostAsync("/Security", "PasskeyCreationOptions", [], security.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.Forbidden, stale.Status);
        Assert.Null(stale.Location);
        using var json = System.Text.Json.JsonDocument.Parse(stale.Html);
        var location = json.RootElement.GetProperty("location").GetString()!;
        Assert.StartsWith("/Account/StepUp?", location, StringComparison.Ordinal);

        var stepUp = await user.Client.GetAsync(location);
        var back = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", stepUp.HiddenValue("ReturnUrl")!)], stepUp.AntiforgeryToken());
        Assert.Equal("/Security", back.Url);
        var options = await user.Client.PostAsync("/Security", "PasskeyCreationOptions", [], back.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.OK, options.Status);
        Assert.Contains("challenge", options.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PasskeyRequiredPolicy_TotpOnlyUser_StepsUpWithTotpToAddAPasskey()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:RequiredFactor"] = "passkey" });
        var user = await env.EnrollWithTotpAsync("quinn");
        env.Time.Advance(TimeSpan.FromMinutes(10));
        var security = await user.Client.GetAsync("/Security");
        var stale = await user.Client.PostAsync("/Security", "PasskeyCreationOptions", [], security.AntiforgeryToken(), follow: false);
        Assert.NotEqual(HttpStatusCode.OK, stale.Status);

        var stepUp = await user.Client.GetAsync("/Account/StepUp?returnUrl=/AppPasswords/New");
        Assert.Contains("id=\"stepup-verify\"", stepUp.Html, StringComparison.Ordinal);
        var back = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());

        // Sent to add a passkey, the one thing the TOTP check is good for here, and allowed to.
        Assert.Equal("/Security", back.Url);
        var options = await user.Client.PostAsync("/Security", "PasskeyCreationOptions", [], back.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.OK, options.Status);
        Assert.Contains("challenge", options.Html, StringComparison.Ordinal);
    }

    /// <summary>Stores a passkey for the user directly: the HTTP tests cannot run a WebAuthn ceremony.</summary>
    internal static async Task AddPasskeyAsync(PortalEnvironment env, string username)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
        var passkey = new UserPasskeyInfo(
            credentialId: [1, 2, 3, 4, 5, 6, 7, 8], publicKey: [1, 2, 3], createdAt: env.Time.GetUtcNow(), signCount: 0, transports: null,
            isUserVerified: true, isBackupEligible: false, isBackedUp: false, attestationObject: [1], clientDataJson: [1]);
        Assert.True((await users.AddOrUpdatePasskeyAsync((await users.FindByNameAsync(username))!, passkey)).Succeeded);
    }
}
