using System.Net;
using System.Text.RegularExpressions;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Pages.Account;
using Broker.Portal.Tests.Infrastructure;
using Broker.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Tests.Flows;

/// <summary>
/// Self-registration through real HTTP, with the portal's real notifier sending over SMTP to a
/// <see cref="SmtpSink"/>. Usernames are mailbox addresses and an app password opens that mailbox,
/// so the one thing proved here is that the enrollment link only ever reaches the mailbox, and
/// that the page answers the same whatever the address.
/// </summary>
public sealed partial class SelfRegistrationTests
{
    [Fact]
    public async Task Register_ByDefault_IsNotFoundAndNotLinked()
    {
        await using var env = await PortalEnvironment.StartAsync();
        using var client = env.NewClient();

        var get = await client.GetRawAsync("/Account/Register");
        var login = await client.GetAsync("/Account/Login");
        var post = await client.PostAsync("/Account/Register", null, [new("Email", "amy@example.org")], login.AntiforgeryToken(), follow: false);

        Assert.Equal(HttpStatusCode.NotFound, get.Status);
        Assert.Equal(HttpStatusCode.NotFound, post.Status);
        Assert.DoesNotContain("/Account/Register", login.Html, StringComparison.Ordinal);
        Assert.Null(await FindUserAsync(env, "amy@example.org"));
    }

    [Fact]
    public async Task Register_AllowedAddress_MailsOneWorkingLink_AndEnrollmentThenRequiresASecondFactor()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        using var client = env.NewClient();
        var login = await client.GetAsync("/Account/Login");
        Assert.Contains("href=\"/Account/Register\"", login.Html, StringComparison.Ordinal);

        // Typed as people type it: the account is the normalised address, exactly where the mail goes.
        var answer = await RegisterAsync(env, " New.Person@Example.ORG ");

        Assert.Equal(RegisterModel.Answer, answer.TextOf("register-sent"));
        Assert.DoesNotContain("token=", answer.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("/Account/Enroll", answer.Html, StringComparison.Ordinal);
        var mail = Assert.Single(sink.Messages);
        Assert.Equal("new.person@example.org", Assert.Single(mail.EnvelopeTo));
        // Null envelope sender: if the mailbox does not exist, the link is dropped, not bounced to the From address.
        Assert.Equal(string.Empty, mail.EnvelopeFrom);
        Assert.Equal("new.person@example.org", Assert.Single(mail.Message.To.Mailboxes).Address);
        Assert.Equal("[Broker] Set up your account", mail.Message.Subject);
        var (link, token) = EnrollmentLink(mail);

        // Pending exactly like an account an admin creates: no password, no admin rights.
        var user = await FindUserAsync(env, "new.person@example.org");
        Assert.NotNull(user);
        Assert.Null(user.PasswordHash);
        Assert.False(user.IsAdmin);

        var enroll = await client.GetAsync(link);
        Assert.Equal("new.person@example.org", enroll.TextOf("enroll-username"));
        var enrolled = await client.PostAsync(enroll.Url, null, [new("Token", token), new("Password", PortalEnvironment.Password), new("Confirm", PortalEnvironment.Password)], enroll.AntiforgeryToken());
        Assert.Equal("/Security", enrolled.Url);
        Assert.Contains("id=\"enroll-required\"", enrolled.Html, StringComparison.Ordinal);
        Assert.Equal("/Security", (await client.GetAsync("/AppPasswords/New")).Url);
        Assert.Empty(await env.Portal.AppPasswords.ListAsync("new.person@example.org"));

        var events = await EventsAsync(env, user.Id);
        Assert.Contains(events, e => e.Kind == SecurityEventKinds.UserCreated && e.Actor == SelfRegistrationService.Actor);
        Assert.Contains(events, e => e.Kind == SecurityEventKinds.RegistrationRequested && e.RemoteIp == "127.0.0.1");
        Assert.Contains(events, e => e.Kind == SecurityEventKinds.EnrollmentLinkMailed);
        Assert.All(events, e => Assert.DoesNotContain(token, e.Detail, StringComparison.Ordinal));
        // Only the request lines of the GET above hold the token (the tests log Microsoft.AspNetCore at
        // Information; production keeps it at Warning, see docs/admin-guide.md "Request logs").
        Assert.DoesNotContain(env.Logs.Lines, l => l.Contains(token, StringComparison.Ordinal) && !l.Contains(" Microsoft.AspNetCore.Hosting.Diagnostics[", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Register_DomainNotAllowedOrNotAnAddress_NoMailNoAccount()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        var reference = await RegisterAsync(env, "reference@example.org");

        foreach (var address in new[] { "eve@evil.test", "eve@sub.example.org", "eve@example.org.evil.test", "eve@example.orgx" })
        {
            var answer = await RegisterAsync(env, address);

            Assert.Equal(reference.Status, answer.Status);
            Assert.Equal(reference.Html, answer.Html);
            Assert.Null(await FindUserAsync(env, address));
        }

        // Not a plain address at all: the form asks again (that tells nothing about accounts or domains).
        using var client = env.NewClient();
        foreach (var typed in new[] { "bob", "Bob <bob@example.org>", "bob@example.org(comment)", "bob@x@example.org", "\"bob\"@example.org" })
        {
            var again = await client.SubmitAsync("/Account/Register", null, [new("Email", typed)]);

            Assert.True(again.Html.Contains("id=\"register-error\"", StringComparison.Ordinal), $"accepted: {typed}");
            Assert.DoesNotContain("id=\"register-sent\"", again.Html, StringComparison.Ordinal);
        }

        Assert.Null(await FindUserAsync(env, "bob@example.org"));
        Assert.Equal("reference@example.org", Assert.Single(sink.Messages.SelectMany(m => m.EnvelopeTo)));
    }

    [Fact]
    public async Task Register_AddressWithInvisibleCharacter_IsRefusedAndSaysWhy()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        using var client = env.NewClient();

        // Pasted with a zero width space: it would become an account that looks like bob's.
        var answer = await client.SubmitAsync("/Account/Register", null, [new("Email", "bob\u200B@example.org")]);

        Assert.Contains("invisible character", answer.TextOf("register-error"), StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"register-sent\"", answer.Html, StringComparison.Ordinal);
        Assert.Empty(sink.Messages);
    }

    [Fact]
    public async Task Register_ExistingAccounts_SameAnswer_NoLinkForEnrolledDisabledOrAdmin()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        var carol = await env.EnrollWithTotpAsync("carol@example.org");
        await env.CreateUserAsync("dan@example.org");
        Assert.True(await PortalCommands.SetPortalDisabledAsync(env.Portal.Services, "dan@example.org", disabled: true, CancellationToken.None));
        await env.CreateUserAsync("boss@example.org", admin: true);
        // Past the resend interval, so only the state of each account decides.
        env.Time.Advance(TimeSpan.FromMinutes(11));
        var reference = await RegisterAsync(env, "reference@example.org");

        foreach (var address in new[] { "Carol@Example.org", "dan@example.org", "boss@example.org" })
        {
            var answer = await RegisterAsync(env, address);

            Assert.Equal(reference.Html, answer.Html);
            Assert.Empty(sink.To(address));
        }

        Assert.Single(sink.Messages);
        // Nothing about Carol's account changed: she signs in as before.
        await env.SignInWithTotpAsync(carol);
        var user = await FindUserAsync(env, "carol@example.org");
        var events = await EventsAsync(env, user!.Id);
        Assert.Contains(events, e => e.Kind == SecurityEventKinds.RegistrationRequested && e.Detail.Contains("nothing sent", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Kind is SecurityEventKinds.EnrollmentLinkMailed);
        Assert.Single(events, e => e.Kind == SecurityEventKinds.EnrollmentLinkIssued);
    }

    [Fact]
    public async Task Register_Repeated_OneMailPerInterval_ThenAFreshLinkReplacesTheOld()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        await RepeatedRequestsAsync(env, sink);
    }

    /// <summary>Repeated requests for one address: one mail per interval, the newest link wins. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task RepeatedRequestsAsync(PortalEnvironment env, SmtpSink sink)
    {
        await RegisterAsync(env, "frank@example.org");
        await RegisterAsync(env, "frank@example.org");
        await RegisterAsync(env, "FRANK@example.org");
        var first = Assert.Single(sink.To("frank@example.org"));

        env.Time.Advance(TimeSpan.FromMinutes(11));
        await RegisterAsync(env, "frank@example.org");

        Assert.Equal(2, sink.To("frank@example.org").Count);
        var second = sink.To("frank@example.org").Single(m => m != first);
        using var client = env.NewClient();
        Assert.Contains("not valid", (await client.GetAsync(EnrollmentLink(first).Link)).Html, StringComparison.Ordinal);
        Assert.Equal("frank@example.org", (await client.GetAsync(EnrollmentLink(second).Link)).TextOf("enroll-username"));
    }

    [Fact]
    public async Task Register_PendingAccountFromAnAdmin_AfterTheInterval_GetsAFreshLinkByMail()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        var adminLink = await env.CreateUserAsync("gina@example.org");

        // Just handed over by the admin: not replaced yet.
        await RegisterAsync(env, "gina@example.org");
        Assert.Empty(sink.To("gina@example.org"));

        env.Time.Advance(TimeSpan.FromMinutes(11));
        await RegisterAsync(env, "gina@example.org");

        var mail = Assert.Single(sink.To("gina@example.org"));
        using var client = env.NewClient();
        Assert.Contains("not valid", (await client.GetAsync(adminLink)).Html, StringComparison.Ordinal);
        Assert.Equal("gina@example.org", (await client.GetAsync(EnrollmentLink(mail).Link)).TextOf("enroll-username"));
    }

    [Fact]
    public async Task UnfinishedSelfRegisteredAccounts_AreRemovedAfterRetention_OthersAreKept()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        await UnfinishedAccountsAreRemovedAsync(env, sink);
    }

    /// <summary>
    /// Only accounts that self-registration made and nobody set up go, and only once their link has
    /// been expired for the retention; the hourly run does it. Shared with <see cref="PostgresPortalTests"/>.
    /// </summary>
    internal static async Task UnfinishedAccountsAreRemovedAsync(PortalEnvironment env, SmtpSink sink)
    {
        await RegisterAsync(env, "ivy@example.org");
        // Self-registered and set up: a password, so it stays (second factor or not).
        await RegisterAsync(env, "jo@example.org");
        var (joLink, joToken) = EnrollmentLink(Assert.Single(sink.To("jo@example.org")));
        using (var client = env.NewClient())
        {
            var enroll = await client.GetAsync(joLink);
            await client.PostAsync(enroll.Url, null, [new("Token", joToken), new("Password", PortalEnvironment.Password), new("Confirm", PortalEnvironment.Password)], enroll.AntiforgeryToken());
        }

        // Created by an admin and never set up: the admin's to manage.
        await env.CreateUserAsync("ken@example.org");
        // Self-registered, then handed a link by an admin: the admin took it over.
        await RegisterAsync(env, "lee@example.org");
        Assert.NotNull(await PortalCommands.NewEnrollmentLinkAsync(env.Portal.Services, "lee@example.org", CancellationToken.None));
        var o = env.Portal.Services.GetRequiredService<IOptions<PortalOptions>>().Value;
        var due = o.EnrollmentLinkLifetime + o.SelfRegistration.UnfinishedAccountRetention;

        env.Time.Advance(due - TimeSpan.FromMinutes(30));
        Assert.Equal(0, await SweepAsync(env));
        Assert.NotNull(await FindUserAsync(env, "ivy@example.org"));

        // The hourly run, not a direct call, removes it.
        var removedBefore = env.Logs.Lines.Count(l => l.Contains("[3044]", StringComparison.Ordinal));
        env.Time.Advance(UnfinishedAccountSweeper.Interval);
        await env.WaitForLogAsync(l => l.Contains("[3044]", StringComparison.Ordinal), removedBefore + 1);

        var ivyEvents = await AuditAsync(env, "ivy@example.org");
        Assert.Null(await FindUserAsync(env, "ivy@example.org"));
        var removal = Assert.Single(ivyEvents, e => e.Kind == SecurityEventKinds.UnfinishedAccountRemoved);
        Assert.Equal(UnfinishedAccountSweep.Actor, removal.Actor);
        // The history of the address is kept: the audit trail is append-only.
        Assert.Contains(ivyEvents, e => e.Kind == SecurityEventKinds.UserCreated && e.Actor == SelfRegistrationService.Actor);
        foreach (var kept in new[] { "jo@example.org", "ken@example.org", "lee@example.org" })
        {
            Assert.NotNull(await FindUserAsync(env, kept));
        }

        Assert.Equal(0, await SweepAsync(env));
        // The address can register again from scratch.
        await RegisterAsync(env, "ivy@example.org");
        Assert.Equal(2, sink.To("ivy@example.org").Count);
        Assert.NotNull(await FindUserAsync(env, "ivy@example.org"));
    }

    private static async Task<int> SweepAsync(PortalEnvironment env)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<UnfinishedAccountSweep>().RunOnceAsync(CancellationToken.None);
    }

    private static async Task<List<SecurityEvent>> AuditAsync(PortalEnvironment env, string username)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        return [.. scope.ServiceProvider.GetRequiredService<PortalDbContext>().SecurityEvents.Where(e => e.Username == username)];
    }

    [Fact]
    public async Task RegisterPosts_FromOneAddress_AreRateLimited()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink, new() { ["Broker:Portal:SignInPostsPerMinute"] = "5" });
        using var client = env.NewClient();
        var form = await client.GetAsync("/Account/Register");
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 7; i++)
        {
            statuses.Add((await client.PostAsync("/Account/Register", null, [new("Email", $"spray{i}@evil.test")], form.AntiforgeryToken(), follow: false)).Status);
        }

        Assert.All(statuses.Take(5), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
    }

    [Fact]
    public async Task Register_WithoutAntiforgeryToken_IsRejected()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await StartEnabledAsync(sink);
        using var client = env.NewClient();

        var post = await client.PostAsync("/Account/Register", null, [new("Email", "mallory@example.org")], token: null, follow: false);

        Assert.Equal(HttpStatusCode.BadRequest, post.Status);
        Assert.Null(await FindUserAsync(env, "mallory@example.org"));
    }

    [Fact]
    public async Task Startup_EnabledWithoutAllowedDomains_Fails()
    {
        await using var sink = SmtpSink.Start();
        var settings = sink.NotificationSettings();
        settings["Broker:Portal:SelfRegistration:Enabled"] = "true";

        var failure = await StartupFailureAsync(settings);

        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:SelfRegistration:AllowedDomains must list at least one mail domain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Startup_EnabledWithoutMail_Fails()
    {
        var failure = await StartupFailureAsync(new()
        {
            ["Broker:Portal:SelfRegistration:Enabled"] = "true",
            ["Broker:Portal:SelfRegistration:AllowedDomains:0"] = "example.org",
            ["Broker:Portal:SelfRegistration:AllowedDomains:1"] = "*.example.net",
        });

        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:SelfRegistration:Enabled needs mail: set Broker:Notifications:Enabled", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("'*.example.net'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Startup_NegativeUnfinishedAccountRetention_FailsEvenWithSelfRegistrationOff()
    {
        // The sweep runs either way; a negative retention would remove accounts whose link still works.
        var failure = await StartupFailureAsync(new() { ["Broker:Portal:SelfRegistration:UnfinishedAccountRetention"] = "-1.00:00:00" });

        Assert.Contains(failure.Failures, f => f.Contains("Broker:Portal:SelfRegistration:UnfinishedAccountRetention must be between 0 and 365 days", StringComparison.Ordinal));
    }

    internal static async Task<PortalEnvironment> StartEnabledAsync(SmtpSink sink, Dictionary<string, string?>? extra = null, PostgresCluster? postgres = null)
    {
        var config = sink.NotificationSettings();
        config["Broker:Portal:SelfRegistration:Enabled"] = "true";
        config["Broker:Portal:SelfRegistration:AllowedDomains:0"] = "Example.org";
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            config[k] = v;
        }

        return await PortalEnvironment.StartAsync(config, postgres);
    }

    /// <summary>Submits the form from a fresh browser and waits until the portal has handled the request (that happens after the answer).</summary>
    private static async Task<PageResponse> RegisterAsync(PortalEnvironment env, string email)
    {
        var handled = env.Logs.Lines.Count(IsRegistrationOutcome);
        using var client = env.NewClient();
        var answer = await client.SubmitAsync("/Account/Register", null, [new("Email", email)]);
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal("/Account/Register", answer.Url);
        await env.WaitForLogAsync(IsRegistrationOutcome, handled + 1);
        return answer;
    }

    /// <summary>Log events 3040 (refused in the page) and 3041 (handled in the background).</summary>
    private static bool IsRegistrationOutcome(string line) =>
        line.Contains("[3040]", StringComparison.Ordinal) || line.Contains("[3041]", StringComparison.Ordinal);

    private static (string Link, string Token) EnrollmentLink(ReceivedMail mail)
    {
        var m = LinkRegex().Match(mail.Body);
        Assert.True(m.Success, $"no enrollment link in: {mail.Body}");
        return (new Uri(m.Value).PathAndQuery, m.Groups[1].Value);
    }

    private static async Task<PortalUser?> FindUserAsync(PortalEnvironment env, string username)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        return Broker.Core.Users.Username.TryNormalize(username, out var normalized)
            ? await scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>().FindByNameAsync(normalized)
            : null;
    }

    private static async Task<List<SecurityEvent>> EventsAsync(PortalEnvironment env, string userId)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<SecurityLog>().ForUserAsync(userId);
    }

    /// <summary>Starts the portal the way the tests do and returns the start-up validation failure.</summary>
    internal static async Task<OptionsValidationException> StartupFailureAsync(Dictionary<string, string?> settings)
    {
        var dir = Path.Combine(Path.GetTempPath(), "broker-portal-" + Guid.NewGuid().ToString("N")[..12]);
        var config = BrokerApps.BaseConfig("127.0.0.1:1,connectTimeout=200,abortConnect=false");
        config["Broker:DataDirectory"] = dir;
        config["Broker:Portal:PublicOrigin"] = "http://localhost";
        foreach (var (k, v) in settings)
        {
            config[k] = v;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddBrokerPortal();
        await using var app = builder.Build();
        app.MapBrokerPortal();
        try
        {
            return await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [GeneratedRegex(@"http://localhost/Account/Enroll\?token=([A-Za-z0-9_-]+)")]
    private static partial Regex LinkRegex();
}
