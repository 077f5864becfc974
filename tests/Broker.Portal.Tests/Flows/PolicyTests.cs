using System.Net;
using Broker.Core.AppPasswords;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Tests.Flows;

/// <summary>The admin policy page: run-time changes to lifetimes, protocols and the required factor.</summary>
public sealed class PolicyTests
{
    private static List<KeyValuePair<string, string>> Fields(string min, string def, string max, string factor, params string[] scopes)
    {
        var fields = new List<KeyValuePair<string, string>> { new("MinimumLifetime", min), new("DefaultLifetime", def), new("MaximumLifetime", max), new("RequiredFactor", factor) };
        fields.AddRange(scopes.Select(s => new KeyValuePair<string, string>("Scopes", s)));
        return fields;
    }

    [Fact]
    public async Task AdminEditsPolicy_WithFreshMfa_NewLimitsApplyToTheNextAppPassword()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var user = await env.EnrollWithTotpAsync("rita");

        var saved = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "2d", "7d", "any", "imap"));

        Assert.Equal("/Admin/Policy", saved.Url);
        Assert.DoesNotContain("policy-error", saved.Html, StringComparison.Ordinal);
        Assert.Contains("7d", saved.TextOf("policy"), StringComparison.Ordinal);
        var form = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Contains("value=\"imap\"", form.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("value=\"submission\"", form.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("value=\"30.00:00:00\"", form.Html, StringComparison.Ordinal);
        Assert.Contains("value=\"2.00:00:00\" selected", form.Html, StringComparison.Ordinal);

        var tooLong = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Laptop"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], form.AntiforgeryToken());
        var smtp = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Laptop"), new("Scopes", "submission"), new("Lifetime", "7.00:00:00")], form.AntiforgeryToken());
        Assert.Contains("between", tooLong.Html, StringComparison.Ordinal);
        Assert.Contains("allowed protocols", smtp.Html, StringComparison.Ordinal);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("rita"));

        var created = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Laptop"), new("Scopes", "imap"), new("Lifetime", "7.00:00:00")], form.AntiforgeryToken());
        var secret = created.TextOf("app-password");
        var ap = Assert.Single(await env.Portal.AppPasswords.ListAsync("rita"));
        Assert.Equal(TimeSpan.FromDays(7), ap.Expires - ap.Created);
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("rita", secret));

        var audit = (await admin.Client.GetAsync("/Admin/Users")).TextOf("audit");
        Assert.Contains("Policy changed by administrator", audit, StringComparison.Ordinal);
        Assert.Contains("root", audit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminEditsPolicy_WithBadValues_IsRefusedWithAMessage()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);

        var refused = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("2d", "1d", "7d", "any", "imap"));
        var noScope = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "1d", "7d", "any"));

        Assert.Contains("default lifetime", refused.TextOf("policy-error"), StringComparison.Ordinal);
        Assert.Contains("at least one protocol", noScope.TextOf("policy-error"), StringComparison.Ordinal);
        Assert.False(env.Portal.Services.GetRequiredService<PolicyStore>().Current.Overridden);
    }

    [Fact]
    public async Task NonAdmin_CannotChangePolicy()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("sam");
        var page = await user.Client.GetAsync("/AppPasswords/New");

        var post = await user.Client.PostAsync("/Admin/Policy", "Save", Fields("1h", "1d", "2d", "passkey", "imap"), page.AntiforgeryToken(), follow: false);

        Assert.Equal(HttpStatusCode.Redirect, post.Status);
        Assert.StartsWith("/Account/Denied", post.Location!.Replace(env.Portal.Address.ToString().TrimEnd('/'), string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.False(env.Portal.Services.GetRequiredService<PolicyStore>().Current.Overridden);
    }

    [Fact]
    public async Task AdminEditsPolicy_WithoutFreshMfa_IsSentToStepUp()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var page = await admin.Client.GetAsync("/Admin/Policy");

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var post = await admin.Client.PostAsync("/Admin/Policy", "Save", Fields("1h", "1d", "2d", "passkey", "imap"), page.AntiforgeryToken(), follow: false);

        Assert.StartsWith("/Account/StepUp", post.Location, StringComparison.Ordinal);
        Assert.False(env.Portal.Services.GetRequiredService<PolicyStore>().Current.Overridden);
    }

    [Fact]
    public async Task AdminRequiresPasskey_TotpOnlyUserCannotIssue()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var user = await env.EnrollWithTotpAsync("tess");
        var form = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Equal("/AppPasswords/New", form.Url);

        await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "30d", "365d", "passkey", "imap", "submission"));

        var get = await user.Client.GetAsync("/AppPasswords/New");
        Assert.Equal("/Security", get.Url);
        Assert.Contains("requires a passkey", get.TextOf("enroll-required"), StringComparison.Ordinal);
        var post = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "Phone"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], form.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.Redirect, post.Status);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("tess"));
    }

    [Fact]
    public async Task PasskeyRequired_TotpOnlyUserWithFreshTotp_RenewApproveAndLimits_AreSentToAddAPasskey_NothingChanges()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("una");
        var on = await user.Client.SubmitAsync("/Security", "NewNetworkApproval", [new("Enabled", "true")]);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        await env.Portal.AppPasswords.ValidateAsync("una", secret, new ValidationContext("imap", "192.0.2.10", "test-client"));
        var before = Assert.Single(await env.Portal.AppPasswords.ListAsync("una"));
        Assert.Single(before.PendingNetworks);
        var token = (await user.Client.GetAsync("/AppPasswords")).AntiforgeryToken();

        // The admin now requires a passkey; the user's TOTP check is still within the step-up window.
        await env.Portal.Services.GetRequiredService<PolicyStore>().SetAsync(
            new PolicySettings(TimeSpan.FromDays(30), TimeSpan.FromHours(1), TimeSpan.FromDays(365), ["imap", "submission"], false, "passkey"), "root");
        env.Time.Advance(TimeSpan.FromHours(1));
        var stepUp = await user.Client.GetAsync("/Account/StepUp?returnUrl=/Security");
        await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/Security")], stepUp.AntiforgeryToken());

        var renew = await user.Client.PostAsync("/AppPasswords", "Renew", [new("Id", before.Id)], token, follow: false);
        var approve = await user.Client.PostAsync("/AppPasswords", "Approve", [new("Id", before.Id), new("Network", before.PendingNetworks[0])], token, follow: false);
        var networks = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", before.Id), new("Networks", "0.0.0.0/0")], token, follow: false);
        var countries = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", before.Id), new("Countries", "DE")], token, follow: false);
        var approvalOff = await user.Client.PostAsync("/Security", "NewNetworkApproval", [new("Enabled", "false")], on.AntiforgeryToken(), follow: false);

        foreach (var refused in new[] { renew, approve, networks, countries, approvalOff })
        {
            Assert.Equal(HttpStatusCode.Redirect, refused.Status);
            Assert.Equal("/Security", refused.Location);
        }

        var after = (await env.Portal.AppPasswords.GetAsync("una", before.Id))!;
        Assert.Equal(before.Expires, after.Expires);
        Assert.Equal(before.PendingNetworks, after.PendingNetworks);
        Assert.Empty(after.AllowedNetworks);
        Assert.Empty(after.AllowedCountries);
        Assert.True(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("una"));
        Assert.Contains("requires a passkey", (await user.Client.GetAsync("/Security")).TextOf("enroll-required"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminEditsPolicy_WithALifetimeBeyondTenYears_IsRefusedWithAMessage_AndIssuingStillWorks()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);

        // 10675199 days is just short of TimeSpan.MaxValue: "now + lifetime" overflowed.
        var huge = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "30d", "10675199.00:00:00", "any", "imap"));
        // A bare number was read as days; it is refused instead of guessed.
        var bare = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "30d", "90", "any", "imap"));
        Assert.Contains("'90' has no unit", bare.TextOf("policy-error"), StringComparison.Ordinal);
        var tooLong = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "30d", "3651d", "any", "imap"));

        Assert.Equal(HttpStatusCode.OK, huge.Status);
        Assert.Contains("at most 3650 days", huge.TextOf("policy-error"), StringComparison.Ordinal);
        Assert.Contains("at most 3650 days", tooLong.TextOf("policy-error"), StringComparison.Ordinal);
        Assert.False(env.Portal.Services.GetRequiredService<PolicyStore>().Current.Overridden);
        var saved = await admin.Client.SubmitAsync("/Admin/Policy", "Save", Fields("1h", "30d", "3650d", "any", "imap"));
        Assert.DoesNotContain("policy-error", saved.Html, StringComparison.Ordinal);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(admin.Client, "Desk", "imap");
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("root", secret));
    }
}
