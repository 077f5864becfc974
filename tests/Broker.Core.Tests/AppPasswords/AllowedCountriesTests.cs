using Broker.Core.AppPasswords;
using Broker.Core.Redis;
using Broker.Testing;
using StackExchange.Redis;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>Per-app-password allowed countries against a real redis-server and a test country database.</summary>
public sealed class AllowedCountriesTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    private const string Germany = "5.9.1.1";
    private const string GermanyV6 = "2a01:4f8:10::5";
    private const string Britain = "81.2.69.142";
    private const string Sweden = "89.160.20.5";

    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();

    protected override string RedisConfiguration => redis.Server.Configuration;

    protected override void Configure(IDictionary<string, string?> settings) =>
        settings["Broker:GeoIp:CountryDatabase"] = _countries.Path;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _countries.Dispose();
    }

    private Task<ValidationOutcome> From(IssuedAppPassword issued, string? ip) =>
        Store.ValidateAsync(User, issued.Secret, new ValidationContext("imap", ip, null));

    [Fact]
    public async Task AllowedCountry_IsAllowed_AnotherCountryIsDenied()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        var limited = await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["de"]);

        Assert.Equal(["DE"], limited.AllowedCountries);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, Germany)).Result);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, GermanyV6)).Result);
        var abroad = await From(issued, Britain);
        Assert.Equal(ValidationResult.Denied, abroad.Result);
        Assert.Equal(DenyReason.CountryNotAllowed, abroad.Reason);
        Assert.Equal(issued.AppPassword.Id, abroad.CredentialId);
        Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, Sweden)).Reason);
    }

    [Theory]
    [InlineData("192.0.2.1")] // not in the database
    [InlineData("1.1.1.1")] // in the database without a country
    [InlineData("10.1.2.3")] // private (the database's claim of DE is not believed)
    [InlineData("not-an-ip")]
    [InlineData(null)] // the mail server sent no address
    public async Task UnknownCountry_NeverMatches_FailsClosed(string? ip)
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE", "GB", "SE", "US", "FR"]);

        Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, ip)).Reason);
    }

    [Fact]
    public async Task CountriesAndNetworks_AreAUnion_GermanyOrTheOfficeVpn()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE"]);
        var both = await Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["192.0.2.0/24"]);

        Assert.Equal(["DE"], both.AllowedCountries);
        Assert.Equal(["192.0.2.0/24"], both.AllowedNetworks);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, Germany)).Result);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, "192.0.2.77")).Result); // no country, but the VPN
        Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, Britain)).Reason);
        Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, "192.0.3.1")).Reason);
    }

    [Fact]
    public async Task OnlyNetworks_DenialStaysNetworkNotAllowed_EvenFromAKnownCountry()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["192.0.2.0/24"]);

        Assert.Equal(DenyReason.NetworkNotAllowed, (await From(issued, Germany)).Reason);
    }

    [Fact]
    public async Task EmptyList_RemovesTheLimit()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE"]);
        Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, Britain)).Reason);

        var cleared = await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, [" ", ""]);

        Assert.Empty(cleared.AllowedCountries);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, Britain)).Result);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, "192.0.2.1")).Result);
    }

    [Fact]
    public async Task CountryDenials_OfTheRightSecret_DoNotCountAsGuessing()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["GB"]);

        // Past every limit of one user and one network (10) and of one user (30).
        for (var i = 0; i < 35; i++)
        {
            Assert.Equal(DenyReason.CountryNotAllowed, (await From(issued, Sweden)).Reason);
        }

        Assert.Empty(await FailureCountersAsync());
        Assert.False(await Store.IsNetworkThrottledAsync(Sweden));
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, []);
        Assert.Equal(ValidationResult.Allowed, (await From(issued, Sweden)).Result);

        // The same counters do move for a wrong password: the check above looks at the right keys.
        Assert.Equal(DenyReason.WrongPassword, (await Store.ValidateAsync(User, AppPasswordFormat.Generate(), new ValidationContext("imap", Sweden, null))).Reason);
        Assert.NotEmpty(await FailureCountersAsync());
    }

    [Fact]
    public async Task BadCodes_AreRefusedWithAMessage_AndChangeNothing()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE"]);

        async Task<string> Refused(params string[] codes) =>
            (await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, codes))).Message;

        Assert.Contains("'Germany' is not a two-letter country code", await Refused("FR", "Germany"), StringComparison.Ordinal);
        Assert.Contains("'ZZ' is not a two-letter country code", await Refused("ZZ"), StringComparison.Ordinal);
        Assert.Contains("GB", await Refused("uk"), StringComparison.Ordinal);
        Assert.Contains("At most 20", await Refused([.. "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL".Split(' ')]), StringComparison.Ordinal);
        Assert.Equal(["DE"], (await Store.GetAsync(User, issued.AppPassword.Id))!.AllowedCountries);
        Assert.Contains("No such app password", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedCountriesAsync(User, "0000", ["DE"]))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Codes_AreUpperCasedAndDeduplicated_InTheOrderGiven()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        var limited = await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["fr", " de ", "FR"]);

        Assert.Equal(["FR", "DE"], limited.AllowedCountries);
        Assert.Equal(["FR", "DE"], Assert.Single(await Store.ListAsync(User)).AllowedCountries);
    }

    private async Task<List<string>> FailureCountersAsync()
    {
        // Fire-and-forget counting travels on the same connection: a round trip after it has seen it land.
        await Redis.GetDatabase().PingAsync();
        var keys = new RedisKeys("broker");
        var server = Redis.GetServers().Single();
        var found = new List<string>();
        foreach (var pattern in new[] { $"{keys.UserPrefix(User)}:f:*", "broker:{n:89.160.20.0/24}:f:*" })
        {
            await foreach (var key in server.KeysAsync(pattern: pattern))
            {
                found.Add(key.ToString());
            }
        }

        return found;
    }
}

/// <summary>Country limits when no country database is configured.</summary>
public sealed class AllowedCountriesWithoutDatabaseTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    [Fact]
    public async Task SettingCountries_IsRefused_NamingTheSetting_ButClearingWorks()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE"]));

        Assert.Contains("Broker:GeoIp:CountryDatabase", ex.Message, StringComparison.Ordinal);
        Assert.Empty((await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, [])).AllowedCountries);
    }

    [Fact]
    public async Task LimitLeftFromBeforeTheDatabaseWasRemoved_FailsClosed_UntilCleared()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        var keys = new RedisKeys("broker");
        var hash = (string?)await Redis.GetDatabase().HashGetAsync(keys.CredentialIds(User), issued.AppPassword.Id);
        await Redis.GetDatabase().HashSetAsync(keys.Credential(User, hash!), "ctry", "DE");

        Assert.Equal(DenyReason.CountryNotAllowed, (await Store.ValidateAsync(User, issued.Secret, new ValidationContext("imap", "5.9.1.1", null))).Reason);

        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, []);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, new ValidationContext("imap", "5.9.1.1", null))).Result);
    }
}
