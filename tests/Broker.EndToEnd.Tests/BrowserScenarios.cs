using Microsoft.Playwright;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// The two journeys from the issue, through the UI as a person would do them, ending with the app
/// password accepted by the gateway's validation API. Screenshots of each main page are kept.
/// </summary>
public sealed class BrowserScenarios
{
    private const string Password = "a long portal passphrase 2026";

    [Fact]
    public async Task Passkey_EnrollSignOutSignInCreateAppPassword_ValidatesThroughGateway()
    {
        await using var env = await EndToEndEnvironment.StartAsync();
        var link = await env.CreateUserAsync("Alice@Example.org");
        var page = await env.NewPageWithAuthenticatorAsync();

        // Enrollment link → password.
        await page.GotoAsync(link);
        Assert.Equal("alice@example.org", await page.Locator("#enroll-username").TextContentAsync());
        await EndToEndEnvironment.ScreenshotAsync(page, "01-enroll");
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");
        await Expect(page.Locator("#enroll-required")).ToBeVisibleAsync();
        await EndToEndEnvironment.ScreenshotAsync(page, "02-security-enroll-required");

        // Register a passkey with the virtual authenticator; recovery codes are shown once.
        await page.Locator("#PasskeyName").FillAsync("Laptop passkey");
        await page.Locator("#add-passkey").ClickAsync();
        await Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();
        Assert.Contains("Laptop passkey", await page.Locator("#passkey-list").TextContentAsync(), StringComparison.Ordinal);
        await EndToEndEnvironment.ScreenshotAsync(page, "03-passkey-added-recovery-codes");

        // Sign out, then sign in with the passkey alone (usernameless, user verification required).
        await page.Locator("form[action='/Account/Logout'] button").ClickAsync();
        await Expect(page.Locator("#signed-out")).ToBeVisibleAsync();
        await page.GotoAsync(env.Origin + "/Account/Login");
        await EndToEndEnvironment.ScreenshotAsync(page, "04-sign-in");
        await page.Locator("#passkey-sign-in").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");
        await EndToEndEnvironment.ScreenshotAsync(page, "05-app-passwords-empty");

        // Create an app password (the passkey sign-in is the fresh MFA) and read it from the page.
        await page.Locator("#new-app-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords/New");
        await page.Locator("button[data-suggest='Thunderbird']").ClickAsync();
        Assert.Equal("Thunderbird", await page.Locator("#Name").InputValueAsync());
        await EndToEndEnvironment.ScreenshotAsync(page, "06-new-app-password");
        await page.Locator("#create-app-password").ClickAsync();
        await Expect(page.Locator("#app-password")).ToBeVisibleAsync();
        var secret = (await page.Locator("#app-password").TextContentAsync())!.Trim();
        await EndToEndEnvironment.ScreenshotAsync(page, "07-app-password-created");

        var (status, body) = await env.ValidateThroughGatewayAsync("alice@example.org", secret, "imap");
        Assert.True(status == 200, $"validate answered {status}: {body}");
        Assert.Contains("alice@example.org", body, StringComparison.Ordinal);
        Assert.Equal(403, (await env.ValidateThroughGatewayAsync("alice@example.org", secret, "pop3")).Status);

        await page.GotoAsync(env.Origin + "/AppPasswords");
        Assert.Contains(EndToEndEnvironment.DefaultRemoteIp, await page.Locator("#app-passwords").TextContentAsync(), StringComparison.Ordinal);

        // Allowed countries, set under "Limit where it works" (the passkey sign-in above is still the
        // fresh MFA the form needs). Typed in lower case; the portal stores the code.
        var countries = page.Locator("#app-passwords input[name='Countries']");
        await page.Locator("#app-passwords details summary").ClickAsync();
        await countries.FillAsync("gb");
        await page.Locator("#app-passwords form:has(input[name='Countries']) button").ClickAsync();
        await Expect(page.Locator(".flash")).ToContainTextAsync("may be used only from GB");
        await Expect(page.Locator("#app-passwords .allowed-country")).ToHaveTextAsync("GB");

        // The gateway's validation API now lets the app password in from the United Kingdom only:
        // not from Germany, and not from an address in no country (the one it was used from so far).
        var (gbStatus, gbBody) = await env.ValidateThroughGatewayAsync("alice@example.org", secret, "imap", remoteIp: "81.2.69.10");
        Assert.True(gbStatus == 200, $"validate from GB answered {gbStatus}: {gbBody}");
        Assert.Contains("\"result\":\"allow\"", gbBody, StringComparison.Ordinal);
        var (deStatus, deBody) = await env.ValidateThroughGatewayAsync("alice@example.org", secret, "imap", remoteIp: "5.9.1.10");
        Assert.Equal(403, deStatus);
        Assert.Contains("\"result\":\"deny\"", deBody, StringComparison.Ordinal);
        Assert.Equal(403, (await env.ValidateThroughGatewayAsync("alice@example.org", secret, "imap")).Status);

        // The list, with the limit open as the user guide shows it.
        await page.GotoAsync(env.Origin + "/AppPasswords");
        await Expect(page.Locator("#app-passwords")).ToContainTextAsync("81.2.69.10");
        await page.Locator("#app-passwords details summary").ClickAsync();
        await Expect(countries).ToHaveValueAsync("GB");
        await EndToEndEnvironment.ScreenshotAsync(page, "08-app-passwords-list");
        // Refused mail logins reach the activity page through the audit outbox, shortly after the fact.
        for (var i = 0; i < 40; i++)
        {
            await page.GotoAsync(env.Origin + "/Security/Activity");
            if ((await page.Locator("main").TextContentAsync())!.Contains(Broker.Core.Audit.AuditKinds.UsedOutsideLimits, StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(250);
        }

        await Expect(page.Locator("main")).ToContainTextAsync(Broker.Core.Audit.AuditKinds.UsedOutsideLimits);
        await Expect(page.Locator("main")).ToContainTextAsync(Broker.Core.Audit.AuditKinds.MailLoginDenied);
        await EndToEndEnvironment.ScreenshotAsync(page, "09-activity");

        // Revoking in the UI stops the mail login at once.
        await page.GotoAsync(env.Origin + "/AppPasswords");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.Locator("#revoke-all").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");
        Assert.Equal(403, (await env.ValidateThroughGatewayAsync("alice@example.org", secret, "imap")).Status);

        // Password first, then the passkey as the second factor.
        await page.Locator("form[action='/Account/Logout'] button").ClickAsync();
        await Expect(page.Locator("#signed-out")).ToBeVisibleAsync();
        await page.GotoAsync(env.Origin + "/Account/Login");
        await page.Locator("#Username").FillAsync("alice@example.org");
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#sign-in").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/SecondFactor**");
        await page.Locator("#use-passkey").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");

        // Someone who knows the username locks the account with wrong passwords (5 by default):
        // even the right password is paused now, but the owner's passkey still signs in.
        await page.Locator("form[action='/Account/Logout'] button").ClickAsync();
        await Expect(page.Locator("#signed-out")).ToBeVisibleAsync();
        foreach (var attempt in new[] { "guess 1", "guess 2", "guess 3", "guess 4", "guess 5", Password })
        {
            await page.GotoAsync(env.Origin + "/Account/Login");
            await page.Locator("#Username").FillAsync("alice@example.org");
            await page.Locator("#Password").FillAsync(attempt);
            await page.Locator("#sign-in").ClickAsync();
            await Expect(page.Locator("#login-error")).ToBeVisibleAsync();
        }

        await page.Locator("#passkey-sign-in").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");
    }

    [Fact]
    public async Task Totp_EnrollSignOutSignInCreateAppPassword_ValidatesThroughGateway()
    {
        await using var env = await EndToEndEnvironment.StartAsync();
        var link = await env.CreateUserAsync("bob@example.org", admin: true);
        var page = await env.NewPageWithAuthenticatorAsync();

        await page.GotoAsync(link);
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");

        // Authenticator app: the test reads the displayed key and computes codes, like the app would.
        await page.Locator("#add-totp").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security/Totp");
        await EndToEndEnvironment.ScreenshotAsync(page, "10-totp-setup");
        var totp = await EndToEndEnvironment.TotpFromSetupPageAsync(page);
        var enrollStep = CurrentStep();
        await page.Locator("#Code").FillAsync(totp.ComputeTotp(DateTime.UtcNow));
        await page.Locator("#confirm-totp").ClickAsync();
        await Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();
        await page.Locator("#continue").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");

        await page.Locator("form[action='/Account/Logout'] button").ClickAsync();
        await Expect(page.Locator("#signed-out")).ToBeVisibleAsync();
        await page.GotoAsync(env.Origin + "/Account/Login");
        await page.Locator("#Username").FillAsync("bob@example.org");
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#sign-in").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/SecondFactor**");
        await EndToEndEnvironment.ScreenshotAsync(page, "11-second-factor");

        // The enrollment code's time step is spent (replay protection): wait for the next one.
        while (CurrentStep() <= enrollStep)
        {
            await Task.Delay(500);
        }

        await page.Locator("#Code").FillAsync(totp.ComputeTotp(DateTime.UtcNow));
        await page.Locator("#verify-code").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");

        await page.GotoAsync(env.Origin + "/AppPasswords/New");
        await page.Locator("#Name").FillAsync("iOS Mail");
        await page.Locator("input[name='Scopes'][value='submission']").UncheckAsync();
        await page.Locator("#create-app-password").ClickAsync();
        await Expect(page.Locator("#app-password")).ToBeVisibleAsync();
        var secret = (await page.Locator("#app-password").TextContentAsync())!.Trim();

        Assert.Equal(200, (await env.ValidateThroughGatewayAsync("bob@example.org", secret, "imap")).Status);
        Assert.Equal(403, (await env.ValidateThroughGatewayAsync("bob@example.org", secret, "submission")).Status);

        // New-network approval: a login from elsewhere waits until the owner approves it on the list.
        var store = env.Portal.AppPasswords;
        await store.SetNewNetworkApprovalAsync("bob@example.org", true);
        var elsewhere = new Broker.Core.AppPasswords.ValidationContext("imap", "198.51.100.23", "Thunderbird");
        Assert.Equal(Broker.Core.AppPasswords.ValidationResult.ApprovalRequired, (await store.ValidateAsync("bob@example.org", secret, elsewhere)).Result);
        await page.GotoAsync(env.Origin + "/AppPasswords");
        await Expect(page.Locator("#pending")).ToContainTextAsync("198.51.100.0/24");
        await EndToEndEnvironment.ScreenshotAsync(page, "15-new-network-approval");
        await page.Locator("#pending button", new() { HasTextString = "Approve" }).ClickAsync();
        await Expect(page.Locator(".flash")).ToContainTextAsync("may now be used from");
        Assert.Equal(Broker.Core.AppPasswords.ValidationResult.Allowed, (await store.ValidateAsync("bob@example.org", secret, elsewhere)).Result);

        // The administrator pages, for the admin guide.
        await page.GotoAsync(env.Origin + "/Admin/Users");
        await EndToEndEnvironment.ScreenshotAsync(page, "12-admin-users");
        await page.GotoAsync(env.Origin + "/Admin/Policy");
        await EndToEndEnvironment.ScreenshotAsync(page, "13-admin-policy");
        await page.GotoAsync(env.Origin + "/Admin/Audit");
        await Expect(page.Locator("#audit-events")).ToContainTextAsync("New network approved");
        await EndToEndEnvironment.ScreenshotAsync(page, "16-admin-audit");
        await page.GotoAsync(env.Origin + "/Account/StepUp?returnUrl=/AppPasswords/New");
        await EndToEndEnvironment.ScreenshotAsync(page, "14-step-up");
    }

    [Fact]
    public async Task Passkey_RegisteredFromAnotherOrigin_IsRefused()
    {
        await using var env = await EndToEndEnvironment.StartAsync();
        var link = await env.CreateUserAsync("carol@example.org");
        var page = await env.NewPageWithAuthenticatorAsync();
        await page.GotoAsync(link);
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");

        // Same host name (so the browser accepts the relying party id), but not the configured public
        // origin: the portal reached directly instead of through the gateway. The server must refuse it.
        await page.GotoAsync($"http://localhost:{env.Portal.Address.Port}/Security");
        await page.Locator("#add-passkey").ClickAsync();
        await Expect(page.Locator("p.error")).ToContainTextAsync("could not be registered");
        Assert.Equal(0, await page.Locator("#passkey-list").CountAsync());
        Assert.Contains(env.PortalLogs.Lines, l => l.Contains("[3012]", StringComparison.Ordinal) && l.Contains("origin", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Passkey_StaleSession_StepsUpWithPasskeyBeforeIssuing()
    {
        // The shortest window the options allow, so the test can outwait it.
        await using var env = await EndToEndEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:Portal:StepUpWindow"] = "00:00:30" });
        var link = await env.CreateUserAsync("dora@example.org");
        var page = await env.NewPageWithAuthenticatorAsync();
        await page.GotoAsync(link);
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");
        await page.Locator("#add-passkey").ClickAsync();
        await Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();

        await Task.Delay(TimeSpan.FromSeconds(31));
        // Adding a passkey needs a fresh check too: the page script is sent to the step-up (it used
        // to show "Something went wrong" on the redirect it could not read), and comes back here.
        await page.GotoAsync(env.Origin + "/Security");
        await page.Locator("#add-passkey").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/StepUp**");
        await page.Locator("#stepup-passkey").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");

        await Task.Delay(TimeSpan.FromSeconds(31));
        await page.GotoAsync(env.Origin + "/AppPasswords/New");
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/StepUp**");
        await page.Locator("#stepup-passkey").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords/New");
        await page.Locator("#Name").FillAsync("Android");
        await page.Locator("#create-app-password").ClickAsync();
        await Expect(page.Locator("#app-password")).ToBeVisibleAsync();
        var secret = (await page.Locator("#app-password").TextContentAsync())!.Trim();
        Assert.Equal(200, (await env.ValidateThroughGatewayAsync("dora@example.org", secret, "imap")).Status);
    }

    private static long CurrentStep() => DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 30;

    private static ILocatorAssertions Expect(ILocator locator) => Assertions.Expect(locator);
}
