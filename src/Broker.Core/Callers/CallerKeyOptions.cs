namespace Broker.Core.Callers;

/// <summary>API keys of the mail servers allowed to call the validation API.</summary>
public sealed class CallerKeyOptions
{
    public const string SectionName = "Broker:Callers";

    /// <summary>Header that carries the key.</summary>
    public const string HeaderName = "X-Broker-Api-Key";

    /// <summary>
    /// Keys fixed in configuration, as name → lower-case hex SHA-256 of the key
    /// (<c>printf %s KEY | sha256sum</c>). Keys created with <c>broker apikey create</c> live in
    /// Redis instead and need no restart.
    /// </summary>
    public Dictionary<string, string> Keys { get; set; } = [];

    /// <summary>How often keys stored in Redis are re-read.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(10);
}
