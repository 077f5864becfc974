using System.Net;
using System.Net.Sockets;
using MaxMind.Db;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Core.GeoIp;

/// <summary>
/// Maps a client address to its country (ISO 3166-1 alpha-2) with the MMDB file of
/// <see cref="GeoIpOptions.CountryDatabase"/>. Never throws: no database, a private or malformed
/// address, an address the database does not know, or a failing read all give null, which a
/// country limit treats as "no country" (fail closed). Picks up a replaced file within a minute.
/// </summary>
public sealed partial class CountryLookup : IDisposable
{
    /// <summary>How often the file's last-write time is looked at (a stat call, on the lookup path).</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMinutes(1);

    private const int MaxAddressLength = 64;

    private readonly string? _path;
    private readonly TimeProvider _time;
    private readonly ILogger<CountryLookup> _logger;
    private readonly Lock _reloadLock = new();
    private volatile Reader? _reader;
    private Reader? _retired;
    private DateTime _triedWriteTime;
    private long _nextCheckTicks;
    private int _lookupFailureLogged;
    private bool _disposed;

    public CountryLookup(IOptions<GeoIpOptions> options, TimeProvider time, ILogger<CountryLookup> logger)
    {
        _time = time;
        _logger = logger;
        var configured = options.Value.CountryDatabase;
        if (!string.IsNullOrWhiteSpace(configured))
        {
            _path = Path.GetFullPath(configured);
            lock (_reloadLock)
            {
                Check(_time.GetUtcNow().UtcTicks);
            }
        }
    }

    /// <summary>Whether a country database is configured (it may still be unreadable right now).</summary>
    public bool IsEnabled => _path is not null;

    /// <summary>The country of <paramref name="address"/>, or null when it cannot be told.</summary>
    public string? CountryOf(string? address)
    {
        if (_path is null || string.IsNullOrEmpty(address) || address.Length > MaxAddressLength || !IPAddress.TryParse(address, out var ip))
        {
            return null;
        }

        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        // Decided here, not by the database: a custom or odd file must not give a LAN address a
        // country, and these never leave the local network under any country anyway.
        if (!IsPublic(ip))
        {
            return null;
        }

        MaybeReload();
        var reader = _reader;
        if (reader is null)
        {
            return null;
        }

        try
        {
            var code = reader.Find<CountryRecord>(ip)?.Country?.IsoCode;
            return CountryCodes.IsCanonical(code) ? code : null;
        }
        catch (Exception ex)
        {
            // On the validation path: a damaged record must deny (no country), not fail the login
            // request. Reported once per opened file, not once per login.
            if (Interlocked.Exchange(ref _lookupFailureLogged, 1) == 0)
            {
                Log.LookupFailed(_logger, _path, ex.GetType().Name, ex.Message);
            }

            return null;
        }
    }

    private void MaybeReload()
    {
        var now = _time.GetUtcNow().UtcTicks;
        if (now < Volatile.Read(ref _nextCheckTicks) || !_reloadLock.TryEnter())
        {
            // Not due, or another request is checking: this one uses the database as it is.
            return;
        }

        try
        {
            if (now >= _nextCheckTicks && !_disposed)
            {
                Check(now);
            }
        }
        finally
        {
            _reloadLock.Exit();
        }
    }

    /// <summary>Opens the file again when its last-write time changed. Called under the lock.</summary>
    private void Check(long now)
    {
        Volatile.Write(ref _nextCheckTicks, now + CheckInterval.Ticks);

        // Swapped out at least one interval ago: no lookup that started on it is still running,
        // so its memory can go.
        _retired?.Dispose();
        _retired = null;

        DateTime writeTime;
        try
        {
            writeTime = File.GetLastWriteTimeUtc(_path!);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            writeTime = DateTime.MinValue;
        }

        if (writeTime == _triedWriteTime)
        {
            return;
        }

        // Remembered whether or not the open works: a bad file is reported once, not every minute.
        _triedWriteTime = writeTime;
        if (!File.Exists(_path))
        {
            Log.Missing(_logger, _path!, _reader is not null);
            return;
        }

        try
        {
            // Read into memory (a few MB for a country database), not mapped: a mapped file that an
            // admin overwrites in place could fault the process; a copy cannot change under us.
            var fresh = new Reader(_path!, FileAccessMode.Memory);
            _retired = _reader;
            _reader = fresh;
            Volatile.Write(ref _lookupFailureLogged, 0);
            Log.Opened(_logger, _path!, fresh.Metadata.DatabaseType, fresh.Metadata.BuildDate);
        }
        catch (Exception ex)
        {
            Log.OpenFailed(_logger, _path!, ex.GetType().Name, ex.Message, _reader is not null);
        }
    }

    private static bool IsPublic(IPAddress ip)
    {
        if (IPAddress.IsLoopback(ip) || ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6None))
        {
            return false;
        }

        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            ip.TryWriteBytes(b, out _);
            return !(b[0] == 0 || b[0] == 10 || b[0] >= 224
                || (b[0] == 100 && (b[1] & 0xC0) == 64)    // 100.64.0.0/10, carrier-grade NAT
                || (b[0] == 169 && b[1] == 254)
                || (b[0] == 172 && (b[1] & 0xF0) == 16)
                || (b[0] == 192 && b[1] == 168));
        }

        return !(ip.IsIPv6LinkLocal || ip.IsIPv6SiteLocal || ip.IsIPv6UniqueLocal || ip.IsIPv6Multicast);
    }

    public void Dispose()
    {
        lock (_reloadLock)
        {
            _disposed = true;
            _retired?.Dispose();
            _reader?.Dispose();
            _retired = null;
            _reader = null;
        }
    }

    /// <summary>The one part of a country database record that is read; the rest is skipped.</summary>
    internal sealed class CountryRecord
    {
        [MapKey("country")]
        public CountryPart? Country { get; init; }
    }

    internal sealed class CountryPart
    {
        [MapKey("iso_code")]
        public string? IsoCode { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1501, Level = LogLevel.Information, Message = "Opened country database {Path} ({DatabaseType}, built {BuildDate:yyyy-MM-dd})")]
        public static partial void Opened(ILogger logger, string path, string databaseType, DateTime buildDate);

        [LoggerMessage(EventId = 1502, Level = LogLevel.Error, Message = "Country database {Path} cannot be opened: {ErrorType}: {Error}. Keeping the previous one: {KeptPrevious}")]
        public static partial void OpenFailed(ILogger logger, string path, string errorType, string error, bool keptPrevious);

        [LoggerMessage(EventId = 1503, Level = LogLevel.Error, Message = "Country database {Path} is missing. Keeping the previous one: {KeptPrevious}")]
        public static partial void Missing(ILogger logger, string path, bool keptPrevious);

        [LoggerMessage(EventId = 1504, Level = LogLevel.Warning, Message = "Country look-up in {Path} failed: {ErrorType}: {Error}")]
        public static partial void LookupFailed(ILogger logger, string path, string errorType, string error);
    }
}
