using System.Net;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

/// <summary>
/// A user who lost their devices signs in with a recovery code. For the step-up window that session
/// may add a passkey, replace the authenticator app and generate new recovery codes; it is still not
/// fresh MFA, so app passwords, factor removal and admin pages wait for a check with the new factor.
/// </summary>
public sealed class RecoveryRepairTests
{
    private static readonly KeyValuePair<string, string>[] NewAppPassword = [new("Name", "Phone"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")];

    [Fact]
    public async Task RecoverySignIn_MayAddAPasskeyAndNewRecoveryCodes_ButNotIssueRemoveOrAdminister()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("lou", admin: true);
        env.Time.Advance(TimeSpan.FromMinutes(10));
        using var c = env.NewClient();
        await SignInWithRecoveryCodeAsync(c, user);

        // Past a security-stamp refresh of the cookie (every minute): the allowance survives it.
        env.Time.Advance(TimeSpan.FromMinutes(2));
        var security = await c.GetAsync("/Security");
        Assert.Contains("3 more minutes", security.TextOf("repair-notice"), StringComparison.Ordinal);
        var token = security.AntiforgeryToken();

        var options = await c.PostAsync("/Security", "PasskeyCreationOptions", [], token, follow: false);
        Assert.Equal(HttpStatusCode.OK, options.Status);
        Assert.Contains("challenge", options.Html, StringComparison.Ordinal);
        // The attestation needs a browser (BrowserScenarios); a bogus one shows the request got past
        // the gate to the ceremony check instead of being sent to step up.
        var add = await c.PostAsync("/Security", "AddPasskey", [new("Credential", "{}"), new("Name", "New key")], token, follow: false);
        Assert.Equal(HttpStatusCode.OK, add.Status);
        Assert.Contains("could not be registered", add.Html, StringComparison.Ordinal);

        var codes = await c.PostAsync("/Security", "RecoveryCodes", [], token);
        Assert.Equal(10, codes.RecoveryCodes().Count);
        Assert.DoesNotContain(codes.RecoveryCodes(), user.RecoveryCodes.Contains);

        // Not fresh MFA: no app password, no removing a factor, no admin page.
        Assert.StartsWith("/Account/StepUp", (await c.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/AppPasswords/New", null, NewAppPassword, token, follow: false)).Location, StringComparison.Ordinal);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("lou"));
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/Security", "RemoveTotp", [], token, follow: false)).Location, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/Admin/Audit/Export", null, [], token, follow: false)).Location, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/Admin/ApiKeys", "Create", [new("Name", "repair")], token, follow: false)).Location, StringComparison.Ordinal);

        // Bound to the session that used the code: the user's other, stale session gets nothing.
        var other = await user.Client.GetAsync("/Security");
        Assert.DoesNotContain("repair-notice", other.Html, StringComparison.Ordinal);
        Assert.NotEqual(HttpStatusCode.OK, (await user.Client.PostAsync("/Security", "PasskeyCreationOptions", [], other.AntiforgeryToken(), follow: false)).Status);

        var activity = (await c.GetAsync("/Security/Activity")).TextOf("activity");
        Assert.Contains("Factor repair allowed after recovery code", activity, StringComparison.Ordinal);
        Assert.Contains("Recovery codes generated", activity, StringComparison.Ordinal);
        Assert.Contains("(after a recovery-code sign-in)", activity, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RecoverySignIn_ReplacesTheLostAuthenticatorApp_ThenStepsUpWithTheNewOne()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("mia");
        using var c = env.NewClient();
        var security = await SignInWithRecoveryCodeAsync(c, user);
        Assert.Contains("id=\"replace-totp\"", security.Html, StringComparison.Ordinal);

        var setup = await c.GetAsync("/Security/Totp");
        Assert.Equal("/Security/Totp", setup.Url);
        Assert.Contains("Phone app", setup.TextOf("totp-replaces"), StringComparison.Ordinal);
        var newKey = setup.TextOf("totp-key").Replace(" ", string.Empty, StringComparison.Ordinal);
        var done = await c.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(newKey)), new("Name", "New phone"), new("Pending", setup.HiddenValue("Pending")!)], setup.AntiforgeryToken());
        Assert.Equal("/Security", done.Url);
        Assert.Equal("New phone", done.TextOf("totp-name"));

        // The lost phone's codes stop working; the new one's work.
        using var thief = env.NewClient();
        var second = await thief.SubmitAsync("/Account/Login", "Password", [new("Username", "mia"), new("Password", PortalEnvironment.Password)]);
        var refused = await thief.PostAsync(second.Url, "Totp", [new("Code", env.NextCode(user.TotpKey))], second.AntiforgeryToken());
        Assert.Equal("/Account/SecondFactor", refused.Url.Split('?')[0]);

        // The recovery session itself issues only after a real check, here with the new app.
        var stepUp = await c.GetAsync("/Account/StepUp?returnUrl=/AppPasswords/New");
        var back = await c.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(newKey)), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());
        Assert.Equal("/AppPasswords/New", back.Url);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(c, "After repair");
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("mia", secret));

        var activity = (await c.GetAsync("/Security/Activity")).TextOf("activity");
        Assert.Contains("New phone, replaces \"Phone app\" (after a recovery-code sign-in)", activity, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RepairAllowance_EndsAfterTheStepUpWindow()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ned");
        using var c = env.NewClient();
        await SignInWithRecoveryCodeAsync(c, user);
        var setup = await c.GetAsync("/Security/Totp");
        Assert.Equal("/Security/Totp", setup.Url);

        env.Time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));

        var later = await c.GetAsync("/Security");
        Assert.DoesNotContain("repair-notice", later.Html, StringComparison.Ordinal);
        var token = later.AntiforgeryToken();
        Assert.NotEqual(HttpStatusCode.OK, (await c.PostAsync("/Security", "PasskeyCreationOptions", [], token, follow: false)).Status);
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/Security", "AddPasskey", [new("Credential", "{}"), new("Name", "Late")], token, follow: false)).Location, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.PostAsync("/Security", "RecoveryCodes", [], token, follow: false)).Location, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.GetRawAsync("/Security/Totp")).Location, StringComparison.Ordinal);
        // A setup page opened in time does not confirm once the allowance is over.
        var key = setup.TextOf("totp-key").Replace(" ", string.Empty, StringComparison.Ordinal);
        var late = await c.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(key)), new("Name", "Late"), new("Pending", setup.HiddenValue("Pending")!)], setup.AntiforgeryToken(), follow: false);
        Assert.StartsWith("/Account/StepUp", late.Location, StringComparison.Ordinal);
        Assert.Equal("Phone app", (await c.GetAsync("/Security")).TextOf("totp-name"));
        Assert.Equal(9, int.Parse((await c.GetAsync("/Security")).TextOf("recovery-left"), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task PasskeyRequiredPolicy_RecoverySignIn_MayAddAPasskey_ButATotpCheckIsStillNotFresh()
    {
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:RequiredFactor"] = "passkey" });
        var user = await env.EnrollWithTotpAsync("pia");
        // The passkey the user lost.
        await StepUpTests.AddPasskeyAsync(env, "pia");
        using var c = env.NewClient();
        var security = await SignInWithRecoveryCodeAsync(c, user);

        var options = await c.PostAsync("/Security", "PasskeyCreationOptions", [], security.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.OK, options.Status);

        // App passwords still need a passkey check; the authenticator app does not stand in for it.
        Assert.StartsWith("/Account/StepUp", (await c.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
        var stepUp = await c.GetAsync("/Account/StepUp?returnUrl=/AppPasswords/New");
        var totp = await c.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords/New")], stepUp.AntiforgeryToken());
        Assert.Contains("requires a passkey", totp.Html, StringComparison.Ordinal);
        Assert.StartsWith("/Account/StepUp", (await c.GetRawAsync("/AppPasswords/New")).Location, StringComparison.Ordinal);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("pia"));
    }

    /// <summary>Password, then the first recovery code, in <paramref name="client"/>; returns the Security page it lands on.</summary>
    private static async Task<PageResponse> SignInWithRecoveryCodeAsync(PortalClient client, EnrolledUser user)
    {
        var second = await client.SubmitAsync("/Account/Login", "Password", [new("Username", user.Username), new("Password", PortalEnvironment.Password)]);
        var security = await client.PostAsync(second.Url, "Recovery", [new("RecoveryCode", user.RecoveryCodes[0])], second.AntiforgeryToken());
        Assert.Equal("/Security", security.Url);
        return security;
    }
}
