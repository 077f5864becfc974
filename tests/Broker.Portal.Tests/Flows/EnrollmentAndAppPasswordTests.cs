using System.Net;
using Broker.Portal.Accounts;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

public sealed class EnrollmentAndAppPasswordTests
{
    [Fact]
    public async Task Enroll_WithTotp_IssuesAppPasswordThatValidates()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await EnrollWithTotpIssuesAppPasswordThatValidatesAsync(env);
    }

    /// <summary>Enrollment with TOTP, an app password from the portal, validated as a mail server would. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task EnrollWithTotpIssuesAppPasswordThatValidatesAsync(PortalEnvironment env)
    {
        var user = await env.EnrollWithTotpAsync("Alice@Example.org");

        var (secret, page) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Thunderbird", "imap", "submission");

        Assert.Contains("imap.example.org", page.TextOf("client-settings"), StringComparison.Ordinal);
        // The owner is the normalised username, so the mail server's login matches in any case.
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("alice@example.org", secret, "imap"));
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("ALICE@example.org", secret, "submission"));
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("alice@example.org", secret, "pop3"));
        // The portal password is never a mail password.
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("alice@example.org", PortalEnvironment.Password, "imap"));

        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains("Thunderbird", list.TextOf("app-passwords"), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnrollmentLink_UsedTwice_IsRefused()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var link = await env.CreateUserAsync("bob");
        using var first = env.NewClient();
        var page = await first.GetAsync(link);
        var token = link.Split("token=")[1];
        await first.PostAsync(page.Url, null, [new("Token", token), new("Password", PortalEnvironment.Password), new("Confirm", PortalEnvironment.Password)], page.AntiforgeryToken());

        using var second = env.NewClient();
        var again = await second.GetAsync(link);
        Assert.Contains("not valid", again.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("name=\"Password\"", again.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Enroll_PasswordLongerThanSignInAccepts_IsRefused_TheLongestAllowedSignsIn()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var link = await env.CreateUserAsync("bert");
        var token = link.Split("token=")[1];
        using var client = env.NewClient();
        var page = await client.GetAsync(link);
        var tooLong = new string('x', 1024) + "y";
        var refused = await client.PostAsync(page.Url, null, [new("Token", token), new("Password", tooLong), new("Confirm", tooLong)], page.AntiforgeryToken());
        Assert.Contains("at most 1024 characters", refused.Html, StringComparison.Ordinal);

        // The link still works, and the longest password it accepts is one the sign-in page accepts.
        var longest = string.Concat(Enumerable.Repeat("horse battery ", 80))[..1024];
        var enrolled = await client.PostAsync(page.Url, null, [new("Token", token), new("Password", longest), new("Confirm", longest)], refused.AntiforgeryToken());
        Assert.Equal("/Security", enrolled.Url);
        using var other = env.NewClient();
        var signedIn = await other.SubmitAsync("/Account/Login", "Password", [new("Username", "bert"), new("Password", longest)]);
        Assert.Equal("/Security", signedIn.Url);
    }

    [Fact]
    public async Task EnrollmentLink_ForAForgottenPassword_SaysTheFactorIsAskedNext_AndAsksForIt()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("fred");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client);
        var link = new Uri((await PortalCommands.NewEnrollmentLinkAsync(env.Portal.Services, "fred", CancellationToken.None))!).PathAndQuery;

        using var client = env.NewClient();
        var page = await client.GetAsync(link);
        // The page told someone who still has an authenticator app to add one, which never happens next.
        Assert.Contains("Choose a new password", page.Html, StringComparison.Ordinal);
        Assert.Contains("confirm with your passkey or authenticator app", page.TextOf("enroll-next"), StringComparison.Ordinal);
        Assert.DoesNotContain("add a passkey or an authenticator app", page.Html, StringComparison.Ordinal);

        const string newPassword = "a brand new passphrase";
        var second = await client.PostAsync(page.Url, null, [new("Token", link.Split("token=")[1]), new("Password", newPassword), new("Confirm", newPassword)], page.AntiforgeryToken());
        Assert.Equal("/Account/SecondFactor", second.Url);
        var done = await client.PostAsync(second.Url, "Totp", [new("Code", env.NextCode(user.TotpKey))], second.AntiforgeryToken());
        Assert.Equal("/AppPasswords", done.Url);

        // As the page says: the other session has ended and the app password still works.
        Assert.Equal("/Account/Login", (await user.Client.GetAsync("/AppPasswords")).Url.Split('?')[0]);
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("fred", secret));

        // A link for an account without factors still says what comes next there.
        var newcomer = await client.GetAsync(await env.CreateUserAsync("gina"));
        Assert.Contains("Set up your account", newcomer.Html, StringComparison.Ordinal);
        Assert.Contains("add a passkey or an authenticator app", newcomer.TextOf("enroll-next"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PasswordOnlySession_CannotIssueAppPasswords()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var link = await env.CreateUserAsync("carol");
        using var client = env.NewClient();
        var page = await client.GetAsync(link);
        var enrolled = await client.PostAsync(page.Url, null, [new("Token", link.Split("token=")[1]), new("Password", PortalEnvironment.Password), new("Confirm", PortalEnvironment.Password)], page.AntiforgeryToken());
        Assert.Equal("/Security", enrolled.Url);
        Assert.Contains("enroll-required", enrolled.Html, StringComparison.Ordinal);
        // Not "0 of 10 unused": there are no recovery codes before the first factor.
        Assert.Contains("when you add your first passkey", enrolled.TextOf("recovery-none"), StringComparison.Ordinal);
        Assert.DoesNotContain("recovery-left", enrolled.Html, StringComparison.Ordinal);

        // Reaching for app passwords sends the user back to enroll a second factor.
        var newPage = await client.GetAsync("/AppPasswords/New");
        Assert.Equal("/Security", newPage.Url);
        var post = await client.PostAsync("/AppPasswords/New", null, [new("Name", "x"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], enrolled.AntiforgeryToken(), follow: false);
        Assert.NotEqual(HttpStatusCode.OK, post.Status);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("carol"));

        // Signing in again with the password alone also ends in enrollment, never in a full session.
        using var again = env.NewClient();
        var signedIn = await again.SubmitAsync("/Account/Login", "Password", [new("Username", "carol"), new("Password", PortalEnvironment.Password)]);
        Assert.Equal("/Security", signedIn.Url);
        Assert.Equal("/Security", (await again.GetAsync("/AppPasswords")).Url);
    }

    [Fact]
    public async Task RenewRevokeAndRevokeAll_ChangeWhatValidates()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("dave");
        var (one, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        var (two, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Laptop");
        var (three, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Tablet");
        var items = await env.Portal.AppPasswords.ListAsync("dave");
        var phone = items.Single(a => a.Name == "Phone");

        env.Time.Advance(TimeSpan.FromMinutes(1));
        var list = await user.Client.GetAsync("/AppPasswords");
        var renewed = await user.Client.PostAsync("/AppPasswords", "Renew", [new("Id", phone.Id)], list.AntiforgeryToken());
        Assert.Contains("renewed", renewed.Html, StringComparison.Ordinal);
        Assert.True((await env.Portal.AppPasswords.GetAsync("dave", phone.Id))!.Expires > phone.Expires);
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("dave", one));

        await user.Client.PostAsync("/AppPasswords", "Revoke", [new("Id", phone.Id)], list.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("dave", one));
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("dave", two));

        await user.Client.PostAsync("/AppPasswords", "RevokeAll", [], list.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("dave", two));
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("dave", three));
    }

    [Fact]
    public async Task Renew_GivesTheAppPasswordItsOwnLifetimeAgain_AndTheButtonSaysSo()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("yuri");
        var form = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Contains(">1 hour</option>", form.Html, StringComparison.Ordinal); // a lifetime in its own unit, not "60 minutes"
        await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Desktop"), new("Lifetime", "365.00:00:00"), new("Scopes", "imap")], form.AntiforgeryToken());
        var desktop = (await env.Portal.AppPasswords.ListAsync("yuri")).Single();
        env.Time.Advance(TimeSpan.FromMinutes(2));

        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains("Extend to 365 days from now", list.Html, StringComparison.Ordinal);
        Assert.Contains("365 days left", list.Html, StringComparison.Ordinal); // not 364 after two minutes
        var renewed = await user.Client.PostAsync("/AppPasswords", "Renew", [new("Id", desktop.Id)], list.AntiforgeryToken());

        // Not the default 30 days, which would have cut a year's app password to a month.
        Assert.Contains("renewed", renewed.Html, StringComparison.Ordinal);
        Assert.Equal(env.Time.GetUtcNow() + TimeSpan.FromDays(365), (await env.Portal.AppPasswords.GetAsync("yuri", desktop.Id))!.Expires, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task AppPasswordList_ShowsLastUseAndExpiryWarning()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("erin");
        var form = await user.Client.GetAsync("/AppPasswords/New");
        var created = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Outlook"), new("Scopes", "imap"), new("Lifetime", "7.00:00:00")], form.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("erin", created.TextOf("app-password")));

        var list = await user.Client.GetAsync("/AppPasswords");
        var table = list.TextOf("app-passwords");
        Assert.Contains("expires in", list.Html, StringComparison.Ordinal);
        Assert.Contains("192.0.2.10", list.Html, StringComparison.Ordinal);
        Assert.Contains("Outlook", table, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TotpSetup_EveryViewGetsItsOwnKey_AKeySeenEarlierOrElsewhereIsNotEnrolled()
    {
        await using var env = await PortalEnvironment.StartAsync();
        using var owner = await SetPasswordOnlyAsync(env, "vic");
        // Someone who knows the password opens the setup page in another session first.
        using var other = env.NewClient();
        await other.SubmitAsync("/Account/Login", "Password", [new("Username", "vic"), new("Password", PortalEnvironment.Password)]);
        var seenElsewhere = KeyOf(await other.GetAsync("/Security/Totp"));

        var firstView = await owner.GetAsync("/Security/Totp");
        var page = await owner.GetAsync("/Security/Totp");
        var key = KeyOf(page);
        Assert.Equal(3, new[] { seenElsewhere, KeyOf(firstView), key }.Distinct().Count());

        // The code of an earlier view's key does not confirm this view, and the same key is shown again.
        var wrongView = await owner.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(KeyOf(firstView))), new("Name", "Phone"), new("Pending", page.HiddenValue("Pending")!)], page.AntiforgeryToken());
        Assert.Contains("does not match", wrongView.Html, StringComparison.Ordinal);
        Assert.Equal(key, KeyOf(wrongView));
        var done = await owner.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(key)), new("Name", "Phone"), new("Pending", wrongView.HiddenValue("Pending")!)], wrongView.AntiforgeryToken());
        Assert.Equal(10, done.RecoveryCodes().Count);

        foreach (var earlier in new[] { seenElsewhere, KeyOf(firstView) })
        {
            using var attempt = env.NewClient();
            var second = await attempt.SubmitAsync("/Account/Login", "Password", [new("Username", "vic"), new("Password", PortalEnvironment.Password)]);
            var refused = await attempt.PostAsync(second.Url, "Totp", [new("Code", env.NextCode(earlier))], second.AntiforgeryToken());
            Assert.Equal("/Account/SecondFactor", refused.Url.Split('?')[0]);
        }

        // The key shown by the view whose form was confirmed is the one that signs in.
        using var signedIn = await env.SignInWithTotpAsync(new EnrolledUser("vic", key, done.RecoveryCodes(), owner));
    }

    [Fact]
    public async Task TotpSetup_KeyOlderThanFifteenMinutes_IsNotEnrolled_AndANewOneIsShown()
    {
        await using var env = await PortalEnvironment.StartAsync();
        using var owner = await SetPasswordOnlyAsync(env, "wes");
        var page = await owner.GetAsync("/Security/Totp");
        var key = KeyOf(page);

        env.Time.Advance(TimeSpan.FromMinutes(16));
        var late = await owner.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(key)), new("Name", "Phone"), new("Pending", page.HiddenValue("Pending")!)], page.AntiforgeryToken());

        Assert.Contains("expired", late.Html, StringComparison.Ordinal);
        Assert.NotEqual(key, KeyOf(late));
        Assert.Equal("/Security/Totp", (await owner.GetAsync("/Security/Totp")).Url);
    }

    [Fact]
    public async Task TotpReplacement_NewPhone_NeedsAFreshCheck_AndTheOldAppWorksUntilTheNewOneIsConfirmed()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("yan");
        env.Time.Advance(TimeSpan.FromMinutes(10));

        // The app is the only factor; replacing it is offered, behind a fresh check.
        Assert.Contains("replace-totp", (await user.Client.GetAsync("/Security")).Html, StringComparison.Ordinal);
        var gate = await user.Client.GetRawAsync("/Security/Totp");
        Assert.StartsWith("/Account/StepUp", gate.Location, StringComparison.Ordinal);
        var stepUp = await user.Client.GetAsync(gate.Location!);
        var setup = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/Security/Totp")], stepUp.AntiforgeryToken());
        Assert.Equal("/Security/Totp", setup.Url);
        Assert.Contains("Phone app", setup.TextOf("totp-replaces"), StringComparison.Ordinal);
        var newKey = KeyOf(setup);

        // Until the new app is confirmed the old one still signs in: no moment without a factor.
        using (await env.SignInWithTotpAsync(user))
        {
        }

        var done = await user.Client.PostAsync("/Security/Totp", null, [new("Code", env.NextCode(newKey)), new("Name", "New phone"), new("Pending", setup.HiddenValue("Pending")!)], setup.AntiforgeryToken());
        Assert.Equal("/Security", done.Url);
        Assert.Equal("New phone", done.TextOf("totp-name"));
        Assert.Contains("replaces \"Phone app\"", (await user.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);

        using var old = env.NewClient();
        var second = await old.SubmitAsync("/Account/Login", "Password", [new("Username", "yan"), new("Password", PortalEnvironment.Password)]);
        var refused = await old.PostAsync(second.Url, "Totp", [new("Code", env.NextCode(user.TotpKey))], second.AntiforgeryToken());
        Assert.Equal("/Account/SecondFactor", refused.Url.Split('?')[0]);
        using var signedIn = await env.SignInWithTotpAsync(user with { TotpKey = newKey });
    }

    /// <summary>An account whose owner has set a password from the enrollment link and has no second factor yet.</summary>
    private static async Task<PortalClient> SetPasswordOnlyAsync(PortalEnvironment env, string username)
    {
        var link = await env.CreateUserAsync(username);
        var client = env.NewClient();
        var enroll = await client.GetAsync(link);
        var token = link.Split("token=")[1];
        var set = await client.PostAsync(enroll.Url, null, [new("Token", token), new("Password", PortalEnvironment.Password), new("Confirm", PortalEnvironment.Password)], enroll.AntiforgeryToken());
        Assert.Equal("/Security", set.Url);
        return client;
    }

    private static string KeyOf(PageResponse page) => page.TextOf("totp-key").Replace(" ", string.Empty, StringComparison.Ordinal);
}
