using System.Net;
using Broker.Core.GeoIp;
using Broker.Testing;
using MaxMind.Db;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Broker.Core.Tests.GeoIp;

/// <summary>The country look-up over a real MMDB file written by <see cref="TestMmdbWriter"/>.</summary>
public sealed class CountryLookupTests : IDisposable
{
    private readonly TestCountryDatabase _db = TestCountryDatabase.Create();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    public void Dispose() => _db.Dispose();

    private CountryLookup Lookup(string? path) =>
        new(Options.Create(new GeoIpOptions { CountryDatabase = path }), _time, NullLogger<CountryLookup>.Instance);

    [Fact]
    public void TestMmdbWriter_WritesAFileTheMaxMindReaderReads()
    {
        using var reader = new Reader(_db.Path, FileAccessMode.MemoryMapped);

        Assert.Equal(6, reader.Metadata.IPVersion);
        Assert.Equal(new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc), reader.Metadata.BuildDate);
        Assert.Equal("Broker test country database", reader.Metadata.Description["en"]);
        Assert.Equal("Broker-Test-Country", reader.Metadata.DatabaseType);
        Assert.Equal(2, reader.Metadata.BinaryFormatMajorVersion);
        Assert.Equal(["en"], reader.Metadata.Languages);
        var record = reader.Find<Dictionary<string, object>>(IPAddress.Parse("81.2.69.142"), out var prefix);
        Assert.NotNull(record);
        Assert.Equal("GB", ((Dictionary<string, object>)record["country"])["iso_code"]);
        Assert.Equal(24, prefix);
        Assert.Null(reader.Find<Dictionary<string, object>>(IPAddress.Parse("192.0.2.1")));
        Assert.Equal(TestMmdbWriter.Standard().Build(), File.ReadAllBytes(_db.Path));
    }

    [Theory]
    [InlineData("81.2.69.142", "GB")]
    [InlineData("5.9.1.1", "DE")]
    [InlineData("5.9.100.7", "FR")] // a nested, more specific network wins
    [InlineData("2a01:4f8:1:2::3", "DE")]
    [InlineData("::ffff:81.2.69.142", "GB")]
    [InlineData("216.160.83.56", "US")]
    public void CountryOf_AddressInTheDatabase_IsItsCountry(string ip, string country)
    {
        using var lookup = Lookup(_db.Path);

        Assert.True(lookup.IsEnabled);
        Assert.Equal(country, lookup.CountryOf(ip));
    }

    [Theory]
    [InlineData("192.0.2.1")] // not in the database
    [InlineData("2001:db8::1")]
    [InlineData("1.1.1.1")] // a record without a country
    [InlineData("10.1.2.3")] // private, although the database claims DE
    [InlineData("192.168.1.1")]
    [InlineData("172.16.5.5")]
    [InlineData("100.64.1.1")]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("fd00::1")]
    [InlineData("fe80::1")]
    [InlineData("0.0.0.0")]
    [InlineData("not an address")]
    [InlineData("81.2.69.142/24")]
    [InlineData("")]
    [InlineData(null)]
    public void CountryOf_UnknownPrivateOrInvalid_IsNull(string? ip)
    {
        using var lookup = Lookup(_db.Path);

        Assert.Null(lookup.CountryOf(ip));
    }

    [Fact]
    public void CountryOf_WithoutADatabase_IsNull()
    {
        using var lookup = Lookup(null);

        Assert.False(lookup.IsEnabled);
        Assert.Null(lookup.CountryOf("81.2.69.142"));
    }

    [Fact]
    public void CountryOf_FileReplacedOnDisk_IsPickedUpAtTheNextMinutelyCheck()
    {
        using var lookup = Lookup(_db.Path);
        Assert.Equal("GB", lookup.CountryOf("81.2.69.142"));

        Replace(new TestMmdbWriter().Add("81.2.69.0/24", "IE"));
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal("GB", lookup.CountryOf("81.2.69.142"));

        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("IE", lookup.CountryOf("81.2.69.142"));
        Assert.Null(lookup.CountryOf("5.9.1.1"));

        // The next check releases the replaced file's mapping; look-ups go on undisturbed.
        _time.Advance(CountryLookup.CheckInterval);
        Assert.Equal("IE", lookup.CountryOf("81.2.69.142"));
    }

    [Fact]
    public void CountryOf_ReplacementIsBrokenOrMissing_KeepsThePreviousDatabase()
    {
        using var lookup = Lookup(_db.Path);
        Assert.Equal("GB", lookup.CountryOf("81.2.69.142"));

        File.WriteAllBytes(_db.Path + ".tmp", [1, 2, 3, 4]);
        File.Move(_db.Path + ".tmp", _db.Path, overwrite: true);
        File.SetLastWriteTimeUtc(_db.Path, DateTime.UtcNow.AddMinutes(1));
        _time.Advance(CountryLookup.CheckInterval);
        Assert.Equal("GB", lookup.CountryOf("81.2.69.142"));

        File.Delete(_db.Path);
        _time.Advance(CountryLookup.CheckInterval);
        Assert.Equal("GB", lookup.CountryOf("81.2.69.142"));

        Replace(new TestMmdbWriter().Add("81.2.69.0/24", "NL"));
        _time.Advance(CountryLookup.CheckInterval);
        Assert.Equal("NL", lookup.CountryOf("81.2.69.142"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StartUp_MissingOrCorruptDatabase_FailsNamingTheSetting(bool exists)
    {
        var path = Path.Combine(Path.GetTempPath(), $"broker-country-{Guid.NewGuid():N}.mmdb");
        if (exists)
        {
            await File.WriteAllTextAsync(path, "this is not a MaxMind database");
        }

        try
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Broker:GeoIp:CountryDatabase"] = path });
            builder.Services.AddBrokerGeoIp();
            using var host = builder.Build();

            var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

            Assert.Contains("Broker:GeoIp:CountryDatabase", ex.Message, StringComparison.Ordinal);
            Assert.Contains(path, ex.Message, StringComparison.Ordinal);
            Assert.Contains(exists ? "is not a readable MaxMind DB" : "does not exist", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task StartUp_WithAValidDatabaseOrNone_Starts()
    {
        foreach (var path in new[] { _db.Path, null })
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Broker:GeoIp:CountryDatabase"] = path });
            builder.Services.AddBrokerGeoIp();
            using var host = builder.Build();

            await host.StartAsync();

            Assert.Equal(path is null ? null : "GB", host.Services.GetRequiredService<CountryLookup>().CountryOf("81.2.69.142"));
            await host.StopAsync();
        }
    }

    [Theory]
    [InlineData("de", "DE")]
    [InlineData(" Fr ", "FR")]
    [InlineData("XK", "XK")]
    [InlineData("EH", "EH")]
    [InlineData("UK", null)]
    [InlineData("ZZ", null)]
    [InlineData("D", null)]
    [InlineData("DEU", null)]
    [InlineData("D1", null)]
    [InlineData("ÄÖ", null)]
    public void CountryCodes_Normalize(string code, string? expected) =>
        Assert.Equal(expected, CountryCodes.Normalize(code));

    /// <summary>Replaces the file the way geoipupdate does (a complete file renamed over it), with a new write time.</summary>
    private void Replace(TestMmdbWriter writer)
    {
        var before = File.Exists(_db.Path) ? File.GetLastWriteTimeUtc(_db.Path) : DateTime.UtcNow;
        writer.WriteTo(_db.Path);
        File.SetLastWriteTimeUtc(_db.Path, before.AddMinutes(1));
    }
}
