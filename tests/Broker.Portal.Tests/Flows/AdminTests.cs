using System.Net;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

public sealed class AdminTests
{
    [Fact]
    public async Task DisableUser_AppPasswordsStopValidating_AndSignInIsRefused()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await DisableUserRevokesAsync(env);
    }

    /// <summary>An admin disables a user: app passwords stop validating, sign-in is refused. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task DisableUserRevokesAsync(PortalEnvironment env)
    {
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var user = await env.EnrollWithTotpAsync("nina");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("nina", secret));

        var users = await admin.Client.GetAsync("/Admin/Users");
        var id = IdOf(users.Html, "nina");
        var disabled = await admin.Client.PostAsync("/Admin/Users", "Disable", [new("Id", id)], users.AntiforgeryToken());
        Assert.Contains("disabled", disabled.Html, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("nina", secret));
        using var c = env.NewClient();
        var login = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "nina"), new("Password", PortalEnvironment.Password)]);
        Assert.Equal("/Account/Login", login.Url.Split('?')[0]);
        Assert.Contains("login-error", login.Html, StringComparison.Ordinal);
        Assert.Contains("Account disabled", (await admin.Client.GetAsync("/Admin/Users")).TextOf("audit"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResetFactors_ForcesReenrollment_AndIsAudited()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        await env.EnrollWithTotpAsync("olga");

        var users = await admin.Client.GetAsync("/Admin/Users");
        await admin.Client.PostAsync("/Admin/Users", "ResetFactors", [new("Id", IdOf(users.Html, "olga")), new("Reason", "lost phone, ticket 42")], users.AntiforgeryToken());
        var audit = (await admin.Client.GetAsync("/Admin/Users")).TextOf("audit");
        Assert.Contains("lost phone, ticket 42", audit, StringComparison.Ordinal);
        Assert.Contains("root", audit, StringComparison.Ordinal);

        using var c = env.NewClient();
        var signedIn = await c.SubmitAsync("/Account/Login", "Password", [new("Username", "olga"), new("Password", PortalEnvironment.Password)]);
        Assert.Equal("/Security", signedIn.Url);
        Assert.Contains("enroll-required", signedIn.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateUserPage_ShowsEnrollmentLinkThatWorks()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var created = await admin.Client.SubmitAsync("/Admin/Users", "Create", [new("Username", "Peggy@Example.org")]);
        var link = new Uri(created.TextOf("enrollment-link"));

        using var c = env.NewClient();
        var page = await c.GetAsync(link.PathAndQuery);
        Assert.Equal("peggy@example.org", page.TextOf("enroll-username"));
    }

    [Fact]
    public async Task CreateUserPage_RefusesInvisibleCharacters_AndNamesThem()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);

        // A zero width space would make a second "root" that looks the same in the list and the audit.
        var refused = await admin.Client.SubmitAsync("/Admin/Users", "Create", [new("Username", "ro\u200Bot")]);

        Assert.Contains("invisible character U+200B", WebUtility.HtmlDecode(refused.Html), StringComparison.Ordinal);
        Assert.DoesNotContain("enrollment-link", refused.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("ro\u200Bot", WebUtility.HtmlDecode((await admin.Client.GetAsync("/Admin/Users")).Html), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonAdmin_CannotOpenAdminPages()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("quinn");
        foreach (var page in new[] { "/Admin/Users", "/Admin/Policy", "/Admin/ApiKeys" })
        {
            Assert.Equal("/Account/Denied", (await user.Client.GetAsync(page)).Url.Split('?')[0]);
        }
    }

    [Fact]
    public async Task ApiKeysPage_CreatesKeyThatAuthenticatesMailServer()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var created = await admin.Client.SubmitAsync("/Admin/ApiKeys", "Create", [new("Name", "dovecot-1")]);
        var key = created.TextOf("new-api-key");
        Assert.Contains("dovecot-1", created.TextOf("api-keys"), StringComparison.Ordinal);
        Assert.StartsWith("bk_", key, StringComparison.Ordinal);
        var refused = await admin.Client.SubmitAsync("/Admin/ApiKeys", "Create", [new("Name", "dove\u0007cot")]);
        Assert.Equal("The caller name must be 1 to 64 printable characters.", refused.TextOf("api-key-error"));
        var policy = await admin.Client.GetAsync("/Admin/Policy");
        Assert.Contains("imap", policy.TextOf("policy"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DisableUser_OpenSessionsWithFreshMfa_CanNoLongerIssueRenewOrStepUp()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var user = await env.EnrollWithTotpAsync("dora");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        var ap = Assert.Single(await env.Portal.AppPasswords.ListAsync("dora"));
        // One browser per attempt: the first refusal also ends the session it came from.
        using var second = await env.SignInWithTotpAsync(user);
        using var third = await env.SignInWithTotpAsync(user);
        // Each session's cookie is revalidated (and re-issued) now, so the disable below falls inside
        // the one-minute interval in which the stale cookie is not compared with the security stamp.
        env.Time.Advance(TimeSpan.FromMinutes(2));
        var form = await user.Client.GetAsync("/AppPasswords/New");
        var list = await second.GetAsync("/AppPasswords");
        var stepUp = await third.GetAsync("/Account/StepUp?returnUrl=/AppPasswords");
        Assert.Equal(["/AppPasswords/New", "/AppPasswords", "/Account/StepUp"], new[] { form.Url, list.Url, stepUp.Url.Split('?')[0] });

        var users = await admin.Client.GetAsync("/Admin/Users");
        await admin.Client.PostAsync("/Admin/Users", "Disable", [new("Id", IdOf(users.Html, "dora"))], users.AntiforgeryToken());
        env.Time.Advance(TimeSpan.FromSeconds(10));

        var issue = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "After disable"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], form.AntiforgeryToken(), follow: false);
        var renew = await second.PostAsync("/AppPasswords", "Renew", [new("Id", ap.Id)], list.AntiforgeryToken(), follow: false);
        var step = await third.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords")], stepUp.AntiforgeryToken(), follow: false);

        foreach (var refused in new[] { issue, renew, step })
        {
            Assert.Equal(HttpStatusCode.Redirect, refused.Status);
            Assert.Equal("/Account/Login", refused.Location);
        }

        Assert.Equal(ap.Expires, Assert.Single(await env.Portal.AppPasswords.ListAsync("dora")).Expires);
        Assert.Equal("/Account/Login", (await user.Client.GetAsync("/AppPasswords")).Url.Split('?')[0]);
        Assert.DoesNotContain("Re-verified identity", (await admin.Client.GetAsync("/Admin/Audit?user=dora")).TextOf("audit-events"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResetFactors_OpenSessionOfTheUser_CannotEnrollAFactorOfItsOwnWithinTheStampInterval()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        // The session of whoever planted a factor on the account: the reason for the reset.
        var user = await env.EnrollWithTotpAsync("otto");
        // The cookie is revalidated (and re-issued) now, so the reset below falls inside the one-minute
        // interval in which the stale cookie is not compared with the security stamp.
        env.Time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal("/Security", (await user.Client.GetAsync("/Security")).Url);

        var users = await admin.Client.GetAsync("/Admin/Users");
        await admin.Client.PostAsync("/Admin/Users", "ResetFactors", [new("Id", IdOf(users.Html, "otto")), new("Reason", "unknown passkey")], users.AntiforgeryToken());
        env.Time.Advance(TimeSpan.FromSeconds(10));

        // The account has no factor now, so a session could add one without any check; the old one
        // must be over instead, as sign out everywhere and a new password end the others.
        var setup = await user.Client.GetAsync("/Security/Totp");
        Assert.Equal("/Account/Login", setup.Url.Split('?')[0]);
        Assert.DoesNotContain("totp-key", setup.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SignOutEverywhere_OtherSessionsEndAtTheirNextRequest_NotAMinuteLater()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ute");
        using var other = await env.SignInWithTotpAsync(user);
        env.Time.Advance(TimeSpan.FromMinutes(2));
        var stepUp = await other.GetAsync("/Account/StepUp?returnUrl=/AppPasswords");
        Assert.Equal("/Account/StepUp", stepUp.Url.Split('?')[0]);

        var security = await user.Client.GetAsync("/Security");
        await user.Client.PostAsync("/Security", "SignOutEverywhere", [], security.AntiforgeryToken());
        env.Time.Advance(TimeSpan.FromSeconds(10));

        // A step-up re-issues the cookie with the account's new stamp: it would outlive the sign-out.
        var step = await other.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords")], stepUp.AntiforgeryToken(), follow: false);
        Assert.Equal("/Account/Login", step.Location);
        env.Time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal("/Account/Login", (await other.GetAsync("/AppPasswords")).Url.Split('?')[0]);
    }

    private static string IdOf(string html, string username)
    {
        var row = html[html.IndexOf($"<strong>{username}</strong>", StringComparison.Ordinal)..];
        var m = System.Text.RegularExpressions.Regex.Match(row, "name=\"Id\" value=\"([^\"]+)\"");
        return m.Groups[1].Value;
    }
}
