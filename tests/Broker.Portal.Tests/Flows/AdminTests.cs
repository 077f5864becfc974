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
        var policy = await admin.Client.GetAsync("/Admin/Policy");
        Assert.Contains("imap", policy.TextOf("policy"), StringComparison.Ordinal);
    }

    private static string IdOf(string html, string username)
    {
        var row = html[html.IndexOf($"<strong>{username}</strong>", StringComparison.Ordinal)..];
        var m = System.Text.RegularExpressions.Regex.Match(row, "name=\"Id\" value=\"([^\"]+)\"");
        return m.Groups[1].Value;
    }
}
