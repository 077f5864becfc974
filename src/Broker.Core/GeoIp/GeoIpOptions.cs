using MaxMind.Db;
using Microsoft.Extensions.Options;

namespace Broker.Core.GeoIp;

/// <summary>
/// The country database behind per-app-password country limits. Optional: without it, country
/// limits cannot be set, and an app password that still has one matches no country (fails closed).
/// </summary>
public sealed class GeoIpOptions
{
    public const string SectionName = "Broker:GeoIp";

    /// <summary>
    /// Path of a MaxMind DB (MMDB) file whose records carry <c>country.iso_code</c>: MaxMind
    /// GeoLite2-Country or GeoIP2-Country/City, or DB-IP "IP to Country Lite". Read into memory
    /// and read again within a minute of being replaced; replace it by renaming a complete new file
    /// over it. Empty: no country limits.
    /// </summary>
    public string? CountryDatabase { get; set; }
}

/// <summary>A configured database must exist and open as MMDB, or start-up stops naming the setting.</summary>
internal sealed class GeoIpOptionsValidator : IValidateOptions<GeoIpOptions>
{
    private const string Setting = $"{GeoIpOptions.SectionName}:CountryDatabase";

    public ValidateOptionsResult Validate(string? name, GeoIpOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.CountryDatabase))
        {
            return ValidateOptionsResult.Success;
        }

        var path = Path.GetFullPath(options.CountryDatabase);
        if (!File.Exists(path))
        {
            return ValidateOptionsResult.Fail($"{Setting}: '{path}' does not exist. Point it at a country database in MMDB format (GeoLite2-Country or DB-IP IP to Country Lite), or remove the setting to run without country limits.");
        }

        try
        {
            using var reader = new Reader(path, FileAccessMode.MemoryMapped);
            return ValidateOptionsResult.Success;
        }
        catch (Exception ex)
        {
            // The reader throws several types for a damaged file (InvalidDatabaseException, but also
            // argument and I/O errors for empty or truncated ones); all mean "not usable".
            return ValidateOptionsResult.Fail($"{Setting}: '{path}' is not a readable MaxMind DB (MMDB) file: {ex.Message}");
        }
    }
}
