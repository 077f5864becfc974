using System.ComponentModel.DataAnnotations;

namespace Broker.Validation.Validation;

/// <summary>Limits of the validation API.</summary>
public sealed class ValidationOptions
{
    public const string SectionName = "Broker:Validation";

    /// <summary>Largest accepted request body. A login attempt is a few hundred bytes.</summary>
    [Range(512, 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 8 * 1024;

    /// <summary>Longest accepted string field (client id, session, …).</summary>
    [Range(16, 4096)]
    public int MaxFieldLength { get; set; } = 512;

    /// <summary>Seconds suggested to callers in <c>Retry-After</c> on a temporary failure.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 5;
}
