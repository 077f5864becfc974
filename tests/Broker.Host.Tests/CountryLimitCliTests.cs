using System.Text.RegularExpressions;
using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Host.Tests;

/// <summary><c>broker app-password allow-countries</c> and the country database setting, through the real executable.</summary>
public sealed class CountryLimitCliTests(RedisFixture redis) : IClassFixture<RedisFixture>, IDisposable
{
    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();

    private readonly string _user = $"cli-{Guid.NewGuid():N}@example.com";

    private readonly CliStore _store = new(redis);

    private CliStore? _withCountries;

    public void Dispose() => _countries.Dispose();

    private string[] Store => _store.Args;

    /// <summary>The same kind of store with the country database configured (its own pepper).</summary>
    private CliStore StoreWithCountries => _withCountries ??= new(redis, new Dictionary<string, string?> { ["Broker:GeoIp:CountryDatabase"] = _countries.Path });

    private string[] WithCountries => StoreWithCountries.Args;

    [Fact]
    public async Task AllowCountries_SetListAndClear_LoginsFollowTheLimit()
    {
        var (_, issued) = await BrokerProcess.RunAsync([.. WithCountries, "app-password", "issue", "--user", _user, "--name", "Outlook", "--scopes", "imap"]);
        var id = Regex.Match(issued, "id: +([0-9a-f]+)").Groups[1].Value;
        var password = Regex.Match(issued, "password: ([0-9a-z-]+)").Groups[1].Value;

        var (code, output) = await BrokerProcess.RunAsync([.. WithCountries, "app-password", "allow-countries", "--user", _user, "--id", id, "--countries", "de,FR"]);
        Assert.True(code == 0, output);
        Assert.Contains($"{id} may be used only from DE, FR", output, StringComparison.Ordinal);
        Assert.Contains("allowed countries: DE, FR", (await BrokerProcess.RunAsync([.. WithCountries, "app-password", "list", "--user", _user])).Output, StringComparison.Ordinal);

        await using var services = StoreWithCountries.InProcess();
        var store = services.GetRequiredService<AppPasswordService>();
        Assert.Equal(ValidationResult.Allowed, (await store.ValidateAsync(_user, password, new ValidationContext("imap", "5.9.1.1", null))).Result);
        Assert.Equal(DenyReason.CountryNotAllowed, (await store.ValidateAsync(_user, password, new ValidationContext("imap", "81.2.69.142", null))).Reason);

        (code, output) = await BrokerProcess.RunAsync([.. WithCountries, "app-password", "allow-countries", "--user", _user, "--id", id, "--countries="]);
        Assert.True(code == 0, output);
        Assert.Contains($"{id} is not limited by country", output, StringComparison.Ordinal);
        Assert.Equal(ValidationResult.Allowed, (await store.ValidateAsync(_user, password, new ValidationContext("imap", "81.2.69.142", null))).Result);
    }

    [Theory]
    [InlineData(true, "--user u --id x --countries DE,Germany", "'Germany' is not a two-letter country code")]
    [InlineData(true, "--user u --id x --countries UK", "the United Kingdom is GB")]
    [InlineData(true, "--user u --id x --countries DE", "No such app password")]
    [InlineData(true, "--user u --id x", "--countries is required")]
    [InlineData(false, "--user u --id x --countries DE", "Country limits are not available: no GeoIP country database is configured (Broker:GeoIp:CountryDatabase)")]
    public async Task AllowCountries_BadInput_GetsAClearMessageAndNonZeroExit(bool withDatabase, string arguments, string message)
    {
        var (code, output) = await BrokerProcess.RunAsync([.. withDatabase ? WithCountries : Store, "app-password", "allow-countries", .. arguments.Split(' ')]);

        Assert.NotEqual(0, code);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsAllowCountries()
    {
        var (code, output) = await BrokerProcess.RunAsync("help");

        Assert.Equal(0, code);
        Assert.Contains("app-password allow-countries --user U --id ID --countries DE,FR", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingCountryDatabase_StopsStartUp_NamingTheSetting()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.mmdb");
        await using var p = BrokerProcess.Start([.. Store, "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{FreePort.Get()}", $"--Broker:GeoIp:CountryDatabase={missing}"]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, code);
        Assert.Contains("Broker:GeoIp:CountryDatabase", p.Output, StringComparison.Ordinal);
        Assert.Contains(missing, p.Output, StringComparison.Ordinal);
    }
}
