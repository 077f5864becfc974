using System.Net;
using Broker.Portal.Tests.Infrastructure;

namespace Broker.Portal.Tests.Flows;

public sealed class MailClientAndActivityTests
{
    [Fact]
    public async Task Autoconfig_ServesConfiguredServers()
    {
        await using var env = await PortalEnvironment.StartAsync();
        using var c = env.NewClient();
        foreach (var path in new[] { "/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=a%40example.org" })
        {
            var response = await c.Http.GetAsync(path);
            var xml = System.Xml.Linq.XDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("application/xml", response.Content.Headers.ContentType!.MediaType);
            Assert.Equal("imap.example.org", xml.Descendants("incomingServer").First().Element("hostname")!.Value);
            Assert.Equal("993", xml.Descendants("incomingServer").First().Element("port")!.Value);
            Assert.Contains(xml.Descendants("outgoingServer"), s => s.Element("port")!.Value == "587" && s.Element("socketType")!.Value == "STARTTLS");
            Assert.Equal("example.org", xml.Descendants("domain").Single().Value);
        }
    }

    [Fact]
    public async Task MobileConfig_EmbedsTheNewAppPassword_ForItsOwnerOnly()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("wendy@example.org");
        var (secret, page) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "iOS Mail");
        var blob = page.HiddenValue("Blob")!;

        var response = await user.Client.PostAsync("/AppPasswords/New", "MobileConfig", [new("Blob", blob)], page.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal("application/x-apple-aspen-config", response.Message.Content.Headers.ContentType!.MediaType);
        var plist = System.Xml.Linq.XDocument.Parse(response.Html);
        var strings = plist.Descendants("string").Select(s => s.Value).ToList();
        Assert.Contains(secret, strings);
        Assert.Contains("imap.example.org", strings);
        Assert.Contains("wendy@example.org", strings);

        var other = await env.EnrollWithTotpAsync("xavier");
        var otherPage = await other.Client.GetAsync("/Security");
        var stolen = await other.Client.PostAsync("/AppPasswords/New", "MobileConfig", [new("Blob", blob)], otherPage.AntiforgeryToken(), follow: false);
        Assert.NotEqual(HttpStatusCode.OK, stolen.Status);

        // Revoked within the download's 15 minutes: no profile for a password that no longer works.
        var id = (await env.Portal.AppPasswords.ListAsync("wendy@example.org")).Single().Id;
        Assert.True(await env.Portal.AppPasswords.RevokeAsync("wendy@example.org", id));
        var afterRevoke = await user.Client.PostAsync("/AppPasswords/New", "MobileConfig", [new("Blob", blob)], page.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, afterRevoke.Status);
        Assert.Contains("revoked or has expired", afterRevoke.Html, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, afterRevoke.Html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Activity_ShowsSignInsFactorsAndAppPasswords()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("yara");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Android");
        var list = await user.Client.GetAsync("/AppPasswords");
        await user.Client.PostAsync("/AppPasswords", "RevokeAll", [], list.AntiforgeryToken());

        var activity = (await user.Client.GetAsync("/Security/Activity")).TextOf("activity");
        foreach (var expected in new[] { "Authenticator app added", "Recovery codes generated", "Signed in", "App password created", "All app passwords revoked", "Android" })
        {
            Assert.Contains(expected, activity, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task StoreDown_PortalStaysReady_AndSaysNothingWasIssued()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("ada");
        var form = await user.Client.GetAsync("/AppPasswords/New");
        await env.Redis.StopAsync();

        Assert.Equal(HttpStatusCode.OK, (await user.Client.Http.GetAsync("/health/ready")).StatusCode);
        var issued = await user.Client.PostAsync("/AppPasswords/New", null, [new("Name", "x"), new("Scopes", "imap"), new("Lifetime", "30.00:00:00")], form.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, issued.Status);
        Assert.Contains("not reachable", issued.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"app-password\"", issued.Html, StringComparison.Ordinal);
        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains("not reachable", list.Html, StringComparison.Ordinal);
    }
}
