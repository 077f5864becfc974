using System.ComponentModel.DataAnnotations;

namespace Broker.Core.Redis;

/// <summary>Where the credential store lives.</summary>
public sealed class RedisOptions
{
    public const string SectionName = "Redis";

    /// <summary>
    /// A StackExchange.Redis connection string (<c>host:port,password=…,ssl=true</c>; several
    /// endpoints for a cluster). Empty in the embedded host, which then starts Garnet in-process.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>
    /// Bound on one store operation. Past it, validation answers "temporary failure": a slow
    /// Redis must not hold mail-server auth workers, and must never turn into an allow.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Prefix of every key Broker writes, so one Redis can be shared.</summary>
    [RegularExpression("^[A-Za-z0-9:_-]{1,32}$")]
    public string KeyPrefix { get; set; } = "broker";
}
