using System.Net;
using Broker.Core.AppPasswords;
using Broker.Core.Redis;
using Broker.Portal.Tests.Infrastructure;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Broker.Portal.Tests.Flows;

/// <summary>Allowed countries of an app password, through the portal's app passwords page.</summary>
public sealed class AllowedCountriesTests : IDisposable
{
    private const string Germany = "5.9.1.1";
    private const string Britain = "81.2.69.142";

    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();

    public void Dispose() => _countries.Dispose();

    private Task<PortalEnvironment> StartWithCountriesAsync() =>
        PortalEnvironment.StartAsync(new Dictionary<string, string?> { ["Broker:GeoIp:CountryDatabase"] = _countries.Path });

    [Fact]
    public async Task AllowedCountries_SetClearAndBadCode_WithClearMessage()
    {
        await using var env = await StartWithCountriesAsync();
        var user = await env.EnrollWithTotpAsync("kim");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("kim")).Single();

        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains($"id=\"countries-{ap.Id}\"", list.Html, StringComparison.Ordinal);
        var set = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "de, fr")], list.AntiforgeryToken());
        Assert.Equal("/AppPasswords", set.Url);
        Assert.Contains("may be used only from DE, FR.", set.Html, StringComparison.Ordinal);
        Assert.Contains("<span class=\"badge ok allowed-country\" title=\"Country\">DE</span>", set.Html, StringComparison.Ordinal);
        Assert.Equal(["DE", "FR"], (await env.Portal.AppPasswords.GetAsync("kim", ap.Id))!.AllowedCountries);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "kim", secret, Germany)).Result);
        Assert.Equal(DenyReason.CountryNotAllowed, (await ValidateFromAsync(env, "kim", secret, Britain)).Reason);

        var bad = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "DE, Germany")], set.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, bad.Status);
        Assert.Contains("&#x27;Germany&#x27; is not a two-letter country code", bad.Html, StringComparison.Ordinal);
        Assert.Contains("value=\"DE, Germany\"", bad.Html, StringComparison.Ordinal);
        Assert.Equal(["DE", "FR"], (await env.Portal.AppPasswords.GetAsync("kim", ap.Id))!.AllowedCountries);

        var cleared = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "")], bad.AntiforgeryToken());
        Assert.Contains("is no longer limited by country", cleared.Html, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("kim", ap.Id))!.AllowedCountries);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "kim", secret, Britain)).Result);
        var activity = (await user.Client.GetAsync("/Security/Activity")).TextOf("activity");
        Assert.Contains("Allowed countries changed", activity, StringComparison.Ordinal);
        Assert.Contains("Desktop: DE, FR", activity, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AllowedCountriesWithNetworks_FlashNamesBoth_AndEitherLetsTheLoginIn()
    {
        await using var env = await StartWithCountriesAsync();
        var user = await env.EnrollWithTotpAsync("lou");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Laptop");
        var ap = (await env.Portal.AppPasswords.ListAsync("lou")).Single();

        var list = await user.Client.GetAsync("/AppPasswords");
        var networks = await user.Client.PostAsync("/AppPasswords", "AllowedNetworks", [new("Id", ap.Id), new("Networks", "198.51.100.0/24")], list.AntiforgeryToken());
        var both = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "DE")], networks.AntiforgeryToken());

        Assert.Contains("may be used only from DE or from 198.51.100.0/24.", both.Html, StringComparison.Ordinal);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "lou", secret, Germany)).Result);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "lou", secret, "198.51.100.7")).Result);
        Assert.Equal(ValidationResult.Denied, (await ValidateFromAsync(env, "lou", secret, Britain)).Result);
        // The mail server gets the one fixed deny, whatever the reason.
        Assert.Equal(HttpStatusCode.Forbidden, await env.ValidateAsync("lou", secret));
    }

    [Fact]
    public async Task AllowedCountries_WithoutFreshMfa_RequiresStepUp()
    {
        await using var env = await StartWithCountriesAsync();
        var user = await env.EnrollWithTotpAsync("max");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("max")).Single();

        env.Time.Advance(TimeSpan.FromMinutes(6));
        var list = await user.Client.GetAsync("/AppPasswords");
        var post = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "DE")], list.AntiforgeryToken(), follow: false);

        Assert.StartsWith("/Account/StepUp", post.Location, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("max", ap.Id))!.AllowedCountries);
    }

    [Fact]
    public async Task AllowedCountries_WithoutAntiforgeryToken_IsRejected()
    {
        await using var env = await StartWithCountriesAsync();
        var user = await env.EnrollWithTotpAsync("nia");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("nia")).Single();

        var post = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "DE")], token: null, follow: false);

        Assert.Equal(HttpStatusCode.BadRequest, post.Status);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("nia", ap.Id))!.AllowedCountries);
    }

    [Fact]
    public async Task AnotherUsersAppPasswordId_ChangesNothing()
    {
        await using var env = await StartWithCountriesAsync();
        var victim = await env.EnrollWithTotpAsync("olga");
        await PortalEnvironment.CreateAppPasswordAsync(victim.Client, "Thunderbird");
        var ap = (await env.Portal.AppPasswords.ListAsync("olga")).Single();

        var other = await env.EnrollWithTotpAsync("pete");
        var page = await other.Client.GetAsync("/AppPasswords");
        await other.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "KP")], page.AntiforgeryToken());

        Assert.Empty((await env.Portal.AppPasswords.GetAsync("olga", ap.Id))!.AllowedCountries);
        Assert.DoesNotContain("Allowed countries changed", (await other.Client.GetAsync("/Security/Activity")).TextOf("activity"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutACountryDatabase_TheFormIsReplacedByAnExplanation_AndAPostIsRefused()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("quin");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("quin")).Single();

        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains("Country limits are not available", list.Html, StringComparison.Ordinal);
        Assert.DoesNotContain($"id=\"countries-{ap.Id}\"", list.Html, StringComparison.Ordinal);
        Assert.Contains($"id=\"allowed-{ap.Id}\"", list.Html, StringComparison.Ordinal);

        var post = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "DE")], list.AntiforgeryToken());

        Assert.Equal(HttpStatusCode.OK, post.Status);
        Assert.Contains("Country limits are not available: no GeoIP country database is configured", post.Html, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("quin", ap.Id))!.AllowedCountries);
    }

    [Fact]
    public async Task WithoutACountryDatabase_ALeftOverLimit_IsExplainedAndCanBeCleared()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("rosa");
        var (secret, _) = await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Desktop");
        var ap = (await env.Portal.AppPasswords.ListAsync("rosa")).Single();
        // Set while a database was configured; the database has since been removed.
        var redis = env.Portal.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var keys = env.Portal.Services.GetRequiredService<RedisKeys>();
        var hash = (string?)await redis.HashGetAsync(keys.CredentialIds("rosa"), ap.Id);
        await redis.HashSetAsync(keys.Credential("rosa", hash!), "ctry", "DE");
        Assert.Equal(DenyReason.CountryNotAllowed, (await ValidateFromAsync(env, "rosa", secret, Germany)).Reason);

        var list = await user.Client.GetAsync("/AppPasswords");
        Assert.Contains("Its country list matches nothing until then", list.Html, StringComparison.Ordinal);
        var cleared = await user.Client.PostAsync("/AppPasswords", "AllowedCountries", [new("Id", ap.Id), new("Countries", "")], list.AntiforgeryToken());

        Assert.Contains("is no longer limited by country", cleared.Html, StringComparison.Ordinal);
        Assert.Empty((await env.Portal.AppPasswords.GetAsync("rosa", ap.Id))!.AllowedCountries);
        Assert.Equal(ValidationResult.Allowed, (await ValidateFromAsync(env, "rosa", secret, Germany)).Result);
    }

    /// <summary>A login as the mail side reports it, from a given address.</summary>
    private static Task<ValidationOutcome> ValidateFromAsync(PortalEnvironment env, string user, string secret, string remoteIp) =>
        env.Portal.AppPasswords.ValidateAsync(user, secret, new ValidationContext("imap", remoteIp, "test-client"));
}
