using System.Net;
using Broker.Core.AppPasswords;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

/// <summary>New-network approval, deny, allowed networks and the per-user setting, through the portal.</summary>
public sealed class NetworkApprovalTests
{
    private const string Elsewhere = "192.0.2.10";

    [Fact]
    public async Task Approve_WithFreshMfa_LetsThePendingNetworkIn_AndCreatorsNetworkIsNotHeld()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("amy");
        await TurnApprovalOnAsync(user);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Laptop");

        // Issued from 127.0.0.1 (the portal request): that network counts as approved already.
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "amy", secret, "127.0.0.1")).Result);
        Assert.Equal(ValidationResult.ApprovalRequired, (await ValidateFromAsync(env, "amy", secret, Elsewhere)).Result);

        var list = await user.Client.GetAsync("/AppPasswords");
        var ap = (await env.Portal.AppPasswords.ListAsync("amy")).Single();
        var network = Assert.Single(ap.PendingNetworks);
        Assert.Contains(network, list.TextOf("pending"), StringComparison.Ordinal);
        Assert.Contains("Laptop", list.TextOf("pending"), StringComparison.Ordinal);

        var approved = await user.Client.PostAsync("/AppPasswords", "Approve", [new("Id", ap.Id), new("Network", network)], list.AntiforgeryToken());
        Assert.Equal("/AppPasswords", approved.Url);
        Assert.Contains("may now be used from", approved.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"pending\"", approved.Html, StringComparison.Ordinal);
        Assert.Contains(network, (await env.Portal.AppPasswords.GetAsync("amy", ap.Id))!.Networks);
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("amy", secret));
        Assert.Contains("New network approved", (await user.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Approve_WithoutFreshMfa_RequiresStepUp_AndStaysPending()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("bob");
        await TurnApprovalOnAsync(user);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        await ValidateFromAsync(env, "bob", secret, Elsewhere);
        var ap = (await env.Portal.AppPasswords.ListAsync("bob")).Single();

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var list = await user.Client.GetAsync("/AppPasswords");
        var approve = await user.Client.PostAsync("/AppPasswords", "Approve", [new("Id", ap.Id), new("Network", ap.PendingNetworks[0])], list.AntiforgeryToken(), follow: false);

        Assert.StartsWith("/Account/StepUp", approve.Location, StringComparison.Ordinal);
        Assert.Single((await env.Portal.AppPasswords.GetAsync("bob", ap.Id))!.PendingNetworks);
        Assert.Equal(ValidationResult.ApprovalRequired, (await ValidateFromAsync(env, "bob", secret, Elsewhere)).Result);

        // After the step-up it goes through.
        var stepUp = await user.Client.GetAsync(approve.Location!);
        var back = await user.Client.PostAsync(stepUp.Url, "Totp", [new("Code", env.NextCode(user.TotpKey)), new("ReturnUrl", "/AppPasswords")], stepUp.AntiforgeryToken());
        Assert.Equal("/AppPasswords", back.Url);
        await user.Client.PostAsync("/AppPasswords", "Approve", [new("Id", ap.Id), new("Network", ap.PendingNetworks[0])], back.AntiforgeryToken());
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "bob", secret, Elsewhere)).Result);
    }

    [Fact]
    public async Task Deny_RevokesTheAppPassword_AndIsRecorded()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("cleo");
        await TurnApprovalOnAsync(user);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Outlook");
        await ValidateFromAsync(env, "cleo", secret, Elsewhere);
        var ap = (await env.Portal.AppPasswords.ListAsync("cleo")).Single();

        // Denying takes access away, so even a stale session may do it.
        env.Time.Advance(TimeSpan.FromMinutes(6));
        var list = await user.Client.GetAsync("/AppPasswords");
        var denied = await user.Client.PostAsync("/AppPasswords", "Deny", [new("Id", ap.Id), new("Network", ap.PendingNetworks[0])], list.AntiforgeryToken());

        Assert.Contains("revoked", denied.Html, StringComparison.Ordinal);
        Assert.NotNull((await env.Portal.AppPasswords.GetAsync("cleo", ap.Id))!.Revoked);
        Assert.Equal(ValidationResult.Denied, (await ValidateFromAsync(env, "cleo", secret, "127.0.0.1")).Result);
        var activity = (await user.Client.GetAsync("/Security/Activity")).TextOf("activity");
        Assert.Contains("New network denied, app password revoked", activity, StringComparison.Ordinal);
        Assert.Contains(ap.PendingNetworks[0], activity, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnotherUsersAppPasswordId_ApproveDenyAndAllowedNetworks_ChangeNothing()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var victim = await env.EnrollWithTotpAsync("dana");
        await TurnApprovalOnAsync(victim);
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(victim.Client, "Thunderbird");
        await ValidateFromAsync(env, "dana", secret, Elsewhere);
        var ap = (await env.Portal.AppPasswords.ListAsync("dana")).Single();
        var network = ap.PendingNetworks[0];

        var other = await env.EnrollWithTotpAsync("eve");
        var page = await other.Client.GetAsync("/AppPasswords");
        var token = page.AntiforgeryToken();
        await other.Client.PostAsync("/AppPasswords", "Approve", [new("Id", ap.Id), new("Network", network)], token);
        await other.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "198.51.100.0/24")], token);
        await other.Client.PostAsync("/AppPasswords", "Deny", [new("Id", ap.Id), new("Network", network)], token);

        var after = (await env.Portal.AppPasswords.GetAsync("dana", ap.Id))!;
        Assert.Null(after.Revoked);
        Assert.Equal([network], after.PendingNetworks);
        Assert.Empty(after.AllowedNetworks);
        Assert.DoesNotContain("New network", (await other.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Approve_NetworkThatIsNotPending_ChangesNothing()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("finn");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Phone");
        var ap = (await env.Portal.AppPasswords.ListAsync("finn")).Single();

        var list = await user.Client.GetAsync("/AppPasswords");
        await user.Client.PostAsync("/AppPasswords", "Approve", [new("Id", ap.Id), new("Network", "203.0.113.0/24")], list.AntiforgeryToken());

        Assert.DoesNotContain("203.0.113.0/24", (await env.Portal.AppPasswords.GetAsync("finn", ap.Id))!.Networks);
        Assert.Equal(HttpStatusCode.OK, await env.ValidateAsync("finn", secret));
    }

    [Fact]
    public async Task AllowedNetworks_SetClearAndBadCidr_WithClearMessage()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("gus");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("gus")).Single();

        var list = await user.Client.GetAsync("/AppPasswords");
        var set = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "198.51.100.0/24, 2001:db8::/48")], list.AntiforgeryToken());
        Assert.Contains("may be used only from", set.Html, StringComparison.Ordinal);
        Assert.Equal(2, (await env.Portal.AppPasswords.GetAsync("gus", ap.Id))!.AllowedNetworks.Count);
        Assert.Equal(ValidationResult.Denied, (await ValidateFromAsync(env, "gus", secret, Elsewhere)).Result);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "gus", secret, "198.51.100.7")).Result);

        var bad = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "10.0.0.0/33")], set.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, bad.Status);
        Assert.Contains("&#x27;10.0.0.0/33&#x27; is not an address or network", bad.Html, StringComparison.Ordinal);
        Assert.Contains("value=\"10.0.0.0/33\"", bad.Html, StringComparison.Ordinal);
        Assert.Equal(2, (await env.Portal.AppPasswords.GetAsync("gus", ap.Id))!.AllowedNetworks.Count);

        var cleared = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "")], bad.AntiforgeryToken());
        Assert.Contains("may be used from anywhere", cleared.Html, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("gus", ap.Id))!.AllowedNetworks);
        Assert.Contains("Allowed networks changed", (await user.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AllowedNetworks_WithoutFreshMfa_RequiresStepUp()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("hana");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("hana")).Single();

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var list = await user.Client.GetAsync("/AppPasswords");
        var post = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "198.51.100.0/24")], list.AntiforgeryToken(), follow: false);

        Assert.StartsWith("/Account/StepUp", post.Location, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("hana", ap.Id))!.AllowedNetworks);
    }

    [Fact]
    public async Task Setting_TurnOnAnyTime_TurnOffNeedsFreshMfa()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ines");
        Assert.False(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("ines"));
        Assert.StartsWith("Off", (await user.Client.GetAsync("/Security")).TextOf("new-network-approval"), StringComparison.Ordinal);

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var on = await user.Client.SubmitAsync("/Security", "NewNetworkApproval", [new("Enabled", "true")]);
        Assert.StartsWith("On", on.TextOf("new-network-approval"), StringComparison.Ordinal);
        Assert.True(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("ines"));

        var off = await user.Client.PostAsync("/Security", "NewNetworkApproval", [new("Enabled", "false")], on.AntiforgeryToken(), follow: false);
        Assert.StartsWith("/Account/StepUp", off.Location, StringComparison.Ordinal);
        Assert.True(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("ines"));
        Assert.Contains("New-network approval setting changed", (await user.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_SetsNewNetworkApprovalPerUser_AndItIsAudited()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        await env.EnrollWithTotpAsync("jack");

        var users = await admin.Client.GetAsync("/Admin/Users");
        var id = IdOf(users.Html, "jack");
        await admin.Client.PostAsync("/Admin/Users", "NetworkApproval", [new("Id", id), new("Approval", "on")], users.AntiforgeryToken());
        Assert.True(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("jack"));
        var audit = (await admin.Client.GetAsync("/Admin/Users")).TextOf("audit");
        Assert.Contains("New-network approval setting changed", audit, StringComparison.Ordinal);

        await admin.Client.PostAsync("/Admin/Users", "NetworkApproval", [new("Id", id), new("Approval", "default")], users.AntiforgeryToken());
        Assert.False(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("jack"));

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var stale = await admin.Client.PostAsync("/Admin/Users", "NetworkApproval", [new("Id", id), new("Approval", "on")], users.AntiforgeryToken(), follow: false);
        Assert.StartsWith("/Account/StepUp", stale.Location, StringComparison.Ordinal);
        Assert.False(await env.Portal.AppPasswords.RequiresNewNetworkApprovalAsync("jack"));
    }

    private static async Task TurnApprovalOnAsync(EnrolledUser user)
    {
        var page = await user.Client.SubmitAsync("/Security", "NewNetworkApproval", [new("Enabled", "true")]);
        Assert.StartsWith("On", page.TextOf("new-network-approval"), StringComparison.Ordinal);
    }

    /// <summary>A login as the mail side reports it, from a given address.</summary>
    private static Task<ValidationOutcome> ValidateFromAsync(PortalEnvironment env, string user, string secret, string remoteIp) =>
        env.Portal.AppPasswords.ValidateAsync(user, secret, new ValidationContext("imap", remoteIp, "test-client"));

    private static string IdOf(string html, string username)
    {
        var row = html[html.IndexOf($"<strong>{username}</strong>", StringComparison.Ordinal)..];
        return System.Text.RegularExpressions.Regex.Match(row, "name=\"Id\" value=\"([^\"]+)\"").Groups[1].Value;
    }
}
